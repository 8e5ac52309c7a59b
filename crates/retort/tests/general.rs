//! General distillation (`distill.stage = "general"`, TinyBERT's first stage) on the tiny
//! fixtures: a fresh student learns the teacher's hidden states and attention maps on plain
//! text, every encoder tensor changes, the dev text's loss chooses `best/`, the checkpoint is
//! a base model, and a task stage starts from it with intermediate terms (same tokens).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{fixture, max_abs_diff};
use retort::distill::general::general_distill;
use retort::distill::run::distill;
use retort::objective::terms::{Term, TermKind};
use retort::train::config::{
    BiLstmStudent, DistillConfig, EmbeddingInit, FreshStudent, PretrainedStudent, Stage,
    StudentSection,
};
use retort::Classifier;

const WORDS: [&str; 12] = [
    "good", "music", "the", "ending", "plot", "flat", "story", "quiet", "film", "boring", "was",
    "not",
];

/// `n` lines of plain text in the fixtures' vocabulary.
fn write_text(dir: &Path, name: &str, n: usize, offset: usize) -> PathBuf {
    let lines: Vec<String> = (offset..offset + n)
        .map(|i| {
            (0..(3 + i % 9))
                .map(|j| WORDS[(i * 7 + j * 5) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A general stage from `teacher` into a fresh 2 × 16 student (narrower: projections).
fn general_config(dir: &Path, teacher: &str) -> DistillConfig {
    let mut c = DistillConfig::default();
    c.teacher.dir = fixture(teacher);
    c.teacher.max_len = 32;
    c.student = StudentSection::Fresh(FreshStudent {
        layers: 2,
        hidden_size: 16,
        heads: 4,
        intermediate_size: 32,
        embeddings: EmbeddingInit::Random,
    });
    c.data.train = write_text(dir, "train.txt", 64, 0);
    c.data.dev = write_text(dir, "dev.txt", 16, 1000);
    c.distill.stage = Stage::General;
    c.distill.terms = Some(vec![
        Term::new(TermKind::HiddenMse, 1.0),
        Term::new(TermKind::AttentionMse, 1.0),
    ]);
    c.train.batch_size = 8;
    c.train.lr = 1e-3;
    c.train.max_steps = 4;
    c.train.eval_every = 2;
    c.output.dir = dir.join("general");
    c
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn eval_losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "eval")
        .map(|l| {
            assert_eq!(l["metric"], "loss");
            assert!(l["dev_hidden_mse"].is_number() && l["dev_attention_mse"].is_number());
            l["dev_loss"].as_f64().unwrap()
        })
        .collect()
}

#[test]
fn general_distillation_trains_every_encoder_tensor_and_saves_a_base_model() {
    for (teacher, base_class, head) in [
        ("tiny-bert", "BertModel", ["classifier.", "bert.pooler."]),
        ("tiny-mpnet", "MPNetModel", ["classifier.", "classifier."]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let c = general_config(tmp.path(), teacher);
        // The student before training: the same fresh initialisation, from the same seed.
        let t = Classifier::load(&c.teacher.dir, 32).unwrap();
        let initial = retort::distill::run::build_student(&c, &t, &[]).unwrap();
        let before: HashMap<String, Tensor> = initial
            .model
            .params()
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_tensor().copy().unwrap()))
            .collect();

        let s = general_distill(&c, false, false).unwrap();
        assert_eq!((s.run.steps, s.run.metric), (4, "loss"));
        assert_eq!((s.train_texts, s.dev_texts), (64, 16));
        let losses = eval_losses(&c.output.dir);
        assert_eq!(losses.len(), 2);
        // The lowest dev loss chose best/.
        let lowest = losses.iter().cloned().fold(f64::INFINITY, f64::min);
        assert_eq!(s.run.best_score, lowest);

        // A base model: no head in the file, the base class in config.json, and loading it
        // gives a fresh head, as any pretrained checkpoint does.
        for checkpoint in ["best", "last"] {
            let dir = c.output.dir.join(checkpoint);
            let config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(config["architectures"][0], base_class, "{teacher}");
            let saved = tensors(&dir.join("model.safetensors"));
            assert!(
                saved.keys().all(|k| !head.iter().any(|p| k.starts_with(p))),
                "{teacher}: {:?}",
                saved.keys()
            );
            assert!(Classifier::load(&dir, 32).unwrap().report.fresh_head);
        }

        // Every encoder tensor moved away from its initial value in 4 steps.
        let after = tensors(&c.output.dir.join("last/model.safetensors"));
        let encoder: Vec<&String> = before
            .keys()
            .filter(|k| !head.iter().any(|p| k.starts_with(p)))
            .collect();
        assert_eq!(encoder.len(), after.len(), "{teacher}");
        let unchanged: Vec<&&String> = encoder
            .iter()
            .filter(|k| max_abs_diff(&before[**k], &after[**k]) == 0.0)
            .collect();
        assert!(unchanged.is_empty(), "{teacher}: unchanged {unchanged:?}");
    }
}

#[test]
fn a_general_run_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = general_config(tmp.path(), "tiny-mpnet");
    c.train.max_steps = 2;
    general_distill(&c, false, false).unwrap();
    // A new run into the same directory is refused; --resume continues to the new limit.
    let err = general_distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    c.train.max_steps = 4;
    let s = general_distill(&c, true, false).unwrap();
    assert_eq!(s.run.steps, 4);
    assert_eq!(eval_losses(&c.output.dir).len(), 2);
}

#[test]
fn a_task_stage_starts_from_the_general_student_with_intermediate_terms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let g = general_config(dir, "tiny-bert");
    general_distill(&g, false, false).unwrap();

    // The task stage: the tiny BERT's labelled task, the general student as a pretrained
    // student; it reads the teacher's tokens, so hidden states are matched too.
    let mut c = DistillConfig::default();
    c.teacher.dir = fixture("tiny-bert");
    c.teacher.max_len = 32;
    c.student = StudentSection::Pretrained(PretrainedStudent {
        dir: g.output.dir.join("best"),
    });
    let mut tsv = String::from("sentence\tlabel\n");
    for i in 0..48 {
        let label = ["negative", "neutral", "positive"][i % 3];
        tsv.push_str(&format!(
            "{} {}\t{label}\n",
            WORDS[i % 12],
            WORDS[(i * 5) % 12]
        ));
    }
    std::fs::write(dir.join("task.tsv"), tsv).unwrap();
    c.data.train = dir.join("task.tsv");
    c.data.dev = dir.join("task.tsv");
    c.distill.cache_dir = dir.join("cache");
    c.distill.terms = Some(vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
        Term::new(TermKind::HiddenMse, 1.0),
    ]);
    c.train.batch_size = 8;
    c.train.max_steps = 3;
    c.train.eval_every = 3;
    c.output.dir = dir.join("task");
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    let best = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
    assert!(!best.report.fresh_head);
    assert_eq!(best.model.config().hidden_size, 16);
    assert_eq!(
        best.model.config().labels,
        vec!["negative", "neutral", "positive"]
    );
    let first_train = std::fs::read_to_string(c.output.dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["event"] == "train")
        .unwrap();
    assert!(first_train["terms"]["hidden_mse"].is_number());
}

