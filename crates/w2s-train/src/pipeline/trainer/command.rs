//! The external trainer: each fine-tune runs a command from a template (docs/engines.md).
//!
//! For a job in folder `D` it writes the data in TRL's format to `D/data/train.jsonl`
//! (`{"prompt", "completion"}` or `{"prompt", "chosen", "rejected"}`, or their conversational
//! forms for a `chat_template` model) and the stage's exact hyperparameters to `D/train.toml`
//! (`[train]`, and `[loss]` for preferences), fills the template's placeholders, and runs the
//! command without a shell, with this process's environment and working directory. The command
//! line and its exit status go to `D/command.json` (written whole, atomically, before and after
//! the run), its combined stdout and stderr to `D/log.txt`. A failure stops the run with the
//! log's last lines. The trained model must then be where `trained_model` says (by default
//! `D/output`): a loadable HF model directory with its tokenizer, used in place, or a PEFT LoRA
//! adapter, merged onto the base into `D/merged`.
//!
//! A rerun of the stage runs the command again in the same folder, so a trainer that resumes
//! from its output directory (w2s's examples; TRL with `--resume_from_checkpoint`) resumes.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use burn::tensor::backend::Backend;
use serde::Serialize;
use serde_json::{json, Value};
use w2s_curation::record::{PreferencePair, SftExample};
use w2s_data::jsonl::write_jsonl;
use w2s_llama::{load_adapter, LoraConfig, ModelDir, SaveOptions, ADAPTER_CONFIG_FILE};
use w2s_losses::PreferenceLossConfig;

use super::template::{display_argv, CommandTemplate, Fill};
use super::{TrainData, TrainJob, TrainKind, Trainer};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::pipeline::config::to_toml;
use crate::pipeline::models::Trained;
use crate::pipeline::role::TrainerSpec;
use crate::pipeline::run_dir::{write_json, write_text};
use crate::prompt_format::PromptFormat;

/// Lines of the log an error quotes.
const LOG_TAIL_LINES: usize = 40;

/// The keys of a preference loss table that are placeholders; `{loss}` is its `type`.
const LOSS_PLACEHOLDERS: [&str; 8] = [
    "loss",
    "beta",
    "label_smoothing",
    "nll_alpha",
    "reference_free",
    "gamma",
    "gamma_beta_ratio",
    "nll_scope",
];

/// A role's parsed command templates.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    sft: CommandTemplate,
    preference: Option<CommandTemplate>,
    trained_model: CommandTemplate,
}

impl Commands {
    /// The templates of `spec` (`None` for the built-in engine); errors name `role.trainer.KEY`.
    pub fn parse(role: &str, spec: &TrainerSpec) -> Result<Option<Self>> {
        let TrainerSpec::Command {
            sft,
            preference,
            trained_model,
        } = spec
        else {
            return Ok(None);
        };
        let parse = |key: &str, text: &str| {
            CommandTemplate::parse(text).map_err(|e| engine_error(role, key, e))
        };
        Ok(Some(Self {
            sft: parse("sft", sft)?,
            preference: preference
                .as_deref()
                .map(|text| parse("preference", text))
                .transpose()?,
            trained_model: parse("trained_model", trained_model)?,
        }))
    }

    fn template(&self, kind: TrainKind) -> Option<&CommandTemplate> {
        match kind {
            TrainKind::Sft => Some(&self.sft),
            TrainKind::Preference => self.preference.as_ref(),
        }
    }
}

fn engine_error(role: &str, key: &str, error: impl std::fmt::Display) -> TrainError {
    TrainError::Engine {
        field: format!("{role}.trainer.{key}"),
        reason: error.to_string(),
    }
}

