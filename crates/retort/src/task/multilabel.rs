//! Multi-label classification: any number of labels per text, each a yes or no of its own
//! (a sequence head read through a sigmoid per label; transformers'
//! `problem_type = "multi_label_classification"`).
//!
//! Data: the columns of sequence classification ([`crate::text::Dataset`]), the `label`
//! column holding the text's labels separated by `|` (`PER|LOC`), or `_` for none. A unit's
//! gold and predicted value is the *set* of its labels, as a bit mask (bit `i`: label `i`),
//! so at most [`MAX_LABELS`] labels. A label is predicted when its probability is above its
//! threshold: 0.5 while a model trains, then the one [`calibrate`] chose on the dev split at
//! the end of the run (saved as `label_thresholds` in config.json). Metrics: micro-F1
//! (primary), macro-F1 over the labels, and the share of texts whose whole set is right.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use super::{sequence, Corpus, Scores, TaskData};
use crate::error::{Error, Result};
use crate::infer::Classifier;

pub const PRIMARY: &str = "micro_f1";

/// Labels a set can hold: the bits of a `usize`.
pub const MAX_LABELS: usize = usize::BITS as usize;

/// How a data file writes a text with none of the labels.
pub const NO_LABELS: &str = "_";

/// What separates the labels of one text in a data file.
const SEPARATOR: char = '|';

pub fn read(path: &Path) -> Result<Corpus> {
    sequence::read(path)
}

/// The names in a raw label cell (`"PER|LOC"`, or `"_"` for none).
fn names(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(SEPARATOR)
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != NO_LABELS)
}

/// Every label the corpus uses, sorted.
pub fn labels_in(corpus: &Corpus) -> Vec<String> {
    let mut set = std::collections::BTreeSet::new();
    for item in &corpus.items {
        for raw in item.gold.iter().flatten() {
            set.extend(names(raw).map(str::to_string));
        }
    }
    set.into_iter().collect()
}

/// Each example's gold set as a bit mask over `labels`; an unknown name is an error naming
/// the file and line.
pub fn gold(corpus: &Corpus, labels: &[String]) -> Result<Vec<Vec<Option<usize>>>> {
    check_label_count(labels.len())?;
    corpus
        .items
        .iter()
        .map(|item| {
            item.gold
                .iter()
                .map(|g| {
                    let Some(raw) = g else { return Ok(None) };
                    names(raw)
                        .map(|name| {
                            crate::text::dataset::label_index(labels, name)
                                .map(|i| 1usize << i)
                                .ok_or_else(|| Error::Data {
                                    path: corpus.path.clone(),
                                    line: item.line,
                                    message: format!(
                                        "label {name:?} is not one of the model's labels {labels:?} (a text's labels are separated by '{SEPARATOR}', '{NO_LABELS}' for none)"
                                    ),
                                })
                        })
                        .try_fold(0usize, |mask, bit| Ok(mask | bit?))
                        .map(Some)
                })
                .collect()
        })
        .collect()
}

/// A multi-label head holds at most [`MAX_LABELS`] labels.
pub fn check_label_count(n: usize) -> Result<()> {
    match n {
        0 => Err(Error::Invalid(
            "a multi-label classifier needs labels".into(),
        )),
        n if n > MAX_LABELS => Err(Error::Invalid(format!(
            "a multi-label classifier holds at most {MAX_LABELS} labels, this one has {n}"
        ))),
        _ => Ok(()),
    }
}

/// The set a row of logits predicts: the labels whose probability is above their threshold
/// (`thresholds[i]`; 0.5 for every label when empty).
pub fn decode_row(logits: &[f32], thresholds: &[f32]) -> usize {
    logits
        .iter()
        .take(MAX_LABELS)
        .enumerate()
        .filter(|&(i, &l)| sigmoid(l) > thresholds.get(i).copied().unwrap_or(0.5))
        .fold(0, |mask, (i, _)| mask | 1 << i)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The thresholds [`choose_thresholds`] tries: 0.05, 0.10, …, 0.95.
const THRESHOLD_GRID: std::ops::RangeInclusive<u32> = 1..=19;

/// Per label, the threshold of [`THRESHOLD_GRID`] (×0.05) that gives that label the best F1
/// over `rows` (one row of logits per text) against the gold sets `gold`; of equal F1s the one
/// nearest 0.5, so a label the rows cannot tell apart keeps 0.5.
pub fn choose_thresholds(rows: &[Vec<f32>], gold: &[usize], n: usize) -> Vec<f32> {
    (0..n.min(MAX_LABELS))
        .map(|label| {
            let mut best = (f64::NEG_INFINITY, 0.5f32);
            for k in THRESHOLD_GRID {
                let t = k as f32 * 0.05;
                let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
                for (row, &g) in rows.iter().zip(gold) {
                    match (sigmoid(row[label]) > t, (g >> label) & 1 == 1) {
                        (true, true) => tp += 1,
                        (true, false) => fp += 1,
                        (false, true) => fn_ += 1,
                        _ => {}
                    }
                }
                let f1 = f1(tp, fp, fn_);
                let nearer = (t - 0.5).abs() < (best.1 - 0.5).abs();
                if f1 > best.0 + 1e-12 || ((f1 - best.0).abs() <= 1e-12 && nearer) {
                    best = (f1, t);
                }
            }
            best.1
        })
        .collect()
}

/// What [`calibrate`] chose and what it changed on the dev split.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    pub thresholds: Vec<f32>,
    /// Dev micro-F1 with every threshold at 0.5, and with the chosen ones.
    pub before: f64,
    pub after: f64,
}

