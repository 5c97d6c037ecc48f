//! The two small Llamas shipped inside w2s, which the embedded default starts from.
//!
//! Real runs start from pretrained checkpoints; so does the embedded default. Its weak and strong
//! base models were pretrained by the w2s pipeline (`configs/embedded-pretrain.toml`, stages
//! `weak_base` and `strong_base`) on a related corpus of this task: other problem families and
//! the target's chains as bare instructions, never a target question. They are compiled into the
//! binary, so the default run needs neither a download nor the pretraining minutes, and
//! `crates/w2s-arith/assets/README.md` says how to make them again.
//!
//! The bytes are an HF model directory's files; this crate only ships them and knows nothing of
//! tensors.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use w2s_data::{write_atomic, DataError, Digest};

use crate::error::Result;

/// A model compiled into w2s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseModel {
    /// The weak base (hidden 64, 2 layers), for the arithmetic task's tokenizer.
    ArithmeticWeak,
    /// The strong base (hidden 128, 4 layers), for the arithmetic task's tokenizer.
    ArithmeticStrong,
}

impl BaseModel {
    /// `config.json` and `model.safetensors`.
    fn files(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Self::ArithmeticWeak => (
                include_bytes!("../assets/arithmetic-weak/config.json"),
                include_bytes!("../assets/arithmetic-weak/model.safetensors"),
            ),
            Self::ArithmeticStrong => (
                include_bytes!("../assets/arithmetic-strong/config.json"),
                include_bytes!("../assets/arithmetic-strong/model.safetensors"),
            ),
        }
    }

    /// Writes the model as an HF directory into `dir`, with `tokenizer` (the arithmetic task's
    /// `tokenizer.json`) beside it. Every file is written atomically.
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn write(self, tokenizer: &Path, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let tokenizer = std::fs::read(tokenizer).map_err(|e| DataError::io(tokenizer, e))?;
        let (config, weights) = self.files();
        for (name, bytes) in [
            ("config.json", config),
            ("model.safetensors", weights),
            ("tokenizer.json", &tokenizer[..]),
        ] {
            write_atomic(dir.join(name), |file| file.write_all(bytes))?;
        }
        Ok(())
    }

    /// A short identity of the compiled bytes, for stage fingerprints: a rebuilt binary with new
    /// weights invalidates every stage built on the old ones.
    pub fn fingerprint(self) -> String {
        let (config, weights) = self.files();
        let hash = Digest::new().bytes(config).bytes(weights).finish();
        format!("{self:?}-{hash:016x}")
    }
}
