//! Extractive question answering (`*ForQuestionAnswering`): the answer is a span of a context.
//!
//! Data: SQuAD v1.1 JSON ([`super::squad`]). Each question and its context become one or more
//! windows ([`crate::text::windows`]): the model's examples. A window has two rows along
//! [`crate::model::RowAxis::Positions`], the start and the end output, each read over the
//! window's positions; their gold is the answer's first and last token in that window, or
//! `[CLS]` (position 0) when the window does not hold the whole answer (BERT's recipe).
//!
//! Decoding reads every window of a question: the `N_BEST` highest start and end scores of
//! its context tokens, pairs with end ≥ start and at most `MAX_ANSWER_TOKENS` tokens, the pair
//! with the highest start + end score over all windows (Hugging Face's
//! `postprocess_qa_predictions`). The answer is cut from the context by the character
//! offsets of its tokens, never rebuilt from tokens. A question's predicted *units* are the
//! answer's character span, `[start, end)`; its gold units are the gold spans, flattened.
//! Metric: the official SQuAD v1.1 exact match and F1 ([`super::squad_metric`]), as
//! fractions; F1 is primary.

use std::ops::Range;
use std::path::Path;

use serde_json::json;

use super::squad::{read_squad, Gold};
use super::squad_metric::best_scores;
use super::{Corpus, Input, Item, Rows, Scores, TaskData};
use crate::error::{Error, Result};
use crate::infer::{row_logits, Classifier};
use crate::text::windows::{AnswerCounts, AnswerTokens, WindowParams, WindowTokenizer};
use crate::text::{Encoded, TextTokenizer};

pub const PRIMARY: &str = "f1";

/// Start and end candidates kept per window (Hugging Face's `n_best_size`).
const N_BEST: usize = 20;
/// The longest answer decoded, in tokens (Hugging Face's `max_answer_length`).
const MAX_ANSWER_TOKENS: usize = 30;

/// The two rows of every window: output 0 (start) and output 1 (end).
fn window_rows() -> Rows {
    Rows {
        positions: vec![0, 1],
        units: vec![0, 1],
    }
}

/// How windows are cut for a model reading `max_len` tokens: BERT's SQuAD recipe (questions
/// of at most 64 tokens, a stride of 128 at max_len 384), scaled down for shorter inputs so
/// that every window keeps room for context.
pub fn window_params(max_len: usize) -> WindowParams {
    WindowParams {
        stride: 128.min(max_len / 3),
        max_question_len: 64.min(max_len / 4).max(1),
    }
}

/// A SQuAD file: one item per question, its input the question and its context, its gold the
/// character spans of its answers.
pub fn read(path: &Path) -> Result<Corpus> {
    let questions = read_squad(path, Gold::Required)?;
    Ok(Corpus {
        path: path.to_path_buf(),
        items: questions
            .into_iter()
            .map(|q| Item {
                gold: Vec::new(),
                spans: q.answers.iter().map(|a| a.start..a.end()).collect(),
                id: Some(q.id),
                input: Input::Question {
                    question: q.question,
                    context: q.context,
                },
                // The official files are one line; the id names a question in messages.
                line: 1,
            })
            .collect(),
    })
}

/// Gold units of each question: its answers' character spans, flattened (start, end, ...).
pub fn gold(corpus: &Corpus) -> Vec<Vec<Option<usize>>> {
    corpus
        .items
        .iter()
        .map(|i| flatten(&i.spans).into_iter().map(Some).collect())
        .collect()
}

fn flatten(spans: &[Range<usize>]) -> Vec<usize> {
    spans.iter().flat_map(|s| [s.start, s.end]).collect()
}

/// What decoding a corpus needs besides each window's logits: which question each window
/// belongs to, its tokens' character offsets, and the questions themselves.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    /// Per window: the index of its question.
    pub question_of: Vec<usize>,
    /// Per window, per token: its characters in the context, `None` outside the context.
    pub offsets: Vec<Vec<Option<(usize, usize)>>>,
    /// The questions with their contexts, in corpus order.
    pub inputs: Vec<Input>,
    /// Per question: its gold units ([`gold`]).
    pub gold: Vec<Vec<Option<usize>>>,
}

/// The question and context of an input, or a clear error for any other input.
fn question_of(input: &Input) -> Result<(&str, &str)> {
    match input {
        Input::Question { question, context } => Ok((question, context)),
        _ => Err(Error::Invalid(
            "a question-answering model reads a question with its context".into(),
        )),
    }
}

