//! HuggingFace safetensors checkpoints: load into a [`Llama`], save back in HF layout.
//!
//! A model directory holds `model.safetensors`, or `model.safetensors.index.json` whose
//! `weight_map` names the shard of every tensor. Tensors may be stored as f32, bf16 or f16 and are
//! read into f32. Names and orientations are transformers' (`lm_head.weight` is `[v, d]`, linear
//! weights `[out, in]`); w2s transposes linear weights to burn's `[in, out]` on the way in and back
//! on the way out. Loading checks every tensor before failing, and reports all missing, unexpected,
//! mis-shaped and unreadable tensors in one error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use w2s_data::write_atomic;

use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::lora::{LoraTarget, Projection};
use crate::model::{norm_from, Attention, DecoderLayer, Llama, LlamaModel, Mlp, Parts};

/// The single-file checkpoint name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Tensors old checkpoints carry that the model recomputes (RoPE buffers); skipped, not errors.
const RECOMPUTED_SUFFIX: &str = "rotary_emb.inv_freq";

/// How [`save_weights`] stores tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    /// 32-bit floats: exact round trip of what w2s holds in memory.
    F32,
    /// bfloat16, rounded to nearest even as `torch.Tensor.to(torch.bfloat16)` does.
    Bf16,
}

impl SaveDtype {
    /// The `torch_dtype` string written to `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            SaveDtype::F32 => "float32",
            SaveDtype::Bf16 => "bfloat16",
        }
    }
}

/// Options of [`save_weights`].
#[derive(Clone, Copy, Debug)]
pub struct SaveOptions {
    /// Stored dtype.
    pub dtype: SaveDtype,
    /// Above this many bytes of tensor data the checkpoint is split into shards with an index,
    /// as `save_pretrained(max_shard_size=...)` does.
    pub max_shard_bytes: usize,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            dtype: SaveDtype::F32,
            max_shard_bytes: 5 * 1024 * 1024 * 1024,
        }
    }
}

/// Every tensor name of a checkpoint for `config`, with its HF shape.
pub fn expected_tensors(config: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let (d, e, i) = (
        config.hidden_size,
        config.head_dim(),
        config.intermediate_size,
    );
    let (h, g) = (config.num_attention_heads, config.num_key_value_heads());
    let mut names = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![config.vocab_size, d],
    )];
    for layer in 0..config.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        names.extend([
            (format!("{p}.self_attn.q_proj.weight"), vec![h * e, d]),
            (format!("{p}.self_attn.k_proj.weight"), vec![g * e, d]),
            (format!("{p}.self_attn.v_proj.weight"), vec![g * e, d]),
            (format!("{p}.self_attn.o_proj.weight"), vec![d, h * e]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, d]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, d]),
            (format!("{p}.mlp.down_proj.weight"), vec![d, i]),
            (format!("{p}.input_layernorm.weight"), vec![d]),
            (format!("{p}.post_attention_layernorm.weight"), vec![d]),
        ]);
    }
    names.push(("model.norm.weight".to_string(), vec![d]));
    if !config.tie_word_embeddings {
        names.push(("lm_head.weight".to_string(), vec![config.vocab_size, d]));
    }
    names
}

#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

/// The memory-mapped files of a checkpoint.
struct Files {
    /// Path shown in errors (the single file or the index).
    origin: PathBuf,
    maps: Vec<(PathBuf, memmap2::Mmap)>,
    /// Tensor name to file position, from the index (empty for a single file).
    index: HashMap<String, usize>,
}

