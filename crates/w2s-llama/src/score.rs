//! Per-token log-probabilities of a sequence under the model: the quantity `score` prints, and a
//! quick check of a checkpoint against another implementation.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::error::{LlamaError, Result};
use crate::model::Llama;

/// Scores of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenScores {
    /// `log p(token_t | tokens_<t)` for `t = 1..s` (`s - 1` values), computed in f32.
    pub logprobs: Vec<f32>,
    /// Raw logits `[s][v]`, when asked for.
    pub logits: Option<Vec<Vec<f32>>>,
}

/// Scores `ids` (one sequence of at least one token).
pub fn score_tokens<B: Backend>(
    model: &Llama<B>,
    ids: &[u32],
    with_logits: bool,
    device: &B::Device,
) -> Result<TokenScores> {
    if ids.is_empty() {
        return Err(LlamaError::Input("cannot score an empty sequence".into()));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= model.vocab_size()) {
        return Err(LlamaError::Input(format!(
            "token id {id} is outside the vocabulary of {} ids",
            model.vocab_size()
        )));
    }
    let s = ids.len();
    let tokens: Tensor<B, 2, Int> = Tensor::from_data(
        TensorData::new(ids.iter().map(|&t| i64::from(t)).collect(), [1, s]),
        device,
    );
    let logits = model.forward(tokens, None)?.cast(burn::tensor::DType::F32);
    let v = model.vocab_size();
    let read = |t: Tensor<B, 3>| {
        t.into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| LlamaError::Input(format!("reading scores: {e:?}")))
    };
    let logprobs = if s > 1 {
        let targets: Tensor<B, 3, Int> = Tensor::from_data(
            TensorData::new(
                ids[1..].iter().map(|&t| i64::from(t)).collect(),
                [1, s - 1, 1],
            ),
            device,
        );
        let all = log_softmax(logits.clone().slice([0..1, 0..s - 1, 0..v]), 2);
        read(all.gather(2, targets))?
    } else {
        Vec::new()
    };
    let logits = if with_logits {
        Some(read(logits)?.chunks(v).map(<[f32]>::to_vec).collect())
    } else {
        None
    };
    Ok(TokenScores { logprobs, logits })
}
