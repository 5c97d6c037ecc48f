//! Property tests: no input makes extraction, normalization or equivalence panic, and adversarial
//! inputs of 200 KB finish (every pass is a linear scan with bounded recursion).

use proptest::prelude::*;
use w2s_eval::answer::{
    equivalent, extract, extract_normalized, gold_answer, normalize, Equivalence,
};
use w2s_eval::TaskKind;

const TASKS: [TaskKind; 3] = [TaskKind::Gsm8k, TaskKind::Math, TaskKind::Arithmetic];

/// Strings built from the pieces answers are made of, so that the parsers are actually exercised.
fn answer_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\\frac".to_string()),
        Just("\\dfrac".to_string()),
        Just("\\sqrt".to_string()),
        Just("\\boxed{".to_string()),
        Just("\\text{".to_string()),
        Just("\\left(".to_string()),
        Just("\\right)".to_string()),
        Just("\\pi".to_string()),
        Just("\\infty".to_string()),
        Just("\\cup".to_string()),
        Just("\\{".to_string()),
        Just("####".to_string()),
        Just("The answer is:".to_string()),
        Just("\nQuestion:".to_string()),
        Just(" cm".to_string()),
        Just("^".to_string()),
        "[0-9]{1,40}",
        "[-+*/.,=%${}()\\[\\]\\\\ ]",
        "[a-zA-Z]{1,3}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(a in answer_like(), b in answer_like()) {
        for task in TASKS {
            let _ = extract(task, &a);
            let na = extract_normalized(task, &a);
            let nb = normalize(task, &b);
            let _ = gold_answer(task, &b);
            let _ = equivalent(task, &na, &nb);
            let _ = equivalent(task, &normalize(task, &a), &nb);
        }
    }

    #[test]
    fn arbitrary_unicode_does_not_panic(a in any::<String>(), b in any::<String>()) {
        for task in TASKS {
            let _ = equivalent(task, &extract_normalized(task, &a), &normalize(task, &b));
        }
    }

    #[test]
    fn a_nonempty_answer_equals_itself(a in answer_like()) {
        for task in TASKS {
            let n = normalize(task, &a);
            prop_assert_eq!(equivalent(task, &n, &n), if n.is_empty() { Equivalence::NotEqual } else { Equivalence::Equal });
        }
    }
}

#[test]
fn adversarial_inputs_finish() {
    let inputs = [
        "{".repeat(200_000),
        "\\frac{".repeat(30_000),
        "\\text{".repeat(30_000) + &"}".repeat(30_000),
        "(".repeat(100_000) + "1" + &")".repeat(100_000),
        "1,".repeat(100_000),
        "####".repeat(50_000),
        "\\boxed{".repeat(30_000),
        "\\sqrt".repeat(40_000),
        "2^".repeat(100_000),
        "-".repeat(200_000) + "1",
        "(1,".repeat(50_000),
        "the answer is ".repeat(15_000),
    ];
    for s in &inputs {
        for task in TASKS {
            let n = extract_normalized(task, s);
            let m = normalize(task, s);
            // Undecided or not, the call returns; the result itself is not the point here.
            let _ = equivalent(task, &n, &m);
            let _ = equivalent(task, &m, &m);
        }
    }
}
