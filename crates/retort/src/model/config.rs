//! The model configuration, read from a Hugging Face `config.json`.
//!
//! BERT and DistilBERT name the same quantities differently (`hidden_size` vs `dim`, ...);
//! [`ModelConfig`] is the one shape the rest of Retort uses for both.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The checkpoint families Retort implements, by their `model_type`.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "bert",
    "distilbert",
    "mpnet",
    "retort-bilstm",
    "retort-cnn",
    "marian",
];

/// Which weight layout (and head) a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// BERT and everything laid out like it (MiniLM, e.g. all-MiniLM-L6-v2).
    Bert,
    /// DistilBERT: no token types, no pooler, `pre_classifier` head.
    DistilBert,
    /// MPNet (e.g. all-mpnet-base-v2): BERT's layers under other names, no token types,
    /// positions counted from `pad_token_id + 1`, and a relative-position bias on every
    /// attention score (T5's buckets, one table shared by all layers).
    MpNet,
    /// Retort's BiLSTM student (Tang et al. 2019): embeddings, one bidirectional LSTM
    /// layer, max-pooling over time, a ReLU layer and the classifier (`model/bilstm.rs`).
    BiLstm,
    /// Retort's CNN student (Kim 2014): embeddings, convolutions of several widths,
    /// max-pooling over time, a ReLU layer and the classifier (`model/cnn.rs`).
    Cnn,
    /// Retort's encoder–decoder translator in transformers' `MarianMTModel` layout
    /// (`model/seq2seq.rs`): its logits are next-token scores over the vocabulary at every
    /// target position.
    Marian,
}

impl Architecture {
    /// The `model_type` string of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::DistilBert => "distilbert",
            Architecture::MpNet => "mpnet",
            Architecture::BiLstm => "retort-bilstm",
            Architecture::Cnn => "retort-cnn",
            Architecture::Marian => "marian",
        }
    }

    /// Whether this is a transformer encoder (BERT, DistilBERT), which Retort exports in
    /// Hugging Face's layout, prunes, quantises and matches layer by layer.
    pub fn is_transformer(self) -> bool {
        matches!(
            self,
            Architecture::Bert | Architecture::DistilBert | Architecture::MpNet
        )
    }

    /// The Hugging Face class name of this family with a `head`
    /// (`BertForTokenClassification`, ...).
    pub fn class(self, head: HeadKind) -> String {
        if self == Architecture::Marian {
            return "MarianMTModel".into();
        }
        format!("{}For{}", self.family(), head.class_suffix())
    }

    /// The transformers class of the encoder alone (`BertModel`, `MPNetModel`): what a
    /// checkpoint without a head (general distillation's) names.
    pub fn base_class(self) -> String {
        format!("{}Model", self.family())
    }

    fn family(self) -> &'static str {
        match self {
            Architecture::Bert => "Bert",
            Architecture::DistilBert => "DistilBert",
            Architecture::MpNet => "MPNet",
            Architecture::BiLstm => "RetortBiLstm",
            Architecture::Cnn => "RetortCnn",
            Architecture::Marian => "Marian",
        }
    }
}

/// What the head on top of the encoder predicts; each task builds one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadKind {
    /// One label per sequence, from the first ([CLS]) token: `[batch, labels]` logits.
    #[default]
    SequenceClassification,
    /// One label per token: `[batch, seq, labels]` logits.
    TokenClassification,
    /// Extractive question answering: a start and an end score per token, `[batch, seq, 2]`
    /// logits (`*ForQuestionAnswering`'s `qa_outputs`).
    QuestionAnswering,
    /// A translator's next-token scores at every target position: `[batch, tgt_len,
    /// vocab]` logits, a row per target token (`MarianMTModel`'s `lm_head`).
    Generation,
}

/// How the rows a task reads cut a model's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAxis {
    /// A row is the scores of every label at one token position (`[batch, labels]` or
    /// `[batch, seq, labels]`): a distribution over labels.
    Labels,
    /// A row is one output's scores over a sequence's token positions (`[batch, seq, 2]`
    /// read as the start and the end rows of each example): a distribution over positions,
    /// padding masked out.
    Positions,
}

impl HeadKind {
    /// Every head kind, in the order `architectures` names are tried.
    pub const ALL: [HeadKind; 4] = [
        HeadKind::SequenceClassification,
        HeadKind::TokenClassification,
        HeadKind::QuestionAnswering,
        HeadKind::Generation,
    ];

