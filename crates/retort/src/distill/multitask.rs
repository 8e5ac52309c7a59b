//! Multi-task distillation: one student learns several tasks at once, each from its own
//! teacher (e.g. SST-2 sentiment and CoNLL named entities). The student has one encoder and
//! a head per task; each task is a view of the student sharing the encoder's variables
//! (`Transformer::sharing_encoder`), with its own teacher cache, objective and data, and
//! the trainer mixes the tasks' batches by their ratios (`train/tasks.rs`).
//!
//! The first task is the run's own (`teacher`, `data`); `[[tasks]]` adds the others.

use serde::Serialize;

use super::run::label_transfer_set;
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::{Model, Transformer};
use crate::objective::terms::{Needs, Term};
use crate::objective::{Objective, Teacher};
use crate::task::{Task, TaskData};
use crate::train::config::{DataSection, DistillConfig, TaskSection};
use crate::train::finetune::{read_data, task_data};
use crate::train::tasks::TaskRun;
use crate::train::trainer::dev_metrics;

/// A task of a multi-task run beside the first: the student's view for it and everything
/// it trains on.
pub struct OtherTask {
    pub name: String,
    pub model: Transformer,
    pub objective: Objective,
    pub train: TaskData,
    pub dev: TaskData,
    pub ratio: f64,
    pub task: Task,
    pub max_len: usize,
    pub summary: TaskSummary,
}

/// What a multi-task run reports of a task beside the first.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    pub name: String,
    pub teacher: std::path::PathBuf,
    /// The task's primary metric and its teacher's dev value of it.
    pub metric: &'static str,
    pub teacher_score: f64,
    pub transfer_examples: usize,
    /// Whether its teacher's logits were read from the cache (`None`: no logit term).
    pub teacher_cache_hit: Option<bool>,
    /// Whether its head started from its teacher's (same layout and width) or afresh.
    pub head_from_teacher: bool,
}

impl OtherTask {
    /// The task as the trainer takes it.
    pub fn run(&self) -> TaskRun<'_> {
        TaskRun {
            name: &self.name,
            model: &self.model,
            objective: &self.objective,
            train: &self.train,
            dev: &self.dev,
            ratio: self.ratio,
        }
    }
}

/// The student must be a transformer reading the first teacher's tokens: each task's view
/// shares its encoder, and every teacher's logits are matched to the same tokens.
pub fn check_student(student: &dyn Model, own_tokenizer: bool) -> Result<&Transformer> {
    if own_tokenizer {
        return Err(Error::Invalid(
            "[[tasks]] needs a student that reads the teacher's tokens (every task's teacher labels the same tokens): remove student.keep_tokens, or use a student with the teacher's tokenizer".into(),
        ));
    }
    student.as_transformer().ok_or_else(|| {
        Error::Invalid(format!(
            "[[tasks]] gives the student a head per task on one encoder, which a {} student does not have: use a transformer student (teacher-layers, fresh or pretrained)",
            student.config().describe()
        ))
    })
}

/// Loads every `[[tasks]]` entry's teacher and data, labels its transfer set (cached like
/// the first task's) and builds the student's view for it with an objective of the run's
/// terms toward that teacher.
pub fn other_tasks(
    config: &DistillConfig,
    first_teacher: &Classifier,
    student: &Transformer,
    terms: &[Term],
    progress: bool,
) -> Result<Vec<OtherTask>> {
    config
        .tasks
        .iter()
        .map(|section| other_task(config, section, first_teacher, student, terms, progress))
        .collect()
}

