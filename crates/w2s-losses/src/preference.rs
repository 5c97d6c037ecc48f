//! Preference losses on (policy, reference) × (chosen, rejected) sequence log-probs.
//!
//! [`preference_loss`] dispatches on [`PreferenceLossConfig`] to the formulas in
//! [`crate::dpo`], [`crate::ipo`], [`crate::simpo`] and [`crate::orpo`], adds the optional NLL
//! term, and returns the per-pair losses, their batch mean and TRL's metrics.
//!
//! The reference model enters only through its summed completion log-probs
//! ([`ReferenceLogprobs`]), so they can be precomputed once over the dataset and the reference
//! model need never be held in memory during training (TRL's `precompute_ref_log_probs`).
//!
//! NLL term (RPO, Pang et al. 2024, arXiv:2404.19733; TRL ≤ 0.28 `rpo_alpha`, CPO `cpo_alpha`):
//! the token-mean NLL over the chosen rows, `−Σ_i sum_i / Σ_i n_i`, computed from
//! [`PreferenceInputs::nll_chosen`] when given (ORPO's prompt-and-completion scope), else from the
//! chosen completion log-probs.
//!
//! # Shapes
//! Every per-pair tensor is `[b]`; `loss` and `nll_loss` are `[1]`.

use burn::tensor::{backend::Backend, Tensor};

use crate::config::{NllScope, PreferenceLossConfig};
use crate::dpo::{hinge_loss, robust_loss, sigmoid_loss};
use crate::error::{Error, Result};
use crate::ipo::ipo_loss;
use crate::logprobs::SequenceLogprobs;
use crate::metrics::{MetricTensors, PreferenceMetrics};
use crate::numerics::log_sigmoid;
use crate::orpo::{orpo_log_odds, orpo_ratio_loss};
use crate::simpo::{simpo_logits, SimpoMargin};
use crate::validate::expect_shape;

/// Summed completion log-probs of the reference model, `[b]` each; no gradient flows into them.
#[derive(Debug, Clone)]
pub struct ReferenceLogprobs<B: Backend> {
    /// `[b]` ρc, summed over each chosen completion.
    pub chosen: Tensor<B, 1>,
    /// `[b]` ρr, summed over each rejected completion.
    pub rejected: Tensor<B, 1>,
}

impl<B: Backend> ReferenceLogprobs<B> {
    /// Precomputed sums (e.g. read from a cache file), detached.
    pub fn new(chosen: Tensor<B, 1>, rejected: Tensor<B, 1>) -> Self {
        Self {
            chosen: chosen.detach(),
            rejected: rejected.detach(),
        }
    }

    /// The sums of a reference pass over the same chosen and rejected completions.
    pub fn from_sequences(chosen: &SequenceLogprobs<B>, rejected: &SequenceLogprobs<B>) -> Self {
        Self::new(chosen.sum.clone(), rejected.sum.clone())
    }
}

/// Everything a preference loss reads.
#[derive(Debug, Clone)]
pub struct PreferenceInputs<B: Backend> {
    /// Policy log-probs of the chosen completions.
    pub chosen: SequenceLogprobs<B>,
    /// Policy log-probs of the rejected completions.
    pub rejected: SequenceLogprobs<B>,
    /// Reference log-probs; required unless the loss is reference-free.
    pub reference: Option<ReferenceLogprobs<B>>,
    /// Policy log-probs of the chosen rows over the NLL's tokens when they differ from the
    /// completion (ORPO's TRL scope: prompt and completion, padding excluded).
    pub nll_chosen: Option<SequenceLogprobs<B>>,
}

impl<B: Backend> PreferenceInputs<B> {
    /// Policy log-probs only (reference-free losses).
    pub fn new(chosen: SequenceLogprobs<B>, rejected: SequenceLogprobs<B>) -> Self {
        Self {
            chosen,
            rejected,
            reference: None,
            nll_chosen: None,
        }
    }

    /// Adds reference log-probs.
    #[must_use]
    pub fn with_reference(mut self, reference: ReferenceLogprobs<B>) -> Self {
        self.reference = Some(reference);
        self
    }

    /// Adds the chosen log-probs the NLL term averages over.
    #[must_use]
    pub fn with_nll_chosen(mut self, nll_chosen: SequenceLogprobs<B>) -> Self {
        self.nll_chosen = Some(nll_chosen);
        self
    }
}

/// Result of [`preference_loss`].
#[derive(Debug, Clone)]
pub struct PreferenceLossOutput<B: Backend> {
    /// `[1]` the training objective: `mean(losses) + alpha · nll_loss`.
    pub loss: Tensor<B, 1>,
    /// `[b]` the preference term of each pair (for ORPO `−β·logσ(log_odds)`).
    pub losses: Tensor<B, 1>,
    /// `[1]` chosen token-mean NLL, when the loss has an NLL term.
    pub nll_loss: Option<Tensor<B, 1>>,
    metrics: MetricTensors<B>,
}

