//! Reading and writing JSONL files: one JSON object a line, errors naming the file and line, and
//! atomic writes (a temporary file in the same directory, renamed into place) so that a crash never
//! leaves a half-written file under the final name.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{EvalError, Result};

/// A JSON object, as one JSONL line holds.
pub type Object = Map<String, Value>;

/// Call `f(line_number, object)` for each non-blank line of `path` (1-based line numbers).
pub fn for_each_object(path: &Path, mut f: impl FnMut(usize, Object) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| EvalError::io(path, e))?;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|e| EvalError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(EvalError::line(path, line_no, "not a JSON object")),
            Err(e) => return Err(EvalError::line(path, line_no, format!("invalid JSON: {e}"))),
        };
        f(line_no, object)?;
    }
    Ok(())
}

/// Write one JSON line per item to `path`, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, items: impl IntoIterator<Item = T>) -> Result<()> {
    write_atomic(path, |w| {
        for item in items {
            serde_json::to_writer(&mut *w, &item)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Write `path` through `write`, atomically: into a temporary sibling first, then renamed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| EvalError::Invalid(format!("{} is not a file path", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = File::create(&tmp).and_then(|file| {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = result.and_then(|()| std::fs::rename(&tmp, path)) {
        // The temporary file is garbage now; failing to remove it changes nothing for the caller.
        let _ = std::fs::remove_file(&tmp);
        return Err(EvalError::io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_line() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| EvalError::io(Path::new("tempdir"), e))?;
        let path = dir.path().join("x.jsonl");
        write_jsonl(
            &path,
            [serde_json::json!({"a": 1}), serde_json::json!({"a": 2})],
        )?;
        let mut seen = Vec::new();
        for_each_object(&path, |line, o| {
            seen.push((line, o["a"].clone()));
            Ok(())
        })?;
        assert_eq!(seen, vec![(1, 1.into()), (2, 2.into())]);
        let leftovers = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(leftovers, 1, "no temporary file is left behind");

        std::fs::write(&path, "{\"a\": 1}\n\n[1]\n").map_err(|e| EvalError::io(&path, e))?;
        let err = for_each_object(&path, |_, _| Ok(()))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!("{}:3: not a JSON object", path.display()))
        );
        Ok(())
    }
}
