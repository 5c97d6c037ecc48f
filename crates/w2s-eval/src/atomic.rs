//! Crash-safe file writes: write beside the target under a temporary name, sync, then rename.
//!
//! A rename within one directory is atomic on POSIX file systems, so a reader sees either the old
//! file or the complete new one, never a prefix that looks whole. An [`AtomicFile`] dropped
//! without [`AtomicFile::finish`] (an error or a panic cut the write short) removes its temporary
//! file and leaves the target untouched.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

/// A file being written under a temporary name that becomes its final name on
/// [`finish`](AtomicFile::finish).
#[derive(Debug)]
pub struct AtomicFile {
    /// `None` once finished, so that `Drop` knows whether the temporary file is garbage.
    out: Option<BufWriter<File>>,
    path: PathBuf,
    tmp_path: PathBuf,
}

impl AtomicFile {
    /// Create `<name>.tmp<pid>` beside `path`; `path` itself is untouched until `finish`.
    ///
    /// The process id keeps two processes writing the same target from sharing a temporary file.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when `path` has no file name, [`EvalError::Io`] when the temporary
    /// file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<AtomicFile> {
        let path = path.as_ref().to_path_buf();
        let mut tmp_name = path
            .file_name()
            .ok_or_else(|| EvalError::Invalid(format!("{} is not a file path", path.display())))?
            .to_os_string();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp_path = path.with_file_name(tmp_name);
        let file = File::create(&tmp_path).map_err(|e| EvalError::io(&tmp_path, e))?;
        Ok(AtomicFile {
            out: Some(BufWriter::new(file)),
            path,
            tmp_path,
        })
    }

    /// The final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary name written to until `finish`.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Flush, sync and rename the temporary file to the final name.
    ///
    /// # Errors
    /// [`EvalError::Io`] when flushing, syncing or renaming fails; the temporary file is removed.
    pub fn finish(mut self) -> Result<()> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let synced = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .map_err(|e| EvalError::io(&self.tmp_path, e));
        let renamed = synced.and_then(|()| {
            std::fs::rename(&self.tmp_path, &self.path).map_err(|e| EvalError::io(&self.path, e))
        });
        if renamed.is_err() {
            // The temporary file is garbage now; failing to remove it changes nothing for the caller.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
        renamed
    }

    fn out(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        self.out
            .as_mut()
            .ok_or_else(|| std::io::Error::other("write to a finished AtomicFile"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out()?.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Write `path` through `write`, atomically.
///
/// # Errors
/// [`EvalError::Io`] naming `path` when `write` fails, else as [`AtomicFile::finish`].
pub fn write_atomic(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut AtomicFile) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    write(&mut file).map_err(|e| EvalError::io(file.path(), e))?;
    file.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn target_appears_only_on_finish_and_replaces_the_old_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "old")?;
        let mut file = AtomicFile::create(&path)?;
        file.write_all(b"new")?;
        assert_eq!(std::fs::read_to_string(&path)?, "old");
        assert!(file.tmp_path().exists());
        file.finish()?;
        assert_eq!(std::fs::read_to_string(&path)?, "new");
        assert_eq!(entries(dir.path()), ["a.txt"]);
        Ok(())
    }

    #[test]
    fn a_failed_or_dropped_write_leaves_nothing_behind() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("b.txt");
        drop(AtomicFile::create(&path)?);
        let failed = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("boom"))
        });
        assert_eq!(
            failed.err().map(|e| e.to_string()),
            Some(format!("{}: boom", path.display()))
        );
        assert_eq!(entries(dir.path()), Vec::<String>::new());
        assert!(matches!(
            AtomicFile::create(".."),
            Err(EvalError::Invalid(_))
        ));
        Ok(())
    }
}
