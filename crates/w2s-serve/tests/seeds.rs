//! Why the server seeds each prompt on its own: with `generate`, a prompt's samples depend on its
//! position in the batch; with `generate_seeded` they do not, whatever else is batched with it.

mod common;

use burn::backend::Flex;
use common::{arithmetic_model, question};
use w2s_llama::{generate, generate_seeded, GenerationConfig, ModelDir, Sampling};

fn texts(generations: &[w2s_llama::Generation], prompt: usize) -> Vec<Vec<u32>> {
    generations
        .iter()
        .filter(|g| g.prompt_index == prompt)
        .map(|g| g.token_ids.clone())
        .collect()
}

#[test]
fn a_prompts_samples_do_not_depend_on_its_batch_with_its_own_seed() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let device = Default::default();
    let dir = ModelDir::<Flex>::load(arithmetic_model(tmp.path()), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = dir.tokenizer().unwrap_or_else(|e| panic!("{e}"));
    let encode = |text: &str| {
        tokenizer
            .encode_with_special_tokens(text)
            .unwrap_or_default()
    };
    // Prompts of different lengths, so that the batch pads the one under test.
    let a = encode(&question(3));
    let b = encode(&format!("{} And then?", question(11)));
    let c = encode("Question: 4 + 5 =");
    let config = GenerationConfig {
        max_new_tokens: 24,
        sampling: Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        },
        num_samples: 4,
        eos_token_ids: dir.config.eos_token_ids(),
        ..GenerationConfig::default()
    };
    let run = |prompts: &[Vec<u32>], seeds: &[u64]| {
        generate_seeded(
            &dir.model,
            prompts,
            seeds,
            &config,
            Some(tokenizer),
            &device,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let alone = texts(&run(std::slice::from_ref(&a), &[42]), 0);
    let batched = texts(&run(&[b.clone(), a.clone(), c.clone()], &[7, 42, 9]), 1);
    assert_eq!(batched, alone);
    let reordered = texts(&run(&[c.clone(), b.clone(), a.clone()], &[1, 2, 42]), 2);
    assert_eq!(reordered, alone);
    assert_ne!(
        texts(&run(std::slice::from_ref(&a), &[43]), 0),
        alone,
        "another seed, other samples"
    );

    // Plain `generate` seeds rows by their position: the same prompt moved in the batch changes.
    let seeded = |prompts: &[Vec<u32>]| {
        generate(
            &dir.model,
            prompts,
            &GenerationConfig {
                seed: 42,
                ..config.clone()
            },
            Some(tokenizer),
            &device,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_ne!(texts(&seeded(&[b, a.clone()]), 1), texts(&seeded(&[a]), 0));

    let mismatch = generate_seeded(&dir.model, &[c], &[], &config, Some(tokenizer), &device);
    assert!(mismatch.is_err());
}
