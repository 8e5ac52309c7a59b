//! Sentence-pair classification (the shape of GLUE's RTE, MRPC, MNLI) on the tiny fixture: a
//! pair TSV is read as pairs and encoded `[CLS] first [SEP] second [SEP]` with token types,
//! one row per example; a pair model trains, distils, evaluates and compares; augmentation,
//! which writes single texts, is refused for pairs. Each run takes a fraction of a second.

mod common;

use std::path::{Path, PathBuf};

use common::fixture;
use retort::distill::run::distill;
use retort::eval::evaluate;
use retort::report::measure::MeasureOptions;
use retort::task::{Input, Rows, Task};
use retort::train::config::{DistillConfig, StudentSection, TeacherLayersStudent, TrainConfig};
use retort::train::finetune::fine_tune;
use retort::Classifier;

const LABELS: [&str; 3] = ["negative", "neutral", "positive"];

fn labels() -> Vec<String> {
    LABELS.map(String::from).to_vec()
}

#[test]
fn a_pair_tsv_is_read_as_pairs_and_encoded_with_token_types() {
    let task = Task::SequenceClassification;
    let corpus = task.read(&fixture("pairs/tiny-pairs.tsv")).unwrap();
    assert_eq!(corpus.len(), 6);
    assert!(corpus.has_pairs());
    assert_eq!(corpus.texts(), None, "pairs are not single texts");
    assert_eq!(
        corpus.items[0].input,
        Input::Pair("The film was good".into(), "The music was great".into())
    );
    assert_eq!(corpus.items[0].line, 2);

    let tok = Classifier::load(&fixture("tiny-bert"), 32)
        .unwrap()
        .tokenizer;
    let data = task.data(&tok, &corpus, &labels()).unwrap();
    assert_eq!(data.len(), corpus.len());
    assert!(data.rows.iter().all(|r| *r == Rows::sequence()));
    assert_eq!(data.gold[0], vec![Some(2)]);
    let e = &data.examples[0];
    let tokens: Vec<String> = e.ids.iter().map(|&i| tok.token(i).unwrap()).collect();
    assert_eq!(
        tokens,
        ["[CLS]", "the", "film", "was", "good", "[SEP]", "the", "music", "was", "great", "[SEP]"]
    );
    assert_eq!(e.type_ids, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert_eq!(
        *e,
        tok.encode_pair("The film was good", "The music was great")
            .unwrap()
    );

    // Pairs and single texts in one call keep their order, each encoded as it is.
    let single = Input::Text("the film".into());
    let both = task
        .encode(&tok, &[&single, &corpus.items[1].input])
        .unwrap();
    assert_eq!(both[0].0, tok.encode("the film").unwrap());
    assert_eq!(both[1].0, data.examples[1]);
}

const WORDS: [&str; 10] = [
    "good", "music", "the", "ending", "plot", "flat", "story", "film", "boring", "was",
];

/// A pair TSV in the fixture's vocabulary; the label follows the second text's first word.
fn write_pairs(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut text = String::from("sentence1\tsentence2\tlabel\n");
    let sentence = |i: usize, len: usize| -> String {
        let words: Vec<&str> = (0..len)
            .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
            .collect();
        words.join(" ")
    };
    for i in 0..n {
        let label = LABELS[(i * 7 + 1) % WORDS.len() % 3];
        text.push_str(&format!(
            "{}\t{}\t{label}\n",
            sentence(i, 3 + i % 4),
            sentence(i + 1, 2 + i % 3)
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn teacher_config(dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.init = fixture("tiny-bert");
    c.model.max_len = 32;
    c.data.train = write_pairs(dir, "train.tsv", 48);
    c.data.dev = write_pairs(dir, "dev.tsv", 16);
    c.train.epochs = 0;
    c.train.max_steps = 6;
    c.train.batch_size = 8;
    c.train.eval_every = 3;
    c.output.dir = dir.join("teacher");
    c
}

fn distill_config(dir: &Path, teacher: &Path) -> DistillConfig {
    let mut c = DistillConfig::default();
    c.teacher.dir = teacher.to_path_buf();
    c.teacher.max_len = 32;
    c.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![0, 2],
        ..TeacherLayersStudent::default()
    });
    c.data.train = dir.join("train.tsv");
    c.data.dev = dir.join("dev.tsv");
    c.distill.cache_dir = dir.join("cache");
    c.train.batch_size = 8;
    c.train.max_steps = 3;
    c.train.eval_every = 3;
    c.output.dir = dir.join("student");
    c
}

#[test]
fn a_pair_model_trains_distils_evaluates_and_compares() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = teacher_config(dir);
    let run = fine_tune(&t, false, false).unwrap();
    assert_eq!(run.steps, 6);
    let teacher_dir = dir.join("teacher/best");

    let mut c = distill_config(dir, &teacher_dir);
    let summary = distill(&c, false, false).unwrap();
    assert_eq!(summary.transfer_examples, 48);
    assert_eq!(summary.teacher_cache_hit, Some(false));

    let teacher = Classifier::load(&teacher_dir, 32).unwrap();
    let student = Classifier::load(&dir.join("student/best"), 32).unwrap();
    let dev = Task::SequenceClassification.read(&t.data.dev).unwrap();
    let eval = evaluate(&student, &dev, 8).unwrap();
    assert_eq!(eval.count, 16);
    assert!((0.0..=1.0).contains(&eval.scores.primary_value()));
    let opts = MeasureOptions {
        batch_size: 8,
        latency_samples: 2,
        warmup: 0,
    };
    let report = retort::report::compare(&teacher, &[student], &dev, Vec::new(), &opts).unwrap();
    assert_eq!(report.examples, 16);
    assert_eq!(report.models[0].agreement, 1.0);
    assert_eq!(
        report.models[0].score,
        evaluate(&teacher, &dev, 8).unwrap().scores.primary_value()
    );

    // Augmentation and unlabelled text make single texts: refused for pairs, before any work.
    c.output.dir = dir.join("augmented");
    c.augment.multiplier = 2;
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(
        err.contains("augmentation of sentence pairs is not supported yet"),
        "{err}"
    );
    c.augment.multiplier = 0;
    c.augment.unlabelled = Some(dir.join("more.txt"));
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(
        err.contains("unlabelled pairs are not supported yet"),
        "{err}"
    );
    assert!(!dir.join("augmented").exists());
}
