//! Run configurations of `retort train` and `retort distill`, read from TOML.
//!
//! Every field has a default and a doc comment; unknown keys are an error (a typo must not
//! silently fall back to a default). Any field can be overridden from the command line with
//! `--set section.key=value`, applied to the TOML before it is interpreted, so overrides get
//! the same checking as the file. Relative paths are relative to the current directory.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::objective::mapping::LayerMap;
use crate::objective::peers::GroupSettings;
use crate::objective::schedule::Scheduled;
use crate::objective::terms::{default_terms, Term, TermKind};
use crate::task::Task;
use crate::text::augment::AugmentConfig;

/// `retort train`: fine-tune a checkpoint (with a new or existing classification head).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub train: TrainSection,
    pub output: OutputSection,
}

/// `retort distill`: train a student to imitate a teacher.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    pub teacher: TeacherSection,
    pub student: StudentSection,
    pub data: DataSection,
    pub augment: AugmentConfig,
    pub distill: DistillSection,
    pub train: TrainSection,
    pub output: OutputSection,
    /// More tasks for the same student (multi-task distillation): each `[[tasks]]` entry
    /// adds a head on the student's encoder, trained from that task's teacher on its data
    /// with the run's terms and temperature. The teacher above is the first task's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSection>,
}

/// One more task of a multi-task distillation: its teacher, its data and its share of the
/// batches. The student gets a head for it on the shared encoder, saved with that encoder
/// as `output.dir/best-<name>/`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    /// Letters, digits, `-` and `_`: names the checkpoint (`best-<name>/`) and the task's
    /// lines in `metrics.jsonl` (`<name>.hard_ce`, `dev_<name>.entity_f1`).
    pub name: String,
    /// The task's fine-tuned teacher: its head names the task, and its tokenizer must give
    /// the first teacher's token ids (the student reads one tokenizer).
    pub teacher: PathBuf,
    /// Training and development data in the task's format.
    pub train: PathBuf,
    pub dev: PathBuf,
    /// Use only the first N training examples (0: all).
    #[serde(default)]
    pub limit: usize,
    /// Batches of this task per batch of the first task.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Truncate this task's inputs to this many tokens (0: `teacher.max_len`).
    #[serde(default)]
    pub max_len: usize,
}

/// The checkpoint to fine-tune.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Checkpoint directory to start from (config.json, model.safetensors, tokenizer).
    pub init: PathBuf,
    /// What the model learns to predict: "sequence-classification" (a label per text; TSV,
    /// CSV or JSONL data), "multi-label-classification" (any number of labels per text, the
    /// `label` column listing them as `PER|LOC`, `_` for none), "token-classification" (a
    /// tag per word; CoNLL column data) or "question-answering" (SQuAD v1.1 JSON).
    pub task: Task,
    /// Class names, in class-id order. Empty: keep the checkpoint's labels. Setting them gives
    /// the checkpoint a fresh head when the number or names differ from its own.
    pub labels: Vec<String>,
    /// Truncate inputs to this many tokens (special tokens included). A fresh translator's
    /// position table has this many rows, for sources and targets alike.
    pub max_len: usize,
    /// Translation only: the shape of a translator trained from scratch (`init = "fresh"`).
    pub translator: TranslatorShape,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            init: PathBuf::from("models/all-MiniLM-L6-v2"),
            task: Task::default(),
            labels: Vec::new(),
            max_len: 128,
            translator: TranslatorShape::default(),
        }
    }
}

/// The sizes of a translator trained from scratch, and of the sub-word vocabulary learnt for
/// it from the training text (both sides together).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranslatorShape {
    /// Tokens of the byte-level BPE vocabulary (special tokens included).
    pub vocab_size: usize,
    /// A pair of symbols is merged only if it occurs at least this often.
    pub min_frequency: u64,
    /// Width of every layer.
    pub d_model: usize,
    /// Layers of the encoder, and of the decoder.
    pub layers: usize,
    /// Attention heads per attention block.
    pub heads: usize,
    /// Inner width of the feed-forward blocks.
    pub ffn_dim: usize,
    /// Dropout after embeddings, attention and feed-forward blocks.
    pub dropout: f32,
}

impl Default for TranslatorShape {
    fn default() -> Self {
        Self {
            vocab_size: 8000,
            min_frequency: 2,
            d_model: 256,
            layers: 3,
            heads: 4,
            ffn_dim: 1024,
            dropout: 0.1,
        }
    }
}

/// The teacher of a distillation run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherSection {
    /// Fine-tuned teacher checkpoint directory (e.g. the `best/` of a `retort train` run).
    pub dir: PathBuf,
    /// Truncate inputs to this many tokens; the student uses the same length.
    pub max_len: usize,
    /// This teacher's weight among several (`extra`).
    pub weight: f64,
    /// More teachers for the logit terms (multi-teacher distillation): each labels the
    /// transfer set in its own tokens, cached like the first, and the logits are combined.
    pub extra: Vec<ExtraTeacher>,
    /// How several teachers' logits are combined, row by row.
    pub combine: Combine,
}

impl Default for TeacherSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/sst2-teacher/best"),
            max_len: 128,
            weight: 1.0,
            extra: Vec::new(),
            combine: Combine::Fixed,
        }
    }
}

/// One more teacher of a multi-teacher run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraTeacher {
    pub dir: PathBuf,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// One more model that learns beside the student and the teacher in mutual learning
