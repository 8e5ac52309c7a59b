//! Extractive question answering end to end on the tiny fixture: SQuAD reading, windows over
//! long contexts, span decoding across windows, the SQuAD metric, `retort train` / `distill`
//! (span soft-KL through the teacher cache) / eval / export / predict. Each run takes seconds.

mod common;

use std::path::{Path, PathBuf};

use common::fixture;
use retort::distill::run::distill;
use retort::eval::evaluate;
use retort::model::HeadKind;
use retort::task::{predict_units, Task};
use retort::train::config::{DistillConfig, StudentSection, TeacherLayersStudent, TrainConfig};
use retort::train::finetune::fine_tune;
use retort::Classifier;

const MAX_LEN: usize = 48;

/// Filler words of the fixture's vocabulary, and the places a question asks for.
const FILLER: [&str; 12] = [
    "the", "film", "was", "good", "music", "in", "night", "actor", "story", "very", "long", ".",
];
const PLACES: [&str; 2] = ["paris", "cafe"];

/// A context of `len` words with one place `at` word `at`; its answer's character span.
fn context(i: usize, len: usize, at: usize) -> (String, usize, &'static str) {
    let mut words = Vec::new();
    let place = PLACES[i % 2];
    let mut start = 0;
    for j in 0..len {
        let w = if j == at {
            place
        } else {
            FILLER[(i * 5 + j * 3) % FILLER.len()]
        };
        if j == at {
            start = words.iter().map(|w: &&str| w.len() + 1).sum();
        }
        words.push(w);
    }
    (words.join(" "), start, place)
}

/// A SQuAD v1.1 file of `n` questions "where was it ?" whose answer is the one place in the
/// context. Every fourth context is long enough to need several windows at `MAX_LEN`, with the
/// place near its end.
fn write_squad(dir: &Path, name: &str, n: usize) -> PathBuf {
    let paragraphs: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let long = i % 4 == 3;
            let len = if long { 70 } else { 8 + i % 10 };
            let at = if long { 60 + i % 5 } else { (i * 3) % len };
            let (text, start, place) = context(i, len, at);
            serde_json::json!({
                "context": text,
                "qas": [{
                    "id": format!("q{i}"),
                    "question": "where was it ?",
                    "answers": [{"text": place, "answer_start": start}]
                }]
            })
        })
        .collect();
    let json =
        serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]});
    let path = dir.join(name);
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn teacher_config(dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.init = fixture("tiny-bert");
    c.model.task = Task::QuestionAnswering;
    c.model.max_len = MAX_LEN;
    c.data.train = write_squad(dir, "train.json", 96);
    c.data.dev = write_squad(dir, "dev.json", 24);
    c.train.epochs = 0;
    c.train.max_steps = 300;
    c.train.batch_size = 8;
    c.train.lr = 3e-3;
    c.train.eval_every = 100;
    c.train.log_every = 50;
    c.output.dir = dir.join("teacher");
    c
}

