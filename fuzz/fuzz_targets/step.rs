//! Fuzz the arithmetic step finder, the verifier and the grounded check of w2s-curation: no
//! input may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use w2s_curation::expr::evaluate;
use w2s_curation::grounded::grounded_stats;
use w2s_curation::steps::{find_steps, StepStats};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let steps = find_steps(text);
        let stats = StepStats::of_solution(text);
        assert_eq!(stats.steps, steps.len());
        let _ = evaluate(text);
        // The first line as the question, the rest as its solution.
        let (question, solution) = text.split_once('\n').unwrap_or((text, ""));
        let grounded = grounded_stats(question, solution);
        assert_eq!(grounded.steps, find_steps(solution).len());
    }
});