/// (`[[distill.peers]]`), by its own optimiser.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// The checkpoint it starts from (a model of the teacher's task and labels that reads the
    /// teacher's tokens).
    pub dir: PathBuf,
    /// Its peak learning rate; 0: train.lr.
    #[serde(default)]
    pub lr: f64,
    /// The fraction of the run it warms up over; absent: train.warmup_ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ratio: Option<f64>,
    /// The clip of its own gradients' norm (0: none); absent: train.grad_clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
}

/// How the teachers' logits become one target per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The weighted mean of the teachers' logits, with their fixed weights.
    #[default]
    Fixed,
    /// Per row, each teacher's weight times its confidence there (its largest probability):
    /// the surer teacher leads on each example.
    Confidence,
}

/// How a fresh student's embedding tables start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbeddingInit {
    /// Normal(0, 0.02), as BERT.
    Random,
    /// The teacher's tables projected onto their top principal directions.
    TeacherPca,
}

/// How the student is built: `init` names the kind, and each kind takes only its own fields
/// (a field of another kind is an unknown key).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "init", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StudentSection {
    /// Copy the teacher's embeddings, head and chosen layers (DistilBERT), optionally pruned.
    TeacherLayers(TeacherLayersStudent),
    /// A fresh model of a given shape, sharing the teacher's tokenizer and labels.
    Fresh(FreshStudent),
    /// A pretrained model of another size (e.g. all-MiniLM-L6-v2 for a 110M teacher), with
    /// its own tokenizer.
    Pretrained(PretrainedStudent),
    /// A BiLSTM over the teacher's word pieces (Tang et al. 2019).
    Bilstm(BiLstmStudent),
    /// A CNN over the teacher's word pieces (Kim 2014).
    Cnn(CnnStudent),
}

/// `init = "pretrained"`: a pretrained checkpoint as the student. It reads its own tokenizer
/// (the teacher's logits are matched by example), keeps its head when it has the teacher's
/// labels and gets a fresh one otherwise; only output terms (`hard_ce`, `soft_kl`, `soft_ce`,
/// `logit_mse`) can compare it with the teacher.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainedStudent {
    /// Its checkpoint directory (config.json, model.safetensors, tokenizer).
    pub dir: PathBuf,
}

impl Default for PretrainedStudent {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models/all-MiniLM-L6-v2"),
        }
    }
}

/// `init = "bilstm"`: embeddings, one bidirectional LSTM layer, max-pooling over time, a
/// ReLU layer and the classifier (Tang et al. 2019). It reads the teacher's tokenizer; its
/// word embeddings start as the teacher's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BiLstmStudent {
    /// LSTM units per direction.
    pub hidden_size: usize,
    /// Width of the ReLU layer before the classifier.
    pub mlp_size: usize,
    /// Width of the word embeddings (0: the teacher's hidden size, its word embeddings as
    /// they are; narrower: projected onto their top principal directions).
    pub embedding_size: usize,
    /// Dropout on the embeddings and the pooled features, and before the classifier.
    pub dropout: f64,
}

impl Default for BiLstmStudent {
    fn default() -> Self {
        // Tang et al.'s sizes: 300 units per direction, a 400-unit ReLU layer.
        Self {
            hidden_size: 300,
            mlp_size: 400,
            embedding_size: 0,
            dropout: 0.1,
        }
    }
}

/// `init = "cnn"`: embeddings, convolutions of several widths, max-pooling over time, a ReLU
/// layer and the classifier (Kim 2014). It reads the teacher's tokenizer; its word embeddings
/// start as the teacher's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CnnStudent {
    /// Feature maps per kernel width.
    pub filters: usize,
    /// Kernel widths, in tokens.
    pub kernel_sizes: Vec<usize>,
    /// Width of the ReLU layer before the classifier.
    pub mlp_size: usize,
    /// Width of the word embeddings (0: the teacher's; see `init = "bilstm"`).
    pub embedding_size: usize,
    /// Dropout on the embeddings and the pooled features, and before the classifier.
    pub dropout: f64,
}

impl Default for CnnStudent {
    fn default() -> Self {
        // Kim's sizes: 100 maps of widths 3, 4 and 5.
        Self {
            filters: 100,
            kernel_sizes: vec![3, 4, 5],
            mlp_size: 256,
            embedding_size: 0,
            dropout: 0.1,
        }
    }
}

/// `init = "teacher-layers"`: a student made of the teacher's own layers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherLayersStudent {
    /// Which teacher layers (0-based) become the student's.
    pub teacher_layers: Vec<usize>,
    /// Keep only this many tokens of the teacher's vocabulary, the most frequent in the
    /// transfer set (0: all). The student gets its own tokenizer.
    pub keep_tokens: usize,
    /// Keep only this many attention heads per layer, those whose output has the largest mean
    /// norm on the training set (0: all).
    pub keep_heads: usize,
    /// Keep only this many feed-forward neurons per layer, those that contribute most on the
    /// training set (0: all).
    pub keep_ffn: usize,
}

impl Default for TeacherLayersStudent {
    fn default() -> Self {
        Self {
            teacher_layers: vec![1, 3, 5],
            keep_tokens: 0,
            keep_heads: 0,
            keep_ffn: 0,
        }
    }
}

/// `init = "fresh"`: a new transformer of the given shape.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreshStudent {
    /// Number of layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Attention heads (must divide hidden_size).
    pub heads: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// "random", or "teacher-pca" (the teacher's embeddings projected to the student's width
    /// along their principal directions).
    pub embeddings: EmbeddingInit,
}

impl Default for FreshStudent {
    fn default() -> Self {
        Self {
            layers: 4,
            hidden_size: 256,
            heads: 4,
            intermediate_size: 1024,
            embeddings: EmbeddingInit::Random,
        }
    }
}