/// Windows of every input, with their offsets and the question each belongs to.
fn windows_of(tokenizer: &TextTokenizer, inputs: &[&Input]) -> Result<(Vec<Encoded>, SpanIndex)> {
    let cutter = WindowTokenizer::new(tokenizer, window_params(tokenizer.max_len()))?;
    let mut examples = Vec::new();
    let mut index = SpanIndex::default();
    for (q, input) in inputs.iter().enumerate() {
        let (question, context) = question_of(input)?;
        for w in cutter.encode(question, context)?.windows {
            examples.push(w.encoded);
            index.offsets.push(w.context_offsets);
            index.question_of.push(q);
        }
        index.inputs.push((*input).clone());
    }
    Ok((examples, index))
}

/// Tokenises a labelled corpus: one example per window, with the gold start and end token of
/// the first answer that lies whole in the window, `[CLS]` otherwise. Answers that no run of
/// tokens spells, or that fit in no window, are counted and reported.
pub fn data(tokenizer: &TextTokenizer, corpus: &Corpus) -> Result<TaskData> {
    let cutter = WindowTokenizer::new(tokenizer, window_params(tokenizer.max_len()))?;
    let mut data = TaskData::default();
    let mut index = SpanIndex::default();
    let mut counts = AnswerCounts::default();
    let mut questions_cut = 0;
    for (q, item) in corpus.items.iter().enumerate() {
        let (question, context) = question_of(&item.input)?;
        let place = |e: Error| match &item.id {
            Some(id) => Error::Invalid(format!("{}: question {id:?}: {e}", corpus.path.display())),
            None => e,
        };
        let windows = cutter.encode(question, context).map_err(place)?;
        questions_cut += usize::from(windows.question_tokens_cut > 0);
        let mut aligned = Vec::new();
        for span in &item.spans {
            let a = windows.align_answer(context, span.clone()).map_err(place)?;
            counts.add(&a);
            if let AnswerTokens::Aligned(per_window) = a {
                aligned.push(per_window);
            }
        }
        for (w, window) in windows.windows.into_iter().enumerate() {
            // The first answer this window holds whole; [CLS] when it holds none.
            let (start, end) = aligned
                .iter()
                .find_map(|per_window| per_window[w])
                .unwrap_or((0, 0));
            data.examples.push(window.encoded);
            data.rows.push(window_rows());
            data.gold.push(vec![Some(start), Some(end)]);
            index.offsets.push(window.context_offsets);
            index.question_of.push(q);
        }
        index.inputs.push(item.input.clone());
        index
            .gold
            .push(flatten(&item.spans).into_iter().map(Some).collect());
    }
    if let Some(warning) = counts.warning() {
        eprintln!("warning: {}: {warning}", corpus.path.display());
    }
    if questions_cut > 0 {
        eprintln!(
            "note: {}: {questions_cut} questions were cut to {} tokens",
            corpus.path.display(),
            window_params(tokenizer.max_len()).max_question_len
        );
    }
    data.spans = Some(index);
    Ok(data)
}

/// A decoded answer: characters `[start, end)` of the context and its probability (start ×
/// end, each a softmax over its window's positions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

/// The best answer of each question from its windows' row logits (each window's start row then
/// its end row, as wide as the window). A question with no valid pair gets the empty answer
/// at 0 with score 0.
pub fn decode(index: &SpanIndex, logits: &[Vec<f32>]) -> Vec<Span> {
    let mut best: Vec<Option<(f32, Span)>> = vec![None; index.inputs.len()];
    for ((&q, offsets), logits) in index.question_of.iter().zip(&index.offsets).zip(logits) {
        let (starts, ends) = logits.split_at(offsets.len());
        if let Some((total, span)) = best_in_window(offsets, starts, ends) {
            if best[q].is_none_or(|(t, _)| total > t) {
                best[q] = Some((total, span));
            }
        }
    }
    best.into_iter()
        .map(|b| {
            b.map_or(
                Span {
                    start: 0,
                    end: 0,
                    score: 0.0,
                },
                |(_, s)| s,
            )
        })
        .collect()
}

/// The best (start + end score, span) of one window, if any pair is valid.
fn best_in_window(
    offsets: &[Option<(usize, usize)>],
    starts: &[f32],
    ends: &[f32],
) -> Option<(f32, Span)> {
    let top = |scores: &[f32]| -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len())
            .filter(|&i| offsets[i].is_some())
            .collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(N_BEST);
        order
    };
    let (top_starts, top_ends) = (top(starts), top(ends));
    let mut best: Option<(f32, usize, usize)> = None;
    for &s in &top_starts {
        for &e in &top_ends {
            if e < s || e - s + 1 > MAX_ANSWER_TOKENS {
                continue;
            }
            let total = starts[s] + ends[e];
            if best.is_none_or(|(t, _, _)| total > t) {
                best = Some((total, s, e));
            }
        }
    }
    let (total, s, e) = best?;
    let probability = |scores: &[f32], i: usize| crate::infer::softmax(scores)[i];
    let (Some(first), Some(last)) = (offsets[s], offsets[e]) else {
        unreachable!("candidates are context tokens");
    };
    Some((
        total,
        Span {
            start: first.0,
            end: last.1,
            score: probability(starts, s) * probability(ends, e),
        },
    ))
}