/// Chooses each label's threshold on `dev` (see [`choose_thresholds`]) for the multi-label
/// model saved in `dir` (a run's `best/`) and writes them into its `config.json`. The dev split
/// then no longer gives an unbiased score: report on data that chose nothing (a test split).
pub fn calibrate(dir: &Path, dev: &TaskData, max_len: usize) -> Result<Calibration> {
    let classifier = Classifier::load(dir, max_len)?;
    let config = classifier.model.config();
    let logits = crate::infer::row_logits(
        classifier.model.as_ref(),
        &dev.examples,
        &dev.positions(),
        32,
        &|_| {},
    )?;
    // One row per text; texts without a gold set choose nothing.
    let (rows, gold): (Vec<Vec<f32>>, Vec<usize>) = logits
        .into_iter()
        .zip(&dev.gold)
        .filter_map(|(row, g)| Some((row, g.first().copied().flatten()?)))
        .unzip();
    if rows.is_empty() {
        return Err(Error::Invalid(
            "choosing label thresholds needs dev texts with labels".into(),
        ));
    }
    let thresholds = choose_thresholds(&rows, &gold, config.labels.len());
    let micro = |t: &[f32]| {
        let predicted: Vec<Vec<usize>> = rows.iter().map(|r| vec![decode_row(r, t)]).collect();
        let gold: Vec<Vec<Option<usize>>> = gold.iter().map(|&g| vec![Some(g)]).collect();
        score(&config.labels, &predicted, &gold).primary_value()
    };
    let (before, after) = (micro(&[]), micro(&thresholds));
    write_thresholds(&dir.join("config.json"), &thresholds)?;
    Ok(Calibration {
        thresholds,
        before,
        after,
    })
}

/// Sets `label_thresholds` in a saved `config.json` (through a temporary file and a rename, so
/// an interruption leaves the old file whole).
fn write_thresholds(path: &Path, thresholds: &[f32]) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e, "config.json"))?;
    let mut value: Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })?;
    value["label_thresholds"] = serde_json::json!(thresholds);
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&value).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e, "config.json"))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e, "config.json"))
}

/// F1 of one set of decisions; 1 when there is nothing to find and nothing was found.
fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    match 2 * tp + fp + fn_ {
        0 => 1.0,
        d => 2.0 * tp as f64 / d as f64,
    }
}

/// `[rows, n]` targets of 0 and 1 from bit masks.
pub fn multi_hot(masks: &[usize], n: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = masks
        .iter()
        .flat_map(|&m| (0..n).map(move |i| ((m >> i) & 1) as f32))
        .collect();
    Ok(Tensor::from_vec(values, (masks.len(), n), device)?)
}

/// Micro-F1 over every (text, label) decision, macro-F1 (the mean of each label's F1; a label
/// neither gold nor predicted anywhere counts as 1), and the share of texts whose predicted set
/// is exactly the gold one.
pub fn score(labels: &[String], predicted: &[Vec<usize>], gold: &[Vec<Option<usize>>]) -> Scores {
    let n = labels.len().min(MAX_LABELS);
    let (mut tp, mut fp, mut fn_) = (vec![0usize; n], vec![0usize; n], vec![0usize; n]);
    let (mut exact, mut count) = (0usize, 0usize);
    for (p, g) in predicted.iter().flatten().zip(gold.iter().flatten()) {
        let Some(g) = *g else { continue };
        count += 1;
        exact += usize::from(*p == g);
        for i in 0..n {
            match ((p >> i) & 1, (g >> i) & 1) {
                (1, 1) => tp[i] += 1,
                (1, 0) => fp[i] += 1,
                (0, 1) => fn_[i] += 1,
                _ => {}
            }
        }
    }
    let sum = |v: &[usize]| v.iter().sum::<usize>();
    let micro = f1(sum(&tp), sum(&fp), sum(&fn_));
    let macro_f1 = match n {
        0 => 0.0,
        _ => (0..n).map(|i| f1(tp[i], fp[i], fn_[i])).sum::<f64>() / n as f64,
    };
    Scores {
        primary: PRIMARY,
        values: vec![
            (PRIMARY, micro),
            ("macro_f1", macro_f1),
            ("exact_set", exact as f64 / count.max(1) as f64),
        ],
        entities: None,
    }
}

