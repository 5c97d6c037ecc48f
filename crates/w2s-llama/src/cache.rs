//! Key/value cache for incremental decoding.
//!
//! Each layer keeps the rotated keys and the values of every column seen so far,
//! `[b, kv_heads, t, head_dim]`, so a decoding step only projects the new token. The buffers keep
//! spare columns and grow by doubling; the generation loop owns the matching [`PaddingMask`].
//!
//! [`PaddingMask`]: crate::mask::PaddingMask

use burn::prelude::*;

/// Cached keys and values of every layer.
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<Layer<B>>>,
}

/// One layer's buffers `[b, kv_heads, capacity, head_dim]`, of which the first `len` columns are
/// filled.
#[derive(Clone, Debug)]
struct Layer<B: Backend> {
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
    len: usize,
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
            .map_or(0, |layer| layer.len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows at `keep`, in that order (rows whose generation has ended).
    pub fn retain_rows(&mut self, keep: &[usize]) {
        let rows: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
        for layer in self.layers.iter_mut().flatten() {
            let ids = TensorData::new(rows.clone(), [keep.len()]);
            let ids = Tensor::<B, 1, Int>::from_data(ids, &layer.keys.device());
            layer.keys = layer.keys.clone().select(0, ids.clone());
            layer.values = layer.values.clone().select(0, ids);
        }
    }

    /// Appends this step's keys and values `[b, kv_heads, s, head_dim]` of `layer` and returns
    /// all of them, `[b, kv_heads, t, head_dim]`.
    ///
    /// The buffers hold twice the columns they need when they are (re)allocated, so decoding
    /// writes each step's column in place (on flex; other backends copy the buffer) instead of
    /// concatenating, which copied every cached column at every step.
    pub(crate) fn extend(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let s = k.dims()[2];
        let entry = match self.layers[layer].take() {
            Some(entry) if entry.len + s <= entry.keys.dims()[2] => Layer {
                keys: write(entry.keys, entry.len, k),
                values: write(entry.values, entry.len, v),
                len: entry.len + s,
            },
            Some(entry) => {
                let filled = |t: Tensor<B, 4>| t.slice_dim(2, 0..entry.len);
                Layer {
                    keys: grown(filled(entry.keys), k),
                    values: grown(filled(entry.values), v),
                    len: entry.len + s,
                }
            }
            None => Layer {
                keys: grown_from_empty(k),
                values: grown_from_empty(v),
                len: s,
            },
        };
        let filled = |t: &Tensor<B, 4>| t.clone().slice_dim(2, 0..entry.len);
        let out = (filled(&entry.keys), filled(&entry.values));
        self.layers[layer] = Some(entry);
        out
    }
}

/// `buffer` with `new`'s columns written at `at`.
fn write<B: Backend>(buffer: Tensor<B, 4>, at: usize, new: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let buffer = match w2s_kernels::write_columns(buffer, at, &new) {
        Ok(written) => return written,
        Err(buffer) => buffer,
    };
    let [b, g, s, e] = new.dims();
    buffer.slice_assign([0..b, 0..g, at..at + s, 0..e], new)
}

/// A new buffer holding `filled` then `new`, with as many empty columns after them.
fn grown<B: Backend>(filled: Tensor<B, 4>, new: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, g, s, e] = new.dims();
    let used = filled.dims()[2] + s;
    let spare = Tensor::zeros([b, g, used, e], (&new.device(), new.dtype()));
    Tensor::cat(vec![filled, new, spare], 2)
}

fn grown_from_empty<B: Backend>(new: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, g, s, e] = new.dims();
    let spare = Tensor::zeros([b, g, s, e], (&new.device(), new.dtype()));
    Tensor::cat(vec![new, spare], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    type B = Flex;

    fn random(s: usize) -> Tensor<B, 4> {
        Tensor::random(
            [2, 3, s, 4],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        )
    }

    fn max_diff(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Prefill then single columns, through every regrowth: the cache returns exactly the
    /// concatenation of what went in, and a clone taken midway keeps its own columns.
    #[test]
    fn extending_equals_concatenating_and_clones_are_independent() {
        let mut cache = KvCache::<B>::new(1);
        let (mut keys, mut values) = (random(5), random(5));
        cache.extend(0, keys.clone(), values.clone());
        let mut snapshot = None;
        for step in 0..20 {
            let (k, v) = (random(1), random(1));
            keys = Tensor::cat(vec![keys, k.clone()], 2);
            values = Tensor::cat(vec![values, v.clone()], 2);
            let (all_k, all_v) = cache.extend(0, k, v);
            assert_eq!(all_k.dims(), keys.dims(), "step {step}");
            assert_eq!(max_diff(all_k, keys.clone()), 0.0, "keys at step {step}");
            assert_eq!(
                max_diff(all_v, values.clone()),
                0.0,
                "values at step {step}"
            );
            assert_eq!(cache.len(), 6 + step);
            if step == 7 {
                snapshot = Some((cache.clone(), keys.clone()));
            }
        }
        let (mut copy, keys_then) = snapshot.expect("taken at step 7");
        assert_eq!(copy.len(), 13);
        let (k, v) = (random(1), random(1));
        let (all_k, _) = copy.extend(0, k.clone(), v);
        assert_eq!(max_diff(all_k, Tensor::cat(vec![keys_then, k], 2)), 0.0);
        assert_eq!(
            cache.len(),
            25,
            "extending the clone leaves the original alone"
        );
    }
}
