//! Grading throughput: 10,000 real responses (7,473 GSM8K gold solutions and 2,527 MATH
//! solutions from data/), each extracted, normalized and compared with its gold answer.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use w2s_eval::answer::{equivalent, extract_normalized, gold_answer};
use w2s_eval::{load_gsm8k, load_math, TaskKind};

fn workload() -> Vec<(TaskKind, String, String)> {
    let data = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data"));
    let gsm8k = load_gsm8k(&data.join("gsm8k/train.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let math = load_math(&data.join("math/train.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let gsm8k = gsm8k.into_iter().map(|p| (TaskKind::Gsm8k, p));
    let math = math.into_iter().map(|p| (TaskKind::Math, p));
    gsm8k
        .chain(math)
        .take(10_000)
        .map(|(task, p)| (task, p.solution.unwrap_or_default(), p.answer))
        .collect()
}

fn grade(c: &mut Criterion) {
    let items = workload();
    let mut group = c.benchmark_group("grade");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("10k_responses", |b| {
        b.iter(|| {
            items
                .iter()
                .filter(|(task, response, gold)| {
                    let pred = extract_normalized(*task, response);
                    equivalent(*task, &pred, &gold_answer(*task, gold)).is_equal()
                })
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, grade);
criterion_main!(benches);
