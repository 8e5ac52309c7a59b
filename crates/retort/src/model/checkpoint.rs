//! Hugging Face checkpoint directories: `config.json` + `model.safetensors` (+ tokenizer).

use std::path::Path;
use std::sync::Arc;

use super::config::{Architecture, ModelConfig};
use super::params::{ParamBuilder, Params, TensorSource};
use super::quantized;
use super::transformer::{LoadReport, Transformer};
use super::{BiLstm, Cnn, Model};
use crate::error::{Error, Result};

/// File names of a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Loads the model stored in `dir`, whatever its kind: a transformer (see
/// [`load_classifier`]), or a BiLSTM or CNN student.
pub fn load_model(dir: &Path) -> Result<(Arc<dyn Model>, LoadReport)> {
    let config_path = dir.join(CONFIG_FILE);
    if dir.is_dir() && config_path.is_file() {
        let config = ModelConfig::from_file(&config_path)?;
        if config.architecture == Architecture::Marian {
            let model = crate::model::seq2seq::Seq2Seq::load(dir)?;
            let report = LoadReport {
                fresh_head: false,
                unused: Vec::new(),
            };
            return Ok((Arc::new(model), report));
        }
        if !config.architecture.is_transformer() {
            let source = TensorSource::load(&dir.join(WEIGHTS_FILE))?;
            let builder = ParamBuilder::from_source(source, 0);
            return match config.architecture {
                Architecture::Cnn => {
                    let (m, r) = Cnn::from_builder(config, builder)?;
                    Ok((Arc::new(m), r))
                }
                _ => {
                    let (m, r) = BiLstm::from_builder(config, builder)?;
                    Ok((Arc::new(m), r))
                }
            };
        }
    }
    let (model, report) = load_classifier(dir)?;
    Ok((Arc::new(model), report))
}

/// Loads the transformer classifier stored in `dir`. A base model (no head) gets a fresh
/// head, reported in the [`LoadReport`].
pub fn load_classifier(dir: &Path) -> Result<(Transformer, LoadReport)> {
    if !dir.is_dir() {
        return Err(Error::MissingFile {
            path: dir.to_path_buf(),
            what: "model directory".into(),
        });
    }
    let config_path = dir.join(CONFIG_FILE);
    let config = ModelConfig::from_file(&config_path)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.exists() && dir.join("pytorch_model.bin").exists() {
        return Err(Error::Checkpoint {
            path: dir.join("pytorch_model.bin"),
            message: "only model.safetensors is supported; convert the PyTorch weights first"
                .into(),
        });
    }
    let json = read_json(&config_path)?;
    if quantized::is_marked(&json) {
        quantized::check_method(&json, &config_path)?;
        return load_int8(config, &weights);
    }
    let source = TensorSource::load(&weights)?;
    Transformer::from_builder(config, ParamBuilder::from_source(source, 0))
}

/// Loads an int8 checkpoint (see [`quantized`]): the model's encoder runs in int8.
fn load_int8(config: ModelConfig, weights: &Path) -> Result<(Transformer, LoadReport)> {
    let (tensors, int8) = quantized::read(weights)?;
    let source = TensorSource::from_tensors(weights, tensors);
    let (mut model, report) =
        Transformer::from_builder(config, ParamBuilder::from_source(source, 0))?;
    quantized::attach(&mut model, int8, weights)?;
    Ok((model, report))
}

/// `config.json` as plain JSON (already validated by [`ModelConfig::from_file`]).
fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e, "config.json"))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })
}

/// Writes `config.json` and `model.safetensors` for `model` into `dir` (created if needed).
/// An int8 model is written as an int8 checkpoint (see [`quantized`]).
pub fn save_classifier(model: &Transformer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e, "output directory"))?;
    let mut config = model.config.to_hf_json();
    if model.is_int8() {
        config[quantized::MARKER] = quantized::marker();
    }
    let config = serde_json::to_string_pretty(&config).expect("JSON value serialises");
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, config + "\n").map_err(|e| Error::create(&path, e, "config.json"))?;
    if model.is_int8() {
        quantized::write(model, &dir.join(WEIGHTS_FILE))
    } else {
        model.params.save_safetensors(&dir.join(WEIGHTS_FILE))
    }
}

/// Writes a transformer without its head: `config.json` naming the base class (`BertModel`,
/// `MPNetModel`) and the `encoder` tensors. Loading it gives a fresh head, as loading a
/// pretrained checkpoint does: what general distillation saves for a task stage to start from.
pub fn save_base(config: &ModelConfig, encoder: &Params, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e, "output directory"))?;
    let mut json = config.to_hf_json();
    json["architectures"] = serde_json::json!([config.architecture.base_class()]);
    let text = serde_json::to_string_pretty(&json).expect("JSON value serialises");
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, text + "\n").map_err(|e| Error::create(&path, e, "config.json"))?;
    encoder.save_safetensors(&dir.join(WEIGHTS_FILE))
}

/// Tokenizer files copied along with a model so that the saved directory is complete.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Copies the tokenizer files that exist in `from` into `to`.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<()> {
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.exists() {
            let dst = to.join(name);
            std::fs::copy(&src, &dst).map_err(|e| Error::create(&dst, e, "tokenizer file"))?;
        }
    }
    Ok(())
}

/// Bytes of the regular files directly in `dir` (what a user copies to deploy the model).
pub fn size_on_disk(dir: &Path) -> Result<u64> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e, "model directory"))?;
    let mut total = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e, "model directory"))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io(entry.path(), e, "file"))?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
