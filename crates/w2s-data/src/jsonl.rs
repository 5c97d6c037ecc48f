//! Streaming JSONL: one JSON object a line, read lazily and written atomically.
//!
//! - [`JsonlReader`] yields one record per non-blank line. A malformed line is an error naming the
//!   file and its 1-based line; with [`BadLines::Skip`] it is skipped and counted instead, so one
//!   broken shard line does not cost a night's run (the count says how much was lost).
//! - [`JsonlWriter`] writes through an [`AtomicFile`] and renames it on [`JsonlWriter::finish`];
//!   a crash (or a drop without `finish`) never leaves a half file under the final name that
//!   looks whole.
//!
//! Records are any serde type; [`Object`] reads a line as it is, every field kept.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::atomic::AtomicFile;
use crate::error::{DataError, Result};

/// A JSON object, as one JSONL line holds.
pub type Object = Map<String, Value>;

/// What to do with a line that does not parse as the expected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadLines {
    /// Stop with an error naming file and line.
    #[default]
    Fail,
    /// Skip the line and count it in [`JsonlReader::skipped`].
    Skip,
}

/// Lazily reads records of type `T` from JSONL. Blank lines are ignored.
#[derive(Debug)]
pub struct JsonlReader<T, R = BufReader<File>> {
    reader: R,
    path: PathBuf,
    line: usize,
    bad_lines: BadLines,
    skipped: usize,
    buffer: Vec<u8>,
    done: bool,
    record: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonlReader<T> {
    /// Open `path` for reading.
    ///
    /// # Errors
    /// [`DataError::Io`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>, bad_lines: BadLines) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Ok(Self::from_reader(BufReader::new(file), path, bad_lines))
    }
}

impl<T: DeserializeOwned, R: BufRead> JsonlReader<T, R> {
    /// Read from any buffered source; `path` is only used to name it in errors.
    pub fn from_reader(reader: R, path: impl Into<PathBuf>, bad_lines: BadLines) -> Self {
        Self {
            reader,
            path: path.into(),
            line: 0,
            bad_lines,
            skipped: 0,
            buffer: Vec::new(),
            done: false,
            record: PhantomData,
        }
    }

    /// The file name errors use.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 1-based number of the line read last: the line of the record just returned.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Lines skipped so far under [`BadLines::Skip`].
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Read every remaining record.
    ///
    /// # Errors
    /// The first I/O error or (under [`BadLines::Fail`]) malformed line.
    pub fn read_all(mut self) -> Result<JsonlContents<T>> {
        let records = self.by_ref().collect::<Result<Vec<T>>>()?;
        Ok(JsonlContents {
            records,
            skipped: self.skipped,
        })
    }
}

impl<T: DeserializeOwned, R: BufRead> Iterator for JsonlReader<T, R> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        while !self.done {
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    if self.buffer.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice(&self.buffer) {
                        Ok(record) => return Some(Ok(record)),
                        Err(_) if self.bad_lines == BadLines::Skip => self.skipped += 1,
                        Err(source) => {
                            self.done = true;
                            return Some(Err(DataError::Json {
                                path: self.path.clone(),
                                line: self.line,
                                source,
                            }));
                        }
                    }
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(DataError::io(&self.path, source)));
                }
            }
        }
        None
    }
}

/// Every record of a file and how many bad lines were skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlContents<T> {
    /// The records in file order.
    pub records: Vec<T>,
    /// Lines skipped under [`BadLines::Skip`].
    pub skipped: usize,
}

/// Read a whole JSONL file.
///
/// # Errors
/// See [`JsonlReader::open`] and [`JsonlReader::read_all`].
pub fn read_jsonl<T: DeserializeOwned>(
    path: impl AsRef<Path>,
    bad_lines: BadLines,
) -> Result<JsonlContents<T>> {
    JsonlReader::open(path, bad_lines)?.read_all()
}

/// Call `f(line, object)` for each object of `path` in order, `line` being its 1-based line; stops
/// at the first malformed line or error of `f`. A shorthand for a [`JsonlReader`] loop; `f` may
/// return the caller's own error type.
///
/// # Errors
/// As [`JsonlReader`] under [`BadLines::Fail`], or what `f` returns.
pub fn for_each_object<E: From<DataError>>(
    path: impl AsRef<Path>,
    mut f: impl FnMut(usize, Object) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut reader = JsonlReader::open(path, BadLines::Fail)?;
    while let Some(object) = reader.next() {
        f(reader.line(), object?)?;
    }
    Ok(())
}

/// Writes records as JSONL to a temporary file that becomes `path` on [`JsonlWriter::finish`].
#[derive(Debug)]
pub struct JsonlWriter<T> {
    file: AtomicFile,
    /// One serialized record, so that a record that fails to serialize writes nothing.
    line: Vec<u8>,
    written: usize,
    record: PhantomData<fn(&T)>,
}

