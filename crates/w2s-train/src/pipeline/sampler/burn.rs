//! The built-in sampler: w2s's Llama in this process ([`sample_dataset`]).

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use w2s_curation::record::Sample;

use super::{read_lines, SampleRequest, Sampler};
use crate::error::Result;
use crate::pipeline::models::load_inference;
use crate::prompt_format::PromptFormat;
use crate::sampling::{sample_dataset, PromptRecord};

/// Samples on `device`, the model reading prompts in `format`, `prompts_per_batch` rows of
/// prompts times samples at a time.
#[derive(Debug)]
pub(crate) struct BurnSampler<'a, B: AutodiffBackend> {
    pub format: PromptFormat,
    pub prompts_per_batch: usize,
    pub quiet: bool,
    pub device: &'a B::Device,
}

impl<B: AutodiffBackend> Sampler for BurnSampler<'_, B> {
    fn sample(
        &self,
        model: &Path,
        prompts: &[PromptRecord],
        request: &SampleRequest,
        out: &Path,
    ) -> Result<Vec<Sample>> {
        let (llama, config, tokenizer) = load_inference::<B>(model, self.device)?;
        let per_batch = (self.prompts_per_batch / request.n.max(1)).max(1);
        sample_dataset(
            &llama,
            &config,
            &tokenizer,
            self.format,
            prompts,
            &request.generation(&config),
            per_batch,
            out,
            self.quiet,
        )?;
        read_lines(out)
    }
}
