//! Training curves from the `metrics.jsonl` logs that `retort train` / `retort distill` write.
//!
//! Each line is a JSON object with `event`: `"train"` lines have `step`, `loss`, `terms`
//! (loss term → value) and, when weights or the temperature are scheduled, `schedule` (name →
//! value in that step); `"eval"` lines have `step`, `metric` and `dev_<metric>` (`dev_accuracy`
//! when there is no `metric`). Other events are
//! ignored so that later additions to the log do not break old reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One training log, ready to plot.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingLog {
    /// Short name: the run directory of a `metrics.jsonl`, else the file's stem.
    pub name: String,
    pub path: PathBuf,
    pub train: Vec<TrainPoint>,
    pub eval: Vec<EvalPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainPoint {
    pub step: u64,
    pub loss: f64,
    pub terms: BTreeMap<String, f64>,
    /// Scheduled values (`temperature`, `weight.<term>`) in that step; empty without schedules.
    pub schedule: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalPoint {
    pub step: u64,
    /// The dev value of the run's primary metric (`metric`).
    pub dev: f64,
    /// The metric's name: the record's `metric` (`accuracy` in logs from before tasks).
    pub metric: String,
}

/// The fields of a log line that the report uses.
#[derive(Deserialize)]
struct Line {
    event: Option<String>,
    step: Option<u64>,
    loss: Option<f64>,
    #[serde(default)]
    terms: BTreeMap<String, f64>,
    #[serde(default)]
    schedule: BTreeMap<String, f64>,
    metric: Option<String>,
    /// Every other field (`dev_<metric>` among them).
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

impl TrainingLog {
    /// Reads a JSONL log; malformed lines are errors naming the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e, "training log"))?;
        let mut log = Self {
            name: log_name(path),
            path: path.to_path_buf(),
            train: Vec::new(),
            eval: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let bad = |message: String| Error::Data {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let line: Line =
                serde_json::from_str(raw).map_err(|e| bad(format!("not a log record: {e}")))?;
            let step = || {
                line.step
                    .ok_or_else(|| bad("record has no \"step\"".into()))
            };
            match line.event.as_deref() {
                Some("train") => log.train.push(TrainPoint {
                    step: step()?,
                    loss: line
                        .loss
                        .ok_or_else(|| bad("train record has no \"loss\"".into()))?,
                    terms: line.terms.clone(),
                    schedule: line.schedule.clone(),
                }),
                Some("eval") => {
                    let metric = line.metric.clone().unwrap_or_else(|| "accuracy".into());
                    let key = format!("dev_{metric}");
                    let dev = line
                        .rest
                        .get(&key)
                        .and_then(serde_json::Value::as_f64)
                        .ok_or_else(|| bad(format!("eval record has no {key:?}")))?;
                    log.eval.push(EvalPoint {
                        step: step()?,
                        dev,
                        metric,
                    });
                }
                _ => {}
            }
        }
        if log.train.is_empty() && log.eval.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no training or evaluation records (expected JSON lines with \"event\": \"train\" or \"eval\")",
                path.display()
            )));
        }
        Ok(log)
    }

    /// Names of the scheduled values logged anywhere in the run, sorted.
    pub fn schedule_names(&self) -> Vec<String> {
        self.keys(|p| &p.schedule)
    }

    /// Names of the loss terms logged anywhere in the run, sorted.
    pub fn term_names(&self) -> Vec<String> {
        self.keys(|p| &p.terms)
    }

    /// The keys of one map of the train records, over the whole run, sorted and unique.
    fn keys(&self, map: impl Fn(&TrainPoint) -> &BTreeMap<String, f64>) -> Vec<String> {
        let mut names: Vec<String> = self
            .train
            .iter()
            .flat_map(|p| map(p).keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The best dev value and its step: the first step that reached it, the one whose
    /// checkpoint the trainer kept in `best/` (it saves only on a strict improvement). The
    /// highest score, or the lowest loss for a general-distillation log (metric `loss`).
    pub fn best_eval(&self) -> Option<&EvalPoint> {
        self.eval.iter().reduce(|best, e| {
            let better = match e.metric == crate::train::trainer::DEV_LOSS {
                true => e.dev < best.dev,
                false => e.dev > best.dev,
            };
            if better {
                e
            } else {
                best
            }
        })
    }
}

/// `runs/sst2-teacher/metrics.jsonl` → `sst2-teacher`; `foo.jsonl` → `foo`.
fn log_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("log");
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str());
    match parent {
        Some(dir) if stem == "metrics" => dir.to_string(),
        _ => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_train_and_eval_records() {
        let (_d, path) = write(concat!(
            r#"{"event":"train","step":20,"loss":0.6,"terms":{"hard_ce":0.4,"soft_kl":0.8},"lr":1e-5}"#,
            "\n\n",
            r#"{"event":"eval","step":50,"dev_accuracy":0.8}"#,
            "\n",
            r#"{"event":"something-new","step":60}"#,
            "\n"
        ));
        let log = TrainingLog::read(&path).unwrap();
        assert_eq!((log.train.len(), log.eval.len()), (1, 1));
        assert_eq!(log.term_names(), ["hard_ce", "soft_kl"]);
        assert_eq!(log.best_eval().unwrap().step, 50);
    }

    #[test]
    fn eval_records_name_their_metric() {
        let (_d, path) = write(concat!(
            r#"{"event":"eval","step":5,"metric":"entity_f1","dev_entity_f1":0.7,"dev_word_accuracy":0.9}"#,
            "\n",
            r#"{"event":"eval","step":9,"metric":"entity_f1","dev_entity_f1":0.8}"#,
            "\n"
        ));
        let log = TrainingLog::read(&path).unwrap();
        let best = log.best_eval().unwrap();
        assert_eq!(
            (best.step, best.dev, best.metric.as_str()),
            (9, 0.8, "entity_f1")
        );
        let (_d, path) =
            write(r#"{"event":"eval","step":5,"metric":"entity_f1","dev_accuracy":0.7}"#);
        let err = TrainingLog::read(&path).unwrap_err().to_string();
        assert!(err.contains("dev_entity_f1"), "{err}");
    }

    #[test]
    fn the_best_eval_is_the_first_to_reach_the_best_accuracy() {
        // As the trainer keeps it: a later tie does not replace best/.
        let (_d, path) = write(concat!(
            r#"{"event":"eval","step":10,"dev_accuracy":0.7}"#,
            "\n",
            r#"{"event":"eval","step":20,"dev_accuracy":0.9}"#,
            "\n",
            r#"{"event":"eval","step":30,"dev_accuracy":0.9}"#,
            "\n"
        ));
        let log = TrainingLog::read(&path).unwrap();
        assert_eq!(log.best_eval().unwrap().step, 20);
    }

    #[test]
    fn a_general_stage_log_keeps_its_lowest_loss() {
        let (_d, path) = write(concat!(
            r#"{"event":"eval","step":10,"metric":"loss","dev_loss":0.05}"#,
            "\n",
            r#"{"event":"eval","step":20,"metric":"loss","dev_loss":0.03}"#,
            "\n",
            r#"{"event":"eval","step":30,"metric":"loss","dev_loss":0.04}"#,
            "\n"
        ));
        let log = TrainingLog::read(&path).unwrap();
        assert_eq!(log.best_eval().unwrap().step, 20);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let (_d, path) = write("{\"event\":\"eval\",\"step\":1,\"dev_accuracy\":0.5}\nnot json\n");
        let e = TrainingLog::read(&path).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl:2"), "{e}");
        let (_d, path) = write("{\"event\":\"eval\",\"step\":1}\n");
        assert!(TrainingLog::read(&path)
            .unwrap_err()
            .to_string()
            .contains("dev_accuracy"));
        let (_d, path) = write("\n");
        assert!(TrainingLog::read(&path).is_err());
    }
}