    /// The part of the HF class name after `For`.
    pub fn class_suffix(self) -> &'static str {
        match self {
            HeadKind::SequenceClassification => "SequenceClassification",
            HeadKind::TokenClassification => "TokenClassification",
            HeadKind::QuestionAnswering => "QuestionAnswering",
            HeadKind::Generation => "ConditionalGeneration",
        }
    }

    /// How this head's logits are read as rows.
    pub fn row_axis(self) -> RowAxis {
        match self {
            HeadKind::SequenceClassification
            | HeadKind::TokenClassification
            | HeadKind::Generation => RowAxis::Labels,
            HeadKind::QuestionAnswering => RowAxis::Positions,
        }
    }

    /// The head an HF class name stands for (`BertForTokenClassification`); `None` for a
    /// base model (`BertModel`) or an unknown head.
    pub fn from_class(class: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|h| class.ends_with(&format!("For{}", h.class_suffix())))
    }
}

/// The non-linearity of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU with erf (`"gelu"` in transformers).
    Gelu,
    /// GELU with the tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
            Activation::Relu => "relu",
        }
    }
}

/// Everything Retort needs to know about an encoder and its classification head.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    /// The head, from `architectures` (a base model gets a sequence-classification head).
    pub head: HeadKind,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// Number of token-type (segment) embeddings; 0 for DistilBERT, which has none.
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub hidden_dropout: f32,
    pub attention_dropout: f32,
    pub classifier_dropout: f32,
    pub pad_token_id: u32,
    /// Class names, index = class id (from `id2label`).
    pub labels: Vec<String>,
    /// Attention heads removed from each layer (layer → head indices, ascending), as
    /// transformers 4 records them in `pruned_heads`: those layers' query, key and value maps
    /// have rows only for the other heads, and the output map columns only for them.
    pub pruned_heads: BTreeMap<usize, Vec<usize>>,
    /// The shape of a BiLSTM or CNN student; `None` for a transformer. For those,
    /// `hidden_size` is the width of the pooled features (2 × LSTM units, or filters × kernel
    /// widths), `intermediate_size` the ReLU layer's, `num_layers` and `num_heads` 1,
    /// `hidden_dropout` the dropout on embeddings and features, `classifier_dropout` the one
    /// before the classifier.
    pub compact: Option<CompactShape>,
    /// The position embedding row of the first token: 0, or `pad_token_id + 1` for MPNet
    /// (transformers counts positions from there). Sequences may hold
    /// `max_position_embeddings - position_offset` tokens.
    pub position_offset: usize,
    /// Buckets of MPNet's relative-position attention bias (`relative_attention_num_buckets`);
    /// 0: none.
    pub relative_attention_buckets: usize,
    /// A sequence head whose labels are each a yes or no of their own (sigmoid per label,
    /// transformers' `problem_type = "multi_label_classification"`), not one class of many.
    pub multi_label: bool,
    /// A multi-label head's probability above which each label is predicted, in label order
    /// (Retort's own `label_thresholds` key; transformers ignores it). Empty: 0.5 for every
    /// label. Chosen on the dev split at the end of a run (`task::multilabel::calibrate`).
    pub label_thresholds: Vec<f32>,
}

/// transformers' `problem_type` of a multi-label sequence classifier.
const MULTI_LABEL: &str = "multi_label_classification";

/// The `config.json` key of [`ModelConfig::label_thresholds`].
const LABEL_THRESHOLDS: &str = "label_thresholds";

/// The shape of a small non-transformer student (see [`Architecture::BiLstm`],
/// [`Architecture::Cnn`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactShape {
    /// Width of the word embeddings.
    pub embedding_size: usize,
    /// BiLSTM: hidden units per direction. CNN: filters per kernel width.
    pub units: usize,
    /// CNN: the kernel widths, in tokens; empty for a BiLSTM.
    pub kernel_sizes: Vec<usize>,
}

