//! `retort train`: fine-tune a checkpoint on a labelled dataset of its task.

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::objective::Objective;
use crate::task::{Corpus, Task, TaskData};
use crate::text::TextTokenizer;

use super::config::{to_toml, DataSection, TrainConfig, Validate};
use super::trainer::{self, check_output_dir, RunOptions, RunSummary, Selection};

/// Reads the training and dev sets named in `data` in `task`'s format, keeping the first
/// `limit` training examples.
pub fn read_data(task: Task, data: &DataSection) -> Result<(Corpus, Corpus)> {
    let mut train = task.read(&data.train)?;
    train.truncate(data.limit);
    let dev = task.read(&data.dev)?;
    Ok((train, dev))
}

/// Tokenises a labelled corpus, saying how many units truncation cut (they train nothing and
/// count as the task's fallback label in metrics).
pub fn task_data(
    task: Task,
    tokenizer: &TextTokenizer,
    corpus: &Corpus,
    labels: &[String],
) -> Result<TaskData> {
    let data = task.data(tokenizer, corpus, labels)?;
    let cut = data.units_without_rows();
    if cut > 0 {
        let units: usize = data.gold.iter().map(Vec::len).sum();
        eprintln!(
            "warning: {}: {cut} of {units} words have no token within max_len {} (cut by truncation, or empty after normalisation); they are predicted as {:?}",
            corpus.path.display(),
            tokenizer.max_len(),
            labels[task.fallback_label(labels)]
        );
    }
    Ok(data)
}

/// Fine-tunes `config.model.init` and saves the best dev checkpoint in `output.dir/best`.
pub fn fine_tune(config: &TrainConfig, resume: bool, progress: bool) -> Result<RunSummary> {
    if config.model.task == Task::Translation {
        return super::translator::train(config, resume, progress);
    }
    // Before anything is loaded or written (load_config has checked a config read from a file).
    config.validate()?;
    check_output_dir(&config.output.dir, resume)?;
    let init = &config.model.init;
    let task = config.model.task;
    task.check_train_options(&config.train)?;
    let base = Classifier::load(init, config.model.max_len)?;
    if base.model.is_int8() {
        // Int8 maps record no backward pass: their weights would silently never train.
        return Err(Error::Invalid(format!(
            "{} is an int8 export (inference only): fine-tune the f32 model it was exported from",
            init.display()
        )));
    }
    let (train_data, dev_data) = read_data(task, &config.data)?;
    let trained_head = !base.report.fresh_head && Task::of(base.model.config()) == task;
    let labels = match (config.model.labels.is_empty(), trained_head) {
        (false, _) => config.model.labels.clone(),
        (true, true) => base.model.config().labels.clone(),
        (true, false) => task.labels_in(&train_data).ok_or_else(|| {
            Error::Invalid(format!(
                "{} has no {} head: set model.labels (e.g. [\"negative\", \"positive\"])",
                init.display(),
                task.name()
            ))
        })?,
    };
    if task.is_multi_label() {
        crate::task::multilabel::check_label_count(labels.len())?;
    }
    let mut model = base.transformer("retort train")?.clone().with_head(
        task.head(),
        &labels,
        config.train.seed,
    )?;
    model.config.multi_label = task.is_multi_label();
    eprintln!(
        "fine-tuning {} ({} layers, hidden {}) for {} on {} examples, labels {labels:?}; dev: {} examples",
        init.display(),
        model.config.num_layers,
        model.config.hidden_size,
        task.name(),
        train_data.len(),
        dev_data.len()
    );
    let train = task_data(task, &base.tokenizer, &train_data, &labels)?;
    let dev = task_data(task, &base.tokenizer, &dev_data, &labels)?;
    let options = RunOptions {
        train: &config.train,
        out_dir: &config.output.dir,
        tokenizer_dir: init,
        resume,
        config_toml: &to_toml(config),
        progress,
        stop_after: None,
        selection: Selection::TaskMetric,
    };
    let mut run = trainer::run(&model, &Objective::fine_tune(), &train, &dev, &options)?;
    run.label_thresholds =
        task.after_training(&config.train, &run.best_dir, &dev, config.model.max_len)?;
    Ok(run)
}
