//! Learning-rate schedules: linear warmup, then constant, linear or cosine decay.
//!
//! The same curves as transformers' `get_constant_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup`
//! (`transformers/optimization.py`), as a pure function of the step, with a floor:
//!
//! ```text
//! warmup  (t < w):  f = t / w
//! after   (t >= w): p = (t - w) / max(1, T - w)
//!                   linear: f = m + (1 - m)(1 - p)      cosine: f = m + (1 - m)(1 + cos πp)/2
//! lr(t) = peak · f,   t = 0-based optimizer step, T = total steps, m = min_lr_ratio
//! ```
//!
//! As in transformers, the floor is reached at step `T`, one past the last step taken.
//!
//! Being a function of the step alone, the schedule needs no state in a checkpoint: a resumed run
//! recomputes the same rate.

use crate::config::{LrSchedule, TrainConfig};

/// The learning rate of 0-based optimizer step `step` of `total` steps.
pub fn learning_rate(config: &TrainConfig, step: usize, total: usize) -> f64 {
    let warmup = config.warmup_steps;
    if step < warmup {
        return config.learning_rate * step as f64 / warmup as f64;
    }
    let progress = ((step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64).min(1.0);
    let floor = config.min_lr_ratio;
    let factor = match config.schedule {
        LrSchedule::Constant => 1.0,
        LrSchedule::Linear => floor + (1.0 - floor) * (1.0 - progress),
        LrSchedule::Cosine => {
            floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    };
    config.learning_rate * factor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(schedule: LrSchedule, warmup: usize, floor: f64) -> TrainConfig {
        TrainConfig {
            learning_rate: 1.0,
            schedule,
            warmup_steps: warmup,
            min_lr_ratio: floor,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn warmup_then_decay_matches_transformers() {
        // transformers: get_cosine_schedule_with_warmup(opt, 2, 10) gives the factors
        // [0, 0.5, 1, 0.9619, 0.8536, 0.6913, 0.5, 0.3087, 0.1464, 0.0381] for steps 0..10
        // (0.5 (1 + cos(pi (t - 2) / 8)) after warmup).
        let c = config(LrSchedule::Cosine, 2, 0.0);
        let want = [
            0.0, 0.5, 1.0, 0.9619, 0.8536, 0.6913, 0.5, 0.3087, 0.1464, 0.0381,
        ];
        for (t, w) in want.iter().enumerate() {
            assert!((learning_rate(&c, t, 10) - w).abs() < 1e-4, "step {t}");
        }
        // Linear with warmup 2 of 10: step 6 is halfway through the decay.
        let l = config(LrSchedule::Linear, 2, 0.0);
        assert!((learning_rate(&l, 6, 10) - 0.5).abs() < 1e-12);
        assert_eq!(
            learning_rate(&config(LrSchedule::Constant, 0, 0.0), 9, 10),
            1.0
        );
    }

    #[test]
    fn the_floor_holds_at_the_end() {
        let c = config(LrSchedule::Cosine, 0, 0.1);
        assert!((learning_rate(&c, 10, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&c, 0, 10) - 1.0).abs() < 1e-12);
    }
}
