//! The k-shot demonstration picker for the ICL source of Stage I (docs/method.md "Stage I", step 2).
//!
//! Demonstrations are the weak model's own solutions on D_gold,2 questions, taken **verbatim**,
//! wrong ones included. The W2SR reference (`demonstrations.py:get_few_shot_prompts`) seeds,
//! shuffles the weak outputs once and takes the first k that qualify, so every question gets the
//! same k demonstrations. w2s does the same, with one fix: a question never gets its own solution
//! (or that of a question with the same prompt text; GSM8K holds duplicate questions) as a
//! demonstration; the next qualifying solution in shuffled order takes its place.
//!
//! Qualifying: with [`DemoFilter::AnyResponse`] every solution does; with
//! [`DemoFilter::NonEmptyAnswer`] only those whose final answer extracts (the reference's
//! `answer_key in output` test, done with the real extractor).
//! Prompt formatting of the picked demonstrations belongs to `w2s_eval`.

use rand::rngs::ChaCha12Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use w2s_eval::answer::extract;
use w2s_eval::TaskKind;

use crate::record::Sample;

/// Which weak solutions may serve as demonstrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoFilter {
    /// Every solution, verbatim (the reference's default "randomly selected" demonstrations).
    AnyResponse,
    /// Only solutions with an extractable final answer for this task.
    NonEmptyAnswer(TaskKind),
}

/// Picks k demonstrations for each question from a seeded shuffle of the weak solutions.
#[derive(Debug, Clone)]
pub struct DemoPicker<'a> {
    /// Qualifying solutions in shuffled order.
    order: Vec<&'a Sample>,
    k: usize,
}

impl<'a> DemoPicker<'a> {
    /// Shuffle `pool` with `seed` and keep the solutions that pass `filter`.
    pub fn new(pool: &'a [Sample], k: usize, seed: u64, filter: DemoFilter) -> Self {
        let mut order: Vec<&Sample> = pool.iter().collect();
        order.shuffle(&mut ChaCha12Rng::seed_from_u64(seed));
        order.retain(|sample| match filter {
            DemoFilter::AnyResponse => true,
            DemoFilter::NonEmptyAnswer(task) => extract(task, &sample.response).is_some(),
        });
        Self { order, k }
    }

    /// The demonstrations for `question`: the first k qualifying solutions of other questions.
    /// Fewer than k only when the pool holds fewer.
    pub fn pick(&self, question: &Sample) -> Vec<&'a Sample> {
        self.order
            .iter()
            .filter(|demo| demo.id != question.id && demo.prompt != question.prompt)
            .take(self.k)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: usize, response: &str) -> Sample {
        Sample {
            id: id.to_string(),
            prompt: format!("Question: q{id}\nAnswer:"),
            response: response.to_string(),
            extra: Default::default(),
        }
    }

    fn ids(demos: &[&Sample]) -> Vec<String> {
        demos.iter().map(|d| d.id.clone()).collect()
    }

    #[test]
    fn same_demos_for_all_but_never_the_question_itself() {
        let pool: Vec<Sample> = (0..10)
            .map(|i| sample(i, &format!("... #### {i}")))
            .collect();
        let picker = DemoPicker::new(&pool, 4, 42, DemoFilter::AnyResponse);
        let shared = ids(&picker.pick(&sample(99, "")));
        assert_eq!(shared.len(), 4);
        assert_eq!(
            ids(&picker.pick(&sample(98, ""))),
            shared,
            "one demo set for every question"
        );
        let first: usize = shared[0].parse().unwrap();
        let own = ids(&picker.pick(&pool[first]));
        assert_eq!(own.len(), 4);
        assert!(!own.contains(&shared[0]));
        assert_eq!(
            own[..3],
            shared[1..],
            "the next solution in shuffled order fills the gap"
        );
        let other_seed = ids(&DemoPicker::new(&pool, 4, 7, DemoFilter::AnyResponse).pick(&pool[0]));
        assert_ne!(other_seed, shared, "the seed decides the demonstrations");
    }

    #[test]
    fn duplicate_question_text_is_excluded_too() {
        let pool = vec![sample(1, "#### 1"), sample(2, "#### 2")];
        let mut twin = sample(3, "");
        twin.prompt = pool[0].prompt.clone();
        assert_eq!(
            ids(&DemoPicker::new(&pool, 4, 0, DemoFilter::AnyResponse).pick(&twin)),
            ["2"]
        );
    }

    #[test]
    fn filter_drops_answerless_solutions_but_keeps_wrong_ones_verbatim() {
        let pool = vec![
            sample(1, "I give up"),
            sample(2, "190/8 = 24 pounds #### 44"),
        ];
        let picker = DemoPicker::new(&pool, 4, 0, DemoFilter::NonEmptyAnswer(TaskKind::Gsm8k));
        let demos = picker.pick(&sample(3, ""));
        assert_eq!(ids(&demos), ["2"]);
        assert_eq!(demos[0].response, "190/8 = 24 pounds #### 44");
    }
}