/// `{"labels": [the predicted names], "probabilities": {name: p}}` per text.
pub fn predict(
    classifier: &Classifier,
    texts: &[&str],
    batch_size: usize,
) -> Result<Vec<serde_json::Value>> {
    let config = classifier.model.config();
    let labels = &config.labels;
    let logits = classifier.logits(texts, batch_size)?;
    Ok(logits
        .iter()
        .map(|row| {
            let mask = decode_row(row, &config.label_thresholds);
            let chosen: Vec<&String> = (0..labels.len())
                .filter(|i| (mask >> i) & 1 == 1)
                .map(|i| &labels[i])
                .collect();
            let probabilities: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .zip(row)
                .map(|(l, &x)| (l.clone(), serde_json::json!(sigmoid(x))))
                .collect();
            serde_json::json!({"labels": chosen, "probabilities": probabilities})
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Item;

    fn corpus(cells: &[&str]) -> Corpus {
        Corpus {
            path: "m.tsv".into(),
            items: cells
                .iter()
                .enumerate()
                .map(|(i, c)| Item {
                    gold: vec![Some(c.to_string())],
                    line: i + 2,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn label_sets_are_bit_masks_and_unknown_names_are_errors() {
        let c = corpus(&["PER|LOC", "_", "MISC", " LOC "]);
        let labels = labels_in(&c);
        assert_eq!(labels, ["LOC", "MISC", "PER"]);
        let masks = gold(&c, &labels).unwrap();
        assert_eq!(
            masks,
            vec![
                vec![Some(0b101)],
                vec![Some(0)],
                vec![Some(0b010)],
                vec![Some(0b001)]
            ]
        );
        let err = gold(&corpus(&["PER|ORG"]), &labels)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.tsv:2") && err.contains("\"ORG\""), "{err}");
        let many: Vec<String> = (0..MAX_LABELS + 1).map(|i| i.to_string()).collect();
        assert!(gold(&c, &many).is_err());
    }

    #[test]
    fn decoding_and_scores() {
        assert_eq!(decode_row(&[0.3, -1.0, 2.0], &[]), 0b101);
        // σ(0.3) = 0.57, σ(-1) = 0.27, σ(2) = 0.88.
        assert_eq!(decode_row(&[0.3, -1.0, 2.0], &[0.6, 0.2, 0.9]), 0b010);
        let multi = multi_hot(&[0b101, 0], 3, &Device::Cpu).unwrap();
        assert_eq!(
            multi.to_vec2::<f32>().unwrap(),
            [[1., 0., 1.], [0., 0., 0.]]
        );
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // Gold {a, c}, {b}, {}; predicted {a}, {b, c}, {} (and one unlabelled text).
        let gold = vec![
            vec![Some(0b101)],
            vec![Some(0b010)],
            vec![Some(0)],
            vec![None],
        ];
        let pred = vec![vec![0b001], vec![0b110], vec![0], vec![0b111]];
        let s = score(&labels, &pred, &gold);
        // tp 2 (a, b), fp 1 (c in text 2), fn 1 (c in text 1): micro 4 / 6.
        assert!((s.primary_value() - 4.0 / 6.0).abs() < 1e-12);
        // a: 1.0, b: 1.0, c: 0.0.
        assert!((s.get("macro_f1").unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.get("exact_set").unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn thresholds_maximise_each_labels_f1_and_ties_keep_the_nearest_to_a_half() {
        // Label 0: gold where the logit is high, but the positives sit at σ = 0.38 and 0.45:
        // only a threshold below 0.38 finds both without the negative at σ = 0.27.
        // Label 1: every logit equal, gold in half the rows: no threshold separates them, and
        // any below σ(0) = 0.5 finds all (F1 2/3) while 0.5 and above find none (F1 0): 0.45.
        // Label 2: no positives; every threshold above the largest σ (0.12) gives F1 1: 0.5.
        let x = |p: f32| (p / (1.0 - p)).ln();
        let rows = vec![
            vec![x(0.38), 0.0, x(0.12)],
            vec![x(0.45), 0.0, x(0.05)],
            vec![x(0.27), 0.0, x(0.1)],
            vec![x(0.1), 0.0, x(0.1)],
        ];
        let gold = [0b011, 0b001, 0b010, 0b000];
        let t = choose_thresholds(&rows, &gold, 3);
        // 0.30 and 0.35 both give F1 1: the one nearer 0.5.
        assert!((t[0] - 0.35).abs() < 1e-6, "{t:?}");
        assert!((t[1] - 0.45).abs() < 1e-6, "{t:?}");
        assert!((t[2] - 0.5).abs() < 1e-6, "{t:?}");
        let masks: Vec<usize> = rows.iter().map(|r| decode_row(r, &t)).collect();
        assert_eq!(masks[0] & 1, 1);
        assert_eq!(masks[1] & 1, 1);
        assert_eq!(masks[2] & 1, 0);
    }
}