impl Files {
    fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let single = dir.join(SINGLE_FILE);
        if index_path.is_file() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| LlamaError::io(&index_path, e))?;
            let index: Index = serde_json::from_str(&text).map_err(|cause| LlamaError::Json {
                path: index_path.clone(),
                cause,
            })?;
            let shards: BTreeSet<&String> = index.weight_map.values().collect();
            let mut maps = Vec::new();
            let mut position = HashMap::new();
            for shard in shards {
                position.insert(shard.clone(), maps.len());
                let path = dir.join(shard);
                maps.push((path.clone(), map_file(&path)?));
            }
            let index = index
                .weight_map
                .iter()
                .map(|(name, shard)| (name.clone(), position[shard]))
                .collect();
            Ok(Self {
                origin: index_path,
                maps,
                index,
            })
        } else if single.is_file() {
            Ok(Self {
                origin: single.clone(),
                maps: vec![(single.clone(), map_file(&single)?)],
                index: HashMap::new(),
            })
        } else {
            Err(LlamaError::MissingFile {
                dir: dir.to_path_buf(),
                what: "weights",
                expected: format!("{SINGLE_FILE} or {INDEX_FILE}"),
            })
        }
    }

    fn parse(&self) -> Result<Vec<SafeTensors<'_>>> {
        self.maps
            .iter()
            .map(|(path, map)| {
                SafeTensors::deserialize(map).map_err(|e| LlamaError::Safetensors {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).map_err(|e| LlamaError::io(path, e))?;
    // SAFETY: the map is read-only and lives only while loading; w2s never writes a checkpoint it
    // is reading (saves go to a temporary name first).
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| LlamaError::io(path, e))
}

/// Reads tensors by name, recording every problem instead of stopping at the first.
struct Reader<'a, B: Backend> {
    files: &'a [SafeTensors<'a>],
    index: &'a HashMap<String, usize>,
    device: &'a B::Device,
    used: BTreeSet<String>,
    missing: Vec<String>,
    shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    dtypes: Vec<(String, String)>,
}

impl<B: Backend> Reader<'_, B> {
    /// The tensor `name` of HF shape `shape`; zeros (with the problem recorded) when unusable.
    fn get<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Tensor<B, D> {
        let values = self
            .read(name, &shape)
            .unwrap_or_else(|| vec![0.0; shape.iter().product()]);
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    /// The values of tensor `name` in f32, row-major, if it exists with `shape` and a float dtype.
    fn read(&mut self, name: &str, shape: &[usize]) -> Option<Vec<f32>> {
        let file = match self.index.get(name) {
            Some(&i) => self.files.get(i)?,
            None => self.files.first()?,
        };
        let Ok(view) = file.tensor(name) else {
            self.missing.push(name.to_string());
            return None;
        };
        self.used.insert(name.to_string());
        if view.shape() != shape {
            self.shapes
                .push((name.to_string(), shape.to_vec(), view.shape().to_vec()));
            return None;
        }
        match decode_floats(&view) {
            Some(values) => Some(values),
            None => {
                self.dtypes
                    .push((name.to_string(), format!("{:?}", view.dtype())));
                None
            }
        }
    }

    /// A bias-free linear layer from an HF `[out, in]` weight, stored as burn's `[in, out]`.
    fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Linear<B> {
        let hf = self
            .read(name, &[d_out, d_in])
            .unwrap_or_else(|| vec![0.0; d_out * d_in]);
        Linear {
            weight: Param::from_tensor(transposed(&hf, [d_out, d_in], self.device)),
            bias: None,
        }
    }

    /// The projection `target` of layer `layer`, without an adapter.
    fn projection(
        &mut self,
        layer: usize,
        target: LoraTarget,
        [d_in, d_out]: [usize; 2],
    ) -> Projection<B> {
        let name = format!("model.layers.{layer}.{}.weight", target.path());
        Projection::new(self.linear(&name, d_in, d_out))
    }

    fn all_names(&self) -> BTreeSet<String> {
        self.files
            .iter()
            .flat_map(|f| f.names().into_iter().map(str::to_string))
            .collect()
    }
}