/// Checks before anything runs that `role`'s trainer can run every fine-tune it will get: an
/// SFT under each of `sft`, a preference run under each of `preference` (none for a role that
/// is never preference-trained, which must then have no `preference` command). Each template is
/// filled as a stage would fill it, so an unknown placeholder or one without a value for some
/// stage is reported now, not hours into the run.
///
/// # Errors
/// [`TrainError::Engine`] naming `role.trainer.KEY`.
pub(crate) fn check_templates(
    role: &str,
    spec: &TrainerSpec,
    sft: &[&TrainConfig],
    preference: &[(&TrainConfig, &PreferenceLossConfig)],
) -> Result<()> {
    let Some(commands) = Commands::parse(role, spec)? else {
        return Ok(());
    };
    match (&commands.preference, preference.is_empty()) {
        (Some(_), true) => {
            return Err(engine_error(
                role,
                "preference",
                "is never run: only the strong model is preference-trained, and only with \
                 stage2.losses",
            ))
        }
        (None, false) => {
            return Err(engine_error(
                role,
                "preference",
                "is missing: stage2.losses trains the strong model with a preference loss",
            ))
        }
        _ => {}
    }
    let paths = JobPaths::new(Path::new("/run/stage"));
    let base = Path::new("/run/base");
    let jobs = sft
        .iter()
        .map(|&config| (TrainKind::Sft, config, None))
        .chain(
            preference
                .iter()
                .map(|&(config, loss)| (TrainKind::Preference, config, Some(loss))),
        );
    for (kind, config, loss) in jobs {
        let fills = fills(&paths, base, config, loss)?;
        let key = match kind {
            TrainKind::Sft => "sft",
            TrainKind::Preference => "preference",
        };
        if let Some(template) = commands.template(kind) {
            template
                .render(&fills)
                .map_err(|e| engine_error(role, key, e))?;
        }
        trained_model_dir(&commands.trained_model, &fills)
            .map_err(|e| engine_error(role, "trained_model", e))?;
    }
    Ok(())
}

/// Runs each fine-tune as a command (see the module docs); the trained model is checked, and
/// adapters merged, on backend `B`.
#[derive(Debug)]
pub(crate) struct CommandTrainer<'a, B: Backend> {
    pub commands: Commands,
    pub format: PromptFormat,
    pub quiet: bool,
    pub device: &'a B::Device,
}

impl<B: Backend> Trainer for CommandTrainer<'_, B> {
    fn train(&self, job: &TrainJob<'_>) -> Result<Trained> {
        let kind = job.data.kind();
        let template = self
            .commands
            .template(kind)
            .ok_or_else(|| TrainError::Engine {
                field: "trainer.preference".into(),
                reason: "is missing: this role's trainer has no preference command".into(),
            })?;
        let paths = JobPaths::new(job.dir);
        write_data(&job.data, self.format, &paths.data)?;
        let loss = match job.data {
            TrainData::Preference { loss, .. } => Some(loss),
            TrainData::Sft(_) => None,
        };
        write_text(
            &paths.config,
            &to_toml(&ConfigFile {
                train: job.config,
                loss,
            })?,
        )?;
        let fills = fills(&paths, job.base, job.config, loss)?;
        let argv = template.render(&fills)?;
        run_logged(&argv, template.text(), job.dir, self.quiet)?;
        let trained = trained_model_dir(&self.commands.trained_model, &fills)?;
        Ok(Trained {
            model: checked_model::<B>(&trained, job.base, job.dir, self.device)?,
            examples: job.data.records(),
            steps: None,
            final_loss: None,
        })
    }
}

/// The files of a job in folder `dir`.
struct JobPaths {
    data_dir: PathBuf,
    data: PathBuf,
    config: PathBuf,
    output: PathBuf,
}

impl JobPaths {
    fn new(dir: &Path) -> Self {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let data_dir = dir.join("data");
        Self {
            data: data_dir.join("train.jsonl"),
            data_dir,
            config: dir.join("train.toml"),
            output: dir.join("output"),
        }
    }
}

/// `{config}`: the stage's training config, and its loss for a preference run.
#[derive(Serialize)]
struct ConfigFile<'a> {
    train: &'a TrainConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<&'a PreferenceLossConfig>,
}

