//! `retort train`: fine-tune a checkpoint on a labelled classification dataset.

use crate::distill::objective::Objective;
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::text::{Dataset, TextTokenizer};

use super::config::{to_toml, DataSection, TrainConfig, Validate};
use super::trainer::{self, check_output_dir, DevSet, RunOptions, RunSummary, TrainSet};

/// Reads the training and dev sets named in `data`, keeping the first `limit` training rows.
pub fn read_data(data: &DataSection) -> Result<(Dataset, Dataset)> {
    let mut train = Dataset::read(&data.train)?;
    if data.limit > 0 {
        train.examples.truncate(data.limit);
    }
    let dev = Dataset::read(&data.dev)?;
    Ok((train, dev))
}

/// Tokenises a labelled dataset for training.
pub fn train_set(tokenizer: &TextTokenizer, data: &Dataset, labels: &[String]) -> Result<TrainSet> {
    let ids = data.label_ids(labels)?;
    Ok(TrainSet {
        examples: tokenizer.encode_batch(&data.texts())?,
        labels: ids.into_iter().map(Some).collect(),
    })
}

/// Tokenises the dev set.
pub fn dev_set(tokenizer: &TextTokenizer, data: &Dataset, labels: &[String]) -> Result<DevSet> {
    Ok(DevSet {
        labels: data.label_ids(labels)?,
        examples: tokenizer.encode_batch(&data.texts())?,
    })
}

/// Fine-tunes `config.model.init` and saves the best dev checkpoint in `output.dir/best`.
pub fn fine_tune(config: &TrainConfig, resume: bool, progress: bool) -> Result<RunSummary> {
    // Before anything is loaded or written (load_config has checked a config read from a file).
    config.validate()?;
    check_output_dir(&config.output.dir, resume)?;
    let init = &config.model.init;
    let base = Classifier::load(init, config.model.max_len)?;
    if base.model.is_int8() {
        // Int8 maps record no backward pass: their weights would silently never train.
        return Err(Error::Invalid(format!(
            "{} is an int8 export (inference only): fine-tune the f32 model it was exported from",
            init.display()
        )));
    }
    if base.report.fresh_head && config.model.labels.is_empty() {
        return Err(Error::Invalid(format!(
            "{} has no classification head: set model.labels (e.g. [\"negative\", \"positive\"])",
            init.display()
        )));
    }
    let model = base
        .model
        .with_labels(&config.model.labels, config.train.seed)?;
    let labels = model.config.labels.clone();
    let (train_data, dev_data) = read_data(&config.data)?;
    eprintln!(
        "fine-tuning {} ({} layers, hidden {}) on {} examples, labels {labels:?}; dev: {} examples",
        init.display(),
        model.config.num_layers,
        model.config.hidden_size,
        train_data.len(),
        dev_data.len()
    );
    let train = train_set(&base.tokenizer, &train_data, &labels)?;
    let dev = dev_set(&base.tokenizer, &dev_data, &labels)?;
    let options = RunOptions {
        train: &config.train,
        out_dir: &config.output.dir,
        tokenizer_dir: init,
        resume,
        config_toml: &to_toml(config),
        progress,
        stop_after: None,
    };
    trainer::run(&model, &Objective::fine_tune(), &train, &dev, &options)
}
