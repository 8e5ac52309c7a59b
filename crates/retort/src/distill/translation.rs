//! `retort distill` with a translator as the teacher (issue 15): a smaller translator over the
//! teacher's vocabulary learns from it in the trainer, by
//! - word-level distillation: the run's logit terms (soft_kl × T², ...) compare the student's
//!   next-token distributions with the teacher's, run online on the same batch under teacher
//!   forcing (a cache of `[tokens, vocabulary]` logits over the training set would take
//!   gigabytes);
//! - sequence-level distillation (Kim & Rush 2016; `distill.sequence_level`): the targets are
//!   the teacher's beam translations of the training sources, made once and kept on disk
//!   (`translate::cache`, resumable), on which hard_ce (and any word-level term) trains;
//! - both together.
//!
//! Dev BLEU (greedy) chooses `best/`; the teacher is scored the same way for the summary.

use std::sync::Arc;

use super::run::DistillSummary;
use crate::error::{Error, Result};
use crate::model::generate::DecodeOptions;
use crate::model::seq2seq::{Seq2Seq, Seq2SeqConfig};
use crate::model::Model;
use crate::objective::terms::{Needs, Term};
use crate::objective::{Objective, Teacher};
use crate::task::{Corpus, Task};
use crate::train::config::{
    to_toml, DistillConfig, EmbeddingInit, FreshStudent, StudentSection, Validate,
};
use crate::train::finetune::read_data;
use crate::train::trainer::{self, check_output_dir, dev_metrics, RunOptions, Selection};
use crate::train::translator::tokenised;
use crate::translate::cache::{cached_translations, CacheOptions, CHUNK};
use crate::translate::Translator;

/// Distils the translator in `teacher.dir` into a fresh one of `[student]`'s shape.
pub fn distill(config: &DistillConfig, resume: bool, progress: bool) -> Result<DistillSummary> {
    let (terms, shape) = check_config(config)?;
    check_output_dir(&config.output.dir, resume)?;
    let teacher = Translator::load(&config.teacher.dir)?;
    let (mut train_corpus, dev_corpus) = read_data(Task::Translation, &config.data)?;
    let tokenizer = Arc::new(teacher.tokenizer.clone());
    let tconfig = teacher.model.config.clone();
    let dev = tokenised(tokenizer.clone(), &tconfig, &dev_corpus)?;
    let teacher_score = dev_metrics(&teacher.model, &dev, 64)?.primary_value();

    let (teacher_cache_hit, teacher_phase_seconds, teacher_cache_path) =
        match config.distill.sequence_level {
            true => teacher_targets(config, &teacher, &mut train_corpus, progress)?,
            false => (None, 0.0, None),
        };
    let train = tokenised(tokenizer, &tconfig, &train_corpus)?;
    let student = Seq2Seq::fresh(student_config(&shape, &tconfig), config.train.seed)?;
    let (student_layers, student_width) = (student.config.decoder_layers, student.config.d_model);
    eprintln!(
        "teacher {}: {} parameters, dev BLEU {teacher_score:.2} (greedy); student: {} + {} layers × {}, {} heads, feed-forward {}, {} parameters; {} training pairs ({})",
        config.teacher.dir.display(),
        teacher.model.params.count(),
        student.config.encoder_layers,
        student.config.decoder_layers,
        student.config.d_model,
        student.config.heads,
        student.config.ffn_dim,
        student.params.count(),
        train.len(),
        match config.distill.sequence_level {
            true => "targets: the teacher's translations",
            false => "targets: the references",
        }
    );
    let teacher_params = teacher.model.params.count();
    let teacher_model: Arc<dyn Model> = Arc::new(teacher.model);
    let objective = Objective::distill(
        &terms,
        &config.distill.layer_map,
        config.distill.temperature,
        Teacher::fixed(Some(teacher_model), None),
        student_layers,
        student_width,
        config.train.seed,
    )?
    .with_label_smoothing(config.train.label_smoothing);
    let options = RunOptions {
        train: &config.train,
        out_dir: &config.output.dir,
        tokenizer_dir: &config.teacher.dir,
        resume,
        config_toml: &to_toml(config),
        progress,
        stop_after: None,
        selection: Selection::TaskMetric,
    };
    let run = trainer::run(&student, &objective, &train, &dev, &options)?;
    Ok(DistillSummary {
        metric: run.metric,
        teacher_score,
        teacher_parameters: teacher_params,
        student_parameters: student.params.count(),
        transfer_examples: train.len(),
        augmented_examples: 0,
        unlabelled_examples: 0,
        teacher_cache_hit,
        teacher_phase_seconds,
        teacher_cache_path,
        teachers: Vec::new(),
        peers: Vec::new(),
        tasks: Vec::new(),
        run,
    })
}

