//! `retort compare`: a teacher and its students measured on the same data, written as
//! `report.json` (every number), `report.md` (tables) and `report.html` (tables and SVG charts
//! in one self-contained page).
//!
//! Data flow: the models are checked to be comparable (same labels, same vocabulary), each is
//! measured ([`measure`]), the rows are related to the teacher (agreement, speed-up, size
//! ratio, retention), the training logs are read ([`logs`]), then rendered ([`markdown`],
//! [`html`] with [`svg`]).

pub mod html;
pub mod logs;
pub mod markdown;
pub mod measure;
pub mod svg;

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::summary::ModelSummary;
use crate::text::Dataset;
pub use logs::TrainingLog;
pub use measure::MeasureOptions;

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
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Fraction of examples where this model predicts what the teacher predicts.
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
    /// Accuracy as a percentage of the teacher's.
    pub accuracy_retention_pct: f64,
}

/// Everything `retort compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
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
    let (t, s) = (&teacher.model.config, &student.model.config);
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
    data: &Dataset,
    logs: Vec<TrainingLog>,
    opts: &MeasureOptions,
) -> Result<Report> {
    for s in students {
        check_comparable(teacher, s)?;
    }
    let gold = data.label_ids(&teacher.model.config.labels)?;
    let texts = data.texts();
    let t = measure::measure(teacher, &texts, &gold, opts)?;
    let teacher_summary = ModelSummary::of(teacher)?;
    let mut models = vec![row(
        "teacher",
        teacher_summary.clone(),
        &t,
        &t,
        &teacher_summary,
    )];
    for s in students {
        let m = measure::measure(s, &texts, &gold, opts)?;
        models.push(row(
            "student",
            ModelSummary::of(s)?,
            &m,
            &t,
            &teacher_summary,
        ));
    }
    Ok(Report {
        data: data.path.display().to_string(),
        examples: data.len(),
        threads: crate::bench::threads(),
        batch_size: opts.batch_size,
        latency_samples: opts.latency_samples.min(data.len()),
        models,
        logs,
    })
}

fn row(
    role: &'static str,
    s: ModelSummary,
    m: &measure::Measured,
    teacher: &measure::Measured,
    teacher_summary: &ModelSummary,
) -> ModelRow {
    ModelRow {
        role,
        name: short_name(Path::new(&s.model)),
        path: s.model,
        layers: s.layers,
        hidden_size: s.hidden_size,
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
        agreement: measure::agreement(&m.predictions, &teacher.predictions),
        parameters: s.parameters,
        parameters_without_embeddings: s.parameters_without_embeddings,
        size_on_disk_bytes: s.size_on_disk_bytes,
        latency_ms_p50: m.latency_ms.median,
        latency_ms_p95: m.latency_ms.p95,
        throughput: m.throughput,
        latency_speedup: teacher.latency_ms.median / m.latency_ms.median,
        throughput_speedup: m.throughput / teacher.throughput,
        size_ratio: s.size_on_disk_bytes as f64 / teacher_summary.size_on_disk_bytes.max(1) as f64,
        // A teacher at 0 accuracy would divide by zero: report 0 rather than NaN.
        accuracy_retention_pct: if teacher.accuracy > 0.0 {
            100.0 * m.accuracy / teacher.accuracy
        } else {
            0.0
        },
    }
}

/// `runs/sst2-teacher/best` → `sst2-teacher`; `models/all-MiniLM-L6-v2` → `all-MiniLM-L6-v2`.
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
    fn short_names() {
        assert_eq!(
            short_name(Path::new("runs/sst2-teacher/best")),
            "sst2-teacher"
        );
        assert_eq!(short_name(Path::new("models/tiny")), "tiny");
        assert_eq!(short_name(Path::new("best")), "best");
    }
}
