//! Sequence classification: one label per text or sentence pair (`*ForSequenceClassification`).
//!
//! Data: GLUE-style TSV / CSV / JSONL ([`crate::text::Dataset`]); a file with the two columns
//! of a pair (`sentence1`, `sentence2`) gives pairs, encoded `[CLS] first [SEP] second [SEP]`.
//! One unit per example, read from the first token's row. Metrics: accuracy (primary) and
//! macro-F1.

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
                input: match e.pair {
                    None => Input::Text(e.text),
                    Some(second) => Input::Pair(e.text, second),
                },
                gold: vec![e.label],
                line: e.line,
                ..Default::default()
            })
            .collect(),
    })
}

/// Texts and pairs are each tokenised in one batch, then put back in input order.
pub fn encode(tokenizer: &TextTokenizer, inputs: &[&Input]) -> Result<Vec<(Encoded, Rows)>> {
    let mut texts = Vec::new();
    let mut pairs = Vec::new();
    for input in inputs {
        match input {
            Input::Text(t) => texts.push(t.as_str()),
            Input::Pair(a, b) => pairs.push((a.as_str(), b.as_str())),
            Input::Words(_) | Input::Question { .. } => {
                return Err(Error::Invalid(
                    "a sequence classifier reads texts or sentence pairs, not word-split (CoNLL) data or questions".into(),
                ))
            }
        }
    }
    let mut texts = tokenizer.encode_batch(&texts)?.into_iter();
    let mut pairs = tokenizer.encode_pair_batch(&pairs)?.into_iter();
    inputs
        .iter()
        .map(|input| {
            let e = match input {
                Input::Pair(..) => pairs.next(),
                _ => texts.next(),
            };
            e.map(|e| (e, Rows::sequence()))
                .ok_or_else(|| Error::Tokenizer("the tokenizer returned too few encodings".into()))
        })
        .collect()
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
