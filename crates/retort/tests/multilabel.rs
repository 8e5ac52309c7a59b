//! Multi-label classification end to end on the tiny BERT: label sets in the data, a
//! sigmoid-per-label head saved with transformers' `problem_type`, binary cross-entropy,
//! micro/macro F1, sigmoid distillation (soft_bce), and softmax terms refused.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, WORDS};
use retort::distill::run::distill;
use retort::eval::evaluate;
use retort::objective::terms::{Term, TermKind};
use retort::task::Task;
use retort::train::config::{DistillConfig, StudentSection, TeacherLayersStudent, TrainConfig};
use retort::train::finetune::fine_tune;
use retort::Classifier;

/// Sentences whose labels are the set of marker words they hold: "good" → pos, "boring" →
/// neg, "music" → topic (any number of them, or none: `_`).
fn write_sets(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut text = String::from("sentence\tlabel\n");
    for i in 0..n {
        let words: Vec<&str> = (0..(3 + i % 4))
            .map(|j| WORDS[(i * 7 + j * 5) % WORDS.len()])
            .collect();
        let mut labels = Vec::new();
        for (word, label) in [("boring", "neg"), ("good", "pos"), ("music", "topic")] {
            if words.contains(&word) {
                labels.push(label);
            }
        }
        let labels = match labels.is_empty() {
            true => "_".to_string(),
            false => labels.join("|"),
        };
        text.push_str(&format!("{}\t{labels}\n", words.join(" ")));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn teacher_config(dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.init = fixture("tiny-bert");
    c.model.task = Task::MultiLabelClassification;
    c.model.max_len = 32;
    c.data.train = write_sets(dir, "train.tsv", 96);
    c.data.dev = write_sets(dir, "dev.tsv", 24);
    c.train.batch_size = 8;
    c.train.lr = 3e-3;
    c.train.epochs = 12;
    c.train.eval_every = 24;
    c.train.tune_thresholds = true;
    c.output.dir = dir.join("teacher");
    c
}

#[test]
fn a_multi_label_teacher_trains_saves_its_problem_type_and_predicts_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = teacher_config(dir);
    let s = fine_tune(&c, false, false).unwrap();
    assert_eq!(s.metric, "micro_f1");
    let best = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
    let config = best.model.config();
    assert!(config.multi_label);
    assert_eq!(config.labels, ["neg", "pos", "topic"]);
    assert_eq!(Task::of(config), Task::MultiLabelClassification);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.output.dir.join("best/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["problem_type"], "multi_label_classification");
    // Each label's threshold was chosen on dev after training, saved and read back.
    let chosen = s.label_thresholds.as_ref().expect("thresholds were chosen");
    assert_eq!(config.label_thresholds, chosen.thresholds);
    assert_eq!(json["label_thresholds"].as_array().unwrap().len(), 3);
    assert!(chosen.after >= chosen.before, "{chosen:?}");
    assert_eq!(json["architectures"][0], "BertForSequenceClassification");

    // The marker words are easy: after training it finds most of the sets. (Saying every label
    // for every sentence scores 0.56 on this dev set, saying none 0.)
    let dev = Task::MultiLabelClassification.read(&c.data.dev).unwrap();
    let report = evaluate(&best, &dev, 8).unwrap();
    let micro = report.scores.get("micro_f1").unwrap();
    assert!(micro > 0.9, "micro-F1 {micro}");
    assert!(report.scores.get("macro_f1").is_some() && report.scores.get("exact_set").is_some());

    // Predictions name the set and give each label's own probability.
    let out = Task::MultiLabelClassification
        .predict(&best, &["good music", "the plot"], 8)
        .unwrap();
    let probabilities = out[0]["probabilities"].as_object().unwrap();
    assert_eq!(probabilities.len(), 3);
    let chosen: Vec<&str> = out[0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for (label, p) in probabilities {
        let p = p.as_f64().unwrap();
        assert_eq!(chosen.contains(&label.as_str()), p > 0.5, "{label} {p}");
    }

    // Thresholds that do not fit the head are refused when the model is read.
    let mut broken = json.clone();
    broken["label_thresholds"] = serde_json::json!([0.5, 0.5]);
    let err = retort::model::ModelConfig::from_json(&broken).unwrap_err();
    assert!(
        format!("{err:?}").contains("one threshold per label"),
        "{err:?}"
    );

    // A label the model does not have is an error naming the file and line.
    std::fs::write(
        dir.join("bad.tsv"),
        "sentence\tlabel\ngood\tpos\nmusic\tpos|genre\n",
    )
    .unwrap();
    let bad = Task::MultiLabelClassification
        .read(&dir.join("bad.tsv"))
        .unwrap();
    let err = evaluate(&best, &bad, 8).unwrap_err().to_string();
    assert!(err.contains("bad.tsv:3") && err.contains("genre"), "{err}");
}

#[test]
fn a_multi_label_student_learns_by_soft_bce_and_softmax_terms_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = teacher_config(dir);
    fine_tune(&t, false, false).unwrap();
    let mut c = DistillConfig::default();
    c.teacher.dir = t.output.dir.join("best");
    c.teacher.max_len = 32;
    c.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![0, 2],
        ..TeacherLayersStudent::default()
    });
    c.data.train = t.data.train.clone();
    c.data.dev = t.data.dev.clone();
    c.distill.cache_dir = dir.join("cache");
    c.train.batch_size = 8;
    c.train.max_steps = 6;
    c.train.eval_every = 6;
    c.output.dir = dir.join("student");
    // The default terms (hard_ce + soft_kl) read a softmax: refused before anything is written.
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("soft_kl") && err.contains("soft_bce"), "{err}");
    assert!(!c.output.dir.exists());

    c.distill.terms = Some(vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftBce, 0.5),
    ]);
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.metric, "micro_f1");
    let first = common::first_train_record(&c.output.dir);
    let term = |k: &str| first["terms"][k].as_f64().unwrap();
    assert!(term("hard_ce") > 0.0 && term("soft_bce") > 0.0, "{first}");
    let student = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
    assert!(student.model.config().multi_label);
    // Without train.tune_thresholds the student does not inherit the teacher's thresholds:
    // 0.5 for every label. With it, it gets its own.
    assert!(student.model.config().label_thresholds.is_empty());
    assert!(s.run.label_thresholds.is_none());
    c.train.tune_thresholds = true;
    c.output.dir = dir.join("student-tuned");
    let s = distill(&c, false, false).unwrap();
    let tuned = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
    assert_eq!(
        tuned.model.config().label_thresholds,
        s.run.label_thresholds.unwrap().thresholds
    );

    // Other tasks have no thresholds to tune: refused before anything is written.
    let other = dir.join("sentences");
    std::fs::create_dir(&other).unwrap();
    let mut sentences = common::tiny_distill_config(&other);
    sentences.output.dir = other.join("run");
    sentences.train.tune_thresholds = true;
    let err = distill(&sentences, false, false).unwrap_err().to_string();
    assert!(err.contains("tune_thresholds"), "{err}");
    assert!(!sentences.output.dir.exists());
}
