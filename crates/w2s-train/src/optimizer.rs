//! AdamW, clipping by global norm, and what it takes to restore optimizer state exactly.
//!
//! The optimizer is burn's `AdamW` (Loshchilov & Hutter, arXiv 1711.05101) through its
//! `OptimizerAdaptor`. Clipping is by the global L2 norm over all gradients together, as
//! `torch.nn.utils.clip_grad_norm_` does for transformers' Trainer; burn's own
//! `GradientClippingConfig::Norm` clips each parameter separately, which changes the update's
//! direction, so it is not used.
//!
//! burn keys optimizer state by parameter id, and ids are minted afresh whenever a model is built,
//! so a checkpoint records the model's ids in visiting order and [`assign_param_ids`] gives a
//! reloaded model the same ids before the saved state is loaded.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use w2s_llama::Llama;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// The optimizer of a Llama.
pub type LlamaAdamW<B> = OptimizerAdaptor<AdamW, Llama<B>, B>;

/// AdamW with the config's β, ε and weight decay (no per-parameter clipping).
pub fn adamw<B: AutodiffBackend>(config: &TrainConfig) -> LlamaAdamW<B> {
    AdamWConfig::new()
        .with_beta_1(config.adam_beta1 as f32)
        .with_beta_2(config.adam_beta2 as f32)
        .with_epsilon(config.adam_epsilon as f32)
        .with_weight_decay(config.weight_decay as f32)
        .init()
}

/// The ids of a module's float parameters in visiting order.
pub fn param_ids<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl<B: Backend> ModuleVisitor<B> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// Gives the float parameters of `module`, in visiting order, the ids `ids`, so that optimizer
/// state saved under the old ids applies to them.
///
/// # Errors
/// [`TrainError::Config`] if the module has a different number of parameters.
pub fn assign_param_ids<B: Backend, M: Module<B>>(module: M, ids: &[ParamId]) -> Result<M> {
    let count = param_ids::<B, M>(&module).len();
    if count != ids.len() {
        return Err(TrainError::config(
            "param_ids",
            format!(
                "the model has {count} parameters, the checkpoint {}",
                ids.len()
            ),
        ));
    }
    struct Assign<'a>(&'a [ParamId], usize);
    impl<B: Backend> ModuleMapper<B> for Assign<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, value, mapper) = param.consume();
            let id = self.0[self.1];
            self.1 += 1;
            Param::from_mapped_value(id, value, mapper)
        }
    }
    Ok(module.map(&mut Assign(ids, 0)))
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`; returns the norm before
/// clipping (computed whether or not clipping is enabled, for the metrics).
///
/// ```text
/// n = sqrt(Σ_p ||g_p||²);   g_p ← g_p · max_norm / (n + 1e-6)   when n > max_norm
/// ```
/// (the `1e-6` is torch's `clip_grad_norm_`).
///
/// # Errors
/// [`TrainError::TensorData`] if the norm cannot be read back.
pub fn clip_global_norm<B: AutodiffBackend>(
    model: &Llama<B>,
    grads: &mut GradientsParams,
    max_norm: Option<f64>,
) -> Result<f64> {
    struct SumSquares<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SumSquares<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let s = g.square().sum();
                self.sum = Some(match self.sum.take() {
                    Some(total) => total + s,
                    None => s,
                });
            }
        }
    }
    let mut visitor = SumSquares::<B> { grads, sum: None };
    model.visit(&mut visitor);
    let Some(sum) = visitor.sum else {
        return Ok(0.0);
    };
    let norm = f64::from(
        sum.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| TrainError::TensorData(format!("{e:?}")))?[0],
    )
    .sqrt();
    if let Some(max) = max_norm {
        if norm > max {
            let scale = max / (norm + 1e-6);
            struct Scale<'a> {
                grads: &'a mut GradientsParams,
                scale: f64,
            }
            impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                    if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                        self.grads
                            .register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.scale));
                    }
                }
            }
            model.visit(&mut Scale { grads, scale });
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use w2s_llama::LlamaConfig;

    type B = Autodiff<Flex>;

    fn tiny() -> LlamaConfig {
        LlamaConfig::from_json(
            r#"{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2}"#,
        )
        .expect("valid config")
    }

    #[test]
    fn global_norm_clipping_scales_every_gradient_alike() -> anyhow::Result<()> {
        let dev = Default::default();
        let model = tiny().init::<B>(&dev)?;
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::from([[1, 2, 3, 4]]), &dev);
        let loss = model.forward(ids, None)?.square().sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut unclipped = GradientsParams::from_grads(
            model
                .forward(
                    Tensor::from_data(TensorData::from([[1, 2, 3, 4]]), &dev),
                    None,
                )?
                .square()
                .sum()
                .backward(),
            &model,
        );
        let norm = clip_global_norm(&model, &mut unclipped, None)?;
        let mut clipped = grads;
        let before = clip_global_norm(&model, &mut clipped, Some(norm / 4.0))?;
        assert!((before - norm).abs() < 1e-6 * norm);
        let after = clip_global_norm(&model, &mut clipped, None)?;
        assert!(
            (after - norm / 4.0).abs() < 1e-4 * norm,
            "{after} vs {}",
            norm / 4.0
        );
        // Same direction: one parameter's gradient is scaled by exactly the global factor.
        let id = model.model.norm.gamma.id;
        let a = unclipped.get::<Flex, 1>(id).expect("gradient").into_data();
        let b = clipped.get::<Flex, 1>(id).expect("gradient").into_data();
        let (a, b) = (
            a.to_vec::<f32>().unwrap_or_default(),
            b.to_vec::<f32>().unwrap_or_default(),
        );
        let ratio = (after / norm) as f32;
        for (x, y) in a.iter().zip(&b) {
            assert!((x * ratio - y).abs() <= 1e-5 * x.abs().max(1e-3));
        }
        Ok(())
    }

    #[test]
    fn ids_can_be_reassigned_in_visit_order() -> anyhow::Result<()> {
        let dev = Default::default();
        let a = tiny().init::<B>(&dev)?;
        let b = tiny().init::<B>(&dev)?;
        let ids = param_ids::<B, _>(&a);
        assert_ne!(ids, param_ids::<B, _>(&b));
        let b = assign_param_ids::<B, _>(b, &ids)?;
        assert_eq!(ids, param_ids::<B, _>(&b));
        assert!(assign_param_ids::<B, _>(b, &ids[1..]).is_err());
        Ok(())
    }
}