impl Default for StudentSection {
    fn default() -> Self {
        StudentSection::TeacherLayers(TeacherLayersStudent::default())
    }
}

/// Training and evaluation data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Training data (.tsv/.csv/.jsonl with `sentence` and `label`).
    pub train: PathBuf,
    /// Development data, evaluated during training to keep the best checkpoint.
    pub dev: PathBuf,
    /// Use only the first N training examples (0: all).
    pub limit: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            train: PathBuf::from("../shared/data/sst2/train.tsv"),
            dev: PathBuf::from("../shared/data/sst2/dev.tsv"),
            limit: 0,
        }
    }
}

/// Weight of each distillation loss term (0 switches a term off): the `[distill.weights]`
/// table of configs written before term lists, still read (see [`DistillSection::terms`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossWeights {
    /// Cross-entropy with the gold labels (unlabelled augmented examples skip it).
    pub hard_ce: f64,
    /// KL(teacher ‖ student) of temperature-softened distributions, × T² (Hinton et al.).
    pub soft_kl: f64,
    /// Cross-entropy with the teacher's softened distribution, × T².
    pub soft_ce: f64,
    /// Mean squared error between logits.
    pub logit_mse: f64,
    /// MSE between mapped hidden states, through a learned projection when widths differ.
    pub hidden_mse: f64,
    /// MSE between attention probabilities of mapped layers (TinyBERT).
    pub attention_mse: f64,
    /// KL between attention distributions of mapped layers (MiniLM).
    pub attention_kl: f64,
    /// 1 − cosine similarity of mapped hidden states (DistilBERT; projected when widths differ).
    pub cosine: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            hard_ce: 0.5,
            soft_kl: 0.5,
            soft_ce: 0.0,
            logit_mse: 0.0,
            hidden_mse: 0.0,
            attention_mse: 0.0,
            attention_kl: 0.0,
            cosine: 0.0,
        }
    }
}

impl LossWeights {
    /// The weight of one kind of term.
    pub fn weight(&self, kind: TermKind) -> f64 {
        match kind {
            TermKind::HardCe => self.hard_ce,
            TermKind::SoftKl => self.soft_kl,
            TermKind::SoftCe => self.soft_ce,
            TermKind::LogitMse => self.logit_mse,
            TermKind::HiddenMse => self.hidden_mse,
            TermKind::AttentionMse => self.attention_mse,
            TermKind::AttentionKl => self.attention_kl,
            TermKind::Cosine => self.cosine,
            // Kinds added after term lists replaced this table are not in it.
            TermKind::Logistic | TermKind::AdversarialKl | TermKind::SoftBce => 0.0,
        }
    }

    /// The terms these weights switch on (weight > 0), sharing `distill.layer_map`.
    pub fn terms(&self) -> Vec<Term> {
        TermKind::ALL
            .into_iter()
            .filter(|&k| self.weight(k) != 0.0)
            .map(|k| Term::new(k, self.weight(k)))
            .collect()
    }
}

/// The distillation objective.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillSection {
    /// "task" (the default): distil the teacher's task on labelled data; "general" (TinyBERT's
    /// first stage): a student learns the teacher's hidden states and attention maps on
    /// unlabelled text (`data.train` and `data.dev` hold one text per line), with intermediate
    /// terms only, and is saved as a base model for a task stage to start from.
    pub stage: Stage,
    /// Softmax temperature T of soft_kl / soft_ce: a number, or a schedule over the run
    /// (`{ start, end, shape }`).
    pub temperature: Scheduled,
    /// Which teacher layer each student layer learns from: "uniform" (TinyBERT), "last",
    /// or an explicit list of teacher layers, e.g. "1,3,5".
    pub layer_map: LayerMap,
    /// Where teacher logits over the training set are cached between runs.
    pub cache_dir: PathBuf,
    /// The objective: a list of terms (`[[distill.terms]]` with `kind`, `weight` and, for the
    /// intermediate kinds, an optional `layer_map`). Absent: hard_ce 0.5 + soft_kl 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Vec<Term>>,
    /// The weights table of older configs (`[distill.weights]`), read as the terms whose
    /// weight is not 0. Give `terms` or `weights`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<LossWeights>,
    /// Deep mutual learning (Zhang et al. 2018): the teacher trains too, as the student's
    /// peer, on hard_ce and the run's logit terms toward the student's outputs (each model
    /// learns from the other's detached predictions). Off by default.
    pub mutual: bool,
    /// The teacher's peak learning rate in mutual learning (the student's warmup, decay and
    /// clip value, applied to its own gradients by its own optimiser); 0: train.lr.
    pub mutual_lr: f64,
    /// Mutual learning: more models that learn beside the student and the teacher
    /// (`[[distill.peers]]`), each by its own optimiser, schedule and checkpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerSection>,
    /// Translation only: sequence-level distillation (Kim & Rush 2016). The student's targets
    /// are the teacher's translations of the training sources (beam search of
    /// `sequence_beam`, cached in `cache_dir` as they are made, resumable) instead of the
    /// references; the run's logit terms (word-level distillation) then compare next-token
    /// distributions on those targets. Off: the references, word-level terms only.
    pub sequence_level: bool,
    /// The beam of the teacher's translations for `sequence_level`.
    pub sequence_beam: usize,
}

impl Default for DistillSection {
    fn default() -> Self {
        Self {
            stage: Stage::Task,
            temperature: Scheduled::Constant(2.0),
            layer_map: LayerMap::Uniform,
            cache_dir: PathBuf::from("runs/cache"),
            terms: None,
            weights: None,
            mutual: false,
            mutual_lr: 0.0,
            peers: Vec::new(),
            sequence_level: false,
            sequence_beam: 5,
        }
    }
}

