//! Crash-safe file writes: write beside the target under a temporary name, flush, then rename.
//!
//! A rename within one directory is atomic on POSIX file systems, so a reader sees either the old
//! file or the complete new one, never a prefix that looks whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LlamaError, Result};

/// The temporary name used while `path` is being written.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut file = std::fs::File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// Lets `write` fill a temporary file, then renames it to `path`; the temporary file is removed
/// if `write` fails.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temporary_path(path);
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| LlamaError::io(path, e))
}