/// Every placeholder of a job and its value (docs/engines.md lists them).
fn fills(
    paths: &JobPaths,
    base: &Path,
    config: &TrainConfig,
    loss: Option<&PreferenceLossConfig>,
) -> Result<BTreeMap<String, Fill>> {
    let path = |p: &Path| Fill::Set(p.display().to_string());
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let mut fills = BTreeMap::from([
        ("model".to_string(), path(&base)),
        ("data".to_string(), path(&paths.data)),
        ("data_dir".to_string(), path(&paths.data_dir)),
        ("output".to_string(), path(&paths.output)),
        ("config".to_string(), path(&paths.config)),
    ]);
    for (key, value) in object(config)? {
        let fill = match (key.as_str(), value) {
            // HF's Trainer and w2s's examples both read a norm of 0 as no clipping.
            ("max_grad_norm", Value::Null) => Fill::Set("0".into()),
            ("lora", _) => continue,
            (_, Value::Null) => Fill::Unset(format!(
                "`{key}` is not set in this stage's training config"
            )),
            (_, value) => Fill::Set(text(&value)),
        };
        fills.insert(key, fill);
    }
    let lora = config.lora.as_ref().map(object).transpose()?;
    for (key, _) in object(&LoraConfig::default())? {
        let fill = match lora.as_ref().and_then(|l| l.get(&key)) {
            Some(Value::Array(_)) => continue,
            Some(value) => Fill::Set(text(value)),
            None => Fill::Unset(
                "this stage trains every weight (its training config has no [lora] table)".into(),
            ),
        };
        fills.insert(format!("lora_{key}"), fill);
    }
    let loss_fields = loss.map(object).transpose()?;
    for key in LOSS_PLACEHOLDERS {
        let field = if key == "loss" { "type" } else { key };
        let fill = match (&loss_fields, loss) {
            (Some(fields), Some(loss)) => match fields.get(field) {
                Some(value) => Fill::Set(text(value)),
                None => Fill::Unset(format!("the {} loss has no `{key}`", loss.name())),
            },
            _ => Fill::Unset("an SFT stage has no preference loss".into()),
        };
        fills.insert(key.to_string(), fill);
    }
    Ok(fills)
}

/// The fields of a config as JSON.
fn object<T: Serialize>(value: &T) -> Result<serde_json::Map<String, Value>> {
    match serde_json::to_value(value) {
        Ok(Value::Object(fields)) => Ok(fields),
        other => Err(TrainError::Engine {
            field: "trainer".into(),
            reason: format!("a training config is not a table: {other:?}"),
        }),
    }
}

/// A JSON scalar as a command-line word: strings bare, numbers and booleans as JSON writes them.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The path `trained_model` names for a job: its template must fill to one word.
fn trained_model_dir(
    template: &CommandTemplate,
    fills: &BTreeMap<String, Fill>,
) -> Result<PathBuf> {
    match template.render(fills)?.as_slice() {
        [one] => Ok(PathBuf::from(one)),
        words => Err(TrainError::Template {
            template: template.text().to_string(),
            reason: format!("names {} words; it must name one directory", words.len()),
        }),
    }
}

/// The job's data in TRL's format, without the fields w2s keeps for itself (ids, the hidden
/// gold answers).
fn write_data(data: &TrainData<'_>, format: PromptFormat, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    match *data {
        TrainData::Sft(examples) => write_jsonl(
            path,
            examples.iter().map(|e| {
                format.sft_record(&SftExample {
                    prompt: e.prompt.clone(),
                    completion: e.completion.clone(),
                    extra: Default::default(),
                })
            }),
        ),
        TrainData::Preference { pairs, .. } => write_jsonl(
            path,
            pairs.iter().map(|p| {
                format.preference_record(&PreferencePair {
                    prompt: p.prompt.clone(),
                    chosen: p.chosen.clone(),
                    rejected: p.rejected.clone(),
                    extra: Default::default(),
                })
            }),
        ),
    }?;
    Ok(())
}