impl DistillSection {
    /// The run's loss terms: `terms`, or the old `weights` table's, or the default.
    pub fn terms(&self) -> Result<Vec<Term>> {
        match (&self.terms, &self.weights) {
            (Some(_), Some(_)) => Err(Error::Invalid(
                "distill.terms and distill.weights both give the loss terms: keep [[distill.terms]] and remove [distill.weights]".into(),
            )),
            (Some(terms), None) => Ok(terms.clone()),
            (None, Some(weights)) => Ok(weights.terms()),
            (None, None) => Ok(default_terms()),
        }
    }
}

/// Which stage of distillation a run is (TinyBERT's two stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The teacher's task, on its labelled data (plus augmented and unlabelled text).
    #[default]
    Task,
    /// General distillation: intermediate terms on unlabelled text, no labels and no head.
    General,
}

/// The optimisation loop.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Passes over the training data.
    pub epochs: usize,
    /// Stop after this many optimiser steps (0: run all epochs).
    pub max_steps: usize,
    /// Examples per optimiser step (before accumulation).
    pub batch_size: usize,
    /// Micro-batches whose gradients are averaged into one optimiser step.
    pub grad_accum: usize,
    /// Peak learning rate of AdamW.
    pub lr: f64,
    /// AdamW decoupled weight decay (not applied to biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Fraction of steps spent warming the learning rate up linearly from 0; then linear decay to 0.
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    pub grad_clip: f64,
    /// Evaluate on the dev set every N optimiser steps (0: only at the end of each epoch).
    pub eval_every: usize,
    /// Write a metrics line every N steps.
    pub log_every: usize,
    /// Seed of initialisation, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Multi-label classification only: once training is over, choose each label's threshold
    /// on the dev split (the best F1 per label) and save them in `best/config.json` instead
    /// of 0.5 for every label.
    pub tune_thresholds: bool,
    /// Label smoothing of hard_ce (Szegedy et al. 2016): the gold class gets 1 − ε of the
    /// target and every class ε / classes. 0: plain cross-entropy. Translators train with 0.1.
    pub label_smoothing: f64,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 1,
            max_steps: 0,
            batch_size: 32,
            grad_accum: 1,
            lr: 5e-5,
            weight_decay: 0.01,
            warmup_ratio: 0.06,
            grad_clip: 1.0,
            eval_every: 500,
            log_every: 20,
            seed: 42,
            tune_thresholds: false,
            label_smoothing: 0.0,
        }
    }
}

/// Where results go.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Run directory: `best/` (best dev checkpoint, HF layout), `last/` (resumable state),
    /// `metrics.jsonl`, `config.toml` (the resolved configuration).
    pub dir: PathBuf,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/run"),
        }
    }
}

impl TrainSection {
    /// Checks values the loop relies on.
    pub fn validate(&self) -> Result<()> {
        self.check()
            .map_err(|v| Error::Invalid(format!("run config: {v}")))
    }

    fn check(&self) -> std::result::Result<(), InvalidValue> {
        at_least_one("train.batch_size", self.batch_size)?;
        at_least_one("train.grad_accum", self.grad_accum)?;
        at_least_one("train.log_every", self.log_every)?;
        if self.epochs == 0 && self.max_steps == 0 {
            return Err(InvalidValue::pair(
                "train.epochs",
                "train.max_steps",
                "are both 0: nothing to train",
            ));
        }
        positive("train.lr", self.lr)?;
        non_negative("train.weight_decay", self.weight_decay)?;
        // `contains` is false for NaN.
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(InvalidValue::new(
                "train.warmup_ratio",
                format!(
                    "must be in [0, 1) (a fraction of the steps), got {}",
                    self.warmup_ratio
                ),
            ));
        }
        non_negative("train.grad_clip", self.grad_clip)?;
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(InvalidValue::new(
                "train.label_smoothing",
                format!("must be in [0, 1), got {}", self.label_smoothing),
            ));
        }
        Ok(())
    }
}

/// A run config value out of range: the keys concerned (`section.key`) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidValue {
    /// The key whose value is wrong, or the keys whose values conflict.
    pub keys: Vec<String>,
    /// What is wrong, e.g. "must be a positive number, got 0".
    pub message: String,
}

impl InvalidValue {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            keys: vec![key.to_string()],
            message: message.into(),
        }
    }

    fn pair(a: &str, b: &str, message: &str) -> Self {
        Self {
            keys: vec![a.to_string(), b.to_string()],
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.keys.join(" and "), self.message)
    }
}

/// A run config that checks its values as soon as it is read, before any model is loaded or
/// any file written: a value found wrong after the teacher phase has cost minutes and left
/// files in the output directory.
pub trait Validate {
    /// The first value out of range, if any.
    fn check(&self) -> std::result::Result<(), InvalidValue>;

    /// [`Validate::check`] as a library error, for callers that build a config in code
    /// ([`load_config`] runs it already, naming the file or `--set` the value came from).
    fn validate(&self) -> Result<()> {
        self.check()
            .map_err(|v| Error::Invalid(format!("run config: {v}")))
    }
}

impl Validate for TrainConfig {
    fn check(&self) -> std::result::Result<(), InvalidValue> {
        at_least_one("model.max_len", self.model.max_len)?;
        self.train.check()
    }
}

