//! LoRA adapters: exactness at initialization, merging, PEFT's files both ways, the frozen base,
//! and every adapter directory w2s must refuse.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use w2s_llama::{
    load_adapter, save_adapter, save_weights, LlamaError, LoraConfig, LoraTarget, ModelDir,
    SaveOptions, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
};

type B = Flex;
type AD = Autodiff<Flex>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn base<Be: Backend>() -> w2s_llama::Llama<Be> {
    ModelDir::<Be>::load(fixture("gqa_sharded"), &Default::default())
        .unwrap()
        .model
}

fn tokens<Be: Backend>() -> Tensor<Be, 2, Int> {
    Tensor::from_data(
        TensorData::new(vec![1i64, 5, 9, 33, 70, 2, 17, 101], [2, 4]),
        &Default::default(),
    )
}

fn logits<Be: Backend>(model: &w2s_llama::Llama<Be>) -> Vec<f32> {
    model
        .forward(tokens(), None)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every adapter's `B` replaced by random values, so the adapters change the output.
fn perturbed<Be: Backend>(model: w2s_llama::Llama<Be>) -> w2s_llama::Llama<Be> {
    Be::seed(&Default::default(), 7);
    let mut model = model;
    for layer in &mut model.model.layers {
        for target in LoraTarget::ALL {
            if let Some(lora) = layer.projection_mut(target).lora.as_mut() {
                let dims = lora.b.val().dims();
                lora.b = burn::module::Param::from_tensor(Tensor::random(
                    dims,
                    Distribution::Normal(0.0, 0.05),
                    &Default::default(),
                ));
            }
        }
    }
    model
}

fn config(r: usize, targets: &[LoraTarget], rslora: bool) -> LoraConfig {
    LoraConfig {
        r,
        alpha: 2.0 * r as f64,
        dropout: 0.0,
        rslora,
        targets: targets.to_vec(),
    }
}

#[test]
fn a_fresh_adapter_leaves_the_logits_exactly_unchanged() {
    let model = base::<B>();
    let expected = logits(&model);
    let adapted = model
        .with_lora(&LoraConfig::default(), &Default::default())
        .unwrap();
    assert_eq!(logits(&adapted), expected);
    assert_eq!(logits(&adapted.without_adapters()), expected);
}

#[test]
fn merged_and_unmerged_adapters_give_the_same_logits() {
    for rslora in [false, true] {
        let targets = [LoraTarget::QProj, LoraTarget::VProj, LoraTarget::DownProj];
        let model = base::<B>();
        let plain = logits(&model);
        let adapted = perturbed(
            model
                .with_lora(&config(4, &targets, rslora), &Default::default())
                .unwrap(),
        );
        let unmerged = logits(&adapted);
        assert!(
            max_diff(&unmerged, &plain) > 1e-3,
            "the adapters do nothing"
        );
        // The reference: adapters off gives the base exactly.
        assert_eq!(logits(&adapted.without_adapters()), plain);
        let merged = adapted.merge_adapters();
        assert!(merged.lora().is_none());
        let diff = max_diff(&logits(&merged), &unmerged);
        assert!(diff < 1e-4, "merged differs by {diff}");
    }
}

#[test]
fn save_weights_writes_the_merged_model() {
    let dir = tempfile::tempdir().unwrap();
    let source = ModelDir::<B>::load(fixture("gqa_sharded"), &Default::default()).unwrap();
    let adapted = perturbed(
        source
            .model
            .clone()
            .with_lora(&LoraConfig::default(), &Default::default())
            .unwrap(),
    );
    save_weights(&adapted, &source.config, dir.path(), SaveOptions::default()).unwrap();
    std::fs::copy(
        fixture("gqa_sharded/tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let reloaded = ModelDir::<B>::load(dir.path(), &Default::default()).unwrap();
    let diff = max_diff(&logits(&reloaded.model), &logits(&adapted));
    assert!(diff < 1e-4, "saved model differs by {diff}");
}

#[test]
fn adapters_round_trip_through_peft_files() {
    let dir = tempfile::tempdir().unwrap();
    let targets = [LoraTarget::KProj, LoraTarget::OProj, LoraTarget::UpProj];
    let adapted = perturbed(
        base::<B>()
            .with_lora(&config(2, &targets, true), &Default::default())
            .unwrap(),
    );
    save_adapter(&adapted, dir.path(), Some("gqa_sharded")).unwrap();
    let loaded = load_adapter(base::<B>(), dir.path(), &Default::default()).unwrap();
    assert_eq!(loaded.lora(), adapted.lora());
    assert_eq!(logits(&loaded), logits(&adapted));

    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(ADAPTER_CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["r"], 2);
    assert_eq!(config["lora_alpha"], 4);
    assert_eq!(config["use_rslora"], true);
    assert_eq!(config["base_model_name_or_path"], "gqa_sharded");
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["k_proj", "o_proj", "up_proj"])
    );

    // PEFT's names and orientations: lora_A [r, in], lora_B [out, r].
    let bytes = std::fs::read(dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<(String, Vec<usize>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2 * 3 * 2);
    let layer0: Vec<_> = names
        .iter()
        .filter(|(n, _)| n.contains("layers.0."))
        .cloned()
        .collect();
    let p = "base_model.model.model.layers.0";
    assert_eq!(
        layer0,
        vec![
            (format!("{p}.mlp.up_proj.lora_A.weight"), vec![2, 64]),
            (format!("{p}.mlp.up_proj.lora_B.weight"), vec![96, 2]),
            (format!("{p}.self_attn.k_proj.lora_A.weight"), vec![2, 64]),
            (format!("{p}.self_attn.k_proj.lora_B.weight"), vec![32, 2]),
            (format!("{p}.self_attn.o_proj.lora_A.weight"), vec![2, 64]),
            (format!("{p}.self_attn.o_proj.lora_B.weight"), vec![64, 2]),
        ]
    );
}

#[test]
fn only_the_adapters_get_gradients() {
    let targets = [LoraTarget::QProj, LoraTarget::DownProj];
    let model = base::<AD>()
        .with_lora(&config(4, &targets, false), &Default::default())
        .unwrap();
    let loss = model.forward(tokens(), None).unwrap().powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let layers = model.num_layers();
    // Two matrices per adapted projection, nothing else.
    assert_eq!(grads.len(), layers * targets.len() * 2);
    let params = model.num_params();
    let adapter_params: usize = model
        .model
        .layers
        .iter()
        .flat_map(|l| targets.map(|t| l.projection(t).lora.as_ref().unwrap().num_params()))
        .sum();
    assert!(adapter_params < params / 10);
}

#[test]
fn a_model_takes_one_set_of_adapters() {
    let adapted = base::<B>()
        .with_lora(&LoraConfig::default(), &Default::default())
        .unwrap();
    let again = adapted.with_lora(&LoraConfig::default(), &Default::default());
    assert!(matches!(again, Err(LlamaError::Lora(m)) if m.contains("already has adapters")));
}

#[test]
fn invalid_configs_are_refused_by_name() {
    let cases = [
        (
            LoraConfig {
                r: 0,
                ..LoraConfig::default()
            },
            "`r`",
        ),
        (
            LoraConfig {
                alpha: -1.0,
                ..LoraConfig::default()
            },
            "`alpha`",
        ),
        (
            LoraConfig {
                dropout: 1.0,
                ..LoraConfig::default()
            },
            "`dropout`",
        ),
        (
            LoraConfig {
                targets: vec![],
                ..LoraConfig::default()
            },
            "`targets`",
        ),
        (
            LoraConfig {
                targets: vec![LoraTarget::QProj, LoraTarget::QProj],
                ..LoraConfig::default()
            },
            "twice",
        ),
    ];
    for (config, needle) in cases {
        let err = base::<B>()
            .with_lora(&config, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
}

/// A saved adapter directory, then `edit` applied to its config JSON.
fn edited_adapter(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let adapted = base::<B>()
        .with_lora(&config(2, &[LoraTarget::QProj], false), &Default::default())
        .unwrap();
    save_adapter(&adapted, dir.path(), Some("gqa_sharded")).unwrap();
    let path = dir.path().join(ADAPTER_CONFIG_FILE);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

#[test]
fn unsupported_adapter_settings_are_refused_naming_the_field() {
    let cases: [(&str, serde_json::Value); 6] = [
        ("use_dora", serde_json::json!(true)),
        ("fan_in_fan_out", serde_json::json!(true)),
        ("bias", serde_json::json!("all")),
        ("modules_to_save", serde_json::json!(["lm_head"])),
        ("layers_to_transform", serde_json::json!([0])),
        ("peft_type", serde_json::json!("IA3")),
    ];
    for (field, value) in cases {
        let dir = edited_adapter(|c| c[field] = value);
        let err = load_adapter(base::<B>(), dir.path(), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(ADAPTER_CONFIG_FILE), "{err}");
        assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
    }
}

#[test]
fn adapter_tensors_that_do_not_fit_are_all_listed() {
    // A rank the config does not state: every tensor has the wrong shape.
    let dir = edited_adapter(|c| c["r"] = serde_json::json!(3));
    let err = load_adapter(base::<B>(), dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(ADAPTER_WEIGHTS_FILE), "{err}");
    assert!(
        err.contains(
            "layers.0.self_attn.q_proj.lora_A.weight: expected shape [3, 64], found [2, 64]"
        ),
        "{err}"
    );
    assert!(
        err.contains("layers.1.self_attn.q_proj.lora_B.weight"),
        "{err}"
    );

    // An adapter for a deeper model: the extra layers are unexpected.
    let dir = tempfile::tempdir().unwrap();
    let deep = base::<B>()
        .with_lora(&config(2, &[LoraTarget::VProj], false), &Default::default())
        .unwrap();
    save_adapter(&deep, dir.path(), Some("gqa_sharded")).unwrap();
    let mut shallow = base::<B>();
    shallow.model.layers.truncate(1);
    let err = load_adapter(shallow, dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "unexpected tensor base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"
        ),
        "{err}"
    );

    // No adapter at all.
    let empty = tempfile::tempdir().unwrap();
    let err = load_adapter(base::<B>(), empty.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, LlamaError::MissingFile { .. }), "{err}");
}

#[test]
fn saving_a_model_without_adapters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = save_adapter(&base::<B>(), dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("no adapters"), "{err}");
}

/// `expected.json` of the PEFT fixtures (tests/fixtures/lora/make_fixtures.py).
fn peft_expected() -> serde_json::Value {
    let path = fixture("lora/expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `value[key]`, failing with the key path when it is absent.
fn at<'a>(value: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    path.iter().fold(value, |v, key| {
        v.get(key)
            .unwrap_or_else(|| panic!("lora/expected.json: `{}` is missing", path.join(".")))
    })
}

fn ints(value: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).expect("a list of lists of token ids")
}