impl CompactShape {
    /// Width of the pooled features the ReLU layer reads.
    pub fn features(&self, architecture: Architecture) -> usize {
        match architecture {
            Architecture::Cnn => self.units * self.kernel_sizes.len(),
            _ => 2 * self.units,
        }
    }
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e, "config.json"))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
        })?;
        Self::from_json(&value).map_err(|message| match message {
            ConfigError::Unsupported(found) => Error::UnsupportedModel {
                path: path.to_path_buf(),
                found,
                supported: SUPPORTED_MODEL_TYPES.join(", "),
            },
            ConfigError::Field(message) => Error::Config {
                path: path.to_path_buf(),
                message,
            },
        })
    }

    /// Builds a config from the JSON object of a `config.json`.
    pub fn from_json(v: &Value) -> std::result::Result<Self, ConfigError> {
        let fields = Fields(v);
        let model_type = fields.str("model_type")?;
        let cfg = match model_type.as_str() {
            "bert" => {
                let position = fields.str_or("position_embedding_type", "absolute")?;
                if position != "absolute" {
                    return Err(ConfigError::Field(format!(
                        "position_embedding_type {position:?} is not supported (only \"absolute\")"
                    )));
                }
                fields.bert_style()?
            }
            "distilbert" => ModelConfig {
                architecture: Architecture::DistilBert,
                head: fields.head()?,
                // The question-answering head has a dropout of its own.
                classifier_dropout: match fields.head()? {
                    HeadKind::QuestionAnswering => fields.f64_or("qa_dropout", 0.1)?,
                    _ => fields.f64_or("seq_classif_dropout", 0.2)?,
                } as f32,
                vocab_size: fields.usize("vocab_size")?,
                hidden_size: fields.usize("dim")?,
                num_layers: fields.usize("n_layers")?,
                num_heads: fields.usize("n_heads")?,
                intermediate_size: fields.usize("hidden_dim")?,
                max_position_embeddings: fields.usize_or("max_position_embeddings", 512)?,
                type_vocab_size: 0,
                layer_norm_eps: 1e-12,
                activation: fields.activation("activation", "gelu")?,
                hidden_dropout: fields.f64_or("dropout", 0.1)? as f32,
                attention_dropout: fields.f64_or("attention_dropout", 0.1)? as f32,
                pad_token_id: fields.usize_or("pad_token_id", 0)? as u32,
                labels: fields.labels()?,
                pruned_heads: fields.pruned_heads()?,
                compact: None,
                position_offset: 0,
                relative_attention_buckets: 0,
                multi_label: fields.multi_label()?,
                label_thresholds: fields.label_thresholds()?,
            },
            "mpnet" => {
                // BERT's field names, with MPNet's defaults, offsets and bias on top.
                let pad = fields.usize_or("pad_token_id", 1)?;
                let bert = fields.bert_style()?;
                ModelConfig {
                    architecture: Architecture::MpNet,
                    max_position_embeddings: fields.usize_or("max_position_embeddings", 514)?,
                    type_vocab_size: 0,
                    layer_norm_eps: fields.f64_or("layer_norm_eps", 1e-5)?,
                    // MPNet's heads reuse the hidden dropout.
                    classifier_dropout: bert.hidden_dropout,
                    pad_token_id: pad as u32,
                    position_offset: pad + 1,
                    relative_attention_buckets: fields
                        .usize_or("relative_attention_num_buckets", 32)?,
                    ..bert
                }
            }
            "retort-bilstm" => fields.compact(Architecture::BiLstm)?,
            "retort-cnn" => fields.compact(Architecture::Cnn)?,
            "marian" => {
                let config: crate::model::seq2seq::Seq2SeqConfig =
                    serde_json::from_value(v.clone()).map_err(|e| {
                        ConfigError::Field(format!("not a translator's config: {e}"))
                    })?;
                config
                    .check()
                    .map_err(|e| ConfigError::Field(e.to_string()))?;
                ModelConfig::translator(&config)
            }
            other => return Err(ConfigError::Unsupported(other.to_string())),
        };
        cfg.validate().map_err(ConfigError::Field)?;
        Ok(cfg)
    }

    /// Checks the relations between sizes that the encoder relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.validate_compact()?;
        if self.multi_label && self.head != HeadKind::SequenceClassification {
            return Err(format!(
                "problem_type {MULTI_LABEL} needs a sequence-classification head, not {}",
                self.head.class_suffix()
            ));
        }
        if !self.label_thresholds.is_empty() {
            if !self.multi_label || self.label_thresholds.len() != self.labels.len() {
                return Err(format!(
                    "{LABEL_THRESHOLDS} needs a multi-label head with one threshold per label ({} thresholds, {} labels)",
                    self.label_thresholds.len(),
                    self.labels.len()
                ));
            }
            if let Some(t) = self
                .label_thresholds
                .iter()
                .find(|t| !(**t > 0.0 && **t < 1.0))
            {
                return Err(format!(
                    "{LABEL_THRESHOLDS}: {t} is not a probability in (0, 1)"
                ));
            }
        }
        if self.relative_attention_buckets > 0 && !self.pruned_heads.is_empty() {
            return Err(
                "pruned_heads with a relative-position bias (MPNet) is not supported".into(),
            );
        }
        if self.position_offset >= self.max_position_embeddings {
            return Err(format!(
                "max_position_embeddings {} leaves no position past the offset {}",
                self.max_position_embeddings, self.position_offset
            ));
        }
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden size", self.hidden_size),
            ("number of layers", self.num_layers),
            ("number of attention heads", self.num_heads),
            ("intermediate size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "hidden size {} is not divisible by the number of heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        // A translator's outputs are its vocabulary's tokens, named nowhere.
        if self.labels.is_empty() && self.head != HeadKind::Generation {
            return Err("a classifier needs at least one label".into());
        }
        if self.head == HeadKind::QuestionAnswering && self.labels.len() != 2 {
            return Err(format!(
                "a question-answering head has 2 outputs (start, end), but the config has {} labels",
                self.labels.len()
            ));
        }
        for (&layer, heads) in &self.pruned_heads {
            if layer >= self.num_layers {
                return Err(format!(
                    "pruned_heads names layer {layer}, but the model has {} layers",
                    self.num_layers
                ));
            }
            if let Some(bad) = heads.iter().find(|&&h| h >= self.num_heads) {
                return Err(format!(
                    "pruned_heads names head {bad} of layer {layer}, but layers have {} heads",
                    self.num_heads
                ));
            }
            if heads.len() >= self.num_heads {
                return Err(format!("pruned_heads removes every head of layer {layer}"));
            }
        }
        for (name, p) in [
            ("hidden dropout", self.hidden_dropout),
            ("attention dropout", self.attention_dropout),
            ("classifier dropout", self.classifier_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }

    /// The checks of a BiLSTM or CNN config's own fields.
    fn validate_compact(&self) -> std::result::Result<(), String> {
        let Some(shape) = &self.compact else {
            return Ok(());
        };
        let name = self.architecture.model_type();
        if self.head != HeadKind::SequenceClassification {
            return Err(format!(
                "a {name} model classifies whole sequences; {:?} heads are not supported",
                self.head.class_suffix()
            ));
        }
        if shape.embedding_size == 0 || shape.units == 0 {
            return Err(format!(
                "{name}: embedding_size and the hidden size / filters must be positive"
            ));
        }
        if self.architecture == Architecture::Cnn
            && (shape.kernel_sizes.is_empty() || shape.kernel_sizes.contains(&0))
        {
            return Err("retort-cnn: kernel_sizes must list at least one positive width".into());
        }
        Ok(())
    }

    /// The layers in a table cell: `3 × 384` (layers × hidden) for a transformer, `BiLSTM 300`
    /// (units per direction), `CNN 3/4/5 × 100` (kernel widths × filters).
    pub fn short_shape(&self) -> String {
        match (&self.compact, self.architecture) {
            (None, _) => format!("{} × {}", self.num_layers, self.hidden_size),
            (Some(s), Architecture::Cnn) => {
                let widths: Vec<String> = s.kernel_sizes.iter().map(usize::to_string).collect();
                format!("CNN {} × {}", widths.join("/"), s.units)
            }
            (Some(s), _) => format!("BiLSTM {}", s.units),
        }
    }

    /// The layers in words: `3 layers × 384 hidden, 1536 feed-forward` for a transformer,
    /// `embeddings 384 → BiLSTM 300 + 300 units → max-pool → ReLU 400 → 2 labels` for a
    /// BiLSTM (a CNN names its kernel widths and filters).
    pub fn describe(&self) -> String {
        let Some(shape) = &self.compact else {
            return format!(
                "{} layers × {} hidden, {} feed-forward",
                self.num_layers, self.hidden_size, self.intermediate_size
            );
        };
        let body = match self.architecture {
            Architecture::Cnn => {
                let widths: Vec<String> = shape.kernel_sizes.iter().map(usize::to_string).collect();
                format!(
                    "convolutions of widths {} × {} filters",
                    widths.join(", "),
                    shape.units
                )
            }
            _ => format!("BiLSTM {} + {} units", shape.units, shape.units),
        };
        format!(
            "embeddings {} → {body} → max-pool → ReLU {} → {} labels",
            shape.embedding_size,
            self.intermediate_size,
            self.num_labels()
        )
    }

    /// The most tokens a sequence may hold (its position embeddings' rows past the offset).
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_offset)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Attention heads left in layer `i` after pruning.
    pub fn heads_in_layer(&self, i: usize) -> usize {
        self.num_heads - self.pruned_heads.get(&i).map_or(0, Vec::len)
    }

    /// Number of classes of the classification head.
    pub fn num_labels(&self) -> usize {
        match self.head {
            // A translator's "labels" are its vocabulary's tokens, which it names nowhere.
            HeadKind::Generation => self.vocab_size,
            _ => self.labels.len(),
        }
    }

    /// The config the trainer, the objective and the tasks read for a translator: its
    /// decoder's depth and width (what a layer count or a width means for it), the
    /// vocabulary as its outputs, no labels of its own.
    pub fn translator(config: &crate::model::seq2seq::Seq2SeqConfig) -> Self {
        ModelConfig {
            architecture: Architecture::Marian,
            head: HeadKind::Generation,
            vocab_size: config.vocab_size,
            hidden_size: config.d_model,
            num_layers: config.decoder_layers,
            num_heads: config.heads,
            intermediate_size: config.ffn_dim,
            max_position_embeddings: config.max_positions,
            type_vocab_size: 0,
            layer_norm_eps: 1e-5,
            activation: Activation::Gelu,
            hidden_dropout: config.dropout,
            attention_dropout: 0.0,
            classifier_dropout: 0.0,
            pad_token_id: config.pad_token_id,
            labels: Vec::new(),
            pruned_heads: BTreeMap::new(),
            compact: None,
            position_offset: 0,
            relative_attention_buckets: 0,
            multi_label: false,
            label_thresholds: Vec::new(),
        }
    }

    /// The `config.json` that transformers reads back as this model, with its head.
    pub fn to_hf_json(&self) -> Value {
        let id2label: BTreeMap<String, &str> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_str()))
            .collect();
        let label2id: BTreeMap<&str, usize> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let mut v = match self.architecture {
            Architecture::Bert => json!({
                "model_type": "bert",
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "max_position_embeddings": self.max_position_embeddings,
                "type_vocab_size": self.type_vocab_size,
                "layer_norm_eps": self.layer_norm_eps,
                "hidden_act": self.activation.name(),
                "hidden_dropout_prob": self.hidden_dropout,
                "attention_probs_dropout_prob": self.attention_dropout,
                "classifier_dropout": self.classifier_dropout,
                "position_embedding_type": "absolute",
                "pad_token_id": self.pad_token_id,
            }),
            Architecture::DistilBert => json!({
                "model_type": "distilbert",
                "vocab_size": self.vocab_size,
                "dim": self.hidden_size,
                "n_layers": self.num_layers,
                "n_heads": self.num_heads,
                "hidden_dim": self.intermediate_size,
                "max_position_embeddings": self.max_position_embeddings,
                "activation": self.activation.name(),
                "dropout": self.hidden_dropout,
                "attention_dropout": self.attention_dropout,
                "seq_classif_dropout": self.classifier_dropout,
                "pad_token_id": self.pad_token_id,
            }),
            Architecture::MpNet => json!({
                "model_type": "mpnet",
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "max_position_embeddings": self.max_position_embeddings,
                "layer_norm_eps": self.layer_norm_eps,
                "hidden_act": self.activation.name(),
                "hidden_dropout_prob": self.hidden_dropout,
                "attention_probs_dropout_prob": self.attention_dropout,
                "relative_attention_num_buckets": self.relative_attention_buckets,
                "pad_token_id": self.pad_token_id,
                "bos_token_id": 0,
                "eos_token_id": 2,
            }),
            Architecture::BiLstm | Architecture::Cnn => self.compact_json(),
            // The decoder's side only: a translator's own `config.json` is written whole by
            // `Seq2Seq::save` from its `Seq2SeqConfig`.
            Architecture::Marian => json!({
                "model_type": "marian",
                "vocab_size": self.vocab_size,
                "d_model": self.hidden_size,
                "decoder_layers": self.num_layers,
                "decoder_attention_heads": self.num_heads,
                "decoder_ffn_dim": self.intermediate_size,
                "max_position_embeddings": self.max_position_embeddings,
                "pad_token_id": self.pad_token_id,
            }),
        };
        if !self.pruned_heads.is_empty() {
            let pruned: BTreeMap<String, &Vec<usize>> = self
                .pruned_heads
                .iter()
                .map(|(layer, heads)| (layer.to_string(), heads))
                .collect();
            v["pruned_heads"] = json!(pruned);
        }
        if self.architecture == Architecture::DistilBert && self.head == HeadKind::QuestionAnswering
        {
            v["qa_dropout"] = json!(self.classifier_dropout);
        }
        v["architectures"] = json!([self.architecture.class(self.head)]);
        if self.multi_label {
            v["problem_type"] = json!(MULTI_LABEL);
        }
        if !self.label_thresholds.is_empty() {
            v[LABEL_THRESHOLDS] = json!(self.label_thresholds);
        }
        v["id2label"] = json!(id2label);
        v["label2id"] = json!(label2id);
        v
    }
}

