//! Streaming JSONL: one JSON object a line, read lazily and written atomically.
//!
//! - [`JsonlReader`] yields one record per non-blank line. A malformed line is an error naming the
//!   file and its 1-based line; with [`BadLines::Skip`] it is skipped and counted instead, so one
//!   broken shard line does not cost a night's run (the count says how much was lost).
//! - [`JsonlWriter`] writes to `<name>.tmp` beside the target and renames it on
//!   [`JsonlWriter::finish`]; a crash (or a drop without `finish`) never leaves a half file under
//!   the final name that looks whole.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CurationError, Result};

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
    /// [`CurationError::Io`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>, bad_lines: BadLines) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| CurationError::Io {
            path: path.to_path_buf(),
            source,
        })?;
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
                            return Some(Err(CurationError::Json {
                                path: self.path.clone(),
                                line: self.line,
                                source,
                            }));
                        }
                    }
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(CurationError::Io {
                        path: self.path.clone(),
                        source,
                    }));
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

/// Writes records as JSONL to a temporary file that becomes `path` on [`JsonlWriter::finish`].
pub struct JsonlWriter<T> {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    tmp_path: PathBuf,
    written: usize,
    record: PhantomData<fn(&T)>,
}

impl<T: Serialize> JsonlWriter<T> {
    /// Create `<path>.tmp` for writing; `path` itself is untouched until `finish`.
    ///
    /// # Errors
    /// [`CurationError::Io`] when the temporary file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp_path = path.with_file_name(tmp_name);
        let file = File::create(&tmp_path).map_err(|source| CurationError::Io {
            path: tmp_path.clone(),
            source,
        })?;
        Ok(Self {
            out: Some(BufWriter::new(file)),
            path,
            tmp_path,
            written: 0,
            record: PhantomData,
        })
    }

    /// Append one record as one line.
    ///
    /// # Errors
    /// [`CurationError::Serialize`] or [`CurationError::Io`].
    pub fn write(&mut self, record: &T) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        serde_json::to_writer(&mut *out, record).map_err(|source| {
            if source.is_io() {
                CurationError::Io {
                    path: self.tmp_path.clone(),
                    source: source.into(),
                }
            } else {
                CurationError::Serialize {
                    path: self.path.clone(),
                    index: self.written,
                    source,
                }
            }
        })?;
        out.write_all(b"\n").map_err(|source| CurationError::Io {
            path: self.tmp_path.clone(),
            source,
        })?;
        self.written += 1;
        Ok(())
    }

    /// Flush, sync and rename the temporary file to its final name; returns the record count.
    ///
    /// # Errors
    /// [`CurationError::Io`] when flushing or renaming fails.
    pub fn finish(mut self) -> Result<usize> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CurationError::Io { path, source }
        };
        if let Some(out) = self.out.take() {
            let file = out
                .into_inner()
                .map_err(|e| io(&self.tmp_path)(e.into_error()))?;
            file.sync_all().map_err(io(&self.tmp_path))?;
            std::fs::rename(&self.tmp_path, &self.path).map_err(io(&self.path))?;
        }
        Ok(self.written)
    }
}

impl<T> Drop for JsonlWriter<T> {
    fn drop(&mut self) {
        // Not finished: an error or a panic cut the write short, so the partial file must go.
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Write all `records` to `path` atomically; returns the record count.
///
/// # Errors
/// See [`JsonlWriter`].
pub fn write_jsonl<'a, T: Serialize + 'a>(
    path: impl AsRef<Path>,
    records: impl IntoIterator<Item = &'a T>,
) -> Result<usize> {
    let mut writer = JsonlWriter::create(path)?;
    for record in records {
        writer.write(record)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SftExample;

    fn read(text: &[u8], bad_lines: BadLines) -> Result<JsonlContents<SftExample>> {
        JsonlReader::from_reader(text, "mem.jsonl", bad_lines).read_all()
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let text = b"{\"prompt\":\"a\",\"completion\":\"b\"}\n\n{\"prompt\":\"a\"}\n";
        let err = read(text, BadLines::Fail).unwrap_err();
        assert!(matches!(err, CurationError::Json { line: 3, .. }), "{err}");
        assert!(err.to_string().starts_with("mem.jsonl:3:"), "{err}");
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
    fn writer_is_atomic_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let records: Vec<SftExample> =
            vec![serde_json::from_str(r#"{"prompt":"p","completion":"c","gold":"3"}"#).unwrap()];
        let mut writer = JsonlWriter::create(&path).unwrap();
        writer.write(&records[0]).unwrap();
        assert!(!path.exists(), "final name must not appear before finish");
        assert_eq!(writer.finish().unwrap(), 1);
        assert_eq!(
            read_jsonl::<SftExample>(&path, BadLines::Fail)
                .unwrap()
                .records,
            records
        );
        assert!(!dir.path().join("out.jsonl.tmp").exists());

        let unfinished = JsonlWriter::<SftExample>::create(dir.path().join("half.jsonl")).unwrap();
        drop(unfinished);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_file_is_an_io_error_with_its_path() {
        let err = read_jsonl::<SftExample>("/nonexistent/x.jsonl", BadLines::Fail).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.jsonl"), "{err}");
    }
}
