//! Multi-task distillation (`[[tasks]]`): one student, one encoder, a head per task, each
//! task taught by its own teacher on its own data in one run. On the tiny fixtures: the
//! tiny BERT's sentence labels and a tiny tagger's entities.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{fixture, tagger_config, tiny_distill_config, write_conll};
use retort::distill::run::{distill, distill_until};
use retort::eval::evaluate;
use retort::model::HeadKind;
use retort::task::Task;
use retort::train::config::{
    BiLstmStudent, DistillConfig, ExtraTeacher, StudentSection, TaskSection,
};
use retort::train::finetune::fine_tune;
use retort::Classifier;

/// A tagger fine-tuned from the tiny BERT: the teacher of the second task.
fn train_tagger(dir: &Path) -> PathBuf {
    let mut c = tagger_config(dir);
    c.train.max_steps = 100;
    fine_tune(&c, false, false).unwrap();
    c.output.dir.join("best")
}

/// The tiny BERT's sentence task (student of its layers 0 and 2) plus an NER task taught by
/// `tagger`, one batch of each in turn, 6 steps.
fn two_task_config(dir: &Path, tagger: &Path) -> DistillConfig {
    let mut c = tiny_distill_config(dir);
    c.output.dir = dir.join("student");
    c.train.max_steps = 6;
    c.train.log_every = 1;
    c.tasks = vec![TaskSection {
        name: "ner".into(),
        teacher: tagger.to_path_buf(),
        train: write_conll(dir, "ner-train.txt", 48),
        dev: write_conll(dir, "ner-dev.txt", 12),
        limit: 0,
        ratio: 1.0,
        max_len: 0,
    }];
    c
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn is_head(name: &str) -> bool {
    name.starts_with("classifier.") || name.starts_with("bert.pooler.")
}

#[test]
fn one_student_learns_two_tasks_with_one_encoder_and_a_head_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tagger = train_tagger(dir);
    let c = two_task_config(dir, &tagger);
    let s = distill(&c, false, false).unwrap();

    // Both teachers labelled their own transfer sets; the NER head started from the tagger's.
    assert_eq!(s.metric, "accuracy");
    assert_eq!(s.teacher_cache_hit, Some(false));
    assert_eq!(s.tasks.len(), 1);
    let ner = &s.tasks[0];
    assert_eq!((ner.name.as_str(), ner.metric), ("ner", "entity_f1"));
    assert_eq!(ner.teacher_cache_hit, Some(false));
    assert!(ner.head_from_teacher);
    assert_eq!(ner.transfer_examples, 48);

    // The mean of the two tasks' dev metrics chose the checkpoints, each task's saved.
    assert_eq!(s.run.metric, "task_mean");
    assert_eq!(s.run.best_task_scores.len(), 2);
    let mean = (s.run.best_task_scores[0] + s.run.best_task_scores[1]) / 2.0;
    assert!((s.run.best_score - mean).abs() < 1e-12);
    let ner_dir = c.output.dir.join("best-ner");
    assert_eq!(s.run.task_dirs, [("ner".to_string(), ner_dir.clone())]);
    let sentence = Classifier::load(&s.run.best_dir, 32).unwrap();
    let tagger_student = Classifier::load(&ner_dir, 32).unwrap();
    assert_eq!(
        sentence.model.config().head,
        HeadKind::SequenceClassification
    );
    let t = tagger_student.model.config();
    assert_eq!(t.head, HeadKind::TokenClassification);
    assert_eq!(t.labels, ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]);
    assert_eq!(t.num_layers, 2);

    // `eval` of the saved tagger gives the score the run chose it by.
    let dev = Task::TokenClassification.read(&c.tasks[0].dev).unwrap();
    let r = evaluate(&tagger_student, &dev, 8).unwrap();
    assert_eq!(r.scores.primary_value(), s.run.best_task_scores[1]);

    // One encoder: the two checkpoints hold the same encoder tensors, bit for bit.
    let (a, b) = (
        tensors(&s.run.best_dir.join("model.safetensors")),
        tensors(&ner_dir.join("model.safetensors")),
    );
    let encoder: Vec<&String> = a.keys().filter(|n| !is_head(n)).collect();
    assert_eq!(
        encoder.len(),
        b.keys().filter(|n| !is_head(n)).count(),
        "{:?}",
        b.keys()
    );
    for name in encoder {
        assert_eq!(common::max_abs_diff(&a[name], &b[name]), 0.0, "{name}");
    }

    // Every tensor trained: the encoder (from teacher layers 0 and 2) and both heads.
    let (teacher, tagger_teacher) = (
        tensors(&fixture("tiny-bert").join("model.safetensors")),
        tensors(&tagger.join("model.safetensors")),
    );
    let last = tensors(&c.output.dir.join("last/model.safetensors"));
    let others = tensors(&c.output.dir.join("last/tasks.safetensors"));
    let from_teacher = |name: &str| teacher[&name.replace("layer.1.", "layer.2.")].clone();
    let unchanged: Vec<&String> = last
        .keys()
        .filter(|n| common::max_abs_diff(&last[*n], &from_teacher(n)) == 0.0)
        .collect();
    assert!(unchanged.is_empty(), "untrained: {unchanged:?}");
    let head = &others["tasks.ner.classifier.weight"];
    assert!(common::max_abs_diff(head, &tagger_teacher["classifier.weight"]) > 0.0);
    assert!(
        others.keys().all(|n| n.starts_with("tasks.ner.")),
        "{:?}",
        others.keys()
    );

    // The log holds each task's terms and dev metrics.
    let log = common::metrics_records(&c.output.dir);
    let has = |event: &str, key: &str| {
        log.iter()
            .any(|r| r["event"] == event && (r.get(key).is_some() || r["terms"].get(key).is_some()))
    };
    for key in ["hard_ce", "soft_kl", "ner.hard_ce", "ner.soft_kl"] {
        assert!(has("train", key), "no train record with {key}");
    }
    for key in ["dev_accuracy", "dev_ner.entity_f1", "dev_task_mean"] {
        assert!(has("eval", key), "no eval record with {key}");
    }

    // A second run reuses both teachers' caches.
    let mut again = c.clone();
    again.output.dir = dir.join("again");
    let s2 = distill(&again, false, false).unwrap();
    assert_eq!(s2.teacher_cache_hit, Some(true));
    assert_eq!(s2.tasks[0].teacher_cache_hit, Some(true));
}