impl<B: Backend> PreferenceLossOutput<B> {
    /// TRL's metrics for this batch (reads a few `[b]` tensors back to the host).
    ///
    /// # Errors
    /// [`Error::TensorData`] if a tensor cannot be read.
    pub fn metrics(&self) -> Result<PreferenceMetrics> {
        self.metrics.compute()
    }
}

/// The loss of one batch of preference pairs.
///
/// # Shapes
/// All sequence tensors in `inputs` are `[b]` (`tokens`: `[b, s]`).
///
/// # Errors
/// - [`Error::InvalidParameter`] if `config` does not validate,
/// - [`Error::MissingReference`] if the loss needs a reference and none was given,
/// - [`Error::MissingInput`] for ORPO's prompt-and-completion NLL without `nll_chosen`,
/// - [`Error::Shape`] if the `[b]` tensors disagree.
pub fn preference_loss<B: Backend>(
    config: &PreferenceLossConfig,
    inputs: PreferenceInputs<B>,
) -> Result<PreferenceLossOutput<B>> {
    config.validate()?;
    check_shapes(&inputs)?;
    let beta = config.beta();
    let PreferenceInputs {
        chosen,
        rejected,
        reference,
        nll_chosen,
    } = inputs;

    let terms = match *config {
        PreferenceLossConfig::Dpo {
            label_smoothing, ..
        } => ratio_terms(config, &chosen, &rejected, reference, |u, v| {
            sigmoid_loss((u - v).mul_scalar(beta), label_smoothing)
        })?,
        PreferenceLossConfig::Robust {
            label_smoothing, ..
        } => ratio_terms(config, &chosen, &rejected, reference, |u, v| {
            robust_loss((u - v).mul_scalar(beta), label_smoothing)
        })?,
        PreferenceLossConfig::Hinge { .. } => {
            ratio_terms(config, &chosen, &rejected, reference, |u, v| {
                hinge_loss((u - v).mul_scalar(beta))
            })?
        }
        PreferenceLossConfig::IpoMean { .. } => {
            ratio_terms(config, &chosen, &rejected, reference, |u, v| {
                ipo_loss(
                    u / chosen.num_tokens.clone() - v / rejected.num_tokens.clone(),
                    beta,
                )
            })?
        }
        PreferenceLossConfig::IpoSum { .. } => {
            ratio_terms(config, &chosen, &rejected, reference, |u, v| {
                ipo_loss(u - v, beta)
            })?
        }
        PreferenceLossConfig::SimpoGamma {
            gamma,
            label_smoothing,
            ..
        } => simpo_terms(
            &chosen,
            &rejected,
            beta,
            SimpoMargin::Gamma(gamma),
            label_smoothing,
        ),
        PreferenceLossConfig::SimpoGammaBetaRatio {
            gamma_beta_ratio,
            label_smoothing,
            ..
        } => {
            let margin = SimpoMargin::GammaBetaRatio(gamma_beta_ratio);
            simpo_terms(&chosen, &rejected, beta, margin, label_smoothing)
        }
        PreferenceLossConfig::Orpo { .. } => {
            if config.nll_covers_prompt() && nll_chosen.is_none() {
                return Err(Error::MissingInput {
                    loss: "orpo",
                    what:
                        "nll_chosen (chosen log-probs over prompt and completion, TRL's NLL scope)",
                });
            }
            orpo_terms(&chosen, &rejected, beta)
        }
    };

    let alpha = config.nll_alpha();
    let nll = (alpha > 0.0).then(|| {
        let source = match (config, &nll_chosen) {
            (
                PreferenceLossConfig::Orpo {
                    nll_scope: NllScope::Completion,
                    ..
                },
                _,
            )
            | (_, None) => &chosen,
            (_, Some(nll_chosen)) => nll_chosen,
        };
        source.sum.clone().sum().neg() / source.num_tokens.clone().sum()
    });
    let loss = match &nll {
        Some(nll) => terms.losses.clone().mean() + nll.clone().mul_scalar(alpha),
        None => terms.losses.clone().mean(),
    };
    let metrics = MetricTensors {
        chosen_rewards: terms.chosen_rewards.detach(),
        rejected_rewards: terms.rejected_rewards.detach(),
        chosen_logps: terms.chosen_logps.detach(),
        rejected_logps: terms.rejected_logps.detach(),
        chosen_logits: [chosen.logits_mean_sum, chosen.num_tokens],
        rejected_logits: [rejected.logits_mean_sum, rejected.num_tokens],
        nll: nll.clone().map(Tensor::detach),
        log_odds: terms.log_odds,
    };
    Ok(PreferenceLossOutput {
        loss,
        losses: terms.losses,
        nll_loss: nll,
        metrics,
    })
}

