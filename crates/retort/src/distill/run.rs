//! `retort distill`: build a student, label the transfer set with the teacher, and train.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use super::objective::{Objective, Teacher};
use super::teacher_cache::teacher_logits;
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::student::{self, StudentShape};
use crate::model::SequenceClassifier;
use crate::text::augment::{augment, mask_token, WordNeighbours};
use crate::train::config::{to_toml, DistillConfig, EmbeddingInit, StudentInit};
use crate::train::finetune::{dev_set, read_data, train_set};
use crate::train::trainer::{self, dev_metrics, progress_bar, RunOptions, RunSummary};

/// What a distillation run did.
#[derive(Debug, Clone, Serialize)]
pub struct DistillSummary {
    pub run: RunSummary,
    pub teacher_accuracy: f64,
    pub teacher_parameters: usize,
    pub student_parameters: usize,
    /// Labelled examples plus augmented ones.
    pub transfer_examples: usize,
    pub augmented_examples: usize,
    /// The teacher-logits cache: was it reused, how long the teacher phase took, where it is.
    pub teacher_cache_hit: Option<bool>,
    pub teacher_phase_seconds: f64,
    pub teacher_cache_path: Option<PathBuf>,
}

/// Builds the student the config asks for.
pub fn build_student(
    config: &DistillConfig,
    teacher: &SequenceClassifier,
) -> Result<SequenceClassifier> {
    let s = &config.student;
    match s.init {
        StudentInit::TeacherLayers => student::from_teacher_layers(teacher, &s.teacher_layers),
        StudentInit::Fresh => {
            let shape = StudentShape {
                layers: s.layers,
                hidden_size: s.hidden_size,
                heads: s.heads,
                intermediate_size: s.intermediate_size,
            };
            let fresh = student::fresh(&teacher.config, shape, &Device::Cpu, config.train.seed)?;
            if s.embeddings == EmbeddingInit::TeacherPca {
                student::init_embeddings_from_teacher(&fresh, teacher)?;
            }
            Ok(fresh)
        }
    }
}

/// Runs a whole distillation as configured; the best student is saved in `output.dir/best`.
pub fn distill(config: &DistillConfig, resume: bool, progress: bool) -> Result<DistillSummary> {
    let teacher = Classifier::load(&config.teacher.dir, config.teacher.max_len)?;
    if teacher.report.fresh_head {
        return Err(Error::Invalid(format!(
            "the teacher {} has no trained classification head: fine-tune it first (retort train)",
            config.teacher.dir.display()
        )));
    }
    let student = build_student(config, &teacher.model)?;
    let labels = teacher.model.config.labels.clone();
    let (train_data, dev_data) = read_data(&config.data)?;
    let mut train = train_set(&teacher.tokenizer, &train_data, &labels)?;
    let dev = dev_set(&teacher.tokenizer, &dev_data, &labels)?;
    let (teacher_accuracy, _) = dev_metrics(&teacher.model, &dev, 64)?;
    eprintln!(
        "teacher {}: {} parameters, dev accuracy {teacher_accuracy:.4}; student: {} layers × {} hidden, {} parameters",
        config.teacher.dir.display(),
        teacher.model.params.count(),
        student.config.num_layers,
        student.config.hidden_size,
        student.params.count()
    );

    let augmented = augment_transfer_set(config, &teacher, &train_data.texts())?;
    if !augmented.is_empty() {
        let refs: Vec<&str> = augmented.iter().map(String::as_str).collect();
        train
            .examples
            .extend(teacher.tokenizer.encode_batch(&refs)?);
        train
            .labels
            .extend(std::iter::repeat_n(None, augmented.len()));
    }

    let weights = &config.distill.weights;
    let teacher_start = Instant::now();
    let cache = if weights.needs_logits() {
        // Labelling a large augmented transfer set takes minutes: show how far it is.
        let bar = progress_bar(
            train.examples.len(),
            progress,
            "[{elapsed_precise}] {wide_bar} {pos}/{len} teacher logits · {per_sec} · ETA {eta}",
        );
        let c = teacher_logits(
            &teacher.model,
            &config.teacher.dir,
            &train.examples,
            &config.distill.cache_dir,
            64,
            &|n| bar.inc(n as u64),
        )?;
        bar.finish_and_clear();
        let how = if c.hit {
            "reused cached"
        } else {
            "computed and cached"
        };
        eprintln!(
            "teacher logits for {} examples: {how} in {:.1} s ({})",
            train.examples.len(),
            c.seconds,
            c.path.display()
        );
        Some(c)
    } else {
        None
    };
    let teacher_phase_seconds = teacher_start.elapsed().as_secs_f64();
    let pairs = if weights.needs_intermediate() {
        config
            .distill
            .layer_map
            .pairs(student.config.num_layers, teacher.model.config.num_layers)?
    } else {
        Vec::new()
    };
    let objective = Objective::distill(
        weights.clone(),
        config.distill.temperature,
        Teacher {
            model: weights.needs_intermediate().then(|| teacher.model.clone()),
            cached_logits: cache.as_ref().map(|c| c.logits.clone()),
        },
        pairs,
        student.config.hidden_size,
        &Device::Cpu,
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
    };
    let run = trainer::run(&student, &objective, &train, &dev, &options)?;
    Ok(DistillSummary {
        run,
        teacher_accuracy,
        teacher_parameters: teacher.model.params.count(),
        student_parameters: student.params.count(),
        transfer_examples: train.examples.len(),
        augmented_examples: augmented.len(),
        teacher_cache_hit: cache.as_ref().map(|c| c.hit),
        teacher_phase_seconds,
        teacher_cache_path: cache.map(|c| c.path),
    })
}

/// Augmented sentences (unlabelled) for the transfer set, or none when augmentation is off.
fn augment_transfer_set(
    config: &DistillConfig,
    teacher: &Classifier,
    texts: &[&str],
) -> Result<Vec<String>> {
    let aug = &config.augment;
    if !aug.enabled() {
        return Ok(Vec::new());
    }
    let start = Instant::now();
    let neighbours = if aug.p_replace > 0.0 {
        let words = texts.iter().flat_map(|t| t.split_whitespace());
        Some(WordNeighbours::build(
            &teacher.model.encoder.embeddings.word,
            &teacher.tokenizer,
            words,
            aug.neighbours,
        )?)
    } else {
        None
    };
    let mask = mask_token(&teacher.tokenizer).unwrap_or("[MASK]");
    let out = augment(texts, aug, neighbours.as_ref(), mask, config.train.seed)?;
    eprintln!(
        "augmentation: {} new sentences from {} ({:.1} s)",
        out.len(),
        texts.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(out.into_iter().map(|a| a.text).collect())
}
