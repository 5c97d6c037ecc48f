//! A model role of the pipeline, `[weak]` or `[strong]`: the model, the engine that samples it
//! and the engine that fine-tunes it.
//!
//! ```toml
//! [strong]
//! kind = "dir"
//! path = "models/Llama-2-70b-hf"
//!
//! [strong.sampler]                 # default: kind = "burn", w2s's own engine in this process
//! kind = "openai"
//! endpoint = "http://gpu-node:8000/v1"
//! model = "{model}"                # the name the server serves the stage's model under
//! api_key_env = "OPENAI_API_KEY"
//! concurrency = 8
//!
//! [strong.trainer]                 # default: kind = "burn"
//! kind = "command"
//! sft = "trl sft --model_name_or_path {model} --dataset_name {data_dir} --output_dir {output} ..."
//! preference = "trl dpo --model_name_or_path {model} ... --beta {beta}"
//! ```
//!
//! The built-in engine adds nothing to a stage's fingerprint, so configs without these tables
//! (all of `configs/` but the TRL recipe) keep their fingerprints and cached stages. Another
//! engine enters the fingerprint of every stage it runs ([`SamplerSpec::fingerprint`],
//! [`TrainerSpec::fingerprint`]): switching engines reruns those stages and what follows.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::ModelSpec;
use super::trainer::TrainKind;
use crate::error::{Result, TrainError};

/// A model and its engines; the model's keys sit in the role's table itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// The model.
    #[serde(flatten)]
    pub model: ModelSpec,
    /// What samples the role's models (greedy labels, ICL answers, Stage II samples, test
    /// answers).
    #[serde(default, skip_serializing_if = "SamplerSpec::is_burn")]
    pub sampler: SamplerSpec,
    /// What fine-tunes the role's models (SFT, preference optimization, pretraining).
    #[serde(default, skip_serializing_if = "TrainerSpec::is_burn")]
    pub trainer: TrainerSpec,
}

impl From<ModelSpec> for Role {
    /// `model` sampled and trained by the built-in engine.
    fn from(model: ModelSpec) -> Self {
        Self {
            model,
            sampler: SamplerSpec::Burn,
            trainer: TrainerSpec::Burn,
        }
    }
}

/// Which engine samples a role's models.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerSpec {
    /// w2s's Llama in this process, on the backend the binary was built for.
    #[default]
    Burn,
    /// Any server of the OpenAI completions API: vLLM, SGLang, TGI, llama.cpp's server, w2s's
    /// `serve`. Prompts read as text go to `/v1/completions`; a `chat_template` model's go to
    /// `/v1/chat/completions` as one user message, rendered by the server.
    #[serde(rename = "openai")]
    OpenAi {
        /// The API's base URL up to `/v1` (`http://host:8000/v1`).
        endpoint: String,
        /// The model name each request carries; `{model}` is the absolute path of the directory
        /// the stage samples, the name vLLM and SGLang give a model served from its directory
        /// (`vllm serve /abs/run/naive/final`). Before sampling, the stage checks that the
        /// server lists this name. A name without `{model}` asks for the same model in every
        /// stage: only right when you serve each stage's model under it yourself.
        #[serde(default = "model_placeholder")]
        model: String,
        /// The environment variable with the API key (none is sent when it is unset).
        #[serde(default = "default_api_key_env")]
        api_key_env: String,
        /// Requests in flight at once; the server batches them.
        #[serde(default = "default_concurrency")]
        concurrency: usize,
        /// Longest one request may take, in seconds.
        #[serde(default = "default_timeout_s")]
        timeout_s: u64,
    },
}

fn model_placeholder() -> String {
    "{model}".into()
}

fn default_api_key_env() -> String {
    "OPENAI_API_KEY".into()
}

fn default_concurrency() -> usize {
    8
}

fn default_timeout_s() -> u64 {
    600
}

impl SamplerSpec {
    /// Whether this is the built-in engine.
    pub fn is_burn(&self) -> bool {
        matches!(self, Self::Burn)
    }

    /// Checks a server's address, concurrency and timeout; errors name `role.sampler.KEY`.
    ///
    /// # Errors
    /// [`TrainError::Engine`].
    pub fn validate(&self, role: &str) -> Result<()> {
        let Self::OpenAi {
            endpoint,
            concurrency,
            timeout_s,
            ..
        } = self
        else {
            return Ok(());
        };
        let error = |key: &str, reason: &str| TrainError::Engine {
            field: format!("{role}.sampler.{key}"),
            reason: reason.into(),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(error(
                "endpoint",
                "must be the API's URL up to /v1, e.g. http://127.0.0.1:8000/v1",
            ));
        }
        if *concurrency == 0 {
            return Err(error("concurrency", "must be at least 1"));
        }
        if *timeout_s == 0 {
            return Err(error("timeout_s", "must be at least 1"));
        }
        Ok(())
    }

    /// What a sampling stage adds to its fingerprint: nothing for the built-in engine, the kind
    /// and model name for a server (not its address, key or concurrency, which do not change
    /// the answers).
    pub fn fingerprint(&self) -> Option<Value> {
        match self {
            Self::Burn => None,
            Self::OpenAi { model, .. } => Some(json!({"kind": "openai", "model": model})),
        }
    }
}

