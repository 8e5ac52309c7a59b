//! The loss terms a run's objective is made of: a closed registry of kinds (Rust's form of
//! TextBrewer's loss registry), each term with its weight and, for the intermediate kinds, its
//! own layer map (TextBrewer's `intermediate_matches`).
//!
//! In a config:
//! ```toml
//! [[distill.terms]]
//! kind = "soft_kl"
//! weight = 0.5
//! [[distill.terms]]
//! kind = "hidden_mse"
//! weight = 1.0
//! layer_map = "1,3,5"   # optional: distill.layer_map when absent
//! [[distill.terms]]
//! kind = "hard_ce"
//! weight = { start = 0.0, end = 1.0, shape = "cosine" }   # a schedule (see `schedule`)
//! ```
//! What each kind needs from the models (gold labels, the teacher's logits, hidden states,
//! attention maps) is declared by the kind ([`TermKind::needs`]), so the objective and the
//! distillation run ask the terms instead of keeping lists of their own.

use serde::{Deserialize, Serialize};

use super::mapping::LayerMap;
use super::schedule::Scheduled;
use crate::error::{Error, Result};

/// The kinds of loss term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TermKind {
    /// Cross-entropy with the gold labels (unlabelled rows skip it).
    HardCe,
    /// KL(teacher ‖ student) of temperature-softened distributions, × T² (Hinton et al. 2015).
    SoftKl,
    /// Cross-entropy with the teacher's softened distribution, × T².
    SoftCe,
    /// Mean squared error between logits (Ba & Caruana 2014; Tang et al. 2019).
    LogitMse,
    /// The logistic logit loss, `T² · log(1 + exp(−s·t / T²))` per class: the student's logits
    /// pushed to the teacher's side of 0 (one-vs-rest, so multi-label heads too).
    Logistic,
    /// Binary cross-entropy of each label's softened sigmoid probability with the teacher's,
    /// × T²: sigmoid distillation for multi-label heads.
    SoftBce,
    /// MSE between mapped hidden states, through a learned projection when widths differ.
    HiddenMse,
    /// 1 − cosine similarity of mapped hidden states (DistilBERT).
    Cosine,
    /// MSE between attention probabilities of mapped layers (TinyBERT).
    AttentionMse,
    /// KL between attention distributions of mapped layers (MiniLM).
    AttentionKl,
    /// soft_kl on adversarial inputs: the batch's word embeddings perturbed (per token, within
    /// `epsilon`, by `steps` of gradient ascent) to maximise the teacher–student divergence,
    /// then the student learns the teacher's soft labels there. Both models see the same
    /// perturbation, so their word embeddings must be as wide.
    AdversarialKl,
}

/// What a term needs from the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// The teacher's logits (cached over the transfer set, or online).
    pub teacher_logits: bool,
    /// Both models' hidden states (the teacher online).
    pub hidden_states: bool,
    /// Both models' attention maps (the teacher online).
    pub attentions: bool,
    /// Both models run on perturbed inputs (the teacher online, the student a second time).
    pub perturbed_inputs: bool,
}

impl Needs {
    /// Whether the teacher must run on every batch.
    pub fn teacher_online(&self) -> bool {
        self.hidden_states || self.attentions
    }

    /// What all of `terms` need together.
    pub fn of(terms: &[Term]) -> Self {
        terms.iter().fold(Needs::default(), |a, t| {
            let n = t.kind.needs();
            Needs {
                teacher_logits: a.teacher_logits || n.teacher_logits,
                hidden_states: a.hidden_states || n.hidden_states,
                attentions: a.attentions || n.attentions,
                perturbed_inputs: a.perturbed_inputs || n.perturbed_inputs,
            }
        })
    }
}

impl TermKind {
    /// Every kind (those of the old `[distill.weights]` table in its order, then the rest).
    pub const ALL: [TermKind; 11] = [
        TermKind::HardCe,
        TermKind::SoftKl,
        TermKind::SoftCe,
        TermKind::LogitMse,
        TermKind::HiddenMse,
        TermKind::AttentionMse,
        TermKind::AttentionKl,
        TermKind::Cosine,
        TermKind::Logistic,
        TermKind::AdversarialKl,
        TermKind::SoftBce,
    ];

