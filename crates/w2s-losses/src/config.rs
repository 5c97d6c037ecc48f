//! The loss-selection type: one serde enum that a TOML or JSON file can name.
//!
//! ```toml
//! [loss]
//! type = "dpo"            # dpo | robust | hinge | ipo_mean | ipo_sum | simpo_gamma
//! beta = 0.1              #   | simpo_gamma_beta_ratio | orpo
//! label_smoothing = 0.0   # cDPO ε (TRL <= 0.28 `sigmoid`); 0 is plain DPO
//! nll_alpha = 0.0         # RPO: adds alpha * chosen NLL (TRL <= 0.28 `rpo_alpha`)
//! ```
//!
//! Every ambiguity the Python libraries hide is a separate name: IPO on per-token means (TRL) vs
//! sums (paper); SimPO's margin as absolute γ (TRL/Liger) vs γ/β (official code). Unknown keys are
//! rejected, so a misspelt parameter fails at load time instead of silently taking a default.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::simpo::SimpoMargin;

/// Which tokens ORPO's NLL term averages over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NllScope {
    /// Prompt and completion tokens of the chosen rows (TRL `ORPOTrainer`, original ORPO code);
    /// needs [`crate::PreferenceInputs::nll_chosen`].
    #[default]
    PromptAndCompletion,
    /// Only the chosen completion (as CPO and RPO do).
    Completion,
}

/// A preference loss and its parameters.
///
/// `beta` is the temperature β (ORPO: the weight λ of the odds-ratio term). `nll_alpha` adds
/// `alpha · NLL(chosen completion)` (RPO; TRL ≤ 0.28 `rpo_alpha`, CPO `cpo_alpha`).
/// `reference_free` sets the reference log-probs to 0 (TRL ≤ 0.28 `reference_free`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PreferenceLossConfig {
    /// DPO `−logσ(βh)`; with `label_smoothing = ε > 0`, cDPO `−(1−ε)logσ(βh) − ε·logσ(−βh)`.
    Dpo {
        /// Temperature β > 0 (TRL default 0.1).
        beta: f64,
        /// cDPO ε in [0, 0.5).
        #[serde(default)]
        label_smoothing: f64,
        /// RPO weight of the chosen NLL, ≥ 0.
        #[serde(default)]
        nll_alpha: f64,
        /// Use a uniform reference (ρ = 0).
        #[serde(default)]
        reference_free: bool,
    },
    /// Robust DPO `[−(1−ε)logσ(βh) + ε·logσ(−βh)]/(1−2ε)`.
    Robust {
        /// Temperature β > 0.
        beta: f64,
        /// Assumed label-noise rate ε in [0, 0.5).
        label_smoothing: f64,
        /// RPO weight of the chosen NLL, ≥ 0.
        #[serde(default)]
        nll_alpha: f64,
        /// Use a uniform reference (ρ = 0).
        #[serde(default)]
        reference_free: bool,
    },
    /// Hinge (SLiC/RSO) `max(0, 1 − βh)`.
    Hinge {
        /// Inverse margin β > 0.
        beta: f64,
        /// RPO weight of the chosen NLL, ≥ 0.
        #[serde(default)]
        nll_alpha: f64,
        /// Use a uniform reference (ρ = 0).
        #[serde(default)]
        reference_free: bool,
    },
    /// IPO on per-token mean log-ratios, `(u/Lc − v/Lr − 1/(2β))²`: TRL's `loss_type="ipo"`.
    IpoMean {
        /// Regularisation β (the paper's τ) > 0.
        beta: f64,
        /// RPO weight of the chosen NLL, ≥ 0.
        #[serde(default)]
        nll_alpha: f64,
        /// Use a uniform reference (ρ = 0).
        #[serde(default)]
        reference_free: bool,
    },
    /// IPO on summed log-ratios, `(u − v − 1/(2β))²`: the paper's eq. 17.
    IpoSum {
        /// Regularisation β (the paper's τ) > 0.
        beta: f64,
        /// RPO weight of the chosen NLL, ≥ 0.
        #[serde(default)]
        nll_alpha: f64,
        /// Use a uniform reference (ρ = 0).
        #[serde(default)]
        reference_free: bool,
    },
    /// SimPO with an absolute margin: `−logσ(β(c̄ − r̄) − γ)` (TRL `simpo_gamma`, Liger `gamma`).
    SimpoGamma {
        /// Temperature β > 0 (SimPO uses 2–10, not DPO's 0.1).
        beta: f64,
        /// Absolute target margin γ ≥ 0.
        gamma: f64,
        /// ε in [0, 0.5), as in CPO's smoothed sigmoid.
        #[serde(default)]
        label_smoothing: f64,
        /// Weight of the chosen NLL (TRL CPO `cpo_alpha`, default 1 there; 0 is pure SimPO).
        #[serde(default)]
        nll_alpha: f64,
    },
    /// SimPO with the margin as γ/β: `−logσ(β(c̄ − r̄ − γ/β))` (official `gamma_beta_ratio`).
    SimpoGammaBetaRatio {
        /// Temperature β > 0.
        beta: f64,
        /// γ/β ≥ 0 (official default 0.25; recipes 0.1–0.8).
        gamma_beta_ratio: f64,
        /// ε in [0, 0.5).
        #[serde(default)]
        label_smoothing: f64,
        /// Weight of the chosen NLL (official `sft_weight`, default 0).
        #[serde(default)]
        nll_alpha: f64,
    },
    /// ORPO `NLL − β·mean(logσ(log_odds))`.
    Orpo {
        /// Weight λ > 0 of the odds-ratio term (TRL `beta`, default 0.1).
        beta: f64,
        /// Which chosen tokens the NLL averages over.
        #[serde(default)]
        nll_scope: NllScope,
    },
}

