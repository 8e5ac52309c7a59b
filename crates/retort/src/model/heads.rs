//! The heads on top of the encoder, one per [`HeadKind`] and layout, as transformers names them.
//!
//! Sequence classification (`*ForSequenceClassification`):
//! BERT: `tanh(pooler(h[CLS]))`, dropout, `classifier`;
//! DistilBERT: `relu(pre_classifier(h[CLS]))`, dropout, `classifier`.
//! Token classification (`*ForTokenClassification`, both layouts): dropout, `classifier` on
//! every token.
//! Question answering (`*ForQuestionAnswering`): `qa_outputs` on every token, its two outputs
//! the start and end scores (BERT applies no dropout there; DistilBERT its `qa_dropout`,
//! read as the classifier dropout).

use candle_core::Tensor;

use super::config::{Architecture, HeadKind, ModelConfig};
use super::encoder::linear;
use super::layers::{dropout, Linear, Pass};
use super::params::ParamBuilder;
use crate::error::Result;

/// Names of the head's tensors: they are what a base checkpoint lacks.
pub fn head_prefixes(arch: Architecture, head: HeadKind) -> &'static [&'static str] {
    match (head, arch) {
        (HeadKind::SequenceClassification, Architecture::Bert) => &["bert.pooler.", "classifier."],
        (HeadKind::SequenceClassification, Architecture::DistilBert) => {
            &["pre_classifier.", "classifier."]
        }
        // `classifier.dense` and `classifier.out_proj` (MPNetClassificationHead).
        (HeadKind::SequenceClassification, Architecture::MpNet) => &["classifier."],
        // Their own models name their heads (`model/bilstm.rs`, `model/cnn.rs`).
        (HeadKind::SequenceClassification, Architecture::BiLstm | Architecture::Cnn) => {
            &["mlp.", "classifier."]
        }
        (HeadKind::TokenClassification, _) => &["classifier."],
        (HeadKind::QuestionAnswering, _) => &["qa_outputs."],
        // A translator's output layer is its shared embedding table: no tensor of its own.
        (HeadKind::Generation, _) | (_, Architecture::Marian) => &[],
    }
}

/// The head of a model: what turns the encoder's last hidden state into logits.
#[derive(Debug, Clone)]
pub enum Head {
    Sequence(ClassifierHead),
    Token(TokenHead),
    Span(SpanHead),
}

impl Head {
    /// The head `cfg.head` asks for.
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        Ok(match cfg.head {
            HeadKind::SequenceClassification => Head::Sequence(ClassifierHead::new(b, cfg)?),
            HeadKind::TokenClassification => Head::Token(TokenHead::new(b, cfg)?),
            HeadKind::QuestionAnswering => Head::Span(SpanHead::new(b, cfg)?),
            HeadKind::Generation => {
                return Err(crate::error::Error::Invalid(
                    "an encoder has no generation head: a translator is an encoder–decoder (model/seq2seq.rs)".into(),
                ))
            }
        })
    }

    /// The same head on detached parameters (see [`Pass::grad`]).
    pub fn detached(&self) -> Self {
        match self {
            Head::Sequence(h) => Head::Sequence(h.detached()),
            Head::Token(h) => Head::Token(h.detached()),
            Head::Span(h) => Head::Span(h.detached()),
        }
    }

    /// `hidden`: `[batch, seq, hidden]`; returns `[batch, labels]` (sequence) or
    /// `[batch, seq, labels]` (token) or `[batch, seq, 2]` (span: start, end) logits.
    pub fn forward(&self, hidden: &Tensor, pass: Pass) -> Result<Tensor> {
        match self {
            Head::Sequence(h) => h.forward(hidden, pass),
            Head::Token(h) => h.forward(hidden, pass),
            Head::Span(h) => h.forward(hidden, pass),
        }
    }
}

/// Scores every token as the start and as the end of the answer
/// (`BertForQuestionAnswering`'s `qa_outputs`).
#[derive(Debug, Clone)]
pub struct SpanHead {
    pub qa_outputs: Linear,
    pub dropout: f32,
}

impl SpanHead {
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        Ok(Self {
            qa_outputs: linear(b, "qa_outputs", cfg.hidden_size, cfg.num_labels())?,
            dropout: match cfg.architecture {
                Architecture::Bert | Architecture::MpNet => 0.0,
                Architecture::DistilBert => cfg.classifier_dropout,
                Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
                    unreachable!("not a transformer: Transformer::build refuses it")
                }
            },
        })
    }

    /// The same head on detached parameters.
    pub fn detached(&self) -> Self {
        Self {
            qa_outputs: self.qa_outputs.detached(),
            dropout: self.dropout,
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, 2]`: start scores, then end scores.
    pub fn forward(&self, hidden: &Tensor, pass: Pass) -> Result<Tensor> {
        self.qa_outputs
            .forward(&dropout(hidden, self.dropout, pass)?)
    }
}

/// Maps every token's hidden state to label logits (`BertForTokenClassification`).
#[derive(Debug, Clone)]
pub struct TokenHead {
    pub classifier: Linear,
    pub dropout: f32,
}

impl TokenHead {
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        Ok(Self {
            classifier: linear(b, "classifier", cfg.hidden_size, cfg.num_labels())?,
            dropout: cfg.classifier_dropout,
        })
    }

    /// The same head on detached parameters.
    pub fn detached(&self) -> Self {
        Self {
            classifier: self.classifier.detached(),
            dropout: self.dropout,
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, labels]`.
    pub fn forward(&self, hidden: &Tensor, pass: Pass) -> Result<Tensor> {
        self.classifier
            .forward(&dropout(hidden, self.dropout, pass)?)
    }
}

/// Maps the [CLS] hidden state to class logits.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    pub architecture: Architecture,
    /// BERT's pooler, DistilBERT's pre-classifier or MPNet's `classifier.dense`.
    pub pre: Linear,
    pub classifier: Linear,
    /// Dropout before `pre` (MPNet's head has one; BERT's and DistilBERT's do not).
    pub input_dropout: f32,
    pub dropout: f32,
}

impl ClassifierHead {
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let (pre_name, classifier_name) = match cfg.architecture {
            Architecture::Bert => ("bert.pooler.dense", "classifier"),
            Architecture::DistilBert => ("pre_classifier", "classifier"),
            Architecture::MpNet => ("classifier.dense", "classifier.out_proj"),
            Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
                unreachable!("not a transformer: Transformer::build refuses it")
            }
        };
        Ok(Self {
            architecture: cfg.architecture,
            pre: linear(b, pre_name, h, h)?,
            classifier: linear(b, classifier_name, h, cfg.num_labels())?,
            input_dropout: match cfg.architecture {
                Architecture::MpNet => cfg.classifier_dropout,
                _ => 0.0,
            },
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
        let pre = self
            .pre
            .forward(&dropout(&cls, self.input_dropout, pass)?)?;
        let pooled = match self.architecture {
            Architecture::Bert | Architecture::MpNet => pre.tanh()?,
            Architecture::DistilBert => pre.relu()?,
            Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
                unreachable!("not a transformer: Transformer::build refuses it")
            }
        };
        self.classifier
            .forward(&dropout(&pooled, self.dropout, pass)?)
    }
}