    /// The name used in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            TermKind::HardCe => "hard_ce",
            TermKind::SoftKl => "soft_kl",
            TermKind::SoftCe => "soft_ce",
            TermKind::LogitMse => "logit_mse",
            TermKind::Logistic => "logistic",
            TermKind::HiddenMse => "hidden_mse",
            TermKind::Cosine => "cosine",
            TermKind::AttentionMse => "attention_mse",
            TermKind::AttentionKl => "attention_kl",
            TermKind::AdversarialKl => "adversarial_kl",
            TermKind::SoftBce => "soft_bce",
        }
    }

    /// What this kind of term reads.
    pub fn needs(self) -> Needs {
        match self {
            TermKind::HardCe => Needs::default(),
            TermKind::SoftKl
            | TermKind::SoftCe
            | TermKind::LogitMse
            | TermKind::Logistic
            | TermKind::SoftBce => Needs {
                teacher_logits: true,
                ..Needs::default()
            },
            TermKind::HiddenMse | TermKind::Cosine => Needs {
                hidden_states: true,
                ..Needs::default()
            },
            TermKind::AttentionMse | TermKind::AttentionKl => Needs {
                attentions: true,
                ..Needs::default()
            },
            TermKind::AdversarialKl => Needs {
                perturbed_inputs: true,
                ..Needs::default()
            },
        }
    }

    /// Whether the term reads logits as one distribution over classes (a softmax), which a
    /// multi-label head's independent labels are not.
    pub fn is_softmax(self) -> bool {
        matches!(
            self,
            TermKind::SoftKl | TermKind::SoftCe | TermKind::AdversarialKl
        )
    }

    /// Whether the term is a sum over classes that a weight per class can scale: softmax terms
    /// couple the classes, so a class's part of them is not its own.
    pub fn takes_class_weights(self) -> bool {
        matches!(
            self,
            TermKind::Logistic | TermKind::LogitMse | TermKind::SoftBce
        )
    }

    /// Whether the term compares layers (and so has a layer map).
    pub fn is_intermediate(self) -> bool {
        let n = self.needs();
        n.hidden_states || n.attentions
    }
}

/// One term of a run's objective.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub kind: TermKind,
    /// The term's weight in the sum: a positive number, or a schedule over the run whose
    /// values are ≥ 0 and not all 0.
    pub weight: Scheduled,
    /// Intermediate kinds: which teacher layer each student layer is compared with (absent:
    /// `distill.layer_map`). Not allowed on the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_map: Option<LayerMap>,
    /// Logit kinds: how the rows of a batch are weighted in the term's mean.
    #[serde(default, skip_serializing_if = "Weighting::is_uniform")]
    pub weighting: Weighting,
    /// logistic, logit_mse and soft_bce: a weight λ per class (in the teacher's label order)
    /// multiplying that class's part of the term before the mean over classes; absent: 1 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f64>>,
    /// adversarial_kl: the largest L2 norm of a token's perturbation (default
    /// [`DEFAULT_EPSILON`]; MiniLM's word embeddings have norms of about 0.5 to 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// adversarial_kl: steps of gradient ascent, each of `epsilon / steps` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
}

/// adversarial_kl's perturbation bound when the term gives none.
pub const DEFAULT_EPSILON: f64 = 0.5;

/// How a logit term weights the rows of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Every row alike: the plain mean.
    #[default]
    Uniform,
    /// Each row by the teacher's largest class probability (at T = 1): rows the teacher is
    /// unsure of count less (the weighted MSE / KL of confidence-weighted distillation).
    TeacherConfidence,
}

impl Weighting {
    fn is_uniform(&self) -> bool {
        *self == Weighting::Uniform
    }
}

impl Term {
    pub fn new(kind: TermKind, weight: f64) -> Self {
        Self {
            kind,
            weight: Scheduled::Constant(weight),
            layer_map: None,
            weighting: Weighting::Uniform,
            class_weights: None,
            epsilon: None,
            steps: None,
        }
    }

    /// adversarial_kl's bound and steps, defaults filled in.
    pub fn perturbation(&self) -> (f64, usize) {
        (
            self.epsilon.unwrap_or(DEFAULT_EPSILON),
            self.steps.unwrap_or(1),
        )
    }