fn other_task(
    config: &DistillConfig,
    section: &TaskSection,
    first_teacher: &Classifier,
    student: &Transformer,
    terms: &[Term],
    progress: bool,
) -> Result<OtherTask> {
    let name = &section.name;
    let max_len = match section.max_len {
        0 => config.teacher.max_len,
        n => n,
    };
    let mut teacher = Classifier::load(&section.teacher, max_len)?;
    teacher.pack_for_inference()?;
    let in_task = |message: String| Error::Invalid(format!("task {name}: {message}"));
    if teacher.report.fresh_head {
        return Err(in_task(format!(
            "the teacher {} has no trained head: fine-tune it first (retort train)",
            section.teacher.display()
        )));
    }
    if !teacher.tokenizer.same_tokens_as(&first_teacher.tokenizer) {
        return Err(in_task(format!(
            "the teacher {} reads other tokens than {}: the student reads one tokenizer, so every task's teacher must share it",
            section.teacher.display(),
            config.teacher.dir.display()
        )));
    }
    let t = teacher.model.config();
    let task = Task::of(t);
    task.check_train_options(&config.train)
        .map_err(|e| in_task(e.to_string()))?;
    check_terms_fit(task, terms).map_err(|e| in_task(e.to_string()))?;
    let data = DataSection {
        train: section.train.clone(),
        dev: section.dev.clone(),
        limit: section.limit,
    };
    let (train_corpus, dev_corpus) = read_data(task, &data)?;
    let train = task_data(task, &teacher.tokenizer, &train_corpus, &t.labels)?;
    let dev = task_data(task, &teacher.tokenizer, &dev_corpus, &t.labels)?;
    let teacher_score = dev_metrics(teacher.model.as_ref(), &dev, 64)?.primary_value();

    let needs = Needs::of(terms);
    let cache = match needs.teacher_logits {
        true => Some(label_transfer_set(
            teacher.model.as_ref(),
            &section.teacher,
            &train,
            &config.distill.cache_dir,
            progress,
        )?),
        false => None,
    };
    let objective = Objective::distill(
        terms,
        &config.distill.layer_map,
        config.distill.temperature,
        Teacher::fixed(
            (needs.teacher_online() || needs.perturbed_inputs).then(|| teacher.model.clone()),
            cache.as_ref().map(|c| c.logits.clone()),
        ),
        student.config.num_layers,
        student.config.hidden_size,
        config.train.seed,
    )?;
    // The teacher's head is where a student of its layers would start; a student of
    // another layout or width starts afresh.
    let head_tensors = teacher
        .transformer("a task's teacher")
        .ok()
        .filter(|tt| {
            tt.config.architecture == student.config.architecture
                && tt.config.hidden_size == student.config.hidden_size
        })
        .map(Transformer::head_tensors);
    let head_from_teacher = head_tensors.is_some();
    let model = student.sharing_encoder(
        t.head,
        &t.labels,
        t.multi_label,
        head_tensors.unwrap_or_default(),
        config.train.seed,
    )?;
    eprintln!(
        "task {name}: teacher {}, dev {} {teacher_score:.4}; {} training examples, {} batch(es) per batch of the first task; head {}",
        section.teacher.display(),
        task.primary_metric(),
        train.examples.len(),
        section.ratio,
        if head_from_teacher { "from the teacher" } else { "fresh" }
    );
    let summary = TaskSummary {
        name: name.clone(),
        teacher: section.teacher.clone(),
        metric: task.primary_metric(),
        teacher_score,
        transfer_examples: train.examples.len(),
        teacher_cache_hit: cache.as_ref().map(|c| c.hit),
        head_from_teacher,
    };
    Ok(OtherTask {
        name: name.clone(),
        model,
        objective,
        train,
        dev,
        ratio: section.ratio,
        task,
        max_len,
        summary,
    })
}

/// A multi-label teacher's labels are each a yes or no: the terms that read its logits as
/// one distribution over classes are refused.
pub fn check_terms_fit(task: Task, terms: &[Term]) -> Result<()> {
    match terms
        .iter()
        .find(|t| task.is_multi_label() && t.kind.is_softmax())
    {
        Some(t) => Err(Error::Invalid(format!(
            "{} reads the logits as one distribution over classes, but the teacher is a multi-label classifier whose labels are each a yes or no: use soft_bce, logistic or logit_mse",
            t.kind.name()
        ))),
        None => Ok(()),
    }
}