impl ModelConfig {
    /// The `config.json` fields of a BiLSTM or CNN student (see [`Fields::compact`]).
    fn compact_json(&self) -> Value {
        let shape = self
            .compact
            .as_ref()
            .expect("BiLSTM and CNN configs have a shape");
        let mut v = json!({
            "model_type": self.architecture.model_type(),
            "vocab_size": self.vocab_size,
            "embedding_size": shape.embedding_size,
            "mlp_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "dropout": self.hidden_dropout,
            "classifier_dropout": self.classifier_dropout,
            "pad_token_id": self.pad_token_id,
        });
        match self.architecture {
            Architecture::Cnn => {
                v["filters"] = json!(shape.units);
                v["kernel_sizes"] = json!(shape.kernel_sizes);
            }
            _ => v["hidden_size"] = json!(shape.units),
        }
        v
    }
}

/// Why a `config.json` was rejected, before the path is attached.
#[derive(Debug)]
pub enum ConfigError {
    Unsupported(String),
    Field(String),
}

/// Typed access to the fields of a JSON object, with messages that name the field.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> std::result::Result<String, ConfigError> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(field_error(key, "a string", other)),
            None => Err(ConfigError::Field(format!("missing field {key:?}"))),
        }
    }

    fn str_or(&self, key: &str, default: &str) -> std::result::Result<String, ConfigError> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(_) => self.str(key),
        }
    }

    fn usize(&self, key: &str) -> std::result::Result<usize, ConfigError> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| field_error(key, "a non-negative integer", v)),
            None => Err(ConfigError::Field(format!("missing field {key:?}"))),
        }
    }

    fn usize_or(&self, key: &str, default: usize) -> std::result::Result<usize, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> std::result::Result<f64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| field_error(key, "a number", v)),
        }
    }

    fn activation(&self, key: &str, default: &str) -> std::result::Result<Activation, ConfigError> {
        let name = self.str_or(key, default)?;
        Activation::parse(&name).ok_or_else(|| {
            ConfigError::Field(format!(
                "{key} {name:?} is not supported (gelu, gelu_new, relu)"
            ))
        })
    }

    /// A config from BERT's field names (`hidden_size`, `num_hidden_layers`, ...), with BERT's
    /// defaults; MPNet's configs use the same names.
    fn bert_style(&self) -> std::result::Result<ModelConfig, ConfigError> {
        let hidden_dropout = self.f64_or("hidden_dropout_prob", 0.1)? as f32;
        Ok(ModelConfig {
            architecture: Architecture::Bert,
            head: self.head()?,
            vocab_size: self.usize("vocab_size")?,
            hidden_size: self.usize("hidden_size")?,
            num_layers: self.usize("num_hidden_layers")?,
            num_heads: self.usize("num_attention_heads")?,
            intermediate_size: self.usize("intermediate_size")?,
            max_position_embeddings: self.usize_or("max_position_embeddings", 512)?,
            type_vocab_size: self.usize_or("type_vocab_size", 2)?,
            layer_norm_eps: self.f64_or("layer_norm_eps", 1e-12)?,
            activation: self.activation("hidden_act", "gelu")?,
            hidden_dropout,
            attention_dropout: self.f64_or("attention_probs_dropout_prob", 0.1)? as f32,
            classifier_dropout: self.f64_or("classifier_dropout", hidden_dropout as f64)? as f32,
            pad_token_id: self.usize_or("pad_token_id", 0)? as u32,
            labels: self.labels()?,
            pruned_heads: self.pruned_heads()?,
            compact: None,
            position_offset: 0,
            relative_attention_buckets: 0,
            multi_label: self.multi_label()?,
            label_thresholds: self.label_thresholds()?,
        })
    }

    /// A BiLSTM or CNN student's config (see [`ModelConfig::compact`]).
    fn compact(&self, architecture: Architecture) -> std::result::Result<ModelConfig, ConfigError> {
        let shape = CompactShape {
            embedding_size: self.usize("embedding_size")?,
            units: match architecture {
                Architecture::Cnn => self.usize("filters")?,
                _ => self.usize("hidden_size")?,
            },
            kernel_sizes: match architecture {
                Architecture::Cnn => self.usize_list("kernel_sizes")?,
                _ => Vec::new(),
            },
        };
        let dropout = self.f64_or("dropout", 0.1)? as f32;
        Ok(ModelConfig {
            architecture,
            head: self.head()?,
            vocab_size: self.usize("vocab_size")?,
            hidden_size: shape.features(architecture),
            num_layers: 1,
            num_heads: 1,
            intermediate_size: self.usize("mlp_size")?,
            max_position_embeddings: self.usize_or("max_position_embeddings", 512)?,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12,
            activation: Activation::Relu,
            hidden_dropout: dropout,
            attention_dropout: 0.0,
            classifier_dropout: self.f64_or("classifier_dropout", dropout as f64)? as f32,
            pad_token_id: self.usize_or("pad_token_id", 0)? as u32,
            labels: self.labels()?,
            pruned_heads: BTreeMap::new(),
            compact: Some(shape),
            position_offset: 0,
            relative_attention_buckets: 0,
            multi_label: self.multi_label()?,
            label_thresholds: self.label_thresholds()?,
        })
    }

    /// `problem_type`: multi-label, or not (absent, `single_label_classification`,
    /// `regression` is refused).
    fn multi_label(&self) -> std::result::Result<bool, ConfigError> {
        match self.get("problem_type") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::String(s)) if s == MULTI_LABEL => Ok(true),
            Some(Value::String(s)) if s == "single_label_classification" => Ok(false),
            Some(other) => Err(ConfigError::Field(format!(
                "problem_type {other} is not supported (single_label_classification or {MULTI_LABEL})"
            ))),
        }
    }

    /// `label_thresholds`: absent (empty) or a list of numbers.
    fn label_thresholds(&self) -> std::result::Result<Vec<f32>, ConfigError> {
        let Some(v) = self.get(LABEL_THRESHOLDS) else {
            return Ok(Vec::new());
        };
        let list = v
            .as_array()
            .ok_or_else(|| field_error(LABEL_THRESHOLDS, "a list of numbers", v))?;
        list.iter()
            .map(|t| {
                t.as_f64()
                    .map(|t| t as f32)
                    .ok_or_else(|| field_error(LABEL_THRESHOLDS, "a list of numbers", v))
            })
            .collect()
    }

    fn usize_list(&self, key: &str) -> std::result::Result<Vec<usize>, ConfigError> {
        let v = self
            .get(key)
            .ok_or_else(|| ConfigError::Field(format!("missing field {key:?}")))?;
        v.as_array()
            .and_then(|a| a.iter().map(|n| n.as_u64().map(|n| n as usize)).collect())
            .ok_or_else(|| field_error(key, "a list of non-negative integers", v))
    }

    /// The head named by the first `architectures` entry (sequence classification when there
    /// is none, or it names a base model).
    fn head(&self) -> std::result::Result<HeadKind, ConfigError> {
        let Some(list) = self.get("architectures") else {
            return Ok(HeadKind::default());
        };
        let first = list
            .as_array()
            .ok_or_else(|| field_error("architectures", "a list of class names", list))?
            .first();
        Ok(first
            .and_then(Value::as_str)
            .and_then(HeadKind::from_class)
            .unwrap_or_default())
    }

    /// Class names from `id2label` (keys are the ids as strings), else `num_labels` generic names.
    fn labels(&self) -> std::result::Result<Vec<String>, ConfigError> {
        if let Some(map) = self.get("id2label") {
            let map = map
                .as_object()
                .ok_or_else(|| field_error("id2label", "an object", map))?;
            let mut labels = vec![None; map.len()];
            for (id, name) in map {
                let index: usize = id.parse().ok().filter(|&i| i < map.len()).ok_or_else(|| {
                    ConfigError::Field(format!(
                        "id2label key {id:?} is not an id in 0..{}",
                        map.len()
                    ))
                })?;
                let name = name
                    .as_str()
                    .ok_or_else(|| field_error("id2label value", "a string", name))?;
                labels[index] = Some(name.to_string());
            }
            return Ok(labels.into_iter().flatten().collect());
        }
        let n = self.usize_or("num_labels", 2)?;
        Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
    }

    /// `pruned_heads`: layer ids (as strings) to lists of head ids; sorted, without repeats.
    fn pruned_heads(&self) -> std::result::Result<BTreeMap<usize, Vec<usize>>, ConfigError> {
        let Some(map) = self.get("pruned_heads") else {
            return Ok(BTreeMap::new());
        };
        let map = map
            .as_object()
            .ok_or_else(|| field_error("pruned_heads", "an object", map))?;
        let mut pruned = BTreeMap::new();
        for (layer, heads) in map {
            let layer: usize = layer.parse().map_err(|_| {
                ConfigError::Field(format!("pruned_heads key {layer:?} is not a layer id"))
            })?;
            let mut ids: Vec<usize> = heads
                .as_array()
                .and_then(|a| a.iter().map(|h| h.as_u64().map(|h| h as usize)).collect())
                .ok_or_else(|| field_error("pruned_heads value", "a list of head ids", heads))?;
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                pruned.insert(layer, ids);
            }
        }
        Ok(pruned)
    }
}