#[test]
fn what_the_general_stage_cannot_do_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let refused = |c: &DistillConfig, expect: &[&str]| {
        let err = general_distill(c, false, false).unwrap_err().to_string();
        assert!(expect.iter().all(|e| err.contains(e)), "{err}");
        assert!(!c.output.dir.exists(), "{err}: output written");
    };
    let base = general_config(dir, "tiny-bert");

    // A logit term needs labels or a head.
    let mut c = base.clone();
    c.distill.terms = Some(vec![
        Term::new(TermKind::HiddenMse, 1.0),
        Term::new(TermKind::SoftKl, 1.0),
    ]);
    refused(&c, &["distill.stage", "soft_kl"]);

    // A labelled table is not plain text.
    let mut c = base.clone();
    std::fs::write(dir.join("train.tsv"), "sentence\tlabel\ngood\t1\n").unwrap();
    c.data.train = dir.join("train.tsv");
    refused(&c, &["data.train", "one text per line"]);

    // Augmentation rewrites a task's sentences; here the text is data.train itself.
    let mut c = base.clone();
    c.augment.multiplier = 2;
    refused(&c, &["augment.multiplier"]);

    // A BiLSTM has no layers to match.
    let mut c = base.clone();
    c.student = StudentSection::Bilstm(BiLstmStudent::default());
    refused(&c, &["fresh", "teacher-layers"]);

    // An empty text file.
    let mut c = base.clone();
    std::fs::write(dir.join("empty.txt"), "\n\n").unwrap();
    c.data.train = dir.join("empty.txt");
    refused(&c, &["empty"]);

    // The task-stage entry point says where a general stage runs.
    let err = distill(&base, false, false).unwrap_err().to_string();
    assert!(err.contains("general_distill"), "{err}");
}