impl PreferenceLossConfig {
    /// TRL's `loss_type`-style name of the loss, as in the serde tag.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dpo { .. } => "dpo",
            Self::Robust { .. } => "robust",
            Self::Hinge { .. } => "hinge",
            Self::IpoMean { .. } => "ipo_mean",
            Self::IpoSum { .. } => "ipo_sum",
            Self::SimpoGamma { .. } => "simpo_gamma",
            Self::SimpoGammaBetaRatio { .. } => "simpo_gamma_beta_ratio",
            Self::Orpo { .. } => "orpo",
        }
    }

    /// β of every variant.
    pub fn beta(&self) -> f64 {
        match *self {
            Self::Dpo { beta, .. }
            | Self::Robust { beta, .. }
            | Self::Hinge { beta, .. }
            | Self::IpoMean { beta, .. }
            | Self::IpoSum { beta, .. }
            | Self::SimpoGamma { beta, .. }
            | Self::SimpoGammaBetaRatio { beta, .. }
            | Self::Orpo { beta, .. } => beta,
        }
    }

    /// Weight of the chosen-NLL term (1 for ORPO, where it is part of the loss).
    pub fn nll_alpha(&self) -> f64 {
        match *self {
            Self::Dpo { nll_alpha, .. }
            | Self::Robust { nll_alpha, .. }
            | Self::Hinge { nll_alpha, .. }
            | Self::IpoMean { nll_alpha, .. }
            | Self::IpoSum { nll_alpha, .. }
            | Self::SimpoGamma { nll_alpha, .. }
            | Self::SimpoGammaBetaRatio { nll_alpha, .. } => nll_alpha,
            Self::Orpo { .. } => 1.0,
        }
    }

    /// Whether the loss compares against a reference model (`None` reference is then an error).
    pub fn needs_reference(&self) -> bool {
        match *self {
            Self::Dpo { reference_free, .. }
            | Self::Robust { reference_free, .. }
            | Self::Hinge { reference_free, .. }
            | Self::IpoMean { reference_free, .. }
            | Self::IpoSum { reference_free, .. } => !reference_free,
            Self::SimpoGamma { .. } | Self::SimpoGammaBetaRatio { .. } | Self::Orpo { .. } => false,
        }
    }

    /// SimPO's margin, for the two SimPO variants.
    pub fn simpo_margin(&self) -> Option<SimpoMargin> {
        match *self {
            Self::SimpoGamma { gamma, .. } => Some(SimpoMargin::Gamma(gamma)),
            Self::SimpoGammaBetaRatio {
                gamma_beta_ratio, ..
            } => Some(SimpoMargin::GammaBetaRatio(gamma_beta_ratio)),
            Self::Dpo { .. }
            | Self::Robust { .. }
            | Self::Hinge { .. }
            | Self::IpoMean { .. }
            | Self::IpoSum { .. }
            | Self::Orpo { .. } => None,
        }
    }

    /// Whether the NLL term averages over the chosen rows' prompt and completion tokens (ORPO's
    /// TRL scope), so the loss needs [`crate::PreferenceInputs::nll_chosen`]; every other loss's
    /// NLL covers the chosen completion.
    pub fn nll_covers_prompt(&self) -> bool {
        match *self {
            Self::Orpo { nll_scope, .. } => nll_scope == NllScope::PromptAndCompletion,
            Self::Dpo { .. }
            | Self::Robust { .. }
            | Self::Hinge { .. }
            | Self::IpoMean { .. }
            | Self::IpoSum { .. }
            | Self::SimpoGamma { .. }
            | Self::SimpoGammaBetaRatio { .. } => false,
        }
    }

    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for β ≤ 0 or non-finite, ε outside [0, 0.5), a negative or
    /// non-finite NLL weight or margin.
    pub fn validate(&self) -> Result<()> {
        let beta = self.beta();
        check(
            beta.is_finite() && beta > 0.0,
            "beta",
            beta,
            "must be finite and > 0",
        )?;
        let alpha = self.nll_alpha();
        check(
            alpha.is_finite() && alpha >= 0.0,
            "nll_alpha",
            alpha,
            "must be finite and >= 0",
        )?;
        match *self {
            Self::Dpo {
                label_smoothing, ..
            }
            | Self::Robust {
                label_smoothing, ..
            } => check_label_smoothing(label_smoothing),
            Self::SimpoGamma {
                gamma,
                label_smoothing,
                ..
            } => {
                check_label_smoothing(label_smoothing)?;
                check(
                    gamma.is_finite() && gamma >= 0.0,
                    "gamma",
                    gamma,
                    "must be finite and >= 0",
                )
            }
            Self::SimpoGammaBetaRatio {
                gamma_beta_ratio: r,
                label_smoothing,
                ..
            } => {
                check_label_smoothing(label_smoothing)?;
                check(
                    r.is_finite() && r >= 0.0,
                    "gamma_beta_ratio",
                    r,
                    "must be finite and >= 0",
                )
            }
            Self::Hinge { .. } | Self::IpoMean { .. } | Self::IpoSum { .. } | Self::Orpo { .. } => {
                Ok(())
            }
        }
    }
}