/// Which engine fine-tunes a role's models.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrainerSpec {
    /// w2s's trainers in this process.
    #[default]
    Burn,
    /// An external command per fine-tune, from a template (docs/engines.md lists the
    /// placeholders): TRL, `accelerate launch ...`, LLaMA-Factory, or w2s's own `sft` and
    /// `preference` examples.
    Command {
        /// The SFT command.
        sft: String,
        /// The preference command (the strong role's Stage II losses); absent for the weak role.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preference: Option<String>,
        /// Where the command leaves the trained model (a model directory or a PEFT adapter), as
        /// a template over the same placeholders: `{output}` for TRL, `{output}/final` for
        /// w2s's examples.
        #[serde(default = "output_placeholder")]
        trained_model: String,
    },
}

fn output_placeholder() -> String {
    "{output}".into()
}

impl TrainerSpec {
    /// Whether this is the built-in engine.
    pub fn is_burn(&self) -> bool {
        matches!(self, Self::Burn)
    }

    /// What a training stage of `kind` adds to its fingerprint: nothing for the built-in
    /// engine, the command template used and where its model lands for a command.
    pub fn fingerprint(&self, kind: TrainKind) -> Option<Value> {
        match self {
            Self::Burn => None,
            Self::Command {
                sft,
                preference,
                trained_model,
            } => {
                let command = match kind {
                    TrainKind::Sft => Some(sft),
                    TrainKind::Preference => preference.as_ref(),
                };
                Some(json!({"kind": "command", "command": command, "trained_model": trained_model}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_sit_in_the_role_table_and_default_to_burn() {
        let text = r#"
            kind = "dir"
            path = "models/m"
            [sampler]
            kind = "openai"
            endpoint = "http://host:8000/v1"
            model = "served"
            concurrency = 16
            [trainer]
            kind = "command"
            sft = "trl sft --model_name_or_path {model}"
        "#;
        let role: Role = toml::from_str(text).unwrap();
        assert_eq!(
            role.model,
            ModelSpec::Dir {
                path: "models/m".into(),
                chat_template: false
            }
        );
        assert_eq!(
            role.sampler,
            SamplerSpec::OpenAi {
                endpoint: "http://host:8000/v1".into(),
                model: "served".into(),
                api_key_env: "OPENAI_API_KEY".into(),
                concurrency: 16,
                timeout_s: 600,
            }
        );
        assert!(matches!(
            &role.trainer,
            TrainerSpec::Command { preference: None, trained_model, .. } if trained_model == "{output}"
        ));
        let plain: Role = toml::from_str("kind = \"builtin\"\nname = \"arithmetic_weak\"").unwrap();
        assert!(plain.sampler.is_burn() && plain.trainer.is_burn());
        // The defaults are not written, so a config's TOML and JSON stay as they were.
        assert_eq!(
            toml::to_string(&plain).unwrap(),
            "kind = \"builtin\"\nname = \"arithmetic_weak\"\n"
        );
        assert_eq!(plain.sampler.fingerprint(), None);
        assert_eq!(plain.trainer.fingerprint(TrainKind::Sft), None);
    }

    #[test]
    fn unknown_keys_are_refused_in_every_table() {
        for text in [
            "kind = \"dir\"\npath = \"m\"\npaht = \"x\"",
            "kind = \"dir\"\npath = \"m\"\n[sampler]\nkind = \"openai\"\nendpoint = \"e\"\nconcurency = 2",
            "kind = \"dir\"\npath = \"m\"\n[trainer]\nkind = \"command\"\nsft = \"x\"\npreferense = \"y\"",
            "kind = \"dir\"\npath = \"m\"\n[trainer]\nkind = \"deepspeed\"",
        ] {
            assert!(toml::from_str::<Role>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn engine_fingerprints_follow_what_changes_the_outputs() {
        let server = |endpoint: &str, model: &str| SamplerSpec::OpenAi {
            endpoint: endpoint.into(),
            model: model.into(),
            api_key_env: default_api_key_env(),
            concurrency: 8,
            timeout_s: 600,
        };
        assert_eq!(
            server("http://a/v1", "{model}").fingerprint(),
            server("http://b/v1", "{model}").fingerprint()
        );
        assert_ne!(
            server("http://a/v1", "{model}").fingerprint(),
            server("http://a/v1", "m").fingerprint()
        );
        let command = |preference: &str| TrainerSpec::Command {
            sft: "sft {model}".into(),
            preference: Some(preference.into()),
            trained_model: output_placeholder(),
        };
        assert_eq!(
            command("dpo --beta {beta}").fingerprint(TrainKind::Sft),
            command("dpo --beta 0.5").fingerprint(TrainKind::Sft)
        );
        assert_ne!(
            command("dpo --beta {beta}").fingerprint(TrainKind::Preference),
            command("dpo --beta 0.5").fingerprint(TrainKind::Preference)
        );
    }
}
