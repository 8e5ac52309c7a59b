//! Token classification: one label per word (`*ForTokenClassification`), e.g. named entities.
//!
//! Data: CoNLL column files ([`super::conll`]), IOB2 tags. Sub-word alignment: the first
//! token of each word carries the word's label (its row); the word's other tokens have no
//! row, so they count in no loss and no metric. Metric: entity-level micro F1 with CoNLL
//! semantics ([`super::entities`]), primary, with precision, recall and per-type scores.

use std::path::Path;

use serde_json::json;

use super::{conll, entities, Corpus, Input, Item, Rows, Scores};
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::text::{Encoded, TextTokenizer, WordEncoded};

pub const PRIMARY: &str = "entity_f1";

/// The tag of words outside any entity.
const OUTSIDE: &str = "O";

pub fn read(path: &Path) -> Result<Corpus> {
    let sentences = conll::read_conll(path)?;
    Ok(Corpus {
        path: path.to_path_buf(),
        items: sentences
            .into_iter()
            .map(|s| Item {
                gold: s.tags.into_iter().map(Some).collect(),
                input: Input::Words(s.words),
                line: s.line,
                ..Default::default()
            })
            .collect(),
    })
}

/// The tag set of a corpus: "O", then B- and I- of every entity type it uses ([`conll::tag_set`]).
pub fn labels_in(corpus: &Corpus) -> Vec<String> {
    conll::tag_set(
        corpus
            .items
            .iter()
            .flat_map(|i| i.gold.iter().flatten())
            .map(String::as_str),
    )
}

/// The index of "O" among `labels` (0 when there is none).
pub fn outside(labels: &[String]) -> usize {
    labels.iter().position(|l| l == OUTSIDE).unwrap_or(0)
}

/// Word-split inputs (labelled data) are encoded as they are split. A raw text (unlabelled
/// transfer text, or `predict`'s input) is split into words by the tokenizer's own
/// pre-tokenizer, as `predict` does: its units are those words, numbered in order.
pub fn encode(tokenizer: &TextTokenizer, inputs: &[&Input]) -> Result<Vec<(Encoded, Rows)>> {
    let words: Option<Vec<Vec<String>>> = inputs
        .iter()
        .map(|i| match i {
            Input::Words(w) => Some(w.clone()),
            Input::Text(_) | Input::Pair(..) | Input::Question { .. } => None,
        })
        .collect();
    match words {
        // All word-split (labelled data): one batched call.
        Some(sentences) => encode_words(tokenizer, &sentences),
        None => inputs
            .iter()
            .map(|i| match i {
                Input::Text(t) => Ok(raw_text_rows(tokenizer.encode_with_offsets(t)?.0)),
                Input::Words(w) => Ok(encode_words(tokenizer, std::slice::from_ref(w))?.remove(0)),
                Input::Pair(..) | Input::Question { .. } => Err(Error::Invalid(
                    "a token classifier tags the words of one text, not sentence pairs or questions".into(),
                )),
            })
            .collect(),
    }
}

/// Word-split sentences with a row at the first piece of each word.
fn encode_words(
    tokenizer: &TextTokenizer,
    sentences: &[Vec<String>],
) -> Result<Vec<(Encoded, Rows)>> {
    Ok(tokenizer
        .encode_words(sentences)?
        .into_iter()
        .map(|w| {
            let rows = rows_of(&w);
            (w.encoded, rows)
        })
        .collect())
}

/// A raw text's rows: the first token of each word that kept one, units numbered in order.
fn raw_text_rows(w: WordEncoded) -> (Encoded, Rows) {
    let positions: Vec<u32> = w.first_tokens().into_iter().map(|(p, _)| p).collect();
    let units = (0..positions.len() as u32).collect();
    (w.encoded, Rows { positions, units })
}

/// One row per word that kept a token: its first token.
fn rows_of(w: &WordEncoded) -> Rows {
    let (positions, units) = w.first_tokens().into_iter().unzip();
    Rows { positions, units }
}

/// Unit label ids as tags; a unit without gold counts as "O".
fn tags(labels: &[String], ids: impl Iterator<Item = Option<usize>>) -> Vec<&str> {
    ids.map(|i| i.map_or(OUTSIDE, |i| labels[i].as_str()))
        .collect()
}

pub fn score(
    labels: &[String],
    predicted: &[Vec<usize>],
    gold: &[Vec<Option<usize>>],
) -> Result<Scores> {
    let pred: Vec<Vec<&str>> = predicted
        .iter()
        .map(|p| tags(labels, p.iter().map(|&i| Some(i))))
        .collect();
    let gold: Vec<Vec<&str>> = gold
        .iter()
        .map(|g| tags(labels, g.iter().copied()))
        .collect();
    let scores = entities::score(&gold, &pred)?;
    let (words, right) = pred
        .iter()
        .zip(&gold)
        .flat_map(|(p, g)| p.iter().zip(g))
        .fold((0usize, 0usize), |(n, r), (p, g)| {
            (n + 1, r + (p == g) as usize)
        });
    Ok(Scores {
        primary: PRIMARY,
        values: vec![
            (PRIMARY, scores.overall.f1),
            ("entity_precision", scores.overall.precision),
            ("entity_recall", scores.overall.recall),
            ("word_accuracy", right as f64 / words.max(1) as f64),
        ],
        entities: Some(scores),
    })
}

/// The entities of each text, with character offsets into it.
pub fn predict(
    classifier: &Classifier,
    texts: &[&str],
    batch_size: usize,
) -> Result<Vec<serde_json::Value>> {
    let labels = &classifier.model.config().labels;
    let encoded = texts
        .iter()
        .map(|t| classifier.tokenizer.encode_with_offsets(t))
        .collect::<Result<Vec<_>>>()?;
    // Raw text's units are the words that kept a token, numbered in order.
    let (examples, rows): (Vec<Encoded>, Vec<Rows>) = encoded
        .iter()
        .map(|(w, _)| raw_text_rows(w.clone()))
        .unzip();
    let units: Vec<usize> = rows.iter().map(Rows::len).collect();
    let predicted = super::decode_examples(classifier, &examples, &rows, &units, batch_size)?;
    Ok(texts
        .iter()
        .zip(&encoded)
        .zip(&predicted)
        .map(|((text, (w, offsets)), word_labels)| {
            let spans = word_spans(w, offsets, word_labels.len());
            let tags: Vec<&str> = word_labels.iter().map(|&l| labels[l].as_str()).collect();
            let found: Vec<serde_json::Value> = entities::entities(&tags)
                .into_iter()
                .map(|e| {
                    let (start, end) = (spans[e.start].0, spans[e.end - 1].1);
                    let text: String = text.chars().skip(start).take(end - start).collect();
                    json!({"type": e.kind, "start": start, "end": end, "text": text})
                })
                .collect();
            json!({"entities": found})
        })
        .collect())
}

/// The character span of each of the first `n` words that kept a row (in row order): from
/// its first token's start to its last token's end.
fn word_spans(w: &WordEncoded, offsets: &[(usize, usize)], n: usize) -> Vec<(usize, usize)> {
    let rows = w.first_tokens();
    rows.iter()
        .take(n)
        .map(|&(_, word)| {
            let mut span = (usize::MAX, 0);
            for (pos, id) in w.word_ids.iter().enumerate() {
                if *id == Some(word) {
                    span = (span.0.min(offsets[pos].0), span.1.max(offsets[pos].1));
                }
            }
            span
        })
        .collect()
}
