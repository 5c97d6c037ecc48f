//! Parity of the backend under test with flex, the CPU backend every other figure of w2s is
//! measured on. A random model made on flex is saved as an HF checkpoint (and its LoRA adapters
//! as a PEFT adapter) and loaded on the device, so both hold the same weights; then:
//!
//! - f32 logits must agree within 1e-4;
//! - the device's logits with the base cast to bf16 must stay within 5e-2 of flex's f32 ones;
//! - a DPO loss through the training path (hidden states, chunked log-probs, `preference_loss`)
//!   and the gradients of a few parameters must agree: the full f32 model's within 1e-4 (loss)
//!   and 1e-3 of the largest gradient element; LoRA adapters on a bf16 base, against flex's f32
//!   base, within 1e-2 and 5e-2.

use anyhow::{anyhow, ensure, Context, Result};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, FloatDType};
use tempfile::TempDir;
use w2s::llama::{
    load_adapter, load_weights, save_adapter, save_weights, Llama, LlamaConfig, LoraAdapter,
    LoraConfig, Projection, SaveOptions,
};
use w2s::losses::{
    preference_loss, sequence_logprobs_from_hidden, shift_for_next_token, ChunkedLogprobsBackend,
    PreferenceInputs, PreferenceLossConfig, ReferenceLogprobs, SequenceLogprobs,
    DEFAULT_CHUNK_SIZE,
};
use w2s::throughput::token_ids;

use crate::report::{Report, Row};
use crate::shapes::Shapes;

const PROMPT: usize = 8;
const COMPLETION: usize = 16;
/// Preference pairs; the logits check reads the chosen rows.
const PAIRS: usize = 2;
/// Rejected rows are drawn this many rows after the chosen ones.
const REJECTED: usize = 1_000;

/// The checks, each on its own (a failure in one does not stop the next).
pub fn run<D: Backend>(shapes: &Shapes, report: &mut Report) {
    let config = &shapes.parity;
    // (case, the device's base cast to bf16, limit)
    let cases = [
        ("f32 logits", false, 1e-4),
        ("bf16-base logits vs f32 flex", true, 5e-2),
    ];
    for (case, bf16, limit) in cases {
        report.check("parity", case, || {
            let fixture = Fixture::new(config)?;
            let got = logits(fixture.load::<D>(bf16, false)?)?;
            let want = logits(fixture.load::<Flex>(false, false)?)?;
            Ok(vec![Diff::new(&got, &want)?.row(case, Limit::Abs(limit))])
        });
    }
    // (case, LoRA on a bf16 base instead of the full f32 model, loss limit, gradient limit)
    let cases = [
        (
            "DPO, f32 full model",
            false,
            Limit::Abs(1e-4),
            Limit::Rel(1e-3),
        ),
        (
            "DPO, LoRA on bf16 base vs f32 flex",
            true,
            Limit::Abs(1e-2),
            Limit::Rel(5e-2),
        ),
    ];
    for (case, lora, loss_limit, grad_limit) in cases {
        report.check("parity", case, || {
            let fixture = Fixture::new(config)?;
            let want = dpo(fixture.load::<Autodiff<Flex>>(false, lora)?, config)?;
            let got = dpo(fixture.load::<Autodiff<D>>(lora, lora)?, config)?;
            let mut rows = vec![Diff::new(&[got.loss], &[want.loss])?
                .row(format!("{case}: loss {:.4}", want.loss), loss_limit)];
            for ((name, got), (_, want)) in got.grads.iter().zip(&want.grads) {
                rows.push(Diff::new(got, want)?.row(format!("{case}: grad {name}"), grad_limit));
            }
            Ok(rows)
        });
    }
}

/// The flex model every check compares against, saved where the device loads it from.
struct Fixture {
    config: LlamaConfig,
    dir: TempDir,
}

impl Fixture {
    /// A seeded random model and LoRA adapters (rank 16 on every projection, both factors
    /// random so the adapters change the output), saved to a temporary directory.
    fn new(config: &LlamaConfig) -> Result<Self> {
        let device = Default::default();
        let dir = tempfile::tempdir()?;
        Flex::seed(&device, 0);
        let model: Llama<Flex> = config.init(&device)?;
        save_weights(&model, config, dir.path(), SaveOptions::default())?;
        let lora = LoraConfig::default();
        let mut adapted = model.with_lora(&lora, &device)?;
        for layer in &mut adapted.model.layers {
            for &target in &lora.targets {
                let projection = layer.projection_mut(target);
                let [d_in, d_out] = projection.dims();
                let random = |shape: [usize; 2]| {
                    Tensor::random(shape, Distribution::Normal(0.0, 0.05), &device)
                };
                let adapter = LoraAdapter::from_tensors(
                    random([d_in, lora.r]),
                    random([lora.r, d_out]),
                    &lora,
                );
                projection.lora = Some(adapter);
            }
        }
        save_adapter(&adapted, &dir.path().join("adapter"), None)?;
        Ok(Self {
            config: config.clone(),
            dir,
        })
    }

    /// The saved model on backend `B`, its base cast to bf16 if `bf16`, with the adapters if
    /// `lora`.
    fn load<B: Backend>(&self, bf16: bool, lora: bool) -> Result<Llama<B>> {
        let device = Default::default();
        let mut model = load_weights::<B>(&self.config, self.dir.path(), &device)?;
        if bf16 {
            model = model.cast_base(FloatDType::BF16);
        }
        if lora {
            model = load_adapter(model, &self.dir.path().join("adapter"), &device)?;
        }
        Ok(model)
    }
}

/// The logits of the chosen rows, on the host.
fn logits<B: Backend>(model: Llama<B>) -> Result<Vec<f32>> {
    let ids = rows::<B>(model.vocab_size(), 0);
    host(model.forward(ids, None)?)
}