impl Validate for DistillConfig {
    fn check(&self) -> std::result::Result<(), InvalidValue> {
        at_least_one("teacher.max_len", self.teacher.max_len)?;
        at_least_one("distill.sequence_beam", self.distill.sequence_beam)?;
        positive("teacher.weight", self.teacher.weight)?;
        for (i, t) in self.teacher.extra.iter().enumerate() {
            positive(&format!("teacher.extra[{i}].weight"), t.weight)?;
        }
        self.student.check()?;
        if let Some((fields, message)) = self.augment.problem() {
            return Err(InvalidValue {
                keys: fields.iter().map(|f| format!("augment.{f}")).collect(),
                message,
            });
        }
        self.distill.check()?;
        self.check_mutual()?;
        self.check_tasks()?;
        self.train.check()
    }
}

impl DistillConfig {
    /// How the teacher trains in mutual learning: at `distill.mutual_lr` (or `train.lr`), with
    /// the run's warmup and clip value.
    pub fn teacher_peer_settings(&self) -> GroupSettings {
        GroupSettings {
            lr: match self.distill.mutual_lr {
                0.0 => self.train.lr,
                lr => lr,
            },
            warmup_ratio: self.train.warmup_ratio,
            grad_clip: self.train.grad_clip,
        }
    }

    /// How a `[[distill.peers]]` model trains: its own values, the run's where it gives none.
    pub fn peer_settings(&self, peer: &PeerSection) -> GroupSettings {
        GroupSettings {
            lr: match peer.lr {
                0.0 => self.train.lr,
                lr => lr,
            },
            warmup_ratio: peer.warmup_ratio.unwrap_or(self.train.warmup_ratio),
            grad_clip: peer.grad_clip.unwrap_or(self.train.grad_clip),
        }
    }

    /// `[[tasks]]`: each named once, in characters a directory name can hold, with a positive
    /// ratio, in a run whose other options train one student from one teacher per task.
    fn check_tasks(&self) -> std::result::Result<(), InvalidValue> {
        for (i, task) in self.tasks.iter().enumerate() {
            let key = |k: &str| format!("tasks[{i}].{k}");
            let name = &task.name;
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if name.is_empty() || !name.chars().all(allowed) {
                return Err(InvalidValue::new(
                    &key("name"),
                    format!(
                        "must be letters, digits, '-' or '_' (it names best-<name>/), got {name:?}"
                    ),
                ));
            }
            if self.tasks[..i].iter().any(|t| &t.name == name) {
                return Err(InvalidValue::new(
                    &key("name"),
                    format!("{name:?} names two tasks: give each its own name"),
                ));
            }
            positive(&key("ratio"), task.ratio)?;
        }
        if self.tasks.is_empty() {
            return Ok(());
        }
        let conflict = if self.distill.stage == Stage::General {
            Some((
                "distill.stage",
                "the general stage has no task heads; use stage = \"task\"",
            ))
        } else if self.distill.mutual {
            Some(("distill.mutual", "mutual learning trains one teacher beside the student; remove distill.mutual or [[tasks]]"))
        } else if !self.teacher.extra.is_empty() {
            Some(("teacher.extra", "several teachers per task are not supported with several tasks; remove teacher.extra or [[tasks]]"))
        } else {
            None
        };
        match conflict {
            Some((key, why)) => Err(InvalidValue::pair(
                key,
                "tasks",
                &format!("do not fit: {why}"),
            )),
            None => Ok(()),
        }
    }

    /// Mutual learning trains the teacher online beside the student: a task run with one
    /// teacher and a term that compares logits (the signal each peer gives the other).
    fn check_mutual(&self) -> std::result::Result<(), InvalidValue> {
        let d = &self.distill;
        non_negative("distill.mutual_lr", d.mutual_lr)?;
        for (i, p) in d.peers.iter().enumerate() {
            let key = |k: &str| format!("distill.peers[{i}].{k}");
            non_negative(&key("lr"), p.lr)?;
            if let Some(w) = p.warmup_ratio.filter(|w| !(0.0..1.0).contains(w)) {
                return Err(InvalidValue::new(
                    &key("warmup_ratio"),
                    format!("must be at least 0 and below 1, got {w}"),
                ));
            }
            non_negative(&key("grad_clip"), p.grad_clip.unwrap_or(0.0))?;
        }
        if !d.mutual {
            let stray = match (d.mutual_lr, d.peers.is_empty()) {
                (0.0, true) => None,
                (0.0, false) => Some(("distill.peers", "peers learn beside the student in mutual learning, which is off; set distill.mutual = true or remove [[distill.peers]]")),
                _ => Some(("distill.mutual_lr", "mutual_lr is the teacher's learning rate in mutual learning, which is off; set distill.mutual = true or remove mutual_lr")),
            };
            return match stray {
                None => Ok(()),
                Some((key, why)) => Err(InvalidValue::pair(
                    key,
                    "distill.mutual",
                    &format!("do not fit: {why}"),
                )),
            };
        }
        if d.stage == Stage::General {
            return Err(InvalidValue::pair(
                "distill.mutual",
                "distill.stage",
                "do not fit: the general stage has no labels and no head for the teacher to learn from; use stage = \"task\"",
            ));
        }
        if !self.teacher.extra.is_empty() {
            return Err(InvalidValue::pair(
                "distill.mutual",
                "teacher.extra",
                "do not fit: mutual learning trains one teacher beside the student; remove teacher.extra",
            ));
        }
        let terms = d.terms().expect("checked by DistillSection::check");
        if !terms.iter().any(|t| t.kind.needs().teacher_logits) {
            return Err(InvalidValue::pair(
                "distill.mutual",
                "distill.terms",
                "do not fit: the peers learn from each other's logits, and no term compares them; add soft_kl, soft_ce, logit_mse or logistic",
            ));
        }
        Ok(())
    }
}