    /// Checks the weight and that only intermediate terms have a layer map.
    pub fn check(&self) -> Result<()> {
        let name = self.kind.name();
        let [start, end] = self.weight.ends();
        let finite = start.is_finite() && end.is_finite();
        let valid = match self.weight.constant() {
            Some(w) => finite && w > 0.0,
            // A schedule may start or end at 0 (a term switched on or off over the run).
            None => finite && start >= 0.0 && end >= 0.0 && start.max(end) > 0.0,
        };
        if !valid {
            return Err(Error::Invalid(format!(
                "{name} has weight {}: a weight must be a positive number, or a schedule whose start and end are ≥ 0 and not both 0 (remove the term to switch it off)",
                self.weight
            )));
        }
        if !self.weighting.is_uniform() && !self.kind.needs().teacher_logits {
            return Err(Error::Invalid(format!(
                "{name} does not compare rows of logits with the teacher's: weighting applies to soft_kl, soft_ce, logit_mse and logistic only"
            )));
        }
        if let Some(weights) = &self.class_weights {
            self.check_class_weights(weights)?;
        }
        if self.layer_map.is_some() && !self.kind.is_intermediate() {
            return Err(Error::Invalid(format!(
                "{name} compares logits, not layers: it takes no layer_map"
            )));
        }
        let adversarial = self.kind == TermKind::AdversarialKl;
        if !adversarial && (self.epsilon.is_some() || self.steps.is_some()) {
            return Err(Error::Invalid(format!(
                "{name} perturbs nothing: epsilon and steps belong to adversarial_kl"
            )));
        }
        let (epsilon, steps) = self.perturbation();
        if !(epsilon > 0.0 && epsilon.is_finite()) || steps == 0 {
            return Err(Error::Invalid(format!(
                "{name}: epsilon must be a positive number and steps at least 1, got {epsilon} and {steps}"
            )));
        }
        Ok(())
    }

    fn check_class_weights(&self, weights: &[f64]) -> Result<()> {
        let name = self.kind.name();
        if !self.kind.takes_class_weights() {
            return Err(Error::Invalid(format!(
                "{name} takes no class_weights: they apply to logistic, logit_mse and soft_bce, whose classes are separate sums"
            )));
        }
        let valid = weights.iter().all(|w| w.is_finite() && *w >= 0.0);
        if weights.is_empty() || !valid || weights.iter().all(|w| *w == 0.0) {
            return Err(Error::Invalid(format!(
                "{name} has class_weights {weights:?}: one finite weight ≥ 0 per class, not all 0"
            )));
        }
        Ok(())
    }
}

/// The default objective: hard and soft labels, half each.
pub fn default_terms() -> Vec<Term> {
    vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_declare_what_they_need() {
        let terms = [
            Term::new(TermKind::HardCe, 1.0),
            Term::new(TermKind::AttentionKl, 1.0),
        ];
        let n = Needs::of(&terms);
        assert!(!n.teacher_logits && !n.hidden_states && n.attentions && n.teacher_online());
        assert!(Needs::of(&default_terms()).teacher_logits);
        assert!(!Needs::of(&default_terms()).teacher_online());
        for kind in TermKind::ALL {
            let back: TermKind = serde_json::from_value(serde_json::json!(kind.name())).unwrap();
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn bad_terms_are_refused() {
        assert!(Term::new(TermKind::SoftKl, 0.0).check().is_err());
        assert!(Term::new(TermKind::SoftKl, -1.0).check().is_err());
        assert!(Term::new(TermKind::SoftKl, f64::NAN).check().is_err());
        let mapped = Term {
            layer_map: Some(LayerMap::LastK),
            ..Term::new(TermKind::SoftKl, 1.0)
        };
        assert!(mapped
            .check()
            .unwrap_err()
            .to_string()
            .contains("no layer_map"));
        let mapped = Term {
            layer_map: Some(LayerMap::LastK),
            ..Term::new(TermKind::HiddenMse, 1.0)
        };
        mapped.check().unwrap();
    }

    #[test]
    fn class_weights_only_on_per_class_terms() {
        let weighted = |kind, weights: &[f64]| Term {
            class_weights: Some(weights.to_vec()),
            ..Term::new(kind, 1.0)
        };
        weighted(TermKind::Logistic, &[1.0, 2.0]).check().unwrap();
        weighted(TermKind::LogitMse, &[0.0, 2.0]).check().unwrap();
        weighted(TermKind::SoftBce, &[0.5]).check().unwrap();
        let err = weighted(TermKind::SoftKl, &[1.0, 2.0]).check().unwrap_err();
        assert!(err.to_string().contains("takes no class_weights"), "{err}");
        for bad in [&[][..], &[0.0, 0.0], &[1.0, -1.0], &[f64::NAN, 1.0]] {
            let err = weighted(TermKind::Logistic, bad).check().unwrap_err();
            assert!(err.to_string().contains("one finite weight"), "{err}");
        }
        // Read from a config's TOML.
        let term: Term =
            toml::from_str("kind = \"logistic\"\nweight = 0.5\nclass_weights = [1.0, 3.0]")
                .unwrap();
        assert_eq!(term.class_weights, Some(vec![1.0, 3.0]));
    }
}
