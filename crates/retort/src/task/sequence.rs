//! Sequence classification: one label per text (`*ForSequenceClassification`).
//!
//! Data: GLUE-style TSV / CSV / JSONL ([`crate::text::Dataset`]). One unit per example, read
//! from the first token's row. Metrics: accuracy (primary) and macro-F1.

use std::path::Path;

use super::{metrics, Corpus, Input, Item, Rows, Scores};
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::text::{Dataset, Encoded, TextTokenizer};

pub const PRIMARY: &str = "accuracy";

pub fn read(path: &Path) -> Result<Corpus> {
    let data = Dataset::read(path)?;
    Ok(Corpus {
        path: data.path,
        items: data
            .examples
            .into_iter()
            .map(|e| Item {
                input: Input::Text(e.text),
                gold: vec![e.label],
                line: e.line,
            })
            .collect(),
    })
}

pub fn encode(tokenizer: &TextTokenizer, inputs: &[&Input]) -> Result<Vec<(Encoded, Rows)>> {
    let texts = inputs
        .iter()
        .map(|i| match i {
            Input::Text(t) => Ok(t.as_str()),
            Input::Words(_) => Err(Error::Invalid(
                "a sequence classifier reads texts, not word-split (CoNLL) data".into(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(tokenizer
        .encode_batch(&texts)?
        .into_iter()
        .map(|e| (e, Rows::sequence()))
        .collect())
}

pub fn score(
    labels: &[String],
    predicted: &[Vec<usize>],
    gold: &[Vec<Option<usize>>],
) -> Result<Scores> {
    let (pred, gold): (Vec<usize>, Vec<usize>) = predicted
        .iter()
        .zip(gold)
        .flat_map(|(p, g)| p.iter().zip(g))
        .filter_map(|(&p, g)| g.map(|g| (p, g)))
        .unzip();
    Ok(Scores {
        primary: PRIMARY,
        values: vec![
            (PRIMARY, metrics::accuracy(&pred, &gold)),
            ("macro_f1", metrics::macro_f1(&pred, &gold, labels.len())),
        ],
        entities: None,
    })
}

pub fn predict(
    classifier: &Classifier,
    texts: &[&str],
    batch_size: usize,
) -> Result<Vec<serde_json::Value>> {
    Ok(classifier
        .predict(texts, batch_size)?
        .into_iter()
        .map(|p| serde_json::to_value(p).expect("predictions serialise"))
        .collect())
}
