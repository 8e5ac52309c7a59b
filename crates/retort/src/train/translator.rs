//! `retort train` for a translator (`model.task = "translation"`): from scratch (`model.init
//! = "fresh"`: a sub-word vocabulary learnt from the training text, then a transformer of
//! `[model.translator]`'s shape) or on from a translator checkpoint, through the same trainer
//! as every other model: hard_ce (label-smoothed) over every target token, dev BLEU at each
//! evaluation choosing `best/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::seq2seq::{Seq2Seq, Seq2SeqConfig};
use crate::model::{Architecture, ModelConfig};
use crate::objective::Objective;
use crate::task::translation::{self, Tokenised};
use crate::task::{Corpus, Input, Task};
use crate::text::subword::SubwordTokenizer;

use super::config::{to_toml, TrainConfig, TranslatorShape, Validate};
use super::finetune::read_data;
use super::trainer::{self, check_output_dir, RunOptions, RunSummary, Selection};

/// `model.init`'s value that asks for a translator trained from scratch.
pub const FRESH: &str = "fresh";

/// Where a fresh translator's run keeps the vocabulary it learnt (copied into every
/// checkpoint; read back on `--resume`).
pub fn vocab_dir(out_dir: &Path) -> PathBuf {
    out_dir.join("vocab")
}

/// Trains a translator as `config` says and saves the best on dev BLEU in `output.dir/best`.
pub fn train(config: &TrainConfig, resume: bool, progress: bool) -> Result<RunSummary> {
    config.validate()?;
    check_output_dir(&config.output.dir, resume)?;
    let (train_corpus, dev_corpus) = read_data(Task::Translation, &config.data)?;
    let init = &config.model.init;
    let (model, tokenizer, tokenizer_dir) = match init.as_os_str() == FRESH {
        true => {
            let dir = vocab_dir(&config.output.dir);
            let tokenizer = vocabulary(&config.model.translator, &train_corpus, &dir, resume)?;
            let shape = translator_config(
                &config.model.translator,
                tokenizer.vocab_size(),
                config.model.max_len,
            );
            (Seq2Seq::fresh(shape, config.train.seed)?, tokenizer, dir)
        }
        false => {
            check_is_translator(init)?;
            let model = Seq2Seq::load(init)?;
            (model, SubwordTokenizer::load(init)?, init.clone())
        }
    };
    let tokenizer = Arc::new(tokenizer);
    let c = &model.config;
    eprintln!(
        "training a translator ({} + {} layers × {}, {} heads, feed-forward {}, {} tokens; {} parameters) on {} sentence pairs; dev: {}",
        c.encoder_layers,
        c.decoder_layers,
        c.d_model,
        c.heads,
        c.ffn_dim,
        c.vocab_size,
        model.params.count(),
        train_corpus.len(),
        dev_corpus.len()
    );
    let train = tokenised(tokenizer.clone(), c, &train_corpus)?;
    let dev = tokenised(tokenizer, c, &dev_corpus)?;
    let options = RunOptions {
        train: &config.train,
        out_dir: &config.output.dir,
        tokenizer_dir: &tokenizer_dir,
        resume,
        config_toml: &to_toml(config),
        progress,
        stop_after: None,
        selection: Selection::TaskMetric,
    };
    let objective = Objective::fine_tune().with_label_smoothing(config.train.label_smoothing);
    trainer::run(&model, &objective, &train, &dev, &options)
}

/// A translator's sizes from `[model.translator]`, over a vocabulary of `vocab_size` tokens
/// (padding, start and end at ids 0, 1 and 2, as `retort vocab` makes them), with
/// `max_positions` positions.
pub fn translator_config(
    shape: &TranslatorShape,
    vocab_size: usize,
    max_positions: usize,
) -> Seq2SeqConfig {
    Seq2SeqConfig {
        ffn_dim: shape.ffn_dim,
        dropout: shape.dropout,
        ..Seq2SeqConfig::shape(
            vocab_size,
            shape.d_model,
            shape.layers,
            shape.heads,
            max_positions,
        )
    }
}

/// The vocabulary of a fresh translator: learnt from both sides of the training text and
/// written to `dir`, or, when a run resumes, read back from there.
fn vocabulary(
    shape: &TranslatorShape,
    corpus: &Corpus,
    dir: &Path,
    resume: bool,
) -> Result<SubwordTokenizer> {
    if resume && dir.join("tokenizer.json").is_file() {
        return SubwordTokenizer::load(dir);
    }
    let mut lines = Vec::with_capacity(2 * corpus.len());
    for item in &corpus.items {
        if let Input::Text(source) = &item.input {
            lines.push(source.clone());
        }
        lines.extend(item.gold.iter().flatten().cloned());
    }
    let tokenizer = SubwordTokenizer::train(&lines, shape.vocab_size, shape.min_frequency)?;
    tokenizer.save(dir)?;
    eprintln!(
        "learnt a vocabulary of {} tokens from {} lines into {}",
        tokenizer.vocab_size(),
        lines.len(),
        dir.display()
    );
    Ok(tokenizer)
}

/// Refuses a `model.init` that is not a translator, saying how to train one from scratch.
fn check_is_translator(init: &Path) -> Result<()> {
    let config = ModelConfig::from_file(&init.join("config.json"))?;
    if config.architecture != Architecture::Marian {
        return Err(Error::Invalid(format!(
            "{} is a {} model, not a translator: set model.init = \"{FRESH}\" to train one from scratch with [model.translator]'s shape",
            init.display(),
            config.architecture.model_type()
        )));
    }
    Ok(())
}

/// A parallel corpus tokenised for `config`, saying how many pairs the position table cut.
pub fn tokenised(
    tokenizer: Arc<SubwordTokenizer>,
    config: &Seq2SeqConfig,
    corpus: &Corpus,
) -> Result<crate::task::TaskData> {
    let Tokenised { data, cut } = translation::data(tokenizer, config, corpus)?;
    if cut > 0 {
        eprintln!(
            "warning: {}: {cut} of {} sentence pairs are longer than the model's {} positions and were cut",
            corpus.path.display(),
            corpus.len(),
            config.max_positions
        );
    }
    Ok(data)
}