impl StudentSection {
    fn check(&self) -> std::result::Result<(), InvalidValue> {
        match self {
            StudentSection::TeacherLayers(s) if s.teacher_layers.is_empty() => {
                Err(InvalidValue::new(
                    "student.teacher_layers",
                    "is empty: name the teacher layers to copy",
                ))
            }
            StudentSection::TeacherLayers(_) => Ok(()),
            StudentSection::Fresh(s) => {
                at_least_one("student.layers", s.layers)?;
                at_least_one("student.hidden_size", s.hidden_size)?;
                at_least_one("student.heads", s.heads)?;
                at_least_one("student.intermediate_size", s.intermediate_size)?;
                if !s.hidden_size.is_multiple_of(s.heads) {
                    return Err(InvalidValue::pair(
                        "student.hidden_size",
                        "student.heads",
                        &format!(
                            "do not fit: {} is not a multiple of {}",
                            s.hidden_size, s.heads
                        ),
                    ));
                }
                Ok(())
            }
            StudentSection::Pretrained(s) if s.dir.as_os_str().is_empty() => {
                Err(InvalidValue::new(
                    "student.dir",
                    "is empty: name the pretrained student's directory",
                ))
            }
            StudentSection::Pretrained(_) => Ok(()),
            StudentSection::Bilstm(s) => {
                at_least_one("student.hidden_size", s.hidden_size)?;
                at_least_one("student.mlp_size", s.mlp_size)?;
                probability_below_one("student.dropout", s.dropout)
            }
            StudentSection::Cnn(s) => {
                at_least_one("student.filters", s.filters)?;
                at_least_one("student.mlp_size", s.mlp_size)?;
                if s.kernel_sizes.is_empty() || s.kernel_sizes.contains(&0) {
                    return Err(InvalidValue::new(
                        "student.kernel_sizes",
                        "must list at least one width, each at least 1",
                    ));
                }
                probability_below_one("student.dropout", s.dropout)
            }
        }
    }
}

/// A dropout rate: in [0, 1).
fn probability_below_one(key: &str, value: f64) -> std::result::Result<(), InvalidValue> {
    match (0.0..1.0).contains(&value) {
        true => Ok(()),
        false => Err(InvalidValue::new(
            key,
            format!("must be in [0, 1), got {value}"),
        )),
    }
}

impl DistillSection {
    fn check(&self) -> std::result::Result<(), InvalidValue> {
        for t in self.temperature.ends() {
            positive("distill.temperature", t)?;
        }
        if let Some(w) = &self.weights {
            for kind in TermKind::ALL {
                // A negative weight would reward the student for moving away from its target.
                non_negative(&format!("distill.weights.{}", kind.name()), w.weight(kind))?;
            }
        }
        if self.terms.is_some() && self.weights.is_some() {
            return Err(InvalidValue::pair(
                "distill.terms",
                "distill.weights",
                "both give the loss terms: keep [[distill.terms]] and remove [distill.weights]",
            ));
        }
        let terms = self.terms().expect("terms or weights, not both");
        if terms.is_empty() {
            return Err(InvalidValue::new(
                "distill.terms",
                "name no term: the student would learn nothing",
            ));
        }
        for term in &terms {
            term.check()
                .map_err(|e| InvalidValue::new("distill.terms", e.to_string()))?;
        }
        if self.stage == Stage::General {
            if let Some(t) = terms.iter().find(|t| !t.kind.is_intermediate()) {
                return Err(InvalidValue::pair(
                    "distill.stage",
                    "distill.terms",
                    &format!(
                        "do not fit: the general stage has no labels and no head, but {} compares logits; keep only hidden_mse, cosine, attention_mse or attention_kl",
                        t.kind.name()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn at_least_one(key: &str, value: usize) -> std::result::Result<(), InvalidValue> {
    match value {
        0 => Err(InvalidValue::new(key, "must be at least 1, got 0")),
        _ => Ok(()),
    }
}

/// `value` > 0 and finite (NaN fails every comparison, so it is refused too).
fn positive(key: &str, value: f64) -> std::result::Result<(), InvalidValue> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(InvalidValue::new(
            key,
            format!("must be a positive number, got {value}"),
        ))
    }
}

/// `value` ≥ 0 and finite.
fn non_negative(key: &str, value: f64) -> std::result::Result<(), InvalidValue> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(InvalidValue::new(
            key,
            format!("must be 0 or a positive number, got {value}"),
        ))
    }
}

/// Reads a TOML config, applies `key.path=value` overrides, interprets it as `T` and checks
/// its values ([`Validate`]). An error names where the value came from: the file, or the
/// `--set` that gave it.
pub fn load_config<T: DeserializeOwned + Validate>(path: &Path, overrides: &[String]) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e, "run config"))?;
    let file: toml::Table = text
        .parse()
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let mut table = file.clone();
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let config = T::deserialize(table).map_err(|e| {
        // toml's message ends in "\nin `key`\n": one line reads better after the source.
        let message = e.to_string().trim_end().replace('\n', " ");
        let message = with_student_hint(message);
        Error::Invalid(format!(
            "{}: {message}",
            unreadable_by::<T>(path, &file, overrides)
        ))
    })?;
    config
        .check()
        .map_err(|v| Error::Invalid(format!("{}: {v}", set_by(&v, path, overrides))))?;
    Ok(config)
}

