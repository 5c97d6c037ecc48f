//! Which tokens of a batch are real and where each sits in its own sequence.
//!
//! Batches are padded on the left for generation (so every row's next token lands in the same
//! column) and on the right for training. Either way the model must ignore the pad columns and give
//! every real token the position it would have without padding; this module derives both from one
//! boolean grid, as HF does from `attention_mask` (`position_ids = cumsum(mask) - 1`).

use crate::error::{LlamaError, Result};

/// `[b, t]` grid of which columns hold real tokens (true) and which hold padding (false).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddingMask {
    rows: Vec<Vec<bool>>,
}

impl PaddingMask {
    /// A mask from explicit rows; all rows must have the same length.
    pub fn new(rows: Vec<Vec<bool>>) -> Result<Self> {
        let len = rows.first().map_or(0, Vec::len);
        if let Some(i) = rows.iter().position(|r| r.len() != len) {
            return Err(LlamaError::Input(format!(
                "padding mask row {i} has {} columns, row 0 has {len}",
                rows[i].len()
            )));
        }
        Ok(Self { rows })
    }

    /// A mask with no padding: `b` rows of `t` real tokens.
    pub fn full(batch: usize, len: usize) -> Self {
        Self {
            rows: vec![vec![true; len]; batch],
        }
    }

    /// Left-pads sequences of different lengths to the longest; returns the padded token grid
    /// (filled with `pad_id`) and its mask.
    pub fn left_pad(sequences: &[Vec<u32>], pad_id: u32) -> (Vec<Vec<u32>>, Self) {
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(sequences.len());
        let mut rows = Vec::with_capacity(sequences.len());
        for seq in sequences {
            let pad = len - seq.len();
            let mut row = vec![pad_id; pad];
            row.extend_from_slice(seq);
            tokens.push(row);
            let mut valid = vec![false; pad];
            valid.resize(len, true);
            rows.push(valid);
        }
        (tokens, Self { rows })
    }

    /// Right-pads sequences to the longest (the layout for training batches).
    pub fn right_pad(sequences: &[Vec<u32>], pad_id: u32) -> (Vec<Vec<u32>>, Self) {
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(sequences.len());
        let mut rows = Vec::with_capacity(sequences.len());
        for seq in sequences {
            let mut row = seq.clone();
            row.resize(len, pad_id);
            tokens.push(row);
            let mut valid = vec![true; seq.len()];
            valid.resize(len, false);
            rows.push(valid);
        }
        (tokens, Self { rows })
    }

    /// Number of rows `b`.
    pub fn batch(&self) -> usize {
        self.rows.len()
    }

    /// Number of columns `t`.
    pub fn len(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// Whether the mask has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows.
    pub fn rows(&self) -> &[Vec<bool>] {
        &self.rows
    }

    /// Appends one column (the next generated token of every row).
    pub fn push_column(&mut self, valid: bool) {
        for row in &mut self.rows {
            row.push(valid);
        }
    }

    /// Keeps only the rows at `keep` (increasing indices), in that order.
    pub fn retain_rows(&mut self, keep: &[usize]) {
        self.rows = keep.iter().map(|&r| self.rows[r].clone()).collect();
    }

    /// Positions of the last `s` columns: each real token's count of real tokens before it in its
    /// row. Pad columns get position 0 (their outputs are never used).
    pub fn positions(&self, s: usize) -> Vec<Vec<usize>> {
        let t = self.len();
        self.rows
            .iter()
            .map(|row| {
                let mut seen = 0usize;
                let mut all = Vec::with_capacity(t);
                for &valid in row {
                    all.push(if valid { seen } else { 0 });
                    seen += usize::from(valid);
                }
                all.split_off(t - s)
            })
            .collect()
    }

    /// Additive attention bias `[b, heads, s, t]` for the last `s` columns as queries over all
    /// `t` columns as keys: 0 where a query may attend (key is real and not in the future), a
    /// large negative number elsewhere. A finite value (not -inf) keeps fully masked pad rows
    /// finite. Every head gets the same copy, so the bias has the scores' own shape and adding it
    /// needs no broadcast (which CPU backends run through a slow strided path, in every layer and
    /// again backward).
    pub fn attention_bias(&self, s: usize, heads: usize) -> Vec<f32> {
        let t = self.len();
        let past = t - s;
        let mut bias = Vec::with_capacity(self.batch() * heads * s * t);
        for row in &self.rows {
            let start = bias.len();
            for q in 0..s {
                for (k, &valid) in row.iter().enumerate() {
                    let visible = valid && k <= past + q;
                    bias.push(if visible { 0.0 } else { MASKED });
                }
            }
            for _ in 1..heads {
                bias.extend_from_within(start..start + s * t);
            }
        }
        bias
    }
}

/// The additive bias of a masked score: far below any real score, yet finite.
pub(crate) const MASKED: f32 = -1e30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_gives_hf_positions() {
        let (tokens, mask) = PaddingMask::left_pad(&[vec![5, 6, 7], vec![8]], 0);
        assert_eq!(tokens, vec![vec![5, 6, 7], vec![0, 0, 8]]);
        assert_eq!(mask.positions(3), vec![vec![0, 1, 2], vec![0, 0, 0]]);
        let mut mask = mask;
        mask.push_column(true);
        assert_eq!(mask.positions(1), vec![vec![3], vec![1]]);
    }

    #[test]
    fn bias_hides_padding_and_the_future() {
        let (_, mask) = PaddingMask::left_pad(&[vec![1, 2], vec![3]], 0);
        let bias = mask.attention_bias(2, 1);
        // Row 0: causal over two real tokens.
        assert_eq!(&bias[0..4], &[0.0, MASKED, 0.0, 0.0]);
        // Row 1: column 0 is padding, hidden from every query.
        assert_eq!(&bias[4..8], &[MASKED, MASKED, MASKED, 0.0]);
        // With three heads every row's tile repeats once per head, rows outermost.
        let per_head = mask.attention_bias(2, 3);
        assert_eq!(per_head.len(), 3 * bias.len());
        for head in 0..3 {
            assert_eq!(&per_head[head * 4..head * 4 + 4], &bias[0..4]);
            assert_eq!(&per_head[12 + head * 4..12 + head * 4 + 4], &bias[4..8]);
        }
    }

    #[test]
    fn ragged_rows_are_an_error() {
        assert!(PaddingMask::new(vec![vec![true], vec![true, false]]).is_err());
    }
}
