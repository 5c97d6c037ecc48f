//! The memory plan: parameter counts that match the model, frozen parameters without gradients or
//! optimizer state, the KV cache's doubling, the printed table, and refusals that name the
//! largest part and what to change, before a run writes anything.

mod common;

use burn::module::Module;
use common::*;
use w2s_train::memory_plan::MemoryLine;
use w2s_train::{
    parameter_count, train_sft, trained_parameter_count, MemoryBudget, MemoryPlan, MicroBatch,
    SamplingShape, TrainConfig, TrainError, TrainingShape,
};

fn config(json: &str) -> w2s_llama::LlamaConfig {
    w2s_llama::LlamaConfig::from_json(json).expect("valid config")
}

fn budget(bytes: u64) -> MemoryBudget {
    MemoryBudget {
        bytes,
        source: "the test",
    }
}

fn training_plan(
    model: &w2s_llama::LlamaConfig,
    train: &TrainConfig,
    tokens: usize,
    trained_params: usize,
) -> MemoryPlan {
    MemoryPlan::training(&TrainingShape {
        model,
        config: train,
        micro_batch: MicroBatch {
            tokens,
            seq_len: 64,
        },
        trained_params,
        reference_params: 0,
        lora: None,
        base_dtype: burn::tensor::FloatDType::F32,
    })
}

#[test]
fn the_parameter_count_is_the_models() -> anyhow::Result<()> {
    let dev = Default::default();
    for json in [
        // GQA with an untied head and a head width that is not hidden / heads.
        r#"{"vocab_size": 50, "hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 3,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8}"#,
        // Tied embeddings, no GQA.
        r#"{"vocab_size": 70, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "tie_word_embeddings": true}"#,
    ] {
        let config = config(json);
        let model = config.init::<B>(&dev)?;
        assert_eq!(parameter_count(&config), model.num_params(), "{json}");
        assert_eq!(trained_parameter_count::<B, _>(&model), model.num_params());
        let plan = training_plan(&config, &TrainConfig::default(), 128, model.num_params());
        assert_eq!(plan.bytes("weights"), Some(4 * model.num_params() as u64));
    }
    Ok(())
}

/// A frozen lm_head has no gradient or AdamW moments in the plan, and the trainer indeed leaves
/// it alone while it trains the rest.
#[test]
fn frozen_parameters_have_no_gradients_or_optimizer_state() -> anyhow::Result<()> {
    let (mut model, llama) = tiny_model(4);
    let total = model.num_params();
    let mut head = model
        .lm_head
        .take()
        .expect("the tiny model has its own lm_head");
    head.weight = head.weight.set_require_grad(false);
    model.lm_head = Some(head);
    let head_params = llama.hidden_size * llama.vocab_size;
    assert_eq!(trained_parameter_count::<B, _>(&model), total - head_params);

    let train = TrainConfig::default();
    let all = training_plan(&llama, &train, 64, total);
    let frozen = training_plan(&llama, &train, 64, total - head_params);
    let fewer = |name: &str| all.bytes(name).unwrap_or(0) - frozen.bytes(name).unwrap_or(0);
    assert_eq!(fewer("gradients"), 4 * head_params as u64);
    assert_eq!(fewer("optimizer state"), 8 * head_params as u64);
    assert_eq!(fewer("weights"), 0);
    assert_eq!(fewer("activations"), 0);

    let head_of = |m: &w2s_llama::Llama<B>| weights::<B, _>(m.lm_head.as_ref().expect("head"));
    let before = (head_of(&model), weights::<B, _>(&model.model));
    let dir = tempfile::tempdir()?;
    let one_step = TrainConfig {
        max_steps: Some(1),
        warmup_steps: 0,
        ..quick_config()
    };
    let out = train_sft(
        model,
        &llama,
        &sft_data(4),
        &[],
        &one_step,
        &options(dir.path()),
    )?;
    assert_eq!(max_abs_diff(&before.0, &head_of(&out.model)), 0.0);
    assert!(max_abs_diff(&before.1, &weights::<B, _>(&out.model.model)) > 0.0);
    Ok(())
}

