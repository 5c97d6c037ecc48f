//! Key/value cache for incremental decoding.
//!
//! Each layer keeps the rotated keys and the values of every column seen so far,
//! `[b, kv_heads, t, head_dim]`, so a decoding step only projects the new token. The cache grows
//! by concatenation along `t`; the generation loop owns the matching [`PaddingMask`].
//!
//! [`PaddingMask`]: crate::mask::PaddingMask

use burn::prelude::*;

/// Cached keys and values of every layer.
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached columns `t` (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(Option::as_ref)
            .map_or(0, |(k, _)| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows at `keep`, in that order (rows whose generation has ended).
    pub fn retain_rows(&mut self, keep: &[usize]) {
        let rows: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
        for (k, v) in self.layers.iter_mut().flatten() {
            let ids = TensorData::new(rows.clone(), [keep.len()]);
            let ids = Tensor::<B, 1, Int>::from_data(ids, &k.device());
            *k = k.clone().select(0, ids.clone());
            *v = v.clone().select(0, ids);
        }
    }

    /// Appends this step's keys and values of `layer` and returns all of them.
    pub(crate) fn extend(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.layers[layer].take() {
            None => (k, v),
            Some((past_k, past_v)) => (
                Tensor::cat(vec![past_k, k], 2),
                Tensor::cat(vec![past_v, v], 2),
            ),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }
}