#[test]
fn a_paused_multi_task_run_resumes_where_an_uninterrupted_one_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tagger = train_tagger(dir);
    let c = two_task_config(dir, &tagger);
    let run = |out: &str, resume: bool, stop: Option<usize>| {
        let mut c = c.clone();
        c.output.dir = dir.join(out);
        distill_until(&c, resume, false, stop).unwrap()
    };
    assert_eq!(run("whole", false, None).run.steps, 6);
    let paused = run("paused", false, Some(3));
    assert!(paused.run.interrupted);
    assert_eq!(run("paused", true, None).run.steps, 6);
    // Both heads and the shared encoder end where the uninterrupted run's do.
    for file in ["model.safetensors", "tasks.safetensors"] {
        let (a, b) = (
            tensors(&dir.join("whole/last").join(file)),
            tensors(&dir.join("paused/last").join(file)),
        );
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            let d = common::max_abs_diff(t, &b[name]);
            assert!(d < 1e-6, "{file}: {name} differs by {d} after resuming");
        }
    }
}

#[test]
fn what_several_tasks_cannot_do_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tagger = train_tagger(dir);
    let base = two_task_config(dir, &tagger);
    let refused = |change: &dyn Fn(&mut DistillConfig), needle: &str| {
        let mut c = base.clone();
        change(&mut c);
        let err = distill(&c, false, false).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!c.output.dir.exists(), "{needle}: {err}");
    };
    refused(&|c| c.tasks[0].name = "n/er".into(), "tasks[0].name");
    refused(
        &|c| c.tasks.push(c.tasks[0].clone()),
        "\"ner\" names two tasks",
    );
    refused(&|c| c.tasks[0].ratio = 0.0, "tasks[0].ratio");
    refused(&|c| c.distill.mutual = true, "distill.mutual and tasks");
    refused(
        &|c| {
            c.teacher.extra = vec![ExtraTeacher {
                dir: fixture("tiny-bert"),
                weight: 1.0,
            }]
        },
        "teacher.extra and tasks",
    );
    // Another vocabulary: the student reads one tokenizer.
    refused(
        &|c| c.tasks[0].teacher = fixture("tiny-mpnet"),
        "reads other tokens",
    );
    refused(
        &|c| {
            c.student = StudentSection::Bilstm(BiLstmStudent::default());
        },
        "a head per task on one encoder",
    );
    refused(
        &|c| c.tasks[0].train = dir.join("missing.txt"),
        "missing.txt",
    );
}
