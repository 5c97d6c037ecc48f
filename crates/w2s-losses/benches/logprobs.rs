//! Forward + backward of the loss work of a training step over the lm_head, b = 8 rows:
//! - `dpo_logprobs_fwd_bwd`: sequence log-probs + DPO for 4 pairs, plain vs memory-efficient
//!   (`chunked`);
//! - `sft_loss_fwd_bwd`: the token-mean SFT loss, plain, chunked (`sft_loss` over the chunked
//!   log-probs, which recomputes the logits in backward) and `one_pass` (`sft_loss_from_hidden`,
//!   which takes the gradient in the forward pass).
//!
//! Shapes: d = 512; (s = 512, v = 32,000) and (s = 128, v = 128,256). Every position is a
//! completion token, so the chunked path gets no help from skipping prompt tokens.
//!
//! Time: `cargo bench -p w2s-losses --bench logprobs`.
//! Peak memory of one configuration: run the bench binary with a filter under `/usr/bin/time -v`,
//! e.g. `/usr/bin/time -v target/release/deps/logprobs-* --bench 'plain/s512_v32000'`
//! (docs/performance.md, "Loss kernels", has the figures and the exact commands).

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Bool, Distribution, Int, Tensor};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use w2s_losses::{
    preference_loss, sequence_logprobs, sequence_logprobs_from_hidden, sft_loss,
    sft_loss_from_hidden, PreferenceInputs, PreferenceLossConfig, ReferenceLogprobs,
    SequenceLogprobs, SftReduction, DEFAULT_CHUNK_SIZE,
};

type AD = Autodiff<Flex>;
const B: usize = 8;
const D: usize = 512;

struct Inputs {
    hidden: Tensor<AD, 3>,
    weight: Tensor<AD, 2>,
    labels: Tensor<AD, 2, Int>,
    mask: Tensor<AD, 2, Bool>,
    reference: ReferenceLogprobs<AD>,
}

fn inputs(s: usize, v: usize) -> Inputs {
    let dev = Default::default();
    Inputs {
        hidden: Tensor::random([B, s, D], Distribution::Normal(0.0, 1.0), &dev),
        weight: Tensor::random([v, D], Distribution::Normal(0.0, 0.05), &dev),
        labels: Tensor::random([B, s], Distribution::Uniform(0.0, v as f64), &dev),
        mask: Tensor::<AD, 2, Int>::ones([B, s], &dev).bool(),
        reference: ReferenceLogprobs::new(
            Tensor::random([B / 2], Distribution::Normal(-2000.0, 10.0), &dev),
            Tensor::random([B / 2], Distribution::Normal(-2000.0, 10.0), &dev),
        ),
    }
}

/// How the loss work reaches the lm_head.
#[derive(Clone, Copy)]
enum Path {
    /// Logits `[b, s, v]`, then log-probs.
    Plain,
    /// [`sequence_logprobs_from_hidden`].
    Chunked,
    /// [`sft_loss_from_hidden`] (SFT only).
    OnePass,
}

/// Sequence log-probs of `x` with gradients into fresh leaves, chunked or plain.
fn logprobs(x: &Inputs, chunked: bool) -> Option<SequenceLogprobs<AD>> {
    let hidden = x.hidden.clone().require_grad();
    let weight = x.weight.clone().require_grad();
    let lp = if chunked {
        sequence_logprobs_from_hidden(
            hidden,
            weight,
            x.labels.clone(),
            x.mask.clone(),
            DEFAULT_CHUNK_SIZE,
        )
    } else {
        // The lm_head as the model applies it: one 2-D product over all positions, through
        // `w2s_kernels::matmul` (a 3-D product with a broadcast weight makes burn copy the
        // weight, and sum a `[b, d, v]` gradient over the batch in backward).
        let [b, s, d] = hidden.dims();
        let v = weight.dims()[0];
        let logits =
            w2s_kernels::matmul(hidden.reshape([b * s, d]), weight.transpose()).reshape([b, s, v]);
        sequence_logprobs(logits, x.labels.clone(), x.mask.clone())
    };
    lp.ok()
}

/// One SFT step's loss work: the token-mean loss and its backward; returns the loss.
fn sft_step(x: &Inputs, path: Path) -> f32 {
    let loss = match path {
        Path::OnePass => sft_loss_from_hidden(
            x.hidden.clone().require_grad(),
            x.weight.clone().require_grad(),
            x.labels.clone(),
            x.mask.clone(),
            SftReduction::TokenMean,
            DEFAULT_CHUNK_SIZE,
        )
        .ok()
        .map(|out| out.loss),
        path => logprobs(x, matches!(path, Path::Chunked))
            .and_then(|lp| sft_loss(&lp, SftReduction::TokenMean).ok()),
    };
    let Some(loss) = loss else { return f32::NAN };
    let value = loss.clone().into_scalar();
    let _grads = loss.backward();
    value
}

/// One DPO step's loss work: log-probs, DPO, backward; returns the loss for a sanity check.
fn step(x: &Inputs, path: Path) -> f32 {
    let Some(lp) = logprobs(x, matches!(path, Path::Chunked)) else {
        return f32::NAN;
    };
    let half = |t: Tensor<AD, 2>, i: usize| t.slice_dim(0, i * B / 2..(i + 1) * B / 2);
    let side = |i| {
        SequenceLogprobs::from_tokens(
            half(lp.tokens.clone(), i),
            half(lp.tokens.clone().zeros_like(), i),
            x.mask.clone().slice_dim(0, i * B / 2..(i + 1) * B / 2),
        )
    };
    let config = PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    };
    let inputs = PreferenceInputs::new(side(0), side(1)).with_reference(x.reference.clone());
    let Ok(out) = preference_loss(&config, inputs) else {
        return f32::NAN;
    };
    let value = out.loss.clone().into_scalar();
    let _grads = out.loss.backward();
    value
}

/// A criterion group: its name, its paths by name, and the step it times.
type Group = (
    &'static str,
    &'static [(&'static str, Path)],
    fn(&Inputs, Path) -> f32,
);

fn bench(c: &mut Criterion) {
    let groups: [Group; 2] = [
        (
            "dpo_logprobs_fwd_bwd",
            &[("plain", Path::Plain), ("chunked", Path::Chunked)],
            step,
        ),
        (
            "sft_loss_fwd_bwd",
            &[
                ("plain", Path::Plain),
                ("chunked", Path::Chunked),
                ("one_pass", Path::OnePass),
            ],
            sft_step,
        ),
    ];
    for (group_name, paths, run) in groups {
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500));
        for (s, v) in [(512, 32_000), (128, 128_256)] {
            group.throughput(Throughput::Elements((B * s) as u64));
            for &(name, path) in paths {
                let id = BenchmarkId::new(name, format!("s{s}_v{v}"));
                // Inputs are made inside, so a filtered run (peak-RSS measurements) holds only
                // its own configuration's.
                group.bench_function(id, |bench| {
                    let x = inputs(s, v);
                    bench.iter(|| run(&x, path))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
