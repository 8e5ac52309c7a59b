//! `retort export`: a loaded model written as a Hugging Face directory that transformers
//! loads with `AutoModelForSequenceClassification` (or, with int8, that Retort loads as an
//! int8 model; see [`crate::model::quantized`]).

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::checkpoint::{copy_tokenizer_files, save_classifier};
use crate::model::Architecture;

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// As loaded: f32, or int8 if the model already is.
    AsLoaded,
    /// Encoder linear weights quantised to int8.
    Int8,
}

/// Writes `classifier` into `out`: `config.json` (architectures, id2label, label2id; a model
/// with pruned attention heads gets them back as zeros, which transformers 5 reads),
/// `model.safetensors`, `tokenizer.json` and `tokenizer_config.json` (plus `vocab.txt` and
/// `special_tokens_map.json` when the source has them).
pub fn export(classifier: &Classifier, out: &Path, precision: Precision) -> Result<()> {
    refuse_overwriting_source(&classifier.dir, out)?;
    let mut model = classifier.model.clone();
    if precision == Precision::Int8 && !model.is_int8() {
        model.quantize_int8()?;
    }
    // transformers 5 ignores `pruned_heads`: a pruned model goes out at full shape, its pruned
    // heads zero (same logits). Int8 checkpoints are Retort's own and keep the pruned shape.
    if !model.is_int8() && !model.config.pruned_heads.is_empty() {
        model = crate::model::student::with_all_heads(&model)?;
    }
    save_classifier(&model, out)?;
    copy_tokenizer_files(&classifier.dir, out)?;
    // transformers' AutoTokenizer needs tokenizer.json (a source with only vocab.txt has none).
    if !out.join("tokenizer.json").exists() {
        classifier.tokenizer.save(out)?;
    }
    let tokenizer_config = out.join("tokenizer_config.json");
    if !tokenizer_config.exists() {
        let class = match model.config.architecture {
            Architecture::Bert => "BertTokenizer",
            Architecture::DistilBert => "DistilBertTokenizer",
        };
        let config = json!({
            "tokenizer_class": class,
            "model_max_length": model.config.max_position_embeddings,
        });
        let text = serde_json::to_string_pretty(&config).expect("JSON value serialises");
        std::fs::write(&tokenizer_config, text + "\n")
            .map_err(|e| Error::io(&tokenizer_config, e, "tokenizer config"))?;
    }
    Ok(())
}

/// Exporting into the model's own directory would overwrite the files being read.
fn refuse_overwriting_source(source: &Path, out: &Path) -> Result<()> {
    let same = match (source.canonicalize(), out.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::Invalid(format!(
            "--out {} is the model's own directory; choose another",
            out.display()
        )));
    }
    Ok(())
}