/// Adds what to write instead to an unknown-key error in `[student]`: configs written before
/// `[student]` became one table per `init` kind listed every kind's fields together.
fn with_student_hint(message: String) -> String {
    let student_key = message.contains("unknown field") && message.contains("in `student`");
    match student_key {
        true => format!(
            "{message} ([student] takes only the fields of its init: \"teacher-layers\" takes teacher_layers, keep_tokens, keep_heads, keep_ffn; \"fresh\" takes layers, hidden_size, heads, intermediate_size, embeddings; \"pretrained\" takes dir; \"bilstm\" takes hidden_size, mlp_size, embedding_size, dropout; \"cnn\" takes filters, kernel_sizes, mlp_size, embedding_size, dropout: remove the others)"
        ),
        false => message,
    }
}

/// Which source makes a config unreadable: the file when it fails alone, else the first
/// `--set` after which it fails. (Overrides are merged into the file's TOML before it is
/// interpreted, so the error itself cannot say.)
fn unreadable_by<T: DeserializeOwned>(
    path: &Path,
    file: &toml::Table,
    overrides: &[String],
) -> String {
    let mut table = file.clone();
    if T::deserialize(table.clone()).is_ok() {
        for o in overrides {
            if apply_override(&mut table, o).is_ok() && T::deserialize(table.clone()).is_err() {
                return format!("--set {o}");
            }
        }
    }
    path.display().to_string()
}

/// Where an out-of-range value came from: the last `--set` of one of its keys (it wins over
/// the file), else the file.
fn set_by(invalid: &InvalidValue, path: &Path, overrides: &[String]) -> String {
    overrides
        .iter()
        .rev()
        .find(|o| {
            o.split_once('=')
                .is_some_and(|(key, _)| invalid.keys.iter().any(|k| k == key.trim()))
        })
        .map_or_else(|| path.display().to_string(), |o| format!("--set {o}"))
}

/// Sets `a.b.c=value` in `table`; the value is read as TOML (`3e-5`, `true`, `[1, 3]`,
/// `"text"`), or taken as a plain string when it is not valid TOML (`runs/x`).
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| Error::Invalid(format!("--set {assignment:?}: expected key.path=value")))?;
    let value = format!("v = {}", raw.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Invalid(format!(
            "--set {assignment:?}: empty key segment"
        )));
    }
    let (last, sections) = parts.split_last().expect("split yields at least one part");
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| {
            Error::Invalid(format!("--set {assignment:?}: {section} is not a section"))
        })?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