#[test]
fn a_reader_trains_distils_evaluates_exports_and_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let c = teacher_config(tmp.path());
    let s = fine_tune(&c, false, false).unwrap();
    assert_eq!(s.metric, "f1");
    let teacher_dir = c.output.dir.join("best");
    let teacher = Classifier::load(&teacher_dir, MAX_LEN).unwrap();
    assert_eq!(teacher.model.config().head, HeadKind::QuestionAnswering);
    assert_eq!(teacher.model.config().labels, ["start", "end"]);

    // The dev set scored by `eval` (windows built from the raw questions) agrees with the
    // trainer's own dev evaluation, and the reader has learned to point at the place, also in
    // the long contexts whose answer lies in a later window only.
    let dev = Task::QuestionAnswering.read(&c.data.dev).unwrap();
    let r = evaluate(&teacher, &dev, 8).unwrap();
    assert!(r.scores.primary_value() > 0.9, "{:?}", r.scores);
    assert!((r.scores.primary_value() - s.best_score).abs() < 1e-12);
    let long: Vec<_> = dev.items.iter().skip(3).step_by(4).collect();
    for item in &long {
        let tok = &teacher.tokenizer;
        let cutter =
            retort::text::windows::WindowTokenizer::new(tok, retort::task::window_params(MAX_LEN))
                .unwrap();
        let retort::task::Input::Question { question, context } = &item.input else {
            panic!()
        };
        assert!(cutter.encode(question, context).unwrap().windows.len() > 1);
    }
    let metrics = std::fs::read_to_string(c.output.dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"dev_exact_match\""), "{metrics}");

    // Distil a one-layer student on the start and end distributions of every window.
    let mut d = DistillConfig::default();
    d.teacher.dir = teacher_dir.clone();
    d.teacher.max_len = MAX_LEN;
    d.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![1],
        ..TeacherLayersStudent::default()
    });
    d.data.train = c.data.train.clone();
    d.data.dev = c.data.dev.clone();
    d.distill.cache_dir = tmp.path().join("cache");
    d.train = c.train.clone();
    d.output.dir = tmp.path().join("student");
    let ds = distill(&d, false, false).unwrap();
    assert_eq!(ds.run.metric, "f1");
    assert!((ds.teacher_score - r.scores.primary_value()).abs() < 1e-12);
    let student = Classifier::load(&d.output.dir.join("best"), MAX_LEN).unwrap();
    assert_eq!(student.model.config().num_layers, 1);
    assert!(ds.run.best_score > 0.5, "{:?}", ds.run);
    let student_eval = evaluate(&student, &dev, 8).unwrap();
    assert!((student_eval.scores.primary_value() - ds.run.best_score).abs() < 1e-12);
    // The cache holds a start and an end row per training window, as wide as the longest.
    let windows = ds.transfer_examples;
    let logits =
        candle_core::safetensors::load(ds.teacher_cache_path.unwrap(), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(logits["logits"].dims(), [2 * windows, MAX_LEN]);
    assert!(
        windows > 96,
        "long contexts give more windows than questions: {windows}"
    );
    // `compare`: the task's metric and the answers' agreement with the teacher's.
    let opts = retort::report::measure::MeasureOptions {
        batch_size: 8,
        latency_samples: 2,
        warmup: 0,
    };
    let report = retort::report::compare(&teacher, &[student], &dev, Vec::new(), &opts).unwrap();
    assert_eq!(report.metric, "f1");
    assert_eq!(report.models[0].agreement, 1.0);
    assert_eq!(report.models[0].score, r.scores.primary_value());
    assert!((report.models[1].score - ds.run.best_score).abs() < 1e-12);
    assert!((0.0..=1.0).contains(&report.models[1].agreement));
    // Unlabelled text cannot be a transfer set for questions.
    d.augment.unlabelled = Some(c.data.train.clone());
    d.output.dir = tmp.path().join("student-unlabelled");
    let e = distill(&d, false, false).unwrap_err().to_string();
    assert!(e.contains("pair") || e.contains("question"), "{e}");

    // Exported as BertForQuestionAnswering, it reloads with the same answers.
    let out = tmp.path().join("export");
    retort::export::export(&teacher, &out, retort::export::Precision::AsLoaded).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForQuestionAnswering");
    let again = Classifier::load(&out, MAX_LEN).unwrap();
    let inputs = dev.inputs();
    assert_eq!(
        predict_units(&again, &inputs, 8).unwrap(),
        predict_units(&teacher, &inputs, 8).unwrap()
    );

    // Raw questions: the answer is cut from the context by character offsets, right after
    // multi-byte characters too.
    let ctx = "Élan — the actor was in paris at night";
    let body = serde_json::json!({"question": "where was it ?", "context": ctx}).to_string();
    let p = Task::QuestionAnswering
        .predict(&teacher, &[&body], 4)
        .unwrap();
    let (start, end) = (
        p[0]["start"].as_u64().unwrap() as usize,
        p[0]["end"].as_u64().unwrap() as usize,
    );
    let cut: String = ctx.chars().skip(start).take(end - start).collect();
    assert_eq!(p[0]["answer"], cut.as_str());
    assert_eq!(p[0]["answer"], "paris", "{p:?}");
    let score = p[0]["score"].as_f64().unwrap();
    assert!(score > 0.0 && score <= 1.0, "{score}");
    let e = Task::QuestionAnswering
        .predict(&teacher, &["where is it?"], 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"question\""), "{e}");
    // Agreement of a model with itself is 1.
    let units = predict_units(&teacher, &inputs, 8).unwrap();
    assert_eq!(
        Task::QuestionAnswering
            .agreement(&[], &inputs, &units, &units)
            .unwrap(),
        1.0
    );
}

#[test]
fn a_wrong_answer_offset_names_the_question() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.json");
    let json = serde_json::json!({"data": [{"title": "t", "paragraphs": [{"context": "the film was good",
        "qas": [{"id": "q7", "question": "what ?", "answers": [{"text": "film", "answer_start": 5}]}]}]}]});
    std::fs::write(&path, json.to_string()).unwrap();
    let e = Task::QuestionAnswering.read(&path).unwrap_err().to_string();
    assert!(e.contains("q7"), "{e}");
}