/// Largest difference from PEFT's logits `[b][s][v]` over the real (unpadded) positions.
fn peft_error(ours: Vec<f32>, theirs: &serde_json::Value, mask: &[Vec<bool>]) -> f32 {
    let theirs: Vec<Vec<Vec<f32>>> = serde_json::from_value(theirs.clone()).unwrap();
    let v = theirs[0][0].len();
    let s = mask[0].len();
    let mut worst = 0.0f32;
    for (i, row) in theirs.iter().enumerate() {
        for (j, logits) in row.iter().enumerate() {
            if !mask[i][j] {
                continue;
            }
            for (k, &x) in logits.iter().enumerate() {
                worst = worst.max((ours[(i * s + j) * v + k] - x).abs());
            }
        }
    }
    worst
}

#[test]
fn adapters_made_by_peft_load_with_peft_logits() {
    let expected = peft_expected();
    for name in ["adapter_all", "adapter_rslora"] {
        let adapted = load_adapter(
            base::<B>(),
            &fixture(&format!("lora/{name}")),
            &Default::default(),
        )
        .unwrap();
        let scaling = at(&expected, &["adapters", name, "scaling"])
            .as_f64()
            .unwrap();
        assert!((adapted.lora().unwrap().scaling() - scaling).abs() < 1e-12);
        let mut peft_targets: Vec<String> = serde_json::from_value(
            at(&expected, &["adapters", name, "config", "target_modules"]).clone(),
        )
        .unwrap();
        let mut ours: Vec<String> = adapted
            .lora()
            .unwrap()
            .targets
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        ours.sort();
        peft_targets.sort();
        assert_eq!(ours, peft_targets);
        let cases = at(&expected, &["adapters", name, "cases"])
            .as_array()
            .unwrap();
        assert_eq!(cases.len(), 2);
        let merged = adapted.clone().merge_adapters();
        let disabled = adapted.without_adapters();
        for case in cases {
            let ids = ints(at(case, &["input_ids"]));
            let mask: Vec<Vec<bool>> = match case.get("attention_mask") {
                Some(m) => ints(m)
                    .iter()
                    .map(|r| r.iter().map(|&x| x == 1).collect())
                    .collect(),
                None => ids.iter().map(|r| vec![true; r.len()]).collect(),
            };
            let padding = w2s_llama::PaddingMask::new(mask.clone()).unwrap();
            let (b, s) = (ids.len(), ids[0].len());
            let flat: Vec<i64> = ids.iter().flatten().map(|&t| t as i64).collect();
            let run = |model: &w2s_llama::Llama<B>| -> Vec<f32> {
                let input =
                    Tensor::from_data(TensorData::new(flat.clone(), [b, s]), &Default::default());
                model
                    .forward(input, Some(&padding))
                    .unwrap()
                    .into_data()
                    .into_vec()
                    .unwrap()
            };
            for (model, key) in [
                (&adapted, "logits"),
                (&merged, "merged_logits"),
                (&disabled, "disabled_logits"),
            ] {
                let err = peft_error(run(model), at(case, &[key]), &mask);
                assert!(err < 1e-4, "{name} {key}: differs from PEFT by {err}");
            }
        }
    }
}