#[test]
fn gradient_accumulation_holds_a_second_copy_of_the_gradients() {
    let llama = tiny_config(64);
    let params = parameter_count(&llama);
    let one = training_plan(&llama, &TrainConfig::default(), 64, params);
    let accumulating = TrainConfig {
        grad_accum_steps: 4,
        ..TrainConfig::default()
    };
    let four = training_plan(&llama, &accumulating, 64, params);
    assert_eq!(one.bytes("gradients"), Some(4 * params as u64));
    assert_eq!(four.bytes("gradients"), Some(8 * params as u64));
}

#[test]
fn the_largest_micro_batch_follows_the_batching_rules() {
    // Within the budget, padded to the longest record.
    let costs = [10, 30, 20];
    let sft = MicroBatch::largest(&costs, 1, 50);
    assert_eq!((sft.tokens, sft.seq_len), (50, 30));
    // A record longer than the budget forms a micro-batch of its own.
    assert_eq!(MicroBatch::largest(&costs, 1, 10).tokens, 30);
    // Never more than every record padded to the longest.
    assert_eq!(MicroBatch::largest(&costs, 1, 1000).tokens, 90);
    // A preference pair's cost counts its two rows.
    assert_eq!(MicroBatch::largest(&costs, 2, 50).seq_len, 15);
}

#[test]
fn the_kv_cache_is_planned_at_the_capacity_doubling_reaches() {
    let llama = tiny_config(64);
    let plan = |prompt_len, max_new_tokens| {
        MemoryPlan::sampling(&SamplingShape {
            model: &llama,
            rows: 3,
            prompt_len,
            max_new_tokens,
            lora: None,
            base_dtype: burn::tensor::FloatDType::F32,
        })
    };
    // Keys and values of 2 layers, and of the one regrowing, x 3 rows x 2 kv heads x 8 wide, per
    // column.
    let per_column = 4 * 2 * 3 * 3 * 2 * 8;
    // A prompt of 5 fills 10 columns' buffers; feeding back 19 of 20 new tokens regrows them at
    // 11 used (to 22) and at 23 used (to 46).
    assert_eq!(plan(5, 20).bytes("KV cache"), Some(46 * per_column));
    assert_eq!(plan(5, 6).bytes("KV cache"), Some(10 * per_column));
    // Nothing to generate: nothing runs.
    let idle = plan(5, 0);
    assert_eq!(idle.total(), idle.bytes("weights").unwrap_or(0));
}

#[test]
fn the_table_lists_every_line_and_the_total() {
    let llama = tiny_config(64);
    let training = training_plan(&llama, &TrainConfig::default(), 256, 1000);
    let sampling = MemoryPlan::sampling(&SamplingShape {
        model: &llama,
        rows: 4,
        prompt_len: 12,
        max_new_tokens: 20,
        lora: None,
        base_dtype: burn::tensor::FloatDType::F32,
    });
    for plan in [training, sampling] {
        let table = plan.to_string();
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), plan.lines().len() + 1, "{table}");
        for (row, MemoryLine { name, detail, .. }) in rows.iter().zip(plan.lines()) {
            assert!(row.trim_start().starts_with(name), "{name} in {row}");
            assert!(row.ends_with(detail.as_str()), "{detail} in {row}");
        }
        assert!(rows[plan.lines().len()].trim_start().starts_with("total"));
        assert_eq!(
            plan.total(),
            plan.lines().iter().map(|l| l.bytes).sum::<u64>()
        );
    }
}

