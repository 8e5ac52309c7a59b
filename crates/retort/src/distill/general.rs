//! General distillation (TinyBERT's first stage, Jiao et al. 2020): a student learns the
//! teacher's hidden states and attention maps on unlabelled text, with no labels and no head.
//!
//! The teacher may be a base model (no trained head: its head never runs into a loss). The
//! student's checkpoints are base models too (`BertModel`, `MPNetModel`), so a task stage
//! starts from one with `[student] init = "pretrained"`, which gives it the task's head. The
//! dev set is held-out text, scored by the objective's loss: the lowest chooses `best/`.

use std::path::Path;

use serde::Serialize;

use super::run::{build_student, Student};
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::checkpoint::save_base;
use crate::model::heads::head_prefixes;
use crate::model::{EncoderInput, Model, ModelConfig, ModelOutput, Outputs, Params, Pass};
use crate::objective::{Objective, Teacher};
use crate::task::{read_unlabelled, Input, Rows, TaskData};
use crate::text::TextTokenizer;
use crate::train::config::{to_toml, DistillConfig, Stage, StudentSection, Validate};
use crate::train::trainer::{self, check_output_dir, RunOptions, RunSummary, Selection};

/// What a general distillation run did.
#[derive(Debug, Clone, Serialize)]
pub struct GeneralSummary {
    /// `metric` is "loss": the objective on the dev text, lowest at `best_step`.
    pub run: RunSummary,
    pub teacher_parameters: usize,
    /// The student's encoder (what its checkpoints hold).
    pub student_parameters: usize,
    pub train_texts: usize,
    pub dev_texts: usize,
}

/// A student trained without its head: the optimiser and the checkpoints see its encoder
/// only, and a checkpoint is a base model.
#[derive(Debug)]
struct Headless {
    model: Box<dyn Model>,
    encoder: Params,
}

impl Headless {
    fn new(model: Box<dyn Model>) -> Self {
        let c = model.config();
        let head = head_prefixes(c.architecture, c.head);
        let encoder = model
            .params()
            .filtered(|n| !head.iter().any(|p| n.starts_with(p)));
        Self { model, encoder }
    }
}

impl Model for Headless {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn params(&self) -> &Params {
        &self.encoder
    }

    fn forward(&self, input: &EncoderInput, pass: Pass, outputs: Outputs) -> Result<ModelOutput> {
        self.model.forward(input, pass, outputs)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_base(self.config(), &self.encoder, dir)
    }
}

/// Runs general distillation as configured (`distill.stage = "general"`); the student closest
/// to the teacher on the dev text is saved in `output.dir/best` as a base model.
pub fn general_distill(
    config: &DistillConfig,
    resume: bool,
    progress: bool,
) -> Result<GeneralSummary> {
    config.validate()?;
    check_general(config)?;
    check_output_dir(&config.output.dir, resume)?;
    let mut teacher = Classifier::load(&config.teacher.dir, config.teacher.max_len)?;
    teacher.pack_for_inference()?;
    let train = text_data(
        &teacher.tokenizer,
        &config.data.train,
        config.data.limit,
        "data.train",
    )?;
    let dev = text_data(&teacher.tokenizer, &config.data.dev, 0, "data.dev")?;
    let Student { model, tokenizer } = build_student(config, &teacher, &train.examples)?;
    if tokenizer.is_some() {
        return Err(Error::Invalid(
            "general distillation matches the student token by token with the teacher: it must read the teacher's tokens (no student.keep_tokens)".into(),
        ));
    }
    let student = Headless::new(model);
    let teacher_parameters = teacher.model.params().count();
    eprintln!(
        "general distillation: teacher {} ({teacher_parameters} parameters), student {} ({} parameters without a head); {} training texts, {} dev texts",
        config.teacher.dir.display(),
        student.config().describe(),
        student.encoder.count(),
        train.len(),
        dev.len()
    );
    let objective = Objective::distill(
        &config.distill.terms()?,
        &config.distill.layer_map,
        config.distill.temperature,
        Teacher {
            model: Some(teacher.model.clone()),
            cached_logits: None,
            learns: None,
        },
        student.config().num_layers,
        student.config().hidden_size,
        config.train.seed,
    )?;
    let options = RunOptions {
        train: &config.train,
        out_dir: &config.output.dir,
        tokenizer_dir: &config.teacher.dir,
        resume,
        config_toml: &to_toml(config),
        progress,
        stop_after: None,
        selection: Selection::ObjectiveLoss,
    };
    let run = trainer::run(&student, &objective, &train, &dev, &options)?;
    Ok(GeneralSummary {
        run,
        teacher_parameters,
        student_parameters: student.encoder.count(),
        train_texts: train.len(),
        dev_texts: dev.len(),
    })
}

/// What only the task stage offers, refused before any work.
fn check_general(config: &DistillConfig) -> Result<()> {
    if config.distill.stage != Stage::General {
        return Err(Error::Invalid(
            "general_distill runs distill.stage = \"general\"".into(),
        ));
    }
    if config.augment.enabled() || config.augment.unlabelled.is_some() {
        return Err(Error::Invalid(
            "general distillation reads its text from data.train (one text per line): set augment.multiplier = 0 and remove augment.unlabelled".into(),
        ));
    }
    if config.train.tune_thresholds {
        return Err(Error::Invalid(
            "general distillation trains no head: train.tune_thresholds is for a multi-label task stage".into(),
        ));
    }
    match &config.student {
        StudentSection::Fresh(_) | StudentSection::TeacherLayers(_) => Ok(()),
        _ => Err(Error::Invalid(
            "general distillation trains a transformer student on the teacher's tokens: use student.init = \"fresh\" or \"teacher-layers\"".into(),
        )),
    }
}

/// One text per line of `path` (blank lines skipped, the first `limit`; 0: all), in the
/// teacher's tokens, with no rows: only intermediate terms read them.
fn text_data(tokenizer: &TextTokenizer, path: &Path, limit: usize, key: &str) -> Result<TaskData> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ["tsv", "csv", "json", "jsonl", "conll"].contains(&ext.to_ascii_lowercase().as_str()) {
        return Err(Error::Invalid(format!(
            "{key} = {}: general distillation reads plain text, one text per line, not a .{ext} table; scripts/general_corpus.py writes such a file from the training sets",
            path.display()
        )));
    }
    let texts = read_unlabelled(path, limit)?;
    let texts: Vec<&str> = texts
        .iter()
        .map(|t| match t {
            Input::Text(s) => s.as_str(),
            _ => unreachable!("read_unlabelled reads single texts"),
        })
        .collect();
    let examples = tokenizer.encode_batch(&texts)?;
    let n = examples.len();
    Ok(TaskData {
        examples,
        rows: vec![Rows::default(); n],
        gold: vec![Vec::new(); n],
        spans: None,
        targets: None,
    })
}