/// The values of a float tensor in f32, row-major; `None` for a dtype w2s cannot read.
pub(crate) fn decode_floats(view: &safetensors::tensor::TensorView<'_>) -> Option<Vec<f32>> {
    let bytes = view.data();
    Some(match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// The `[rows, cols]` row-major `values` as a `[cols, rows]` tensor: HF's `[out, in]` linear
/// weights become burn's `[in, out]`.
///
/// The transpose happens here on the host so the parameter is a plain row-major tensor: a
/// transposed view would make every matmul of training and decoding read it strided.
pub(crate) fn transposed<B: Backend>(
    values: &[f32],
    [rows, cols]: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut out = vec![0.0; rows * cols];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    Tensor::from_data(TensorData::new(out, [cols, rows]), device)
}

/// Loads the weights of `dir` (single file or sharded) into a model for `config`.
pub fn load_weights<B: Backend>(
    config: &LlamaConfig,
    dir: &Path,
    device: &B::Device,
) -> Result<Llama<B>> {
    config.validate()?;
    let files = Files::open(dir)?;
    let parsed = files.parse()?;
    let mut r = Reader::<B> {
        files: &parsed,
        index: &files.index,
        device,
        used: BTreeSet::new(),
        missing: Vec::new(),
        shapes: Vec::new(),
        dtypes: Vec::new(),
    };
    let (d, e, i) = (
        config.hidden_size,
        config.head_dim(),
        config.intermediate_size,
    );
    let (h, g) = (config.num_attention_heads, config.num_key_value_heads());
    let embed = r.get("model.embed_tokens.weight", [config.vocab_size, d]);
    let layers = (0..config.num_hidden_layers)
        .map(|layer| {
            let p = format!("model.layers.{layer}");
            DecoderLayer {
                self_attn: Attention::from_projections(
                    config,
                    [
                        r.projection(layer, LoraTarget::QProj, [d, h * e]),
                        r.projection(layer, LoraTarget::KProj, [d, g * e]),
                        r.projection(layer, LoraTarget::VProj, [d, g * e]),
                        r.projection(layer, LoraTarget::OProj, [h * e, d]),
                    ],
                ),
                mlp: Mlp {
                    gate_proj: r.projection(layer, LoraTarget::GateProj, [d, i]),
                    up_proj: r.projection(layer, LoraTarget::UpProj, [d, i]),
                    down_proj: r.projection(layer, LoraTarget::DownProj, [i, d]),
                },
                input_layernorm: norm_from(
                    config,
                    r.get(&format!("{p}.input_layernorm.weight"), [d]),
                ),
                post_attention_layernorm: norm_from(
                    config,
                    r.get(&format!("{p}.post_attention_layernorm.weight"), [d]),
                ),
            }
        })
        .collect();
    let norm = norm_from(config, r.get("model.norm.weight", [d]));
    let lm_head =
        (!config.tie_word_embeddings).then(|| r.linear("lm_head.weight", d, config.vocab_size));
    let unexpected: Vec<String> = r
        .all_names()
        .into_iter()
        .filter(|n| !r.used.contains(n) && !n.ends_with(RECOMPUTED_SUFFIX))
        .collect();
    if !(r.missing.is_empty()
        && unexpected.is_empty()
        && r.shapes.is_empty()
        && r.dtypes.is_empty())
    {
        return Err(LlamaError::WeightsMismatch {
            path: files.origin.clone(),
            missing: r.missing,
            unexpected,
            shapes: r.shapes,
            dtypes: r.dtypes,
        });
    }
    let model = LlamaModel {
        embed_tokens: Embedding {
            weight: Param::from_tensor(embed),
        },
        layers,
        norm,
    };
    Llama::from_parts(config, Parts { model, lm_head })
}

/// The model's tensors under their HF names and in HF orientation, in checkpoint order. A
/// projection with an adapter contributes its merged weight, so the checkpoint computes what the
/// model does.
fn hf_tensors<B: Backend>(model: &Llama<B>) -> Vec<(String, Tensor<B, 2>)> {
    let vector = |t: Tensor<B, 1>| t.unsqueeze::<2>();
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        model.model.embed_tokens.weight.val(),
    )];
    for (layer, block) in model.model.layers.iter().enumerate() {
        let p = format!("model.layers.{layer}");
        out.extend(LoraTarget::ALL.map(|target| {
            let mut projection = block.projection(target).clone();
            projection.merge();
            (
                format!("{p}.{}.weight", target.path()),
                projection.base.weight.val().transpose(),
            )
        }));
        out.extend([
            (
                format!("{p}.input_layernorm.weight"),
                vector(block.input_layernorm.gamma.val()),
            ),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vector(block.post_attention_layernorm.gamma.val()),
            ),
        ]);
    }
    out.push((
        "model.norm.weight".to_string(),
        vector(model.model.norm.gamma.val()),
    ));
    if let Some(head) = &model.lm_head {
        out.push(("lm_head.weight".to_string(), head.weight.val().transpose()));
    }
    out
}