/// `[PAIRS, PROMPT + COMPLETION]` token ids, starting at row `first`.
fn rows<B: Backend>(vocab: usize, first: usize) -> Tensor<B, 2, Int> {
    let len = PROMPT + COMPLETION;
    let ids: Vec<i64> = (first..first + PAIRS)
        .flat_map(|row| token_ids(row, len, 0, vocab))
        .map(i64::from)
        .collect();
    Tensor::from_data(TensorData::new(ids, [PAIRS, len]), &Default::default())
}

/// A DPO loss and the gradients of the watched parameters, on the host.
struct Dpo {
    loss: f32,
    grads: Vec<(&'static str, Vec<f32>)>,
}

/// DPO (β = 0.1) of the chosen against the rejected rows, with reference log-probs fixed at a
/// uniform model's, so the loss depends on the policy's log-probs.
fn dpo<B: AutodiffBackend + ChunkedLogprobsBackend>(
    model: Llama<B>,
    config: &LlamaConfig,
) -> Result<Dpo> {
    let device = Default::default();
    let vocab = config.vocab_size;
    let chosen = sequence_logprobs(&model, rows(vocab, 0))?;
    let rejected = sequence_logprobs(&model, rows(vocab, REJECTED))?;
    let uniform = -(vocab as f32).ln() * COMPLETION as f32;
    let reference = ReferenceLogprobs::new(
        Tensor::full([PAIRS], uniform, &device),
        Tensor::full([PAIRS], uniform, &device),
    );
    let loss_config = PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    };
    let inputs = PreferenceInputs::new(chosen, rejected).with_reference(reference);
    let loss = preference_loss(&loss_config, inputs)?.loss;
    let gradients = loss.backward();
    let grads = watched(&model)
        .into_iter()
        .map(|(name, param)| {
            let grad = param
                .grad(&gradients)
                .with_context(|| format!("no gradient for {name}"))?;
            Ok((name, host(grad)?))
        })
        .collect::<Result<_>>()?;
    Ok(Dpo {
        loss: host(loss)?[0],
        grads,
    })
}

/// Summed log-probs of the completion tokens, as the trainers compute them.
fn sequence_logprobs<B: ChunkedLogprobsBackend>(
    model: &Llama<B>,
    ids: Tensor<B, 2, Int>,
) -> Result<SequenceLogprobs<B>> {
    let [b, s] = ids.dims();
    let completion: Vec<bool> = (0..b * s).map(|i| i % s >= PROMPT).collect();
    let mask = Tensor::from_data(TensorData::new(completion, [b, s]), &ids.device());
    let hidden = model.forward_hidden(ids.clone(), None)?;
    let next = shift_for_next_token(hidden, ids, mask)?;
    let weight = model.lm_head_weight();
    Ok(sequence_logprobs_from_hidden(
        next.inputs,
        weight,
        next.labels,
        next.mask,
        DEFAULT_CHUNK_SIZE,
    )?)
}

/// The parameters whose gradients are compared: the adapters of the first and last layer when
/// the model has them, else the embedding, two base projections and the lm_head.
fn watched<B: Backend>(model: &Llama<B>) -> Vec<(&'static str, Tensor<B, 2>)> {
    let first = &model.model.layers[0];
    let last = &model.model.layers[model.model.layers.len() - 1];
    let adapter = |p: &Projection<B>| p.lora.as_ref().map(|a| (a.a.val(), a.b.val()));
    match (
        adapter(&first.self_attn.q_proj),
        adapter(&last.mlp.down_proj),
    ) {
        (Some((q_a, q_b)), Some((_, down_b))) => vec![
            ("first q_proj lora_A", q_a),
            ("first q_proj lora_B", q_b),
            ("last down_proj lora_B", down_b),
        ],
        _ => {
            let mut params = vec![
                ("embed_tokens", model.model.embed_tokens.weight.val()),
                ("first q_proj", first.self_attn.q_proj.base.weight.val()),
                ("last down_proj", last.mlp.down_proj.base.weight.val()),
            ];
            params.extend(
                model
                    .lm_head
                    .as_ref()
                    .map(|head| ("lm_head", head.weight.val())),
            );
            params
        }
    }
}

fn host<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| anyhow!("reading a tensor back: {e:?}"))
}

/// How close two results must be.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// The largest absolute difference.
    Abs(f32),
    /// The largest absolute difference over the largest absolute reference value.
    Rel(f32),
}

/// The largest difference between a result and its reference; NaN when the result is not
/// finite.
struct Diff {
    abs: f32,
    rel: f32,
}

impl Diff {
    fn new(got: &[f32], want: &[f32]) -> Result<Self> {
        ensure!(
            got.len() == want.len(),
            "{} values against {}",
            got.len(),
            want.len()
        );
        if got.iter().any(|x| !x.is_finite()) {
            return Ok(Self {
                abs: f32::NAN,
                rel: f32::NAN,
            });
        }
        let abs = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let scale = want.iter().map(|x| x.abs()).fold(0.0, f32::max);
        Ok(Self {
            abs,
            rel: abs / scale.max(f32::MIN_POSITIVE),
        })
    }

    fn row(&self, case: impl Into<String>, limit: Limit) -> Row {
        let (value, limit, name) = match limit {
            Limit::Abs(limit) => (self.abs, limit, "abs"),
            Limit::Rel(limit) => (self.rel, limit, "rel"),
        };
        Row::judged(
            case,
            format!("abs {:.2e}, rel {:.2e}", self.abs, self.rel),
            format!("max diff; limit {name} {limit:.0e}"),
            value <= limit,
        )
    }
}
