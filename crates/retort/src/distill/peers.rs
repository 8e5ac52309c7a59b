//! Mutual learning's peers beyond the teacher (`[[distill.peers]]`): loaded and checked
//! before anything is written, and reported after the run beside their scores before it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::Model;
use crate::objective::peers::GroupSettings;
use crate::task::{Task, TaskData};
use crate::train::config::DistillConfig;
use crate::train::trainer::{dev_metrics, PeerRun};

/// A peer as the run starts: its model, how it trains, and its dev score before training.
pub struct StartingPeer {
    pub model: Arc<dyn Model>,
    pub settings: GroupSettings,
    pub from: PathBuf,
    pub score_before: f64,
}

/// A peer of a mutual-learning run (the teacher is the first): its dev score before the run,
/// its best during it (which chose the checkpoint in `dir`) and at the end.
#[derive(Debug, Clone, Serialize)]
pub struct PeerSummary {
    pub name: String,
    /// The checkpoint it started from.
    pub from: PathBuf,
    pub score_before: f64,
    pub best_score: f64,
    pub best_step: usize,
    pub final_score: f64,
    /// Its best checkpoint (`output.dir/<name>`).
    pub dir: PathBuf,
}

/// Loads `[[distill.peers]]`: each must have a trained head for the teacher's task and labels
/// and read the teacher's tokens (the peers learn from each other's logits on one batch).
pub fn load_peers(
    config: &DistillConfig,
    teacher: &Classifier,
    dev: &TaskData,
) -> Result<Vec<StartingPeer>> {
    let t = teacher.model.config();
    let mut peers = Vec::new();
    for (i, section) in config.distill.peers.iter().enumerate() {
        let dir = &section.dir;
        let problem =
            |why: String| Error::Invalid(format!("distill.peers[{i}] ({}): {why}", dir.display()));
        let peer = Classifier::load(dir, config.teacher.max_len)?;
        let p = peer.model.config();
        if peer.report.fresh_head {
            return Err(problem(
                "has no trained head: fine-tune it first (retort train), or distil it".into(),
            ));
        }
        if Task::of(p) != Task::of(t) || p.labels != t.labels {
            return Err(problem(format!(
                "predicts {:?} for the {} task, the teacher {:?} for the {} task: peers learn each other's predictions, so they must predict the same labels",
                p.labels,
                Task::of(p).name(),
                t.labels,
                Task::of(t).name()
            )));
        }
        if !peer.tokenizer.same_tokens_as(&teacher.tokenizer) {
            return Err(problem(format!(
                "reads other tokens than the teacher {}: the peers read the same batches",
                config.teacher.dir.display()
            )));
        }
        let score_before = dev_metrics(peer.model.as_ref(), dev, 64)?.primary_value();
        peers.push(StartingPeer {
            model: peer.model.clone(),
            settings: config.peer_settings(section),
            from: dir.clone(),
            score_before,
        });
    }
    Ok(peers)
}

/// The summary of each peer: the teacher's (which started from `teacher_dir` at
/// `teacher_score`), then the others'.
pub fn summaries(
    runs: &[PeerRun],
    teacher_dir: &std::path::Path,
    teacher_score: f64,
    others: &[StartingPeer],
) -> Vec<PeerSummary> {
    let starts = std::iter::once((teacher_dir.to_path_buf(), teacher_score))
        .chain(others.iter().map(|p| (p.from.clone(), p.score_before)));
    runs.iter()
        .zip(starts)
        .map(|(run, (from, score_before))| PeerSummary {
            name: run.name.clone(),
            from,
            score_before,
            best_score: run.best_score,
            best_step: run.best_step,
            final_score: run.final_score,
            dir: run.dir.clone(),
        })
        .collect()
}
