//! Sequence-classification heads, one per layout.
//!
//! BERT: `tanh(pooler(h[CLS]))`, dropout, `classifier`.
//! DistilBERT: `relu(pre_classifier(h[CLS]))`, dropout, `classifier`.

use candle_core::Tensor;

use super::config::{Architecture, ModelConfig};
use super::encoder::linear;
use super::layers::{dropout, Linear, Pass};
use super::params::ParamBuilder;
use crate::error::Result;

/// Names of the head's tensors per layout: they are what a base checkpoint lacks.
pub fn head_prefixes(arch: Architecture) -> [&'static str; 2] {
    match arch {
        Architecture::Bert => ["bert.pooler.", "classifier."],
        Architecture::DistilBert => ["pre_classifier.", "classifier."],
    }
}

/// Maps the [CLS] hidden state to class logits.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    pub architecture: Architecture,
    /// BERT's pooler or DistilBERT's pre-classifier.
    pub pre: Linear,
    pub classifier: Linear,
    pub dropout: f32,
}

impl ClassifierHead {
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let pre_name = match cfg.architecture {
            Architecture::Bert => "bert.pooler.dense",
            Architecture::DistilBert => "pre_classifier",
        };
        Ok(Self {
            architecture: cfg.architecture,
            pre: linear(b, pre_name, h, h)?,
            classifier: linear(b, "classifier", h, cfg.num_labels())?,
            dropout: cfg.classifier_dropout,
        })
    }

    /// The same head on detached parameters (see [`Pass::grad`]).
    pub fn detached(&self) -> Self {
        Self {
            pre: self.pre.detached(),
            classifier: self.classifier.detached(),
            ..*self
        }
    }

    /// `hidden`: `[batch, seq, hidden]` last hidden state; returns `[batch, labels]` logits.
    pub fn forward(&self, hidden: &Tensor, pass: Pass) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let pre = self.pre.forward(&cls)?;
        let pooled = match self.architecture {
            Architecture::Bert => pre.tanh()?,
            Architecture::DistilBert => pre.relu()?,
        };
        self.classifier
            .forward(&dropout(&pooled, self.dropout, pass)?)
    }
}
