//! `retort compare`: a teacher and its students measured on the same data, written as
//! `report.json` (every number), `report.md` (tables) and `report.html` (tables and SVG charts
//! in one self-contained page).
//!
//! Data flow: the models are checked to be comparable (same task and labels), each is
//! measured ([`measure`]), the rows are related to the teacher (agreement, speed-up, size
//! ratio, retention), the training logs are read ([`logs`]), then rendered ([`markdown`],
//! [`html`] with [`svg`]).

pub mod html;
pub mod logs;
pub mod markdown;
pub mod measure;
pub mod svg;
pub mod translation;

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::summary::ModelSummary;
use crate::task::{Corpus, Scores, Task};
pub use logs::TrainingLog;
pub use measure::MeasureOptions;
pub use translation::compare_translators;

/// One model's row of the report. Ratios are against the teacher (the teacher's are 1).
#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    /// `teacher` or `student`.
    pub role: &'static str,
    /// Short name: the model directory's name (its parent's when it is `best`/`last`).
    pub name: String,
    pub path: String,
    pub layers: usize,
    pub hidden_size: usize,
    /// Its layers in a table cell (`3 × 384`, `BiLSTM 300`; see `ModelConfig::short_shape`).
    pub shape: String,
    /// The task's primary metric (the report's `metric`).
    pub score: f64,
    /// Every metric of the task, the primary first; entity scores per type for a tagger.
    pub scores: Scores,
    /// Agreement with the teacher's predictions, as a fraction: equal labels for sentences,
    /// the entity F1 against the teacher's entities for a tagger.
    pub agreement: f64,
    pub parameters: usize,
    pub parameters_without_embeddings: usize,
    pub size_on_disk_bytes: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    /// Sequences per second at the report's batch size, tokenisation included.
    pub throughput: f64,
    /// Teacher's batch-1 latency p50 / this model's.
    pub latency_speedup: f64,
    /// This model's throughput / the teacher's.
    pub throughput_speedup: f64,
    /// This model's size on disk / the teacher's.
    pub size_ratio: f64,
    /// The primary metric as a percentage of the teacher's.
    pub retention_pct: f64,
    /// On the score–latency Pareto front: no other model is at least as fast at batch 1 and
    /// at least as good, and strictly better in one of the two.
    pub pareto: bool,
}

/// Everything `retort compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub task: Task,
    /// The primary metric: what `score` and `retention_pct` are of.
    pub metric: &'static str,
    pub data: String,
    pub examples: usize,
    pub threads: usize,
    pub batch_size: usize,
    pub latency_samples: usize,
    pub models: Vec<ModelRow>,
    pub logs: Vec<TrainingLog>,
}

/// Refuses a student that cannot be compared with the teacher: other labels (in another
/// order, predictions would not mean the same class). A student may have its own tokenizer
/// (a pruned vocabulary): every model reads the same texts with its own.
pub fn check_comparable(teacher: &Classifier, student: &Classifier) -> Result<()> {
    let (t, s) = (teacher.model.config(), student.model.config());
    if Task::of(t) != Task::of(s) {
        return Err(Error::Invalid(format!(
            "student {} is a {} model but the teacher is a {} model",
            student.dir.display(),
            Task::of(s).name(),
            Task::of(t).name()
        )));
    }
    if t.labels != s.labels {
        return Err(Error::Invalid(format!(
            "student {} has labels {:?} but the teacher has {:?}; compare models trained on the same task",
            student.dir.display(),
            s.labels,
            t.labels
        )));
    }
    Ok(())
}

/// Measures the teacher and every student on `data`.
pub fn compare(
    teacher: &Classifier,
    students: &[Classifier],
    data: &Corpus,
    logs: Vec<TrainingLog>,
    opts: &MeasureOptions,
) -> Result<Report> {
    for s in students {
        check_comparable(teacher, s)?;
    }
    let task = Task::of(teacher.model.config());
    let labels = &teacher.model.config().labels;
    let gold = task.gold(data, labels)?;
    let inputs = data.inputs();
    let t = measure::measure(teacher, &inputs, &gold, opts)?;
    let teacher_summary = ModelSummary::of(teacher)?;
    let mut models = vec![row(
        "teacher",
        teacher_summary.clone(),
        &t,
        &t,
        &teacher_summary,
        1.0,
    )];
    for s in students {
        let m = measure::measure(s, &inputs, &gold, opts)?;
        let agreement = task.agreement(labels, &inputs, &m.predictions, &t.predictions)?;
        models.push(row(
            "student",
            ModelSummary::of(s)?,
            &m,
            &t,
            &teacher_summary,
            agreement,
        ));
    }
    Ok(Report::of(task, data, opts, models, logs))
}