/// Runs `argv` in this process's working directory with its environment, stdout and stderr
/// into `dir/log.txt`, and records it in `dir/command.json`.
///
/// # Errors
/// [`TrainError::Command`] with the log's tail when it cannot start or exits unsuccessfully.
fn run_logged(argv: &[String], template: &str, dir: &Path, quiet: bool) -> Result<()> {
    let log_path = dir.join("log.txt");
    let record_path = dir.join("command.json");
    let command = display_argv(argv);
    let record = |status: Value, seconds: Option<f64>| {
        write_json(
            &record_path,
            &json!({"argv": argv, "command": command, "template": template,
                    "status": status, "seconds": seconds}),
        )
    };
    record(Value::Null, None)?;
    let log = File::create(&log_path).map_err(|e| TrainError::io(&log_path, e))?;
    let errors = log.try_clone().map_err(|e| TrainError::io(&log_path, e))?;
    if !quiet {
        eprintln!("  $ {command}\n    (output in {})", log_path.display());
    }
    let clock = Instant::now();
    let (program, args) = argv.split_first().unwrap_or((&command, &[]));
    let ran = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(errors)
        .status();
    let seconds = clock.elapsed().as_secs_f64();
    let status = match ran {
        Ok(status) => {
            record(
                json!({"success": status.success(), "code": status.code(), "text": status.to_string()}),
                Some(seconds),
            )?;
            if status.success() {
                return Ok(());
            }
            format!("failed ({status})")
        }
        Err(e) => {
            let status = format!("could not start: {e}");
            record(json!({"success": false, "text": status}), Some(seconds))?;
            status
        }
    };
    Err(TrainError::Command {
        command,
        status,
        tail: log_tail(&log_path),
        log: log_path,
    })
}