#[test]
fn a_plan_over_the_budget_is_refused_naming_its_largest_part() {
    let llama = tiny_config(64);
    let params = parameter_count(&llama);
    let train = TrainConfig::default();
    let plan = training_plan(&llama, &train, 8192, params);
    assert!(plan.check(&budget(plan.total())).is_ok());
    let largest = plan
        .lines()
        .iter()
        .max_by_key(|l| l.bytes)
        .map(|l| l.name)
        .unwrap_or_default();
    assert_eq!(largest, "activations");
    match plan.check(&budget(plan.total() - 1)) {
        Err(TrainError::OverMemoryBudget { reason }) => {
            assert!(
                reason.contains(&format!("the largest parts are {largest}")),
                "{reason}"
            );
            assert!(reason.contains("--batch-tokens"), "{reason}");
            assert!(reason.contains("--grad-accum"), "{reason}");
            assert!(reason.contains("(the test)"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Too small even for the weights, gradients and moments: no batch setting helps.
    match plan.check(&budget(8 * params as u64)) {
        Err(TrainError::OverMemoryBudget { reason }) => {
            assert!(reason.contains("the model alone needs"), "{reason}");
            assert!(reason.contains("LoRA"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_sampling_plan_over_the_budget_names_rows_and_lengths() {
    let llama = tiny_config(64);
    let plan = MemoryPlan::sampling(&SamplingShape {
        model: &llama,
        rows: 64,
        prompt_len: 16,
        max_new_tokens: 16,
        lora: None,
        base_dtype: burn::tensor::FloatDType::F32,
    });
    let err = plan
        .check(&budget(plan.total() / 2))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("not enough memory: sampling needs"),
        "{err}"
    );
    assert!(err.contains("--num-samples"), "{err}");
    assert!(err.contains("--max-new-tokens"), "{err}");
}

/// The trainer checks its plan before it writes anything.
#[test]
fn a_run_that_cannot_fit_is_refused_before_it_starts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("run");
    let (model, llama) = tiny_model(5);
    let options = w2s_train::TrainOptions {
        memory_budget: Some(budget(100_000)),
        ..options(&out)
    };
    let result = train_sft(model, &llama, &sft_data(8), &[], &quick_config(), &options);
    assert!(
        matches!(result, Err(TrainError::OverMemoryBudget { .. })),
        "{result:?}"
    );
    assert!(!out.exists(), "a refused run writes nothing");
    Ok(())
}

/// With LoRA the plan holds the base's weights, the adapters, and gradients and moments of the
/// adapters alone; the trainer's count of trained parameters is the adapters'; a bf16 base
/// halves the weights.
#[test]
fn lora_plans_count_the_adapters_and_a_bf16_base_halves_the_weights() -> anyhow::Result<()> {
    let (model, llama) = tiny_model(4);
    let lora = w2s_llama::LoraConfig {
        r: 4,
        ..w2s_llama::LoraConfig::default()
    };
    let adapters = w2s_train::adapter_parameter_count(&llama, &lora);
    let adapted = model.with_lora(&lora, &Default::default())?;
    assert_eq!(trained_parameter_count::<B, _>(&adapted), adapters);
    let plan = |base_dtype| {
        MemoryPlan::training(&TrainingShape {
            model: &llama,
            config: &TrainConfig::default(),
            micro_batch: MicroBatch {
                tokens: 64,
                seq_len: 16,
            },
            trained_params: adapters,
            reference_params: 0,
            lora: Some(&lora),
            base_dtype,
        })
    };
    let f32_plan = plan(burn::tensor::FloatDType::F32);
    let params = parameter_count(&llama) as u64;
    assert_eq!(f32_plan.bytes("weights"), Some(4 * params));
    assert_eq!(f32_plan.bytes("adapters"), Some(4 * adapters as u64));
    assert_eq!(f32_plan.bytes("gradients"), Some(4 * adapters as u64));
    assert_eq!(f32_plan.bytes("optimizer state"), Some(8 * adapters as u64));
    let bf16_plan = plan(burn::tensor::FloatDType::BF16);
    assert_eq!(bf16_plan.bytes("weights"), Some(2 * params));
    assert_eq!(bf16_plan.bytes("adapters"), Some(4 * adapters as u64));
    Ok(())
}

#[test]
fn a_model_too_large_for_full_fine_tuning_is_told_to_train_adapters() {
    let llama = tiny_config(64);
    let params = parameter_count(&llama);
    let plan = training_plan(&llama, &TrainConfig::default(), 64, params);
    let err = plan
        .check(&budget(4 * params as u64))
        .unwrap_err()
        .to_string();
    assert!(err.contains("LoRA"), "{err}");
}