/// The characters `[start, end)` of `text`.
fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

/// Predicted units of each question: its answer's character span.
fn units(spans: &[Span]) -> Vec<Vec<usize>> {
    spans.iter().map(|s| vec![s.start, s.end]).collect()
}

/// Exact match and F1 of predicted spans against gold spans (flattened start/end pairs; a
/// question with none is skipped), on the texts they cut from each input's context.
pub fn score(
    inputs: &[&Input],
    predicted: &[Vec<usize>],
    gold: &[Vec<Option<usize>>],
) -> Result<Scores> {
    if inputs.len() != predicted.len() || inputs.len() != gold.len() {
        return Err(Error::Invalid(format!(
            "{} questions, {} predictions and {} gold answers differ in number",
            inputs.len(),
            predicted.len(),
            gold.len()
        )));
    }
    let (mut exact, mut f1, mut scored) = (0usize, 0.0f64, 0usize);
    for ((input, p), g) in inputs.iter().zip(predicted).zip(gold) {
        let (_, context) = question_of(input)?;
        let golds: Vec<String> = g
            .chunks(2)
            .filter_map(|c| match c {
                [Some(s), Some(e)] => Some(chars(context, *s, *e)),
                _ => None,
            })
            .collect();
        if golds.is_empty() {
            continue;
        }
        let answer = match p.as_slice() {
            [s, e] => chars(context, *s, *e),
            _ => String::new(),
        };
        let (em, f) = best_scores(&answer, golds.iter().map(String::as_str));
        exact += usize::from(em);
        f1 += f;
        scored += 1;
    }
    let total = scored.max(1) as f64;
    Ok(Scores {
        primary: PRIMARY,
        values: vec![(PRIMARY, f1 / total), ("exact_match", exact as f64 / total)],
        entities: None,
    })
}

/// The scores of a windowed corpus from its windows' row logits.
pub fn score_windows(index: &SpanIndex, logits: &[Vec<f32>]) -> Result<Scores> {
    let predicted = units(&decode(index, logits));
    let inputs: Vec<&Input> = index.inputs.iter().collect();
    score(&inputs, &predicted, &index.gold)
}

/// The answer span of each question (`Input::Question`), as predicted units.
pub fn predict_units(
    classifier: &Classifier,
    inputs: &[&Input],
    batch_size: usize,
) -> Result<Vec<Vec<usize>>> {
    Ok(units(&answer_spans(classifier, inputs, batch_size)?))
}

/// The decoded answer of each question.
fn answer_spans(
    classifier: &Classifier,
    inputs: &[&Input],
    batch_size: usize,
) -> Result<Vec<Span>> {
    let (index, logits) = run_windows(classifier, inputs, batch_size)?;
    Ok(decode(&index, &logits))
}

/// Every window of every question with its row logits (start row then end row).
fn run_windows(
    classifier: &Classifier,
    inputs: &[&Input],
    batch_size: usize,
) -> Result<(SpanIndex, Vec<Vec<f32>>)> {
    let (examples, index) = windows_of(&classifier.tokenizer, inputs)?;
    let rows = vec![window_rows().positions; examples.len()];
    let logits = row_logits(
        classifier.model.as_ref(),
        &examples,
        &rows,
        batch_size,
        &|_| {},
    )?;
    Ok((index, logits))
}

/// Reads one `{"question": ..., "context": ...}` JSON object (what `predict` and `serve` take;
/// an `"id"` is allowed and ignored, so that `retort predict` can echo it).
pub fn parse_question(text: &str) -> Result<Input> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        question: String,
        context: String,
        #[serde(default, rename = "id")]
        _id: Option<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        Error::Invalid(format!(
            "a question-answering model takes {{\"question\": ..., \"context\": ...}} JSON objects: {e}"
        ))
    })?;
    if raw.question.trim().is_empty() || raw.context.trim().is_empty() {
        return Err(Error::Invalid(
            "the question and the context must both have text".into(),
        ));
    }
    Ok(Input::Question {
        question: raw.question,
        context: raw.context.into(),
    })
}