impl<T: Serialize> JsonlWriter<T> {
    /// Create the temporary file; `path` itself is untouched until `finish`.
    ///
    /// # Errors
    /// As [`AtomicFile::create`].
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            file: AtomicFile::create(path)?,
            line: Vec::new(),
            written: 0,
            record: PhantomData,
        })
    }

    /// Append one record as one line.
    ///
    /// # Errors
    /// [`DataError::Serialize`] (nothing is written then) or [`DataError::Io`].
    pub fn write(&mut self, record: &T) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(|source| DataError::Serialize {
            path: self.file.path().to_path_buf(),
            index: self.written,
            source,
        })?;
        self.line.push(b'\n');
        self.file
            .write_all(&self.line)
            .map_err(|e| DataError::io(self.file.tmp_path(), e))?;
        self.written += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Flush, sync and rename the temporary file to its final name; returns the record count.
    ///
    /// # Errors
    /// As [`AtomicFile::finish`].
    pub fn finish(self) -> Result<usize> {
        self.file.finish()?;
        Ok(self.written)
    }
}

/// Write all `records` (values or references) to `path` atomically; returns the record count.
///
/// # Errors
/// See [`JsonlWriter`].
pub fn write_jsonl<T: Serialize>(
    path: impl AsRef<Path>,
    records: impl IntoIterator<Item = T>,
) -> Result<usize> {
    let mut writer = JsonlWriter::create(path)?;
    for record in records {
        writer.write(&record)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Example {
        prompt: String,
        completion: String,
        #[serde(flatten)]
        extra: Object,
    }

    fn read(text: &[u8], bad_lines: BadLines) -> Result<JsonlContents<Example>> {
        JsonlReader::from_reader(text, "mem.jsonl", bad_lines).read_all()
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let text = b"{\"prompt\":\"a\",\"completion\":\"b\"}\n\n{\"prompt\":\"a\"}\n";
        let err = read(text, BadLines::Fail).unwrap_err();
        assert!(matches!(err, DataError::Json { line: 3, .. }), "{err}");
        assert!(err.to_string().starts_with("mem.jsonl:3:"), "{err}");

        let err =
            JsonlReader::<Object, _>::from_reader(&b"{}\n\n[1]\n"[..], "x.jsonl", BadLines::Fail)
                .read_all()
                .unwrap_err();
        assert!(err.to_string().starts_with("x.jsonl:3: "), "{err}");
    }

    #[test]
    fn skip_mode_counts_bad_lines_and_keeps_good_ones() {
        let text = b"not json\r\n{\"prompt\":\"a\",\"completion\":\"b\"}\r\n\xff\n[1]\n{\"prompt\":\"c\",\"completion\":\"d\"}";
        let contents = read(text, BadLines::Skip).unwrap();
        assert_eq!(contents.skipped, 3);
        let prompts: Vec<_> = contents.records.iter().map(|r| r.prompt.as_str()).collect();
        assert_eq!(prompts, ["a", "c"]);
    }

    #[test]
    fn line_numbers_count_blank_and_skipped_lines() {
        let text = b"{\"a\":1}\n\nbad\n{\"a\":2}\n";
        let mut reader =
            JsonlReader::<Object, _>::from_reader(&text[..], "m.jsonl", BadLines::Skip);
        let mut seen = Vec::new();
        while let Some(record) = reader.next() {
            seen.push((reader.line(), record.unwrap()["a"].clone()));
        }
        assert_eq!(seen, vec![(1, 1.into()), (4, 2.into())]);
        assert_eq!(reader.skipped(), 1);
    }

    #[test]
    fn for_each_object_passes_line_numbers() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| DataError::io(Path::new("tempdir"), e))?;
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n\n{\"a\": 2}\n").map_err(|e| DataError::io(&path, e))?;
        let mut seen = Vec::new();
        for_each_object::<DataError>(&path, |line, o| {
            seen.push((line, o["a"].clone()));
            Ok(())
        })?;
        assert_eq!(seen, vec![(1, 1.into()), (3, 2.into())]);
        Ok(())
    }

    #[test]
    fn writer_is_atomic_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let records: Vec<Example> =
            vec![serde_json::from_str(r#"{"prompt":"p","completion":"c","gold":"3"}"#).unwrap()];
        let mut writer = JsonlWriter::create(&path).unwrap();
        writer.write(&records[0]).unwrap();
        assert!(!path.exists(), "final name must not appear before finish");
        assert_eq!(writer.finish().unwrap(), 1);
        assert_eq!(
            read_jsonl::<Example>(&path, BadLines::Fail)
                .unwrap()
                .records,
            records
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let unfinished = JsonlWriter::<Example>::create(dir.path().join("half.jsonl")).unwrap();
        drop(unfinished);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_record_that_cannot_be_serialized_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let bad: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        let mut writer = JsonlWriter::create(&path).unwrap();
        let err = writer.write(&bad).unwrap_err();
        assert!(
            matches!(err, DataError::Serialize { index: 0, .. }),
            "{err}"
        );
        assert_eq!(writer.written(), 0);
        assert_eq!(writer.finish().unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn write_jsonl_takes_values_or_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let values = [serde_json::json!({"a": 1}), serde_json::json!({"a": 2})];
        assert_eq!(write_jsonl(&path, values.iter()).unwrap(), 2);
        assert_eq!(write_jsonl(&path, values).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn missing_file_is_an_io_error_with_its_path() {
        let err = read_jsonl::<Example>("/nonexistent/x.jsonl", BadLines::Fail).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/x.jsonl"), "{err}");
    }
}