#[test]
fn adapter_gradients_are_the_chain_rule_of_the_weight_gradient() {
    // With W' = W + s·A·B, dL/dB = s·Aᵀ·dL/dW' and dL/dA = s·dL/dW'·Bᵀ.
    let targets = [LoraTarget::QProj, LoraTarget::DownProj];
    let cfg = config(4, &targets, false);
    let adapted = perturbed(base::<AD>().with_lora(&cfg, &Default::default()).unwrap());
    let merged = adapted.clone().merge_adapters();
    // The merged model with every weight trainable: its weight gradients are dL/dW'.
    let merged = merged.no_grad();
    let mut merged = merged;
    for layer in &mut merged.model.layers {
        for t in targets {
            let p = layer.projection_mut(t);
            let leaf =
                Tensor::<AD, 2>::from_data(p.base.weight.val().into_data(), &Default::default());
            p.base.weight = burn::module::Param::from_tensor(leaf.require_grad());
        }
    }
    let loss = |m: &w2s_llama::Llama<AD>| m.forward(tokens(), None).unwrap().powi_scalar(2).mean();
    let g_lora = loss(&adapted).backward();
    let g_full = loss(&merged).backward();
    let s = cfg.scaling() as f32;
    for (layer, full_layer) in adapted.model.layers.iter().zip(&merged.model.layers) {
        for t in targets {
            let lora = layer.projection(t).lora.as_ref().unwrap();
            let dw = full_layer
                .projection(t)
                .base
                .weight
                .val()
                .grad(&g_full)
                .unwrap();
            let a = lora.a.val().inner();
            let b = lora.b.val().inner();
            let want_b = a.clone().transpose().matmul(dw.clone()).mul_scalar(s);
            let want_a = dw.matmul(b.transpose()).mul_scalar(s);
            let got_b = lora.b.val().grad(&g_lora).unwrap();
            let got_a = lora.a.val().grad(&g_lora).unwrap();
            let diff = |x: Tensor<B, 2>, y: Tensor<B, 2>| {
                max_diff(
                    &x.into_data().into_vec().unwrap(),
                    &y.into_data().into_vec().unwrap(),
                )
            };
            assert!(diff(got_b, want_b) < 1e-5, "{t:?} B");
            assert!(diff(got_a, want_a) < 1e-5, "{t:?} A");
        }
    }
}
