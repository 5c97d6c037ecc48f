//! Crash-safe file writes: write beside the target under a temporary name, fsync it, rename it
//! over the target, then fsync the directory.
//!
//! A rename within one directory is atomic on POSIX file systems, so a reader sees either the old
//! file or the complete new one, never a prefix that looks whole. Syncing the file before the
//! rename keeps a power loss from leaving the final name on an empty or partial file (the rename
//! can reach the disk before the data otherwise); syncing the directory after it makes the rename
//! itself durable. An [`AtomicFile`] dropped without [`AtomicFile::finish`] (an error or a panic
//! cut the write short) removes its temporary file and leaves the target untouched.
//!
//! Temporary names hold the process id and a counter of the process, and are created with
//! `create_new`, so two writers of one target (two threads, two processes) never share one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DataError, Result};

/// Numbers the temporary files of this process.
static WRITERS: AtomicU64 = AtomicU64::new(0);

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
    /// Create `.<name>.<pid>.<n>.tmp` beside `path`; `path` itself is untouched until `finish`.
    ///
    /// # Errors
    /// [`DataError::NotAFile`] when `path` has no file name, [`DataError::Io`] when the temporary
    /// file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<AtomicFile> {
        let path = path.as_ref().to_path_buf();
        let name = path
            .file_name()
            .ok_or_else(|| DataError::NotAFile(path.clone()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        tmp_name.push(format!(".{}.{writer}.tmp", std::process::id()));
        let tmp_path = path.with_file_name(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| DataError::io(&tmp_path, e))?;
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

    /// Flush and sync the temporary file, rename it to the final name, and sync the directory.
    ///
    /// The sync covers everything written to the temporary file's inode, also through another
    /// handle of [`tmp_path`](AtomicFile::tmp_path) (a library that only writes to a path).
    ///
    /// # Errors
    /// [`DataError::Io`] when flushing, syncing or renaming fails; the temporary file is removed.
    pub fn finish(mut self) -> Result<()> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let synced = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .map_err(|e| DataError::io(&self.tmp_path, e));
        let renamed = synced.and_then(|()| {
            std::fs::rename(&self.tmp_path, &self.path).map_err(|e| DataError::io(&self.path, e))
        });
        if renamed.is_err() {
            // The temporary file is garbage now; failing to remove it changes nothing for the caller.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
        renamed?;
        sync_directory(&self.path)
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

/// Make the directory entry of `path` durable: sync the directory that holds it. Call it after
/// renaming something into place by hand (a whole directory, say); [`AtomicFile::finish`] does it
/// itself. Directories cannot be opened for syncing on Windows; there the rename's own
/// durability is what the file system gives.
///
/// # Errors
/// [`DataError::Io`] naming the directory when it cannot be opened or synced.
pub fn sync_directory(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DataError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Write `path` through `write`, atomically: the one way w2s writes a file.
///
/// # Errors
/// [`DataError::Io`] naming `path` when `write` fails, else as [`AtomicFile::finish`].
pub fn write_atomic(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut AtomicFile) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    write(&mut file).map_err(|e| DataError::io(file.path(), e))?;
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
            Err(DataError::NotAFile(_))
        ));
        Ok(())
    }

    #[test]
    fn writers_of_one_target_get_distinct_temporary_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.txt");
        let mut first = AtomicFile::create(&path)?;
        let mut second = AtomicFile::create(&path)?;
        assert_ne!(first.tmp_path(), second.tmp_path());
        first.write_all(b"first")?;
        second.write_all(b"second")?;
        first.finish()?;
        assert_eq!(std::fs::read_to_string(&path)?, "first");
        second.finish()?;
        assert_eq!(std::fs::read_to_string(&path)?, "second");
        assert_eq!(entries(dir.path()), ["c.txt"]);
        Ok(())
    }

    #[test]
    fn data_written_through_the_temporary_path_is_kept() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("d.bin");
        write_atomic(&path, |file| std::fs::write(file.tmp_path(), b"by path"))?;
        assert_eq!(std::fs::read(&path)?, b"by path");
        Ok(())
    }

    #[test]
    fn a_bare_file_name_syncs_the_working_directory() {
        // `Path::parent` of a bare name is empty; the directory to sync is then ".".
        assert!(sync_directory(Path::new("bare-name")).is_ok());
    }
}
