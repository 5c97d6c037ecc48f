//! Training-step throughput of the real trainers (`w2s::throughput`: SFT and DPO, one warm-up
//! step, the median of the measured ones) and model FLOPs utilisation, for LoRA (rank 16 on
//! every projection) on a bf16 base and for full fine-tuning in f32.
//!
//! MFU = model FLOPs per token x tokens/s / the GPU's dense peak. Model FLOPs count the
//! products with the weights only:
//!
//! - a token multiplied by a weight of N elements costs 2N FLOPs forward; full fine-tuning
//!   repeats that for the input's gradient and for the weight's gradient: 6N per token;
//! - LoRA freezes the base, so its weights get no gradient: 4N (forward and the input's
//!   gradient), plus 6N_a for the adapters' N_a trained elements.
//!
//! N is the weights a token meets: the layers' projections and the lm_head (a tied embedding
//! counted once, as the lm_head; its lookup costs nothing). Attention's own products (QKᵀ and
//! PV, 12 x layers x hidden x sequence FLOPs per token: about 1.4% of 6N for the 1B shape at
//! 256 tokens), the norms and the element-wise work are left out, so MFU understates what the
//! GPU did. The peak is the bf16 tensor-core figure for the bf16 base and the f32 figure without
//! tensor cores for f32 training (a backend that runs f32 products as TF32 on tensor cores can
//! pass 100% of it).

use anyhow::Result;
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::FloatDType;
use w2s::llama::{Llama, LlamaConfig, LoraConfig};
use w2s::throughput::{measure, Objective};
use w2s::train::{adapter_parameter_count, parameter_count};

use crate::report::{Report, Row};
use crate::shapes::Shapes;

/// Two rows per objective and kind of training: tokens/s and MFU.
pub fn run<D: Backend>(shapes: &Shapes, device_name: &str, report: &mut Report) {
    for lora in [true, false] {
        for objective in [Objective::Sft, Objective::Dpo] {
            let kind = if lora {
                "LoRA r16, bf16 base"
            } else {
                "full, f32"
            };
            let case = format!("{}, {kind}", objective.to_string().to_uppercase());
            report.check("training", &case, || {
                step_rows::<D>(shapes, objective, lora, device_name, &case)
            });
        }
    }
}

fn step_rows<D: Backend>(
    shapes: &Shapes,
    objective: Objective,
    lora: bool,
    device_name: &str,
    case: &str,
) -> Result<Vec<Row>> {
    let device = Default::default();
    let config = &shapes.model;
    D::seed(&device, 0);
    let mut model: Llama<Autodiff<D>> = config.init(&device)?;
    let adapters = lora.then(LoraConfig::default);
    if let Some(adapters) = &adapters {
        model = model
            .cast_base(FloatDType::BF16)
            .with_lora(adapters, &device)?;
    }
    let dir = tempfile::tempdir()?;
    let run = measure(
        objective,
        model,
        config,
        shapes.step,
        shapes.measured_steps,
        dir.path(),
    )?;
    let flops = flops_per_token(config, adapters.as_ref()) * run.tokens_per_s;
    let tflops = flops / 1e12;
    let (mfu, unit) = match peak_flops(device_name) {
        Some(peak) => {
            let name = peak.name;
            let (peak, dtype) = if lora {
                (peak.bf16, "bf16 dense")
            } else {
                (peak.f32, "f32 non-tensor")
            };
            (
                format!("{:.1}%", 100.0 * flops / peak),
                format!("{tflops:.1} TFLOP/s of {:.0} ({name} {dtype})", peak / 1e12),
            )
        }
        None => (
            "–".to_string(),
            format!("{tflops:.4} TFLOP/s; no peak known for this device"),
        ),
    };
    Ok(vec![
        Row::measured(
            case,
            format!("{:.0}", run.tokens_per_s),
            format!("tokens/s, {} tokens a step", run.tokens_per_step),
        ),
        Row::measured(format!("{case}: MFU"), mfu, unit),
    ])
}

/// Model FLOPs per trained token (see the module docs).
fn flops_per_token(config: &LlamaConfig, lora: Option<&LoraConfig>) -> f64 {
    let (d, v, layers) = (
        config.hidden_size,
        config.vocab_size,
        config.num_hidden_layers,
    );
    let norms = (2 * layers + 1) * d;
    let lookup = if config.tie_word_embeddings { 0 } else { v * d };
    let n = (parameter_count(config) - norms - lookup) as f64;
    match lora {
        Some(lora) => 4.0 * n + 6.0 * adapter_parameter_count(config, lora) as f64,
        None => 6.0 * n,
    }
}

/// Dense peak FLOP/s of a GPU, from NVIDIA's data sheets (sparsity not counted).
struct Peak {
    /// The variant the figures are for.
    name: &'static str,
    /// bf16 on tensor cores.
    bf16: f64,
    /// f32 without tensor cores.
    f32: f64,
}

/// The peak of the GPU `nvidia-smi` names: the H100 and H200 variants.
fn peak_flops(device_name: &str) -> Option<Peak> {
    let has = |part: &str| device_name.contains(part);
    if !(has("H100") || has("H200")) {
        return None;
    }
    let (name, bf16, f32) = if has("PCIe") {
        ("H100 PCIe", 756e12, 51e12)
    } else if has("NVL") {
        ("H100/H200 NVL", 835e12, 60e12)
    } else {
        ("H100/H200 SXM", 989e12, 67e12)
    };
    Some(Peak { name, bf16, f32 })
}