/// The last [`LOG_TAIL_LINES`] lines of a log (empty when it cannot be read).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// The model a command left in `dir`: a loadable HF model directory with its tokenizer, used in
/// place, or a PEFT LoRA adapter, merged onto `base` into `job_dir/merged`.
///
/// # Errors
/// [`TrainError::TrainedModel`] naming `dir` when it holds neither, or an adapter w2s cannot
/// merge.
fn checked_model<B: Backend>(
    dir: &Path,
    base: &Path,
    job_dir: &Path,
    device: &B::Device,
) -> Result<PathBuf> {
    let refuse = |reason: String| TrainError::TrainedModel {
        dir: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(refuse(
            "the trainer command succeeded but left no model here (the trainer's \
             `trained_model` says where it writes one)"
                .into(),
        ));
    }
    if dir.join(ADAPTER_CONFIG_FILE).is_file() {
        let mut merged = ModelDir::<B>::load(base, device)?;
        merged.model = load_adapter(merged.model, dir, device)
            .map_err(|e| {
                refuse(format!(
                    "holds a PEFT adapter that w2s cannot merge onto {}: {e}",
                    base.display()
                ))
            })?
            .merge_adapters();
        let out = job_dir.join("merged");
        merged.save(&out, SaveOptions::default())?;
        return Ok(out);
    }
    let loaded = ModelDir::<B>::load(dir, device)
        .map_err(|e| refuse(format!("is not a loadable HF model directory: {e}")))?;
    loaded
        .tokenizer()
        .map_err(|e| refuse(format!("has no tokenizer, which later stages read: {e}")))?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../w2s-llama/tests/fixtures")
            .join(name)
    }

    fn command(sft: &str, trained_model: &str) -> Commands {
        let spec = TrainerSpec::Command {
            sft: sft.into(),
            preference: None,
            trained_model: trained_model.into(),
        };
        Commands::parse("weak", &spec).unwrap().unwrap()
    }

    fn train(commands: Commands, base: &Path, dir: &Path) -> Result<Trained> {
        let trainer = CommandTrainer::<Flex> {
            commands,
            format: PromptFormat::Text,
            quiet: true,
            device: &Default::default(),
        };
        let example: SftExample = serde_json::from_str(
            r#"{"prompt": "Question: 1+1?\nAnswer:", "completion": "2", "gold": "2", "id": "q1"}"#,
        )
        .unwrap();
        trainer.train(&TrainJob {
            base,
            data: TrainData::Sft(&[example]),
            config: &TrainConfig::default(),
            dir,
        })
    }

    #[test]
    fn every_placeholder_is_filled_from_the_stage() -> Result<()> {
        let config = TrainConfig {
            learning_rate: 2e-5,
            max_grad_norm: None,
            lora: Some(LoraConfig::default()),
            ..TrainConfig::default()
        };
        let loss = PreferenceLossConfig::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            nll_alpha: 1.0,
            reference_free: false,
        };
        let paths = JobPaths::new(Path::new("/r/stage"));
        let fills = fills(&paths, Path::new("/r/base"), &config, Some(&loss))?;
        let set = |key: &str| match fills.get(key) {
            Some(Fill::Set(v)) => v.clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(set("model"), "/r/base");
        assert_eq!(set("data"), "/r/stage/data/train.jsonl");
        assert_eq!(set("data_dir"), "/r/stage/data");
        assert_eq!(set("output"), "/r/stage/output");
        assert_eq!(set("config"), "/r/stage/train.toml");
        assert_eq!(set("learning_rate"), "0.00002");
        assert_eq!(set("epochs"), "1");
        assert_eq!(set("schedule"), "cosine");
        assert_eq!(set("max_grad_norm"), "0");
        assert_eq!(set("group_by_length"), "false");
        assert_eq!(set("lora_r"), "16");
        assert_eq!(set("loss"), "dpo");
        assert_eq!(set("beta"), "0.1");
        assert_eq!(set("nll_alpha"), "1.0");
        assert!(!fills.contains_key("lora_targets"));
        assert!(matches!(fills.get("max_steps"), Some(Fill::Unset(_))));
        assert!(matches!(fills.get("gamma"), Some(Fill::Unset(why)) if why.contains("dpo loss")));
        let sft = super::fills(&paths, Path::new("/r/base"), &TrainConfig::default(), None)?;
        assert!(matches!(sft.get("beta"), Some(Fill::Unset(why)) if why.contains("SFT")));
        assert!(matches!(sft.get("lora_r"), Some(Fill::Unset(why)) if why.contains("[lora]")));
        Ok(())
    }

    #[test]
    fn templates_are_checked_against_every_stage_config() {
        let spec = |sft: &str, preference: Option<&str>| TrainerSpec::Command {
            sft: sft.into(),
            preference: preference.map(String::from),
            trained_model: "{output}".into(),
        };
        let config = TrainConfig::default();
        let dpo = PreferenceLossConfig::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            nll_alpha: 0.0,
            reference_free: false,
        };
        let check = |spec: &TrainerSpec, preference: &[(&TrainConfig, &PreferenceLossConfig)]| {
            check_templates("strong", spec, &[&config], preference)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let good = spec("sft {model} {lr_typo}", None);
        assert!(check(&good, &[]).contains("`strong.trainer.sft`"));
        assert!(check(&good, &[]).contains("unknown placeholder `{lr_typo}`"));
        let unset = spec("sft --max_steps {max_steps}", None);
        assert!(check(&unset, &[]).contains("`max_steps` is not set"));
        let no_preference = spec("sft {model}", None);
        assert!(check(&no_preference, &[(&config, &dpo)]).contains("preference` is missing"));
        let gamma = spec("sft {model}", Some("dpo --gamma {gamma}"));
        assert!(check(&gamma, &[(&config, &dpo)]).contains("the dpo loss has no `gamma`"));
        assert!(check(&gamma, &[]).contains("preference` is never run"));
        let fine = spec("sft {model} {learning_rate}", Some("dpo {beta} {config}"));
        assert_eq!(check(&fine, &[(&config, &dpo)]), "");
    }

    #[test]
    #[cfg(unix)] // the commands are POSIX tools: sh, true, cp
    fn a_failing_command_stops_with_the_tail_of_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let script = "for i in $(seq 1 100); do echo line$i; done; echo oops >&2; exit 3";
        let failing = command(&format!("sh -c '{script}' {{data}}"), "{output}");
        let err = train(failing, &fixture("llama3_tied"), tmp.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TrainError::Command { .. }), "{text}");
        assert!(text.contains("failed (exit status: 3)"), "{text}");
        assert!(
            text.contains("line62\n") && text.contains("line100\noops"),
            "{text}"
        );
        assert!(!text.contains("line61\n"), "{text}");
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("command.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(record["status"]["code"], 3);
        assert_eq!(record["argv"][0], "sh");
        let data = tmp.path().join("data").join("train.jsonl");
        assert_eq!(record["argv"][3], data.display().to_string());
        // The data is TRL's: prompt and completion only, no id or hidden gold answer.
        let line = std::fs::read_to_string(&data).unwrap();
        assert_eq!(
            line.trim(),
            r#"{"prompt":"Question: 1+1?\nAnswer:","completion":"2"}"#
        );
        assert!(std::fs::read_to_string(tmp.path().join("log.txt"))
            .unwrap()
            .contains("line1\n"));

        let missing = command("no-such-trainer-binary {model}", "{output}");
        let text = train(missing, &fixture("llama3_tied"), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(text.contains("could not start"), "{text}");
    }

    #[test]
    #[cfg(unix)] // the commands are POSIX tools: sh, true, cp
    fn a_command_that_writes_no_model_is_refused_naming_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let err = train(
            command("true", "{output}"),
            &fixture("llama3_tied"),
            tmp.path(),
        )
        .unwrap_err()
        .to_string();
        let output = tmp.path().join("output");
        assert!(err.starts_with(&output.display().to_string()), "{err}");
        assert!(err.contains("left no model here"), "{err}");
        let junk = command(
            "sh -c 'mkdir -p {output} && echo {{}} > {output}/config.json'",
            "{output}",
        );
        let err = train(junk, &fixture("llama3_tied"), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not a loadable HF model directory"),
            "{err}"
        );
    }

    #[test]
    #[cfg(unix)] // the commands are POSIX tools: sh, true, cp
    fn a_model_directory_is_used_in_place_and_an_adapter_is_merged() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let copy = |from: &str| format!("cp -r {} {{output}}", fixture(from).display());
        let dir = tmp.path().join("full");
        let full = train(
            command(&copy("llama3_tied"), "{output}"),
            &fixture("llama3_tied"),
            &dir,
        )?;
        assert_eq!(full.model, std::path::absolute(dir.join("output")).unwrap());
        assert_eq!((full.examples, full.steps), (1, None));

        let base = fixture("gqa_sharded");
        let dir = tmp.path().join("adapter");
        let adapted = train(command(&copy("lora/adapter_all"), "{output}"), &base, &dir)?;
        assert_eq!(adapted.model, dir.join("merged"));
        let device = Default::default();
        let merged = ModelDir::<Flex>::load(&adapted.model, &device)?;
        assert!(merged.tokenizer.is_some());
        let original = ModelDir::<Flex>::load(&base, &device)?;
        let expected =
            load_adapter(original.model, &fixture("lora/adapter_all"), &device)?.merge_adapters();
        let ids =
            burn::tensor::Tensor::<Flex, 2, burn::tensor::Int>::from_ints([[1, 5, 9]], &device);
        let got = merged.model.forward(ids.clone(), None)?;
        assert!(got.all_close(expected.forward(ids, None)?, None, Some(1e-5)));
        Ok(())
    }
}
