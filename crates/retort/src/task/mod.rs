//! Tasks: what a model predicts, and everything that depends on it.
//!
//! A [`Task`] owns its data format (reading a file, aligning gold labels to tokens), the head
//! its model needs ([`HeadKind`]), the *rows* of logits that losses and metrics read (the one
//! row of a sentence label; the first token of each word for a tagger: TextBrewer's
//! `select_logits_with_mask`), decoding, and its metrics with one primary metric. The trainer,
//! the objective, the teacher cache, `compare`, `export` and `serve` ask the task and never
//! match on it; a new task is a new variant here and a module of its own.
//!
//! Every example has *units* (the sentence; the words of a tagged sentence), each with a gold
//! label or none, and *rows*: (token position, unit) pairs for the units that kept a token
//! after truncation. A unit without a row (cut off by truncation) is predicted as the task's
//! fallback label, so metrics count it rather than silently dropping it.

pub mod bleu;
pub mod conll;
pub mod entities;
pub mod metrics;
pub mod multilabel;
mod qa;
mod sequence;
pub mod squad;
pub mod squad_metric;
mod token;
pub mod translation;
pub mod view;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{HeadKind, Model, ModelConfig};
use crate::text::{Encoded, TextTokenizer};
pub use entities::EntityScores;
pub use qa::{answers, parse_question, window_params, SpanIndex};

/// The task families Retort trains and distils.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// One label per text or sentence pair (sentiment, topic, entailment, paraphrase):
    /// GLUE-style TSV / CSV / JSONL.
    #[default]
    SequenceClassification,
    /// One label per word (named entities): CoNLL column files with IOB2 tags.
    TokenClassification,
    /// The answer's span in a context (SQuAD v1.1 JSON): question–context windows, a start
    /// and an end row per window, exact match and F1.
    QuestionAnswering,
    /// Any number of labels per text, each a yes or no of its own (a sequence head read
    /// through sigmoids): the `label` column lists them, `PER|LOC`; micro- and macro-F1.
    MultiLabelClassification,
    /// A target sentence per source sentence (a parallel corpus: `train.en` beside
    /// `train.de`), a row per target token, scored by corpus BLEU on decoded outputs.
    Translation,
}

/// The input of one example, as the data file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A raw text.
    Text(String),
    /// Two raw texts read together (entailment, paraphrase): `[CLS] first [SEP] second [SEP]`.
    Pair(String, String),
    /// A sentence already split into words.
    Words(Vec<String>),
    /// A question about a context (shared by the questions of one paragraph).
    Question { question: String, context: Arc<str> },
}

/// One example of a corpus: its input, the gold label of each unit as written in the file
/// (`None`: unlabelled) or, for a question, the character spans of its gold answers, and its
/// 1-based line and id (where the format has them) for messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    pub input: Input,
    pub gold: Vec<Option<String>>,
    /// Gold answers as character ranges of the context (question answering only).
    pub spans: Vec<Range<usize>>,
    pub line: usize,
    pub id: Option<String>,
}

impl Default for Input {
    fn default() -> Self {
        Input::Text(String::new())
    }
}

/// A data file read by a task.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub path: PathBuf,
    pub items: Vec<Item>,
}

impl Corpus {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no examples (never, for a corpus read from a file).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The inputs, in order.
    pub fn inputs(&self) -> Vec<&Input> {
        self.items.iter().map(|i| &i.input).collect()
    }

    /// The raw texts of a corpus of single texts (for augmentation); `None` for word-split
    /// data and sentence pairs.
    pub fn texts(&self) -> Option<Vec<&str>> {
        self.items
            .iter()
            .map(|i| match &i.input {
                Input::Text(t) => Some(t.as_str()),
                Input::Pair(..) | Input::Words(_) | Input::Question { .. } => None,
            })
            .collect()
    }

