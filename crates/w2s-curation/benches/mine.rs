//! Stage II mining speed: 7,000 questions x 10 samples, the paper's GSM8K D_gold,2 size.
//!
//! `mine_pairs` includes answer extraction of all 77,000 responses; `mine_question` is the
//! decision alone on already-normalized answers.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use w2s_curation::record::Sample;
use w2s_curation::stage2::{mine_pairs, mine_question, question_rng, MiningConfig};
use w2s_eval::TaskKind;

const QUESTIONS: usize = 7_000;
const SAMPLES: usize = 10;

/// Deterministic synthetic data covering every branch: the answer of sample j of question q is
/// drawn from a small alphabet so that confidence varies from 0.1 to 1.0.
fn dataset() -> (Vec<Sample>, Vec<Sample>) {
    let sample = |id: usize, answer: usize| Sample {
        id: id.to_string(),
        prompt: format!("Question: question number {id}?\nAnswer:"),
        response: format!("Some reasoning with {id} and {answer}: 48/2 = 24.\n#### {answer}"),
        extra: Default::default(),
    };
    let mut samples = Vec::with_capacity(QUESTIONS * SAMPLES);
    let mut weak = Vec::with_capacity(QUESTIONS);
    for q in 0..QUESTIONS {
        let spread = q % 5 + 1;
        for j in 0..SAMPLES {
            samples.push(sample(q, (j * j + q) % spread));
        }
        weak.push(sample(q, q % 3));
    }
    (samples, weak)
}

fn bench(c: &mut Criterion) {
    let (samples, weak) = dataset();
    let config = MiningConfig::default();
    let mut group = c.benchmark_group("stage2");
    group.sample_size(10);
    group.throughput(Throughput::Elements(QUESTIONS as u64));
    group.bench_function("mine_pairs_7000x10_with_extraction", |b| {
        b.iter(|| mine_pairs(TaskKind::Gsm8k, &samples, &weak, &config).map(|m| m.pairs.len()))
    });
    let answers: Vec<Vec<String>> = (0..QUESTIONS)
        .map(|q| {
            (0..SAMPLES)
                .map(|j| ((j * j + q) % (q % 5 + 1)).to_string())
                .collect()
        })
        .collect();
    group.bench_function("mine_question_7000x10_normalized", |b| {
        b.iter(|| {
            let mut pairs = 0;
            for (q, answers) in answers.iter().enumerate() {
                let mut rng = question_rng(config.seed, &weak[q].id);
                let weak_answer = (q % 3).to_string();
                if let Ok(mined) = mine_question(&weak_answer, answers, answers, &config, &mut rng)
                {
                    pairs += mined.partners.len();
                }
            }
            pairs
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