/// One tensor ready to be written.
pub(crate) struct Encoded {
    name: String,
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: Vec<u8>,
}

impl safetensors::View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

pub(crate) fn encode<B: Backend>(
    name: String,
    tensor: Tensor<B, 2>,
    dtype: SaveDtype,
) -> Result<Encoded> {
    let [rows, cols] = tensor.dims();
    // Vectors were lifted to [1, n] for a uniform list; HF stores them 1-D.
    let shape = if name.ends_with("norm.weight") {
        vec![cols]
    } else {
        vec![rows, cols]
    };
    let values = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| LlamaError::Input(format!("tensor {name}: {e:?}")))?;
    let (dtype, bytes) = match dtype {
        SaveDtype::F32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        SaveDtype::Bf16 => (
            Dtype::BF16,
            values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
    };
    Ok(Encoded {
        name,
        shape,
        dtype,
        bytes,
    })
}

/// Writes `config.json` and the weights of `model` to `dir` in HF layout (created if needed).
///
/// Every file is written under a temporary name and renamed; the index of a sharded checkpoint is
/// written last, so an interrupted save never looks complete. A checkpoint of the other layout
/// (single vs sharded) left in `dir` is removed so loaders cannot pick up stale weights.
pub fn save_weights<B: Backend>(
    model: &Llama<B>,
    config: &LlamaConfig,
    dir: &Path,
    options: SaveOptions,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| LlamaError::io(dir, e))?;
    let tensors = hf_tensors(model)
        .into_iter()
        .map(|(name, t)| encode(name, t, options.dtype))
        .collect::<Result<Vec<_>>>()?;
    let mut shards: Vec<Vec<&Encoded>> = vec![Vec::new()];
    let mut size = 0usize;
    for tensor in &tensors {
        let last = shards.len() - 1;
        if size + tensor.bytes.len() > options.max_shard_bytes && !shards[last].is_empty() {
            shards.push(Vec::new());
            size = 0;
        }
        size += tensor.bytes.len();
        let last = shards.len() - 1;
        shards[last].push(tensor);
    }
    let config_json = config.to_json(options.dtype.torch_name());
    write_atomic(dir.join("config.json"), |file| {
        file.write_all(config_json.as_bytes())
    })?;
    let remove_stale = |name: &str| {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LlamaError::io(path, e)),
            _ => Ok(()),
        }
    };
    if shards.len() == 1 {
        remove_stale(INDEX_FILE)?;
        return write_safetensors(&dir.join(SINGLE_FILE), &shards[0]);
    }
    let count = shards.len();
    let mut weight_map = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{count:05}.safetensors", i + 1);
        write_safetensors(&dir.join(&file), shard)?;
        for t in shard {
            weight_map.insert(t.name.clone(), file.clone());
        }
    }
    let total_size: usize = tensors.iter().map(|t| t.bytes.len()).sum();
    let index =
        serde_json::json!({ "metadata": { "total_size": total_size }, "weight_map": weight_map });
    write_atomic(dir.join(INDEX_FILE), |file| {
        file.write_all(index.to_string().as_bytes())
    })?;
    remove_stale(SINGLE_FILE)
}

/// Writes `tensors` to one safetensors file atomically, with the `{"format": "pt"}` metadata
/// transformers and PEFT write.
pub(crate) fn write_safetensors(path: &Path, tensors: &[&Encoded]) -> Result<()> {
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    // safetensors writes to a path; the atomic file's sync covers what it wrote there.
    Ok(write_atomic(path, |file| {
        safetensors::serialize_to_file(
            tensors.iter().map(|t| (t.name.as_str(), *t)),
            metadata,
            file.tmp_path(),
        )
        .map_err(std::io::Error::other)
    })?)
}
