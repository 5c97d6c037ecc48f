//! w2s-curation: decide which weak-supervision data the strong model learns from.
//!
//! - [`record`]: samples, SFT examples and preference pairs, read and written as streaming JSONL
//!   by [`jsonl`] (both w2s-data's, re-exported).
//! - [`confidence`]: majority answer, confidence, A+ and A- over n samples.
//! - [`stage1`], [`demos`]: final-answer consistency between two sources (weak, ICL) and the
//!   k-shot demonstration picker of the ICL source.
//! - [`stage2`]: contrastive preference pairs from M_plus's samples and the weak solutions.
//! - [`steps`] (on [`expr`] and w2s-eval's [`rational`], re-exported): exact checking of
//!   arithmetic steps; [`grounded`]: checking where each number of a step comes from.
//! - [`quality`], [`controlled`]: outcome and step-wise error rates of a set, and sets built with
//!   a chosen outcome error rate.
//!
//! The rules are docs/method.md's; each module names the reference code it follows.
//! Burn-free, so data can be curated without compiling a tensor library.
#![warn(missing_docs)]

pub mod confidence;
pub mod controlled;
pub mod demos;
pub mod error;
pub mod expr;
pub mod grounded;
pub mod quality;
pub mod stage1;
pub mod stage2;
pub mod steps;

pub use error::{CurationError, Result};
/// JSONL reading and writing, shared by every w2s crate; its errors are
/// [`w2s_data::DataError`], which [`CurationError::Data`] wraps.
pub use w2s_data::jsonl;
/// The record kinds curation reads and writes.
pub use w2s_data::record;
/// Exact `i128` rationals, shared with w2s-eval's answer values.
pub use w2s_eval::rational;

/// The README's example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