    /// True when some example is a sentence pair (or a question with its context).
    pub fn has_pairs(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.input, Input::Pair(..) | Input::Question { .. }))
    }

    /// Keeps the first `n` examples (0: all).
    pub fn truncate(&mut self, n: usize) {
        if n > 0 {
            self.items.truncate(n);
        }
    }

    /// Every gold label resolved to an index of `labels` (a name, or an index written as a
    /// number); an unknown one is an error naming the file and line.
    pub fn gold_ids(&self, labels: &[String]) -> Result<Vec<Vec<Option<usize>>>> {
        self.items
            .iter()
            .map(|item| {
                item.gold
                    .iter()
                    .map(|g| match g {
                        None => Ok(None),
                        Some(raw) => crate::text::dataset::label_index(labels, raw)
                            .map(Some)
                            .ok_or_else(|| Error::Data {
                                path: self.path.clone(),
                                line: item.line,
                                message: format!(
                                    "label {raw:?} is not one of the model's labels {labels:?} (or an index below {})",
                                    labels.len()
                                ),
                            }),
                    })
                    .collect()
            })
            .collect()
    }
}

/// Which logits of an example the task reads: the token `positions` and, for each, the
/// `unit` it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rows {
    pub positions: Vec<u32>,
    pub units: Vec<u32>,
}

impl Rows {
    /// The single row of a sequence label: the first token.
    pub fn sequence() -> Self {
        Self {
            positions: vec![0],
            units: vec![0],
        }
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// A corpus tokenised for a model: each example's token ids, rows and gold unit labels.
#[derive(Debug, Clone, Default)]
pub struct TaskData {
    pub examples: Vec<Encoded>,
    pub rows: Vec<Rows>,
    /// Per example, per unit: the gold label, `None` when unlabelled (a window's gold start
    /// and end positions for question answering).
    pub gold: Vec<Vec<Option<usize>>>,
    /// Question answering: which question each window reads, and what decoding it needs.
    pub spans: Option<SpanIndex>,
    /// Translation: the decoder's inputs, the reference texts and the target vocabulary.
    pub targets: Option<translation::Targets>,
}

impl TaskData {
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The gold label of each row of example `i`.
    pub fn row_labels(&self, i: usize) -> impl Iterator<Item = Option<usize>> + '_ {
        self.rows[i]
            .units
            .iter()
            .map(move |&u| self.gold[i][u as usize])
    }

    /// Units that have no row (their tokens were cut by truncation, or they gave none).
    pub fn units_without_rows(&self) -> usize {
        self.gold
            .iter()
            .zip(&self.rows)
            .map(|(g, r)| g.len() - r.len())
            .sum()
    }

    /// The row positions of every example (what [`crate::infer::row_logits`] takes).
    pub fn positions(&self) -> Vec<Vec<u32>> {
        self.rows.iter().map(|r| r.positions.clone()).collect()
    }

    /// Adds unlabelled examples (augmentation) with their rows.
    pub fn extend_unlabelled(&mut self, encoded: Vec<(Encoded, Rows)>) {
        for (e, r) in encoded {
            self.gold.push(vec![None; r.len()]);
            self.examples.push(e);
            self.rows.push(r);
        }
    }
}

/// Unlabelled transfer text: one text per line (blank lines skipped), at most `limit` texts
/// (0: all). The teacher's outputs are the only signal on them; a tagger splits each into
/// words with its tokenizer, as `retort predict` does.
pub fn read_unlabelled(path: &Path, limit: usize) -> Result<Vec<Input>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "unlabelled text"))?;
    let text = crate::text::dataset::utf8_text(path, bytes)?;
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let texts: Vec<Input> = match limit {
        0 => lines.map(|l| Input::Text(l.to_string())).collect(),
        n => lines.take(n).map(|l| Input::Text(l.to_string())).collect(),
    };
    if texts.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 1,
            message: "no text: the file is empty or blank".into(),
        });
    }
    Ok(texts)
}

