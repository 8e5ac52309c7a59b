//! `retort export`: a loaded model written as a Hugging Face directory that transformers
//! loads with `AutoModelForSequenceClassification` (or, with int8, that Retort loads as an
//! int8 model; see [`crate::model::quantized`]).

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::checkpoint::{copy_tokenizer_files, save_classifier};
use crate::model::{Architecture, Transformer};

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
///
/// `out` must be new or empty (see [`check_target`]); [`export_to`] can write into a
/// directory that holds files.
pub fn export(classifier: &Classifier, out: &Path, precision: Precision) -> Result<()> {
    export_to(classifier, out, precision, false)
}

/// [`export`], into a directory that may hold files when `force` (files of the same names are
/// replaced, others stay).
pub fn export_to(
    classifier: &Classifier,
    out: &Path,
    precision: Precision,
    force: bool,
) -> Result<()> {
    check_target(&classifier.dir, out, force)?;
    let config = classifier.model.config();
    match classifier.model.as_transformer() {
        Some(transformer) => save_transformer(transformer, out, precision)?,
        // A BiLSTM or CNN: Retort's own `config.json`, PyTorch-named f32 weights.
        None if precision == Precision::Int8 => {
            return Err(Error::Invalid(format!(
                "int8 export quantises a transformer's linear maps; {} holds a {} model: export it as f32",
                classifier.dir.display(),
                config.architecture.model_type()
            )))
        }
        None => classifier.model.save(out)?,
    }
    copy_tokenizer_files(&classifier.dir, out)?;
    // transformers' AutoTokenizer needs tokenizer.json (a source with only vocab.txt has none).
    if !out.join("tokenizer.json").exists() {
        classifier.tokenizer.save(out)?;
    }
    let tokenizer_config = out.join("tokenizer_config.json");
    if !tokenizer_config.exists() {
        let class = match config.architecture {
            // A BiLSTM or CNN student reads its teacher's WordPiece vocabulary.
            Architecture::Bert | Architecture::BiLstm | Architecture::Cnn => "BertTokenizer",
            Architecture::DistilBert => "DistilBertTokenizer",
            Architecture::MpNet => "MPNetTokenizer",
            Architecture::Marian => "PreTrainedTokenizerFast",
        };
        let config = json!({
            "tokenizer_class": class,
            "model_max_length": config.max_tokens(),
        });
        let text = serde_json::to_string_pretty(&config).expect("JSON value serialises");
        std::fs::write(&tokenizer_config, text + "\n")
            .map_err(|e| Error::create(&tokenizer_config, e, "tokenizer config"))?;
    }
    Ok(())
}

/// Writes a transformer in Hugging Face's layout, quantised to int8 if asked.
fn save_transformer(model: &Transformer, out: &Path, precision: Precision) -> Result<()> {
    let mut model = model.clone();
    if precision == Precision::Int8 && !model.is_int8() {
        model.quantize_int8()?;
    }
    // transformers 5 ignores `pruned_heads`: a pruned model goes out at full shape, its pruned
    // heads zero (same logits). Int8 checkpoints are Retort's own and keep the pruned shape.
    if !model.is_int8() && !model.config.pruned_heads.is_empty() {
        model = crate::compress::student::with_all_heads(&model)?;
    }
    save_classifier(&model, out)
}

/// Checks that an export of the model in `source` may go into `out`: never the model's own
/// directory, and (unless `force`) a new or empty one. An export over another model would
/// replace its config.json and weights and leave its other files: a directory that is neither
/// model. The binary calls it before loading the model.
pub fn check_target(source: &Path, out: &Path, force: bool) -> Result<()> {
    refuse_overwriting_source(source, out)?;
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(Error::Invalid(format!(
            "--out {} exists and is not a directory",
            out.display()
        )));
    }
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e, "output directory"))?;
    if !force && entries.next().is_some() {
        return Err(Error::Invalid(format!(
            "--out {} is not empty: choose a new or empty directory, or pass --force to write \
             into it (files of the same names are replaced, others stay)",
            out.display()
        )));
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
