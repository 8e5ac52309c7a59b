//! `retort compare` of translators: a teacher and its students translate the same corpus; each
//! row gives BLEU, agreement with the teacher (the BLEU of the student's translations against
//! the teacher's, as a fraction), size, batch-1 latency (one sentence, tokenisation and
//! decoding included) and throughput (sentences per second), in the report every task uses.

use super::measure::{timed, MeasureOptions, Measured};
use super::{row, Report, TrainingLog};
use crate::error::Result;
use crate::model::generate::DecodeOptions;
use crate::summary::ModelSummary;
use crate::task::bleu::corpus_bleu;
use crate::task::translation::{scores, sides};
use crate::task::{Corpus, Task};
use crate::translate::Translator;

/// Measures the teacher and every student on the parallel corpus `data`, decoding as `decode`.
pub fn compare_translators(
    teacher: &Translator,
    students: &[Translator],
    data: &Corpus,
    logs: Vec<TrainingLog>,
    opts: &MeasureOptions,
    decode: &DecodeOptions,
) -> Result<Report> {
    let (sources, references) = sides(data)?;
    let t = measure(teacher, &sources, &references, opts, decode)?;
    let teacher_summary = ModelSummary::of_translator(teacher)?;
    let mut models = vec![row(
        "teacher",
        teacher_summary.clone(),
        &t.0,
        &t.0,
        &teacher_summary,
        1.0,
    )];
    for s in students {
        if s.tokenizer.vocab_size() != teacher.tokenizer.vocab_size() {
            // Other tokens are fine (texts are compared), but say what is compared.
            eprintln!(
                "note: student {} has a vocabulary of its own ({} tokens, the teacher {})",
                s.dir.display(),
                s.tokenizer.vocab_size(),
                teacher.tokenizer.vocab_size()
            );
        }
        let m = measure(s, &sources, &references, opts, decode)?;
        let agreement = corpus_bleu(&m.1, std::slice::from_ref(&t.1))?.score / 100.0;
        models.push(row(
            "student",
            ModelSummary::of_translator(s)?,
            &m.0,
            &t.0,
            &teacher_summary,
            agreement,
        ));
    }
    Ok(Report::of(Task::Translation, data, opts, models, logs))
}

/// One translator's scores and timings on the sources, with its translations.
fn measure(
    t: &Translator,
    sources: &[String],
    references: &[String],
    opts: &MeasureOptions,
    decode: &DecodeOptions,
) -> Result<(Measured, Vec<String>)> {
    let (lines, latency_ms, throughput) = timed(sources, opts, &|lines: &[String], batch| {
        Ok(t.translate(lines, decode, batch, false)?.lines)
    })?;
    let measured = Measured {
        predictions: Vec::new(),
        scores: scores(&lines, references)?,
        latency_ms,
        throughput,
    };
    Ok((measured, lines))
}