fn check_label_smoothing(label_smoothing: f64) -> Result<()> {
    check(
        (0.0..0.5).contains(&label_smoothing),
        "label_smoothing",
        label_smoothing,
        "must lie in [0, 0.5)",
    )
}

fn check(ok: bool, name: &'static str, value: f64, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_names_the_loss_and_defaults_fill_in() -> anyhow::Result<()> {
        let dpo: PreferenceLossConfig = toml::from_str("type = \"dpo\"\nbeta = 0.1")?;
        let want = PreferenceLossConfig::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            nll_alpha: 0.0,
            reference_free: false,
        };
        assert_eq!(dpo, want);
        let simpo: PreferenceLossConfig = toml::from_str(
            "type = \"simpo_gamma_beta_ratio\"\nbeta = 2.0\ngamma_beta_ratio = 0.5",
        )?;
        assert_eq!(simpo.simpo_margin(), Some(SimpoMargin::GammaBetaRatio(0.5)));
        let orpo: PreferenceLossConfig = toml::from_str("type = \"orpo\"\nbeta = 0.1")?;
        assert_eq!(
            orpo,
            PreferenceLossConfig::Orpo {
                beta: 0.1,
                nll_scope: NllScope::PromptAndCompletion
            }
        );
        let back: PreferenceLossConfig = toml::from_str(&toml::to_string(&simpo)?)?;
        assert_eq!(back, simpo);
        Ok(())
    }

    #[test]
    fn only_orpo_in_trl_scope_takes_its_nll_over_the_prompt() {
        let orpo = |nll_scope| PreferenceLossConfig::Orpo {
            beta: 0.1,
            nll_scope,
        };
        assert!(orpo(NllScope::PromptAndCompletion).nll_covers_prompt());
        assert!(!orpo(NllScope::Completion).nll_covers_prompt());
        let dpo = PreferenceLossConfig::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            nll_alpha: 1.0,
            reference_free: false,
        };
        assert!(!dpo.nll_covers_prompt());
    }

    #[test]
    fn unknown_keys_and_ambiguous_simpo_are_rejected() {
        assert!(toml::from_str::<PreferenceLossConfig>("type = \"dpo\"\nbetta = 0.1").is_err());
        // `simpo_gamma` takes an absolute `gamma`, never a ratio.
        let bad = "type = \"simpo_gamma\"\nbeta = 2.0\ngamma_beta_ratio = 0.5";
        assert!(toml::from_str::<PreferenceLossConfig>(bad).is_err());
        assert!(toml::from_str::<PreferenceLossConfig>("type = \"simpo\"\nbeta = 2.0").is_err());
    }

    #[test]
    fn validate_rejects_out_of_range_parameters() {
        let dpo = |beta, label_smoothing| PreferenceLossConfig::Dpo {
            beta,
            label_smoothing,
            nll_alpha: 0.0,
            reference_free: false,
        };
        assert!(dpo(0.1, 0.0).validate().is_ok());
        assert!(dpo(0.1, 0.49).validate().is_ok());
        for bad in [
            dpo(0.0, 0.0),
            dpo(-1.0, 0.0),
            dpo(f64::NAN, 0.0),
            dpo(0.1, 0.5),
            dpo(0.1, -0.1),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidParameter { .. })),
                "{bad:?}"
            );
        }
        let simpo = PreferenceLossConfig::SimpoGamma {
            beta: 2.0,
            gamma: -0.5,
            label_smoothing: 0.0,
            nll_alpha: 0.0,
        };
        assert!(simpo.validate().is_err());
    }
}