impl Report {
    /// The report of `models` (the teacher first) measured on `data`, its Pareto front marked.
    pub(crate) fn of(
        task: Task,
        data: &Corpus,
        opts: &MeasureOptions,
        mut models: Vec<ModelRow>,
        logs: Vec<TrainingLog>,
    ) -> Self {
        mark_pareto_front(&mut models);
        Report {
            task,
            metric: task.primary_metric(),
            data: data.path.display().to_string(),
            examples: data.len(),
            threads: crate::bench::threads(),
            batch_size: opts.batch_size,
            latency_samples: opts.latency_samples.min(data.len()),
            models,
            logs,
        }
    }
}

pub(crate) fn row(
    role: &'static str,
    s: ModelSummary,
    m: &measure::Measured,
    teacher: &measure::Measured,
    teacher_summary: &ModelSummary,
    agreement: f64,
) -> ModelRow {
    let (score, teacher_score) = (m.scores.primary_value(), teacher.scores.primary_value());
    ModelRow {
        role,
        name: short_name(Path::new(&s.model)),
        path: s.model,
        layers: s.layers,
        hidden_size: s.hidden_size,
        shape: s.short_shape.clone(),
        score,
        scores: m.scores.clone(),
        agreement,
        parameters: s.parameters,
        parameters_without_embeddings: s.parameters_without_embeddings,
        size_on_disk_bytes: s.size_on_disk_bytes,
        latency_ms_p50: m.latency_ms.median,
        latency_ms_p95: m.latency_ms.p95,
        throughput: m.throughput,
        latency_speedup: teacher.latency_ms.median / m.latency_ms.median,
        throughput_speedup: m.throughput / teacher.throughput,
        size_ratio: s.size_on_disk_bytes as f64 / teacher_summary.size_on_disk_bytes.max(1) as f64,
        retention_pct: if teacher_score > 0.0 {
            100.0 * score / teacher_score
        } else {
            0.0
        },
        pareto: false,
    }
}

/// Marks the models no other model dominates on (batch-1 latency, score): the choices worth
/// making, each the best score available at its latency.
pub fn mark_pareto_front(models: &mut [ModelRow]) {
    let points: Vec<(f64, f64)> = models.iter().map(|m| (m.latency_ms_p50, m.score)).collect();
    for (m, on) in models.iter_mut().zip(pareto_front(&points)) {
        m.pareto = on;
    }
}

/// For each (cost, score) point: whether no other point has a cost ≤ and a score ≥, one of
/// them strictly.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .enumerate()
        .map(|(i, &(cost, score))| {
            !points
                .iter()
                .enumerate()
                .any(|(j, &(c, s))| j != i && c <= cost && s >= score && (c < cost || s > score))
        })
        .collect()
}

pub fn short_name(dir: &Path) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    let own = name(dir);
    match (own.as_str(), dir.parent()) {
        ("best" | "last", Some(parent)) if parent.file_name().is_some() => name(parent),
        _ => own,
    }
}

/// Writes `report.json`, `report.md` and `report.html` into `out` (created if needed).
pub fn write(report: &Report, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::create(out, e, "report directory"))?;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::Invalid(format!("cannot serialise the report: {e}")))?;
    for (file, text) in [
        ("report.json", json + "\n"),
        ("report.md", markdown::render(report)),
        ("report.html", html::render(report)),
    ] {
        let path = out.join(file);
        std::fs::write(&path, text).map_err(|e| Error::create(&path, e, "report file"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pareto_front_keeps_the_models_nothing_beats_on_both() {
        // (latency, score): a slow accurate teacher, a dominated student (slower and worse
        // than the third), a fast student, two equal models (neither dominates the other).
        let points = [
            (76.0, 0.93),
            (10.0, 0.86),
            (8.0, 0.90),
            (3.0, 0.87),
            (3.0, 0.87),
        ];
        assert_eq!(pareto_front(&points), vec![true, false, true, true, true]);
        assert_eq!(pareto_front(&[(1.0, 0.5)]), vec![true]);
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_name(Path::new("runs/sst2-teacher/best")),
            "sst2-teacher"
        );
        assert_eq!(short_name(Path::new("models/tiny")), "tiny");
        assert_eq!(short_name(Path::new("best")), "best");
    }
}