fn field_error(key: &str, expected: &str, found: &Value) -> ConfigError {
    ConfigError::Field(format!("field {key:?} should be {expected}, found {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert_json() -> Value {
        json!({
            "model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64,
            "id2label": {"0": "neg", "1": "pos"}
        })
    }

    #[test]
    fn reads_bert_fields_and_labels() {
        let c = ModelConfig::from_json(&bert_json()).unwrap();
        assert_eq!(c.architecture, Architecture::Bert);
        assert_eq!((c.hidden_size, c.num_layers, c.head_dim()), (32, 2, 8));
        assert_eq!(c.labels, vec!["neg", "pos"]);
        assert_eq!(c.type_vocab_size, 2);
    }

    #[test]
    fn round_trips_through_hf_json() {
        let c = ModelConfig::from_json(&bert_json()).unwrap();
        assert_eq!(ModelConfig::from_json(&c.to_hf_json()).unwrap(), c);
        let token = ModelConfig {
            head: HeadKind::TokenClassification,
            ..c
        };
        let json = token.to_hf_json();
        assert_eq!(json["architectures"], json!(["BertForTokenClassification"]));
        assert_eq!(ModelConfig::from_json(&json).unwrap(), token);
        let span = ModelConfig {
            head: HeadKind::QuestionAnswering,
            ..token.clone()
        };
        let json = span.to_hf_json();
        assert_eq!(json["architectures"], json!(["BertForQuestionAnswering"]));
        assert_eq!(ModelConfig::from_json(&json).unwrap(), span);
    }

    #[test]
    fn a_question_answering_head_has_two_outputs() {
        let mut v = bert_json();
        v["architectures"] = json!(["BertForQuestionAnswering"]);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.head, HeadKind::QuestionAnswering);
        assert_eq!(c.head.row_axis(), RowAxis::Positions);
        v["id2label"] = json!({"0": "a", "1": "b", "2": "c"});
        let err = ModelConfig::from_json(&v).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Field(m) if m.contains("2 outputs")),
            "{err:?}"
        );
        let d = json!({
            "model_type": "distilbert", "vocab_size": 100, "dim": 32, "n_layers": 2,
            "n_heads": 4, "hidden_dim": 64, "qa_dropout": 0.3, "seq_classif_dropout": 0.2,
            "architectures": ["DistilBertForQuestionAnswering"]
        });
        let c = ModelConfig::from_json(&d).unwrap();
        assert_eq!(c.classifier_dropout, 0.3);
        assert_eq!(ModelConfig::from_json(&c.to_hf_json()).unwrap(), c);
    }

    #[test]
    fn the_head_comes_from_architectures() {
        let mut v = bert_json();
        assert_eq!(
            ModelConfig::from_json(&v).unwrap().head,
            HeadKind::SequenceClassification
        );
        v["architectures"] = json!(["BertModel"]);
        assert_eq!(
            ModelConfig::from_json(&v).unwrap().head,
            HeadKind::SequenceClassification
        );
        v["architectures"] = json!(["DistilBertForTokenClassification"]);
        assert_eq!(
            ModelConfig::from_json(&v).unwrap().head,
            HeadKind::TokenClassification
        );
    }

    #[test]
    fn reads_and_writes_pruned_heads() {
        let mut v = bert_json();
        v["pruned_heads"] = json!({"1": [3, 0, 3]});
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.pruned_heads, BTreeMap::from([(1, vec![0, 3])]));
        assert_eq!((c.heads_in_layer(0), c.heads_in_layer(1)), (4, 2));
        assert_eq!(c.to_hf_json()["pruned_heads"], json!({"1": [0, 3]}));
        assert_eq!(ModelConfig::from_json(&c.to_hf_json()).unwrap(), c);
        for (bad, expected) in [
            (json!({"2": [0]}), "layer 2"),
            (json!({"0": [4]}), "head 4"),
            (json!({"0": [0, 1, 2, 3]}), "every head"),
            (json!({"x": [0]}), "not a layer id"),
            (json!({"0": "all"}), "list of head ids"),
        ] {
            v["pruned_heads"] = bad;
            let err = ModelConfig::from_json(&v).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Field(m) if m.contains(expected)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn rejects_unsupported_type_and_bad_sizes() {
        let mut v = bert_json();
        v["model_type"] = json!("gpt2");
        assert!(
            matches!(ModelConfig::from_json(&v), Err(ConfigError::Unsupported(t)) if t == "gpt2")
        );
        let mut v = bert_json();
        v["num_attention_heads"] = json!(5);
        let err = ModelConfig::from_json(&v).unwrap_err();
        assert!(matches!(err, ConfigError::Field(m) if m.contains("not divisible")));
        let mut v = bert_json();
        v["hidden_size"] = json!("big");
        assert!(
            matches!(ModelConfig::from_json(&v), Err(ConfigError::Field(m)) if m.contains("hidden_size"))
        );
    }
}
