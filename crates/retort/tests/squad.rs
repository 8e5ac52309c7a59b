//! The SQuAD v1.1 reader and metric on the real files (`../shared/data/squad`, or the
//! directory in `RETORT_SQUAD_DIR`). Ignored by default: they need the data and read 35 MB.
//!
//!     cargo test -p retort --test squad -- --ignored --nocapture

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use retort::task::squad::{read_squad, Gold, Question};
use retort::task::squad_metric::score;

fn squad_dir() -> PathBuf {
    match std::env::var_os("RETORT_SQUAD_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/squad"),
    }
}

fn read(name: &str) -> Vec<Question> {
    let path = squad_dir().join(name);
    let questions = read_squad(&path, Gold::Required).unwrap_or_else(|e| panic!("{e}"));
    let paragraphs = questions.last().map_or(0, |q| q.paragraph + 1);
    let ids: HashSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
    let answers: usize = questions.iter().map(|q| q.answers.len()).sum();
    println!(
        "{name}: {} questions, {paragraphs} paragraphs, {answers} answers, {} distinct ids",
        questions.len(),
        ids.len()
    );
    for q in &questions {
        for a in &q.answers {
            let span: String = q
                .context
                .chars()
                .skip(a.start)
                .take(a.end() - a.start)
                .collect();
            assert_eq!(span, a.text, "{}", q.id);
        }
    }
    questions
}

#[test]
#[ignore = "needs ../shared/data/squad"]
fn the_real_files_read_whole() {
    let train = read("train-v1.1.json");
    assert_eq!(train.len(), 87_599);
    assert_eq!(train.last().map(|q| q.paragraph + 1), Some(18_896));
    let dev = read("dev-v1.1.json");
    assert_eq!(dev.len(), 10_570);
}

#[test]
#[ignore = "needs ../shared/data/squad"]
fn gold_answers_score_100_on_dev() {
    let dev = read("dev-v1.1.json");
    let gold: HashMap<String, String> = dev
        .iter()
        .map(|q| (q.id.clone(), q.answers[0].text.clone()))
        .collect();
    let scores = score(&dev, &gold).unwrap();
    assert_eq!(
        (scores.exact_match, scores.f1, scores.missing),
        (100.0, 100.0, 0)
    );
}