/// What one loss computes per pair, before the NLL term and the batch mean. Every tensor is
/// `[b]`.
struct PairTerms<B: Backend> {
    /// The preference term of each pair.
    losses: Tensor<B, 1>,
    /// The chosen reward: β·u for the DPO family (`u = πc − ρc`), β·c̄ for SimPO and ORPO.
    chosen_rewards: Tensor<B, 1>,
    /// The rejected reward: β·v, or β·r̄.
    rejected_rewards: Tensor<B, 1>,
    /// The chosen policy log-probs the loss used: sums for the DPO family, means for SimPO and
    /// ORPO.
    chosen_logps: Tensor<B, 1>,
    /// The rejected policy log-probs the loss used, as `chosen_logps`.
    rejected_logps: Tensor<B, 1>,
    /// ORPO's `[log_odds, logσ(log_odds)]`, detached; `None` for every other loss.
    log_odds: Option<[Tensor<B, 1>; 2]>,
}

impl<B: Backend> PairTerms<B> {
    /// The terms of a length-normalized loss (SimPO, ORPO): its rewards are β times the mean
    /// log-probs `c̄` and `r̄`, which are also the log-probs it reports.
    fn length_normalized(
        losses: Tensor<B, 1>,
        chosen_mean: Tensor<B, 1>,
        rejected_mean: Tensor<B, 1>,
        beta: f64,
        log_odds: Option<[Tensor<B, 1>; 2]>,
    ) -> Self {
        PairTerms {
            losses,
            chosen_rewards: chosen_mean.clone().mul_scalar(beta),
            rejected_rewards: rejected_mean.clone().mul_scalar(beta),
            chosen_logps: chosen_mean,
            rejected_logps: rejected_mean,
            log_odds,
        }
    }
}

/// The DPO family's log-ratios `(u, v) = (πc − ρc, πr − ρr)`, with `ρ = 0` when the loss is
/// reference-free.
fn log_ratios<B: Backend>(
    config: &PreferenceLossConfig,
    chosen: &SequenceLogprobs<B>,
    rejected: &SequenceLogprobs<B>,
    reference: Option<ReferenceLogprobs<B>>,
) -> Result<(Tensor<B, 1>, Tensor<B, 1>)> {
    match (reference, config.needs_reference()) {
        (Some(r), true) => Ok((
            chosen.sum.clone() - r.chosen,
            rejected.sum.clone() - r.rejected,
        )),
        (None, true) => Err(Error::MissingReference {
            loss: config.name(),
        }),
        (_, false) => Ok((chosen.sum.clone(), rejected.sum.clone())),
    }
}

/// The terms of a DPO-family loss whose per-pair loss is `loss(u, v)` on the log-ratios.
fn ratio_terms<B: Backend>(
    config: &PreferenceLossConfig,
    chosen: &SequenceLogprobs<B>,
    rejected: &SequenceLogprobs<B>,
    reference: Option<ReferenceLogprobs<B>>,
    loss: impl FnOnce(Tensor<B, 1>, Tensor<B, 1>) -> Tensor<B, 1>,
) -> Result<PairTerms<B>> {
    let beta = config.beta();
    let (u, v) = log_ratios(config, chosen, rejected, reference)?;
    Ok(PairTerms {
        losses: loss(u.clone(), v.clone()),
        chosen_rewards: u.mul_scalar(beta),
        rejected_rewards: v.mul_scalar(beta),
        chosen_logps: chosen.sum.clone(),
        rejected_logps: rejected.sum.clone(),
        log_odds: None,
    })
}

fn simpo_terms<B: Backend>(
    chosen: &SequenceLogprobs<B>,
    rejected: &SequenceLogprobs<B>,
    beta: f64,
    margin: SimpoMargin,
    label_smoothing: f64,
) -> PairTerms<B> {
    let (c, r) = (chosen.mean(), rejected.mean());
    let losses = sigmoid_loss(
        simpo_logits(c.clone(), r.clone(), beta, margin),
        label_smoothing,
    );
    PairTerms::length_normalized(losses, c, r, beta, None)
}

/// ORPO's odds-ratio term on the length-averaged log-probs (its NLL term is added by the
/// caller).
fn orpo_terms<B: Backend>(
    chosen: &SequenceLogprobs<B>,
    rejected: &SequenceLogprobs<B>,
    beta: f64,
) -> PairTerms<B> {
    let (c, r) = (chosen.mean(), rejected.mean());
    let odds = orpo_log_odds(c.clone(), r.clone());
    let losses = orpo_ratio_loss(odds.clone(), beta);
    let ratio = log_sigmoid(odds.clone().detach());
    PairTerms::length_normalized(losses, c, r, beta, Some([odds.detach(), ratio]))
}

fn check_shapes<B: Backend>(inputs: &PreferenceInputs<B>) -> Result<()> {
    let op = "preference_loss";
    let b = inputs.chosen.sum.dims()[0];
    expect_shape(op, "rejected", &inputs.rejected.sum.dims(), &[b], "[b]")?;
    if let Some(r) = &inputs.reference {
        expect_shape(op, "reference.chosen", &r.chosen.dims(), &[b], "[b]")?;
        expect_shape(op, "reference.rejected", &r.rejected.dims(), &[b], "[b]")?;
    }
    if let Some(n) = &inputs.nll_chosen {
        expect_shape(op, "nll_chosen", &n.sum.dims(), &[b], "[b]")?;
    }
    Ok(())
}