/// The configuration as TOML, as written to a run's `config.toml`.
pub fn to_toml<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).expect("run configs serialise to TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_fill_what_the_file_omits_and_overrides_win() {
        let (_d, p) = write("[train]\nlr = 1e-4\n");
        let overrides = [
            "train.batch_size=16".to_string(),
            "output.dir=runs/x".to_string(),
        ];
        let c: TrainConfig = load_config(&p, &overrides).unwrap();
        assert_eq!(c.train.lr, 1e-4);
        assert_eq!(c.train.batch_size, 16);
        assert_eq!(c.output.dir, PathBuf::from("runs/x"));
        assert_eq!(c.train.epochs, TrainSection::default().epochs);
    }

    #[test]
    fn unknown_keys_are_errors_in_file_and_overrides() {
        let (_d, p) = write("[train]\nlrr = 1e-4\n");
        let err = load_config::<TrainConfig>(&p, &[]).unwrap_err().to_string();
        assert!(err.contains("lrr"), "{err}");
        let (_d, p) = write("");
        let err = load_config::<DistillConfig>(&p, &["distill.weights.soft_klx=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("soft_klx"), "{err}");
        assert!(load_config::<TrainConfig>(&p, &["no-equals".into()]).is_err());
    }

    #[test]
    fn unlabelled_text_is_for_distillation_only() {
        let (_d, p) = write("[augment]\nunlabelled = \"more.txt\"\nunlabelled_limit = 10\n");
        let d: DistillConfig = load_config(&p, &[]).unwrap();
        assert_eq!(d.augment.unlabelled, Some(PathBuf::from("more.txt")));
        assert_eq!(d.augment.unlabelled_limit, 10);
        // `retort train` has no teacher to label it: it has no [augment] section at all.
        let err = load_config::<TrainConfig>(&p, &[]).unwrap_err().to_string();
        assert!(err.contains("augment"), "{err}");
    }

    #[test]
    fn old_weight_tables_read_as_term_lists() {
        let (_d, p) = write("[distill.weights]\nhard_ce = 0.3\nsoft_kl = 0.7\nhidden_mse = 0\n");
        let old: DistillConfig = load_config(&p, &[]).unwrap();
        let (_d, p) = write(concat!(
            "[[distill.terms]]\nkind = \"hard_ce\"\nweight = 0.3\n",
            "[[distill.terms]]\nkind = \"soft_kl\"\nweight = 0.7\n",
        ));
        let new: DistillConfig = load_config(&p, &[]).unwrap();
        assert_eq!(old.distill.terms().unwrap(), new.distill.terms().unwrap());
        // Both at once is ambiguous: the message says what to keep.
        let both = load_config::<DistillConfig>(&p, &["distill.weights.hard_ce=1".into()]);
        let err = both.unwrap_err().to_string();
        assert!(err.contains("remove [distill.weights]"), "{err}");
        // A term of an unknown kind, or a layer map on a logit term, is refused when read.
        let (_d, p) = write("[[distill.terms]]\nkind = \"soft_kll\"\nweight = 1\n");
        assert!(load_config::<DistillConfig>(&p, &[])
            .unwrap_err()
            .to_string()
            .contains("soft_kll"));
        let (_d, p) =
            write("[[distill.terms]]\nkind = \"soft_kl\"\nweight = 1\nlayer_map = \"last\"\n");
        let err = load_config::<DistillConfig>(&p, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no layer_map"), "{err}");
        assert_eq!(
            DistillConfig::default().distill.terms().unwrap(),
            default_terms()
        );
    }

    #[test]
    fn weights_and_temperature_may_be_schedules_with_checked_ends() {
        use crate::objective::schedule::{Ramp, Shape};
        let (_d, p) = write(concat!(
            "[distill]\ntemperature = { start = 8.0, end = 1.0, shape = \"cosine\" }\n",
            "[[distill.terms]]\nkind = \"hard_ce\"\nweight = { start = 0, end = 1 }\n",
            "[[distill.terms]]\nkind = \"soft_kl\"\nweight = 1\n",
        ));
        let c: DistillConfig = load_config(&p, &[]).unwrap();
        assert_eq!(
            c.distill.temperature,
            Scheduled::Ramp(Ramp {
                start: 8.0,
                end: 1.0,
                shape: Shape::Cosine
            })
        );
        let terms = c.distill.terms().unwrap();
        assert_eq!(terms[0].weight.ends(), [0.0, 1.0]);
        assert_eq!(terms[1].weight, Scheduled::Constant(1.0));
        // A schedule survives the config.toml a run writes.
        let back: DistillConfig = toml::from_str(&to_toml(&c)).unwrap();
        assert_eq!(back, c);
        // A temperature must stay positive, a weight ≥ 0 and not 0 throughout.
        for (set, key) in [
            (
                "distill.temperature={start=2.0,end=0.0}",
                "distill.temperature",
            ),
            (
                "distill.terms=[{kind=\"soft_kl\",weight={start=-1.0,end=1.0}}]",
                "weight",
            ),
            (
                "distill.terms=[{kind=\"soft_kl\",weight={start=0.0,end=0.0}}]",
                "not both 0",
            ),
        ] {
            let err = load_config::<DistillConfig>(&p, &[set.into()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn distill_config_round_trips_through_toml() {
        let c = DistillConfig::default();
        let back: DistillConfig = toml::from_str(&to_toml(&c)).unwrap();
        assert_eq!(back, c);
    }

    /// Every key of a config type, as `section.key` paths.
    fn keys<T: Serialize>(config: &T) -> Vec<String> {
        fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(t) => walk(&path, t, out),
                    _ => out.push(path),
                }
            }
        }
        let table: toml::Table = toml::from_str(&to_toml(config)).unwrap();
        let mut out = Vec::new();
        walk("", &table, &mut out);
        out
    }

    #[test]
    fn tasks_take_defaults_and_round_trip() {
        let (_d, p) = write(
            "[[tasks]]\nname = \"ner\"\nteacher = \"t\"\ntrain = \"a.txt\"\ndev = \"b.txt\"\n",
        );
        let c: DistillConfig = load_config(&p, &[]).unwrap();
        let task = &c.tasks[0];
        assert_eq!((task.limit, task.ratio, task.max_len), (0, 1.0, 0));
        let again: DistillConfig = toml::from_str(&to_toml(&c)).unwrap();
        assert_eq!(again, c);
        // A task without its teacher, or with a key it does not take, is refused.
        let (_d, p) = write("[[tasks]]\nname = \"ner\"\ntrain = \"a\"\ndev = \"b\"\n");
        let err = load_config::<DistillConfig>(&p, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("teacher"), "{err}");
        let (_d, p) = write(
            "[[tasks]]\nname = \"n\"\nteacher = \"t\"\ntrain = \"a\"\ndev = \"b\"\nterms = 1\n",
        );
        let err = load_config::<DistillConfig>(&p, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    /// The example configs are the documentation (`--help` prints them): each must parse and
    /// mention every key, so a new option cannot go undocumented.
    #[test]
    fn example_configs_parse_and_document_every_key() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let teacher = root.join("sst2-teacher.toml");
        load_config::<TrainConfig>(&teacher, &[]).unwrap();
        let text = std::fs::read_to_string(&teacher).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        for key in keys(&TrainConfig::default()) {
            let mut node = &toml::Value::Table(table.clone());
            for part in key.split('.') {
                node = node
                    .get(part)
                    .unwrap_or_else(|| panic!("configs/sst2-teacher.toml does not document {key}"));
            }
        }
        for file in [
            "sst2-distill.toml",
            "sst2-student-b.toml",
            "conll-distill.toml",
            "conll-student-b.toml",
            "tinybert-general-mpnet.toml",
            "sst2-tinybert-mpnet.toml",
            "sst2-cnn-from-mpnet.toml",
            "sst2-conll-multitask.toml",
            "multi30k-distill.toml",
        ] {
            let path = root.join(file);
            load_config::<DistillConfig>(&path, &[]).unwrap();
        }
        let conll: TrainConfig = load_config(&root.join("conll-teacher.toml"), &[]).unwrap();
        assert_eq!(conll.model.task, Task::TokenClassification);
        let mt: TrainConfig = load_config(&root.join("multi30k-teacher.toml"), &[]).unwrap();
        assert_eq!(mt.model.task, Task::Translation);
        let distill: toml::Table =
            toml::from_str(&std::fs::read_to_string(root.join("sst2-distill.toml")).unwrap())
                .unwrap();
        assert!(
            distill["distill"].get("terms").is_some(),
            "sst2-distill.toml shows no terms"
        );
        for key in keys(&DistillConfig::default()) {
            let mut node = &toml::Value::Table(distill.clone());
            for part in key.split('.') {
                node = node
                    .get(part)
                    .unwrap_or_else(|| panic!("configs/sst2-distill.toml does not document {key}"));
            }
        }
    }
}
