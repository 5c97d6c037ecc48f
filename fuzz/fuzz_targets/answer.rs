//! Fuzz answer extraction, normalization and equivalence: no input may panic or hang.
//! Run with `cargo fuzz run answer` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use w2s_eval::answer::{equivalent, extract, extract_normalized, gold_answer, normalize};
use w2s_eval::TaskKind;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first half is read as a response, the second as a gold answer.
    let mid = (0..=text.len() / 2)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (response, gold) = text.split_at(mid);
    for task in [TaskKind::Gsm8k, TaskKind::Math, TaskKind::Arithmetic] {
        let _ = extract(task, response);
        let pred = extract_normalized(task, response);
        let gold = gold_answer(task, gold);
        let _ = equivalent(task, &pred, &gold);
        let _ = equivalent(task, &normalize(task, response), &pred);
    }
});
