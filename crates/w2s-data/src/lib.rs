//! `w2s-data`: the files every w2s crate reads and writes, and nothing else.
//!
//! - [`record`]: the record kinds with TRL's field names: model samples
//!   `{"id", "prompt", "response"}`, SFT examples `{"prompt", "completion"}` and preference pairs
//!   `{"prompt", "chosen", "rejected"}`; every other field is carried through. [`SftRecord`] and
//!   [`PreferenceRecord`] also read TRL's conversational forms.
//! - [`conversation`]: those conversational forms, lists of messages `{"role", "content"}`:
//!   `{"messages"}` for SFT, `{"prompt", "chosen", "rejected"}` as message lists for preferences.
//! - [`jsonl`]: streaming JSONL whose errors name the file and the 1-based line.
//! - [`atomic`]: crash-safe writes (a temporary name unique per writer, fsync of the file, rename,
//!   fsync of the directory), so a crash or a power loss never leaves a half-written file that
//!   looks whole under its final name.
//! - [`digest`]: FNV-1a, the stable digest behind every fingerprint w2s stores on disk.
//!
//! Burn-free and small on purpose: curating or grading a file must not compile a tensor library.
//!
//! ```
//! use w2s_data::jsonl::{read_jsonl, write_jsonl, BadLines};
//! use w2s_data::record::SftExample;
//!
//! # fn main() -> w2s_data::Result<()> {
//! let dir = std::env::temp_dir().join(format!("w2s-data-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).map_err(|e| w2s_data::DataError::io(&dir, e))?;
//! let path = dir.join("sft.jsonl");
//! let line = r#"{"prompt": "2 + 3 =", "completion": " 5", "source": "demo"}"#;
//! let example: SftExample = serde_json::from_str(line).expect("valid record");
//! write_jsonl(&path, [&example])?;
//! let back = read_jsonl::<SftExample>(&path, BadLines::Fail)?.records;
//! assert_eq!(back, [example]);
//! assert_eq!(back[0].extra["source"], "demo");
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod conversation;
pub mod digest;
pub mod error;
pub mod jsonl;
pub mod record;

pub use atomic::{sync_directory, write_atomic, AtomicFile};
pub use conversation::{ChatMessage, PreferenceConversation, SftConversation};
pub use digest::Digest;
pub use error::{DataError, Result};
pub use record::{Extra, PreferencePair, PreferenceRecord, Sample, SftExample, SftRecord};

/// The README's example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
