//! Deep mutual learning's peers (Zhang et al. 2018): models that train beside the student,
//! each by its own optimiser, on hard_ce plus the run's logit terms toward the mean of the
//! other models' detached predictions (the student's among them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::terms::TermKind;
use crate::model::Model;

/// How a group of parameters trains (a peer's own optimiser, or the run's model): its peak
/// learning rate, the fraction of the run it warms up over before decaying linearly to 0 at
/// the run's end, and its gradient-norm clip (0: none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSettings {
    pub lr: f64,
    pub warmup_ratio: f64,
    pub grad_clip: f64,
}

/// A model that learns beside the student.
pub struct Peer {
    /// `peer1` (the teacher), `peer2`, …: the prefix of its parameters among the objective's,
    /// of its terms in the training log, and the directory its best checkpoint goes to.
    pub name: String,
    pub model: Arc<dyn Model>,
    pub settings: GroupSettings,
}

impl Peer {
    /// The name of the `index`-th peer (0-based; the teacher is the first).
    pub fn name_of(index: usize) -> String {
        format!("peer{}", index + 1)
    }

    /// Where its parameters sit among the objective's.
    pub fn prefix(&self) -> String {
        format!("{}.", self.name)
    }
}

/// The training log's name of a peer's own term, e.g. `peer2.soft_kl`. Loss values carry
/// `&'static str` names (as the student's terms do); these are made once per (peer, term) for
/// the life of the process, a few dozen strings at most.
pub fn term_name(peer: &str, kind: TermKind) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<(String, TermKind), &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    names
        .entry((peer.to_string(), kind))
        .or_insert_with(|| Box::leak(format!("{peer}.{}", kind.name()).into_boxed_str()))
}