/// A task's scores on labelled data.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    /// The metric that chooses the best checkpoint and leads reports.
    pub primary: &'static str,
    /// Every metric by name, the primary first.
    #[serde(serialize_with = "as_map")]
    pub values: Vec<(&'static str, f64)>,
    /// Entity-level precision / recall / F1, overall and per type (token classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<EntityScores>,
}

/// Metric values as a JSON object (in their order), not a list of pairs.
fn as_map<S: serde::Serializer>(
    values: &[(&'static str, f64)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(values.len()))?;
    for (k, v) in values {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl Scores {
    /// The value of the primary metric.
    pub fn primary_value(&self) -> f64 {
        self.values[0].1
    }

    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| *n == name).map(|v| v.1)
    }
}

impl Task {
    /// The task a model's head does.
    pub fn of(config: &ModelConfig) -> Self {
        match config.head {
            HeadKind::SequenceClassification if config.multi_label => {
                Task::MultiLabelClassification
            }
            HeadKind::SequenceClassification => Task::SequenceClassification,
            HeadKind::TokenClassification => Task::TokenClassification,
            HeadKind::QuestionAnswering => Task::QuestionAnswering,
            HeadKind::Generation => Task::Translation,
        }
    }

    /// The head a model for this task needs.
    pub fn head(self) -> HeadKind {
        match self {
            Task::SequenceClassification | Task::MultiLabelClassification => {
                HeadKind::SequenceClassification
            }
            Task::TokenClassification => HeadKind::TokenClassification,
            Task::QuestionAnswering => HeadKind::QuestionAnswering,
            Task::Translation => HeadKind::Generation,
        }
    }

    /// The name used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Task::SequenceClassification => "sequence-classification",
            Task::TokenClassification => "token-classification",
            Task::QuestionAnswering => "question-answering",
            Task::MultiLabelClassification => "multi-label-classification",
            Task::Translation => "translation",
        }
    }

    /// True when each label is a yes or no of its own (sigmoids), not one class of many.
    pub fn is_multi_label(self) -> bool {
        self == Task::MultiLabelClassification
    }

    /// The metric that chooses checkpoints and leads reports.
    pub fn primary_metric(self) -> &'static str {
        match self {
            Task::SequenceClassification => sequence::PRIMARY,
            Task::TokenClassification => token::PRIMARY,
            Task::QuestionAnswering => qa::PRIMARY,
            Task::MultiLabelClassification => multilabel::PRIMARY,
            Task::Translation => translation::PRIMARY,
        }
    }

    /// The HTTP route `retort serve` answers this task on.
    pub fn route(self) -> &'static str {
        match self {
            Task::SequenceClassification | Task::MultiLabelClassification => "/v1/classify",
            Task::TokenClassification => "/v1/entities",
            Task::QuestionAnswering => "/v1/answer",
            Task::Translation => "/v1/translate",
        }
    }

    /// True when the task's raw inputs are questions about contexts (`predict` and `serve`
    /// take `{"question", "context"}` JSON objects), not texts.
    pub fn reads_questions(self) -> bool {
        self == Task::QuestionAnswering
    }

    /// Reads a data file in this task's format.
    pub fn read(self, path: &Path) -> Result<Corpus> {
        match self {
            Task::SequenceClassification => sequence::read(path),
            Task::TokenClassification => token::read(path),
            Task::QuestionAnswering => qa::read(path),
            Task::MultiLabelClassification => multilabel::read(path),
            Task::Translation => translation::read(path),
        }
    }

    /// The labels a corpus uses, for a model that has none yet (a tagger's tag set); `None`
    /// when the task needs them named (a sentence label's order is the user's choice).
    pub fn labels_in(self, corpus: &Corpus) -> Option<Vec<String>> {
        match self {
            Task::SequenceClassification => None,
            Task::TokenClassification => Some(token::labels_in(corpus)),
            Task::QuestionAnswering => Some(vec!["start".into(), "end".into()]),
            Task::MultiLabelClassification => Some(multilabel::labels_in(corpus)),
            // Its outputs are its vocabulary's tokens.
            Task::Translation => Some(Vec::new()),
        }
    }

    /// Tokenises inputs: each one's ids and rows.
    pub fn encode(
        self,
        tokenizer: &TextTokenizer,
        inputs: &[&Input],
    ) -> Result<Vec<(Encoded, Rows)>> {
        match self {
            Task::SequenceClassification | Task::MultiLabelClassification => {
                sequence::encode(tokenizer, inputs)
            }
            Task::TokenClassification => token::encode(tokenizer, inputs),
            // One question gives several windows: only `data` and `predict_units` read them.
            Task::QuestionAnswering => Err(Error::Invalid(
                "question answering reads labelled SQuAD data or {\"question\", \"context\"} objects, not unlabelled text".into(),
            )),
            Task::Translation => Err(translation_needs_subwords()),
        }
    }

    /// Tokenises a labelled corpus for a model with `labels`.
    pub fn data(
        self,
        tokenizer: &TextTokenizer,
        corpus: &Corpus,
        labels: &[String],
    ) -> Result<TaskData> {
        match self {
            Task::QuestionAnswering => return qa::data(tokenizer, corpus),
            Task::Translation => return Err(translation_needs_subwords()),
            _ => {}
        }
        let gold = self.gold(corpus, labels)?;
        let (examples, rows) = self
            .encode(tokenizer, &corpus.inputs())?
            .into_iter()
            .unzip();
        Ok(TaskData {
            examples,
            rows,
            gold,
            spans: None,
            targets: None,
        })
    }

    /// The gold units of a labelled corpus: label indices, or a question's answer spans.
    pub fn gold(self, corpus: &Corpus, labels: &[String]) -> Result<Vec<Vec<Option<usize>>>> {
        match self {
            Task::QuestionAnswering => Ok(qa::gold(corpus)),
            Task::MultiLabelClassification => multilabel::gold(corpus, labels),
            Task::Translation => Err(Error::Invalid(
                "a translation's gold is its reference text, scored by BLEU on decoded outputs, not labels".into(),
            )),
            _ => corpus.gold_ids(labels),
        }
    }

    /// Scores `data` (tokenised by [`Task::data`]) from its rows' logits.
    pub fn score_rows(
        self,
        config: &ModelConfig,
        data: &TaskData,
        logits: &[Vec<f32>],
    ) -> Result<Scores> {
        let labels = &config.labels;
        match (self, &data.spans) {
            (Task::QuestionAnswering, Some(index)) => qa::score_windows(index, logits),
            (Task::QuestionAnswering, None) => Err(Error::Invalid(
                "question-answering data without its windows' index".into(),
            )),
            (Task::Translation, _) => Err(Error::Invalid(
                "a translator is scored on decoded outputs (Task::evaluate), not on row logits"
                    .into(),
            )),
            _ => {
                let units: Vec<usize> = data.gold.iter().map(Vec::len).collect();
                let predicted = self.decode(config, &data.rows, &units, logits);
                self.score(labels, &[], &predicted, &data.gold)
            }
        }
    }

    /// `model`'s scores on `data` (tokenised for it): its row logits scored by
    /// [`Task::score_rows`], or, for a translator, BLEU on its greedy translations. What the
    /// trainer's evaluations run.
    pub fn evaluate(self, model: &dyn Model, data: &TaskData, batch_size: usize) -> Result<Scores> {
        if self == Task::Translation {
            return translation::evaluate(model, data, &translation::DEV_DECODING, batch_size);
        }
        let logits = crate::infer::row_logits(
            model,
            &data.examples,
            &data.positions(),
            batch_size,
            &|_| {},
        )?;
        self.score_rows(model.config(), data, &logits)
    }

    /// Refuses `train.tune_thresholds` for a task without thresholds, before a run starts.
    pub fn check_train_options(self, train: &crate::train::config::TrainSection) -> Result<()> {
        if train.tune_thresholds && !self.is_multi_label() {
            return Err(Error::Invalid(format!(
                "train.tune_thresholds is for multi-label-classification, not {}",
                self.name()
            )));
        }
        Ok(())
    }

    /// What a task does to a run's `best/` once training is over, given the dev split that
    /// chose it: with `train.tune_thresholds`, a multi-label classifier chooses its label
    /// thresholds there ([`multilabel::calibrate`]); otherwise nothing happens.
    pub fn after_training(
        self,
        train: &crate::train::config::TrainSection,
        best_dir: &Path,
        dev: &TaskData,
        max_len: usize,
    ) -> Result<Option<multilabel::Calibration>> {
        match self {
            Task::MultiLabelClassification
                if train.tune_thresholds && best_dir.join("config.json").exists() =>
            {
                multilabel::calibrate(best_dir, dev, max_len).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The label a unit without a row is predicted as ("O" for a tagger).
    pub fn fallback_label(self, labels: &[String]) -> usize {
        match self {
            // The empty set, for a multi-label classifier.
            Task::SequenceClassification | Task::MultiLabelClassification => 0,
            Task::TokenClassification => token::outside(labels),
            Task::QuestionAnswering | Task::Translation => 0,
        }
    }

    /// Decodes each example's row logits (rows × labels, concatenated) into a predicted label
    /// per unit (a set of labels for a multi-label head, by `config`'s thresholds); `units[i]`
    /// is the example's number of units.
    pub fn decode(
        self,
        config: &ModelConfig,
        rows: &[Rows],
        units: &[usize],
        logits: &[Vec<f32>],
    ) -> Vec<Vec<usize>> {
        let labels = &config.labels;
        let n = labels.len();
        let fallback = self.fallback_label(labels);
        rows.iter()
            .zip(units)
            .zip(logits)
            .map(|((r, &units), logits)| {
                let mut out = vec![fallback; units];
                for (&u, row) in r.units.iter().zip(logits.chunks(n)) {
                    out[u as usize] = match self {
                        Task::MultiLabelClassification => {
                            multilabel::decode_row(row, &config.label_thresholds)
                        }
                        _ => crate::infer::argmax(row),
                    };
                }
                out
            })
            .collect()
    }

    /// Scores predicted units against gold ones (units without gold are skipped). `inputs`
    /// are the examples scored (question answering cuts answers from their contexts; the
    /// other tasks do not read them).
    pub fn score(
        self,
        labels: &[String],
        inputs: &[&Input],
        predicted: &[Vec<usize>],
        gold: &[Vec<Option<usize>>],
    ) -> Result<Scores> {
        match self {
            Task::SequenceClassification => sequence::score(labels, predicted, gold),
            Task::TokenClassification => token::score(labels, predicted, gold),
            Task::QuestionAnswering => qa::score(inputs, predicted, gold),
            Task::MultiLabelClassification => Ok(multilabel::score(labels, predicted, gold)),
            Task::Translation => Err(Error::Invalid(
                "a translator is scored by BLEU on its translations (retort eval), not on unit labels".into(),
            )),
        }
    }

    /// How far two models' predictions agree, as a fraction: the share of equal labels for
    /// sentences; the entity F1 of one against the other for a tagger; the answer F1 of one
    /// against the other for question answering.
    pub fn agreement(
        self,
        labels: &[String],
        inputs: &[&Input],
        a: &[Vec<usize>],
        b: &[Vec<usize>],
    ) -> Result<f64> {
        let as_gold: Vec<Vec<Option<usize>>> = b
            .iter()
            .map(|u| u.iter().map(|&l| Some(l)).collect())
            .collect();
        Ok(self.score(labels, inputs, a, &as_gold)?.primary_value())
    }

    /// Predictions for raw texts, shaped for people and for `serve`: a label with its
    /// probabilities, the entities with their character offsets, or (each text a
    /// `{"question", "context"}` JSON object) the answer with its score and offsets.
    pub fn predict(
        self,
        classifier: &crate::infer::Classifier,
        texts: &[&str],
        batch_size: usize,
    ) -> Result<Vec<serde_json::Value>> {
        match self {
            Task::SequenceClassification => sequence::predict(classifier, texts, batch_size),
            Task::TokenClassification => token::predict(classifier, texts, batch_size),
            Task::QuestionAnswering => qa::predict(classifier, texts, batch_size),
            Task::MultiLabelClassification => multilabel::predict(classifier, texts, batch_size),
            Task::Translation => Err(Error::Invalid(
                "a translator translates with retort translate (or serve's /v1/translate)".into(),
            )),
        }
    }
}

/// What a translator's data needs that the encoders' tokenizer cannot give.
fn translation_needs_subwords() -> Error {
    Error::Invalid(
        "a translator reads its own sub-word vocabulary (task::translation::data), not an encoder's tokenizer".into(),
    )
}

/// Predicted unit labels of `classifier` on `inputs` (tokenisation included).
pub fn predict_units(
    classifier: &crate::infer::Classifier,
    inputs: &[&Input],
    batch_size: usize,
) -> Result<Vec<Vec<usize>>> {
    let task = Task::of(classifier.model.config());
    if task == Task::QuestionAnswering {
        return qa::predict_units(classifier, inputs, batch_size);
    }
    let (examples, rows): (Vec<Encoded>, Vec<Rows>) = task
        .encode(&classifier.tokenizer, inputs)?
        .into_iter()
        .unzip();
    let units: Vec<usize> = inputs.iter().map(|i| units_of(i)).collect();
    decode_examples(classifier, &examples, &rows, &units, batch_size)
}

/// Runs `classifier` over tokenised examples and decodes each one's rows into `units[i]`
/// unit labels.
fn decode_examples(
    classifier: &crate::infer::Classifier,
    examples: &[Encoded],
    rows: &[Rows],
    units: &[usize],
    batch_size: usize,
) -> Result<Vec<Vec<usize>>> {
    let positions: Vec<Vec<u32>> = rows.iter().map(|r| r.positions.clone()).collect();
    let logits = crate::infer::row_logits(
        classifier.model.as_ref(),
        examples,
        &positions,
        batch_size,
        &|_| {},
    )?;
    let task = Task::of(classifier.model.config());
    Ok(task.decode(classifier.model.config(), rows, units, &logits))
}

/// How many units an input has: one text (or pair), its words, or an answer's start and end.
pub fn units_of(input: &Input) -> usize {
    match input {
        Input::Text(_) | Input::Pair(..) => 1,
        Input::Words(w) => w.len(),
        Input::Question { .. } => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(inputs: &[Input]) -> Vec<&str> {
        inputs
            .iter()
            .map(|i| match i {
                Input::Text(t) => t.as_str(),
                other => panic!("raw text expected, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn unlabelled_text_is_one_text_per_non_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.txt");
        std::fs::write(&path, "first line\r\n\n  \n second \nthird").unwrap();
        let all = read_unlabelled(&path, 0).unwrap();
        assert_eq!(texts(&all), ["first line", "second", "third"]);
        assert_eq!(
            texts(&read_unlabelled(&path, 2).unwrap()),
            ["first line", "second"]
        );
    }

    #[test]
    fn bad_unlabelled_text_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.txt");
        std::fs::write(&path, b"fine\nalso fine\nbad \xff byte\n").unwrap();
        let err = read_unlabelled(&path, 0).unwrap_err().to_string();
        assert!(err.contains("u.txt:3: not valid UTF-8"), "{err}");
        std::fs::write(&path, "\n \n").unwrap();
        let err = read_unlabelled(&path, 0).unwrap_err().to_string();
        assert!(err.contains("no text"), "{err}");
        let err = read_unlabelled(&dir.path().join("missing.txt"), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.txt"), "{err}");
    }
}
