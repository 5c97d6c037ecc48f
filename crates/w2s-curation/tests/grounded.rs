//! The grounded step check measures back what the arithmetic corrupter planted: on any generated
//! problem (gold solutions and subtasks included), the gold solution has no wrong or missing
//! step, and a solution with `k` slips has exactly `k`, out of the gold solution's equation
//! count. This is what lets a controlled set's requested step-wise error rate be measured, not
//! assumed.

use proptest::prelude::*;
use rand::rngs::ChaCha12Rng;
use rand::SeedableRng;
use w2s_arith::{generate, DivisionRule, Family, Op, Surface};
use w2s_curation::grounded::grounded_stats;
use w2s_eval::prompt::{strip_calculator_annotations, zero_shot};

fn family(surface: Surface, steps: usize, division: DivisionRule) -> Family {
    Family {
        surface,
        min_steps: 1,
        max_steps: steps,
        ops: Op::ALL.to_vec(),
        division,
        max_value: 99,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn slips_are_measured_back_exactly(
        seed in any::<u64>(),
        steps in 1usize..=5,
        story in any::<bool>(),
        any_division in any::<bool>(),
    ) {
        let surface = if story { Surface::Story } else { Surface::Instructions };
        let division = if any_division { DivisionRule::Any } else { DivisionRule::ExactlyOnce };
        let problems = generate(&family(surface, steps, division), 20, seed).unwrap();
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        for p in problems.iter().flat_map(|p| p.subtasks().into_iter().chain([p.clone()])) {
            let prompt = zero_shot(&p.question());
            let gold = grounded_stats(&prompt, &strip_calculator_annotations(&p.solution()));
            prop_assert_eq!((gold.wrong, gold.missing, gold.undecidable), (0, 0, 0), "{}", p.solution());
            let equations = gold.correct;
            for k in 1..=p.steps.len() {
                let Some(bad) = p.corrupt(k, &mut rng) else { continue };
                let text = strip_calculator_annotations(&bad.solution);
                let s = grounded_stats(&prompt, &text);
                prop_assert_eq!(s.wrong + s.missing, k, "{}\n{:?}\n{}", p.question(), bad.slips, text);
                prop_assert_eq!(s.correct + s.wrong + s.missing, equations, "{}", text);
            }
        }
    }
}