/// The run's terms and the student's shape, once the parts of a distillation config a
/// translator cannot use are refused (before anything is loaded or written).
fn check_config(config: &DistillConfig) -> Result<(Vec<Term>, FreshStudent)> {
    config.validate()?;
    let terms = config.distill.terms()?;
    let needs = Needs::of(&terms);
    let refuse = |what: &str| -> Result<(Vec<Term>, FreshStudent)> {
        Err(Error::Invalid(format!(
            "{what} does not apply to a translator's distillation"
        )))
    };
    if needs.teacher_online() || needs.perturbed_inputs {
        return refuse("an intermediate or adversarial term (hidden_mse, cosine, attention_mse, attention_kl, adversarial_kl)");
    }
    if config.distill.mutual || !config.distill.peers.is_empty() {
        return refuse("mutual learning");
    }
    if !config.teacher.extra.is_empty() {
        return refuse("teacher.extra (several teachers)");
    }
    if !config.tasks.is_empty() {
        return refuse("[[tasks]] (multi-task distillation)");
    }
    if config.augment.multiplier > 0 || config.augment.unlabelled.is_some() {
        return refuse("augmentation");
    }
    let StudentSection::Fresh(shape) = &config.student else {
        return Err(Error::Invalid(
            "a translator's student is [student] init = \"fresh\" (layers, hidden_size, heads, intermediate_size)".into(),
        ));
    };
    if shape.embeddings != EmbeddingInit::Random {
        return Err(Error::Invalid(
            "a translator's student starts from random embeddings (student.embeddings = \"random\")".into(),
        ));
    }
    Ok((terms, shape.clone()))
}

/// The student's sizes: `[student] init = "fresh"`'s layers, width, heads and feed-forward
/// width, over the teacher's vocabulary and positions.
fn student_config(s: &FreshStudent, teacher: &Seq2SeqConfig) -> Seq2SeqConfig {
    Seq2SeqConfig {
        d_model: s.hidden_size,
        encoder_layers: s.layers,
        decoder_layers: s.layers,
        heads: s.heads,
        ffn_dim: s.intermediate_size,
        ..teacher.clone()
    }
}

/// Sequence-level distillation's targets: each training pair's reference replaced by the
/// teacher's translation of its source (read from the cache or made, with a progress bar).
/// Returns (cache hit, seconds, the file) for the summary.
fn teacher_targets(
    config: &DistillConfig,
    teacher: &Translator,
    corpus: &mut Corpus,
    progress: bool,
) -> Result<(Option<bool>, f64, Option<std::path::PathBuf>)> {
    let (sources, _) = crate::task::translation::sides(corpus)?;
    let options = CacheOptions {
        decode: DecodeOptions {
            beam: config.distill.sequence_beam,
            ..DecodeOptions::default()
        },
        batch_size: 32,
        chunk: CHUNK,
        stop_after_chunks: None,
    };
    let cached = cached_translations(
        teacher,
        &sources,
        &options,
        &config.distill.cache_dir,
        progress,
    )?;
    let mut empty = 0;
    for (item, translation) in corpus.items.iter_mut().zip(&cached.lines) {
        // An empty translation teaches only the end token; keep the reference there.
        if translation.trim().is_empty() {
            empty += 1;
        } else {
            item.gold = vec![Some(translation.clone())];
        }
    }
    eprintln!(
        "sequence-level targets: the teacher's beam-{} translations of {} sources ({}, {:.1} s){}",
        config.distill.sequence_beam,
        sources.len(),
        match cached.hit {
            true => "read from the cache",
            false => "translated and cached",
        },
        cached.seconds,
        match empty {
            0 => String::new(),
            n => format!("; {n} empty translation(s) replaced by the reference"),
        }
    );
    Ok((Some(cached.hit), cached.seconds, Some(cached.path)))
}
