//! Training metrics under TRL's names and definitions.
//!
//! | name | definition |
//! |---|---|
//! | `rewards/chosen`, `rewards/rejected` | batch mean of β·u, β·v (DPO family; `u = πc − ρc`) or β·c̄, β·r̄ (SimPO, ORPO) |
//! | `rewards/accuracies` | fraction of pairs with chosen reward **strictly** greater |
//! | `rewards/margins` | batch mean of chosen − rejected reward |
//! | `logps/chosen`, `logps/rejected` | batch mean of the policy log-probs the loss used (sums for the DPO family, means for SimPO/ORPO) |
//! | `logits/chosen`, `logits/rejected` | Σ over completion tokens of the vocabulary-mean logit / number of completion tokens |
//! | `nll_loss` | chosen token-mean NLL, when the loss has an NLL term |
//! | `log_odds_ratio`, `log_odds_chosen` | ORPO: batch mean of logσ(log_odds), of log_odds |
//!
//! Sources: `DPOTrainer._compute_loss` (`trl/trainer/dpo_trainer.py`),
//! `ORPOTrainer.get_batch_loss_metrics` (`trl/experimental/orpo/orpo_trainer.py`),
//! `CPOTrainer.get_batch_loss_metrics` (`trl/experimental/cpo/cpo_trainer.py`). One deliberate
//! difference: TRL's ORPO and CPO trainers average `logits/*` over every position (prompt and
//! padding included); here `logits/*` always uses the DPOTrainer's completion-token definition.

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Tensor};

use crate::error::Result;
use crate::validate::to_host_f64;

/// Metrics of one preference-loss evaluation, see the module docs for definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceMetrics {
    /// `rewards/chosen`
    pub rewards_chosen: f64,
    /// `rewards/rejected`
    pub rewards_rejected: f64,
    /// `rewards/accuracies`
    pub rewards_accuracies: f64,
    /// `rewards/margins`
    pub rewards_margins: f64,
    /// `logps/chosen`
    pub logps_chosen: f64,
    /// `logps/rejected`
    pub logps_rejected: f64,
    /// `logits/chosen`
    pub logits_chosen: f64,
    /// `logits/rejected`
    pub logits_rejected: f64,
    /// `nll_loss`, when the loss has an NLL term.
    pub nll_loss: Option<f64>,
    /// `log_odds_ratio` (ORPO).
    pub log_odds_ratio: Option<f64>,
    /// `log_odds_chosen` (ORPO).
    pub log_odds_chosen: Option<f64>,
}

impl PreferenceMetrics {
    /// The metrics keyed by TRL's names (`rewards/chosen`, ...); absent optional metrics are left
    /// out.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let always = [
            ("rewards/chosen", self.rewards_chosen),
            ("rewards/rejected", self.rewards_rejected),
            ("rewards/accuracies", self.rewards_accuracies),
            ("rewards/margins", self.rewards_margins),
            ("logps/chosen", self.logps_chosen),
            ("logps/rejected", self.logps_rejected),
            ("logits/chosen", self.logits_chosen),
            ("logits/rejected", self.logits_rejected),
        ];
        let optional = [
            ("nll_loss", self.nll_loss),
            ("log_odds_ratio", self.log_odds_ratio),
            ("log_odds_chosen", self.log_odds_chosen),
        ];
        always
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(
                optional
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
            )
            .collect()
    }
}

/// Detached per-pair tensors the metrics are computed from.
#[derive(Debug, Clone)]
pub(crate) struct MetricTensors<B: Backend> {
    pub chosen_rewards: Tensor<B, 1>,
    pub rejected_rewards: Tensor<B, 1>,
    pub chosen_logps: Tensor<B, 1>,
    pub rejected_logps: Tensor<B, 1>,
    /// `[Σ logits-mean sum, Σ tokens]` of the chosen and rejected completions.
    pub chosen_logits: [Tensor<B, 1>; 2],
    pub rejected_logits: [Tensor<B, 1>; 2],
    pub nll: Option<Tensor<B, 1>>,
    /// ORPO's `[log_odds, logσ(log_odds)]` per pair.
    pub log_odds: Option<[Tensor<B, 1>; 2]>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn mean_of<B: Backend>(t: &Tensor<B, 1>) -> Result<f64> {
    Ok(mean(&to_host_f64(t.clone())?))
}

fn ratio_of_sums<B: Backend>([num, den]: &[Tensor<B, 1>; 2]) -> Result<f64> {
    let num: f64 = to_host_f64(num.clone())?.iter().sum();
    let den: f64 = to_host_f64(den.clone())?.iter().sum();
    Ok(num / den)
}

impl<B: Backend> MetricTensors<B> {
    pub(crate) fn compute(&self) -> Result<PreferenceMetrics> {
        let chosen = to_host_f64(self.chosen_rewards.clone())?;
        let rejected = to_host_f64(self.rejected_rewards.clone())?;
        let wins: Vec<f64> = chosen
            .iter()
            .zip(&rejected)
            .map(|(c, r)| f64::from(u8::from(c > r)))
            .collect();
        let margins: Vec<f64> = chosen.iter().zip(&rejected).map(|(c, r)| c - r).collect();
        let (log_odds_chosen, log_odds_ratio) = match &self.log_odds {
            Some([odds, ratio]) => (Some(mean_of(odds)?), Some(mean_of(ratio)?)),
            None => (None, None),
        };
        Ok(PreferenceMetrics {
            rewards_chosen: mean(&chosen),
            rewards_rejected: mean(&rejected),
            rewards_accuracies: mean(&wins),
            rewards_margins: mean(&margins),
            logps_chosen: mean_of(&self.chosen_logps)?,
            logps_rejected: mean_of(&self.rejected_logps)?,
            logits_chosen: ratio_of_sums(&self.chosen_logits)?,
            logits_rejected: ratio_of_sums(&self.rejected_logits)?,
            nll_loss: self.nll.as_ref().map(mean_of).transpose()?,
            log_odds_ratio,
            log_odds_chosen,
        })
    }
}
