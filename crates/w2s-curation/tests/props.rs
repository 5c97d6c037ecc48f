//! Property tests: no input makes the step finder, the expression evaluator or the JSONL reader
//! panic or hang, and the evaluator agrees with a brute-force evaluation of random expression
//! trees rendered with as few parentheses as precedence allows.

use proptest::prelude::*;
use w2s_curation::expr::evaluate;
use w2s_curation::grounded::grounded_stats;
use w2s_curation::jsonl::{BadLines, JsonlReader};
use w2s_curation::record::{Sample, SftExample};
use w2s_curation::steps::{find_steps, verify, StepStats, Verdict};

/// A random arithmetic tree over small integers.
#[derive(Debug, Clone)]
enum Tree {
    Leaf(i64),
    Neg(Box<Tree>),
    Bin(char, Box<Tree>, Box<Tree>),
}

fn tree() -> impl Strategy<Value = Tree> {
    (0i64..1000)
        .prop_map(Tree::Leaf)
        .prop_recursive(5, 40, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|t| Tree::Neg(Box::new(t))),
                (
                    prop::sample::select(vec!['+', '-', '*', '/']),
                    inner.clone(),
                    inner
                )
                    .prop_map(|(op, a, b)| Tree::Bin(op, Box::new(a), Box::new(b))),
            ]
        })
}

fn precedence(op: char) -> u8 {
    if op == '+' || op == '-' {
        1
    } else {
        2
    }
}

/// Render with the minimal parentheses: a child needs them when it binds weaker than its parent,
/// or equally on the right of a left-associative operator.
fn render(tree: &Tree) -> String {
    match tree {
        Tree::Leaf(n) => n.to_string(),
        Tree::Neg(inner) => match **inner {
            Tree::Bin(..) => format!("-({})", render(inner)),
            _ => format!("-{}", render(inner)),
        },
        Tree::Bin(op, a, b) => {
            let side = |child: &Tree, right: bool| {
                let text = render(child);
                match child {
                    Tree::Bin(c, ..)
                        if precedence(*c) < precedence(*op)
                            || (right && precedence(*c) == precedence(*op)) =>
                    {
                        format!("({text})")
                    }
                    _ => text,
                }
            };
            format!("{} {op} {}", side(a, false), side(b, true))
        }
    }
}

/// Brute force in f64; `None` on division by zero.
fn brute(tree: &Tree) -> Option<f64> {
    Some(match tree {
        Tree::Leaf(n) => *n as f64,
        Tree::Neg(inner) => -brute(inner)?,
        Tree::Bin(op, a, b) => {
            let (a, b) = (brute(a)?, brute(b)?);
            match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                _ if b == 0.0 => return None,
                _ => a / b,
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluator_matches_brute_force(t in tree()) {
        let text = render(&t);
        match (evaluate(&text), brute(&t)) {
            (Ok(e), Some(expected)) => {
                let got = e.value.to_f64();
                prop_assert!((got - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{text}: {got} vs {expected}");
            }
            (Err(w2s_curation::expr::ExprError::DivisionByZero), None) => {}
            // Exact arithmetic may overflow where f64 only loses precision.
            (Err(w2s_curation::expr::ExprError::Overflow), _) => {}
            (got, expected) => prop_assert!(false, "{text}: {got:?} vs {expected:?}"),
        }
    }

    #[test]
    fn verifier_accepts_the_true_value_and_rejects_another(t in tree()) {
        let text = render(&t);
        if let Ok(e) = evaluate(&text) {
            if e.value.denom() == 1 {
                let n = e.value.numer();
                prop_assert_eq!(verify(&text, &n.to_string()), Verdict::Correct);
                prop_assert_eq!(verify(&text, &(n + 1).to_string()), Verdict::Wrong);
                let steps = find_steps(&format!("So <<{text}={n}>>{n} in all."));
                prop_assert_eq!(steps.len(), 1);
                prop_assert_eq!(steps[0].verdict, Verdict::Correct);
            }
        }
    }

    #[test]
    fn step_finder_never_panics(text in "[0-9 +\\-*/x×÷^().,$%=<>a-z\n]{0,200}") {
        let stats = StepStats::of_solution(&text);
        prop_assert_eq!(stats.steps, stats.correct + stats.wrong + stats.undecidable);
        for step in find_steps(&text) {
            prop_assert!(step.span.start <= step.span.end && step.span.end <= text.len());
        }
    }

    #[test]
    fn grounded_check_never_panics_and_counts_every_step(
        question in "[0-9 a-z.?]{0,80}",
        text in "[0-9 +\\-*/=<>a-z\n#]{0,200}",
    ) {
        let stats = grounded_stats(&question, &text);
        prop_assert_eq!(stats.steps, stats.correct + stats.wrong + stats.undecidable);
        prop_assert_eq!(stats.solutions_with_wrong_step, usize::from(stats.wrong + stats.missing > 0));
    }

    #[test]
    fn step_finder_never_panics_on_any_unicode(text in any::<String>()) {
        let _ = find_steps(&text);
        let _ = evaluate(&text);
    }

    #[test]
    fn jsonl_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for bad_lines in [BadLines::Fail, BadLines::Skip] {
            let reader = JsonlReader::<Sample, _>::from_reader(&bytes[..], "p.jsonl", bad_lines);
            let _ = reader.read_all();
        }
    }

    #[test]
    fn jsonl_reader_round_trips(prompts in proptest::collection::vec(".*", 0..8)) {
        let records: Vec<SftExample> = prompts
            .iter()
            .map(|p| SftExample { prompt: p.clone(), completion: format!("{p}\n"), extra: Default::default() })
            .collect();
        let mut text = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut text, r).unwrap();
            text.push(b'\n');
        }
        let back = JsonlReader::<SftExample, _>::from_reader(&text[..], "p.jsonl", BadLines::Fail)
            .read_all()
            .unwrap();
        prop_assert_eq!(back.records, records);
    }
}

#[test]
fn pathological_inputs_finish_quickly() {
    let long = "1+".repeat(50_000) + "1 = 50001";
    let start = std::time::Instant::now();
    let _ = find_steps(&long);
    let _ = find_steps(&"=".repeat(100_000));
    let _ = find_steps(&"9 * 9 = 81 ".repeat(20_000));
    let _ = find_steps(&"<<".repeat(50_000));
    let _ = evaluate(&"(".repeat(100_000));
    // Generous bound: this guards against quadratic blow-ups, not against a slow machine.
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