/// Answers for `{"question", "context"}` JSON texts: the answer cut from the context, its
/// score and its character offsets.
pub fn predict(
    classifier: &Classifier,
    texts: &[&str],
    batch_size: usize,
) -> Result<Vec<serde_json::Value>> {
    let inputs = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            parse_question(t).map_err(|e| Error::Invalid(format!("question {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Input> = inputs.iter().collect();
    answers(classifier, &refs, batch_size, false)
}

/// The answer of each question (`Input::Question`): the text cut from its context, its score
/// and its character offsets; with `with_logits`, also every window's start and end logits
/// (`"logits": [window][start or end][position]`, special tokens and the question included),
/// to compare with another implementation. The windows run once for both.
pub fn answers(
    classifier: &Classifier,
    inputs: &[&Input],
    batch_size: usize,
    with_logits: bool,
) -> Result<Vec<serde_json::Value>> {
    let (index, logits) = run_windows(classifier, inputs, batch_size)?;
    let spans = decode(&index, &logits);
    let mut out = inputs
        .iter()
        .zip(spans)
        .map(|(input, s)| {
            let (_, context) = question_of(input)?;
            Ok(json!({
                "answer": chars(context, s.start, s.end),
                "score": s.score,
                "start": s.start,
                "end": s.end,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    if with_logits {
        for o in &mut out {
            o["logits"] = json!([]);
        }
        for ((&q, offsets), l) in index.question_of.iter().zip(&index.offsets).zip(&logits) {
            let (starts, ends) = l.split_at(offsets.len());
            if let Some(windows) = out[q]["logits"].as_array_mut() {
                windows.push(json!([starts, ends]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn question(question: &str, context: &str) -> Input {
        Input::Question {
            question: question.to_string(),
            context: Arc::from(context),
        }
    }

    fn index(offsets: Vec<Vec<Option<(usize, usize)>>>, question_of: Vec<usize>) -> SpanIndex {
        let n = question_of.iter().max().map_or(0, |m| m + 1);
        SpanIndex {
            question_of,
            offsets,
            inputs: vec![question("q", "abcdefghij"); n],
            gold: vec![vec![]; n],
        }
    }

    #[test]
    fn decoding_takes_the_best_valid_pair_over_all_windows() {
        // Window 0: [CLS] q [SEP] c1 c2 [SEP]; window 1: [CLS] q [SEP] c2 c3 [SEP].
        let w0 = vec![None, None, None, Some((0, 2)), Some((3, 5)), None];
        let w1 = vec![None, None, None, Some((3, 5)), Some((6, 9)), None];
        let idx = index(vec![w0, w1], vec![0, 0]);
        // Window 0: the best start and end are [CLS] (not context: skipped); its best valid
        // pair is (c2, c2) = 2 + 1, while the end c1 before the start c2 (2 + 4) is invalid.
        let l0 = [vec![9., 0., 0., -2., 2., 0.], vec![9., 0., 0., 4., 1., 0.]].concat();
        // Window 1: (c2, c3) = 1.5 + 2 = 3.5 beats window 0's 3.
        let l1 = [vec![0., 0., 0., 1.5, 0., 0.], vec![0., 0., 0., 0., 2., 0.]].concat();
        let spans = decode(&idx, &[l0, l1]);
        assert_eq!((spans[0].start, spans[0].end), (3, 9));
        assert!(spans[0].score > 0.0 && spans[0].score <= 1.0);
    }

    #[test]
    fn an_end_before_the_start_or_too_long_an_answer_is_never_decoded() {
        let n = MAX_ANSWER_TOKENS + 5;
        let mut offsets: Vec<Option<(usize, usize)>> = (0..n).map(|i| Some((i, i + 1))).collect();
        offsets[0] = None;
        let idx = index(vec![offsets], vec![0]);
        let mut starts = vec![-10.0f32; n];
        let mut ends = vec![0.0f32; n];
        starts[1] = 10.0; // best start at 1
        ends[n - 1] = 20.0; // best end too far from it
        ends[3] = 5.0; // (1, 3) = 15 beats (5, n - 1) = 10, the best pair short enough
        let spans = decode(&idx, &[[starts, ends].concat()]);
        assert_eq!((spans[0].start, spans[0].end), (1, 4));
    }

    #[test]
    fn scores_cut_answers_from_the_context_with_squad_semantics() {
        let inputs = [
            question("q", "The cat sat on the mat."),
            question("q", "Paris, France"),
        ];
        let refs: Vec<&Input> = inputs.iter().collect();
        // Question 0: "the mat" against gold "mat" (articles dropped: exact). Question 1:
        // "Paris" against "Paris, France": F1 2/3.
        let predicted = vec![vec![15, 22], vec![0, 5]];
        let gold = vec![vec![Some(19), Some(22)], vec![Some(0), Some(13)]];
        let s = score(&refs, &predicted, &gold).unwrap();
        assert_eq!(s.get("exact_match"), Some(0.5));
        assert!((s.primary_value() - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn questions_must_be_json_with_both_fields() {
        assert!(parse_question(r#"{"question": "who?", "context": "me"}"#).is_ok());
        for bad in [
            "who?",
            r#"{"question": "who?"}"#,
            r#"{"question": "", "context": "x"}"#,
        ] {
            let e = parse_question(bad).unwrap_err().to_string();
            assert!(e.contains("question"), "{e}");
        }
    }
}
