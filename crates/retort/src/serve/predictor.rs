//! What the server runs on each batch: a model that turns request inputs into JSON answers.
//! A classifier (sequence labels, entities, answers: its task decides) and a translator are
//! predictors; the batcher, limits, timeouts and metrics are the same for both.

use serde_json::{json, Value};

use super::request::BodyKind;
use crate::error::Result;
use crate::infer::Classifier;
use crate::model::generate::DecodeOptions;
use crate::task::Task;
use crate::translate::Translator;

/// A model behind the server's prediction route.
pub trait Predictor: Send + 'static {
    /// One answer per input, in order; `batch_size` inputs per forward pass at most.
    fn predict(&self, inputs: &[&str], batch_size: usize) -> Result<Vec<Value>>;
    /// `POST` route of its predictions, e.g. `/v1/classify`.
    fn route(&self) -> &'static str;
    /// What the route's bodies hold.
    fn body(&self) -> BodyKind;
    /// What `/health` shows of the model.
    fn info(&self) -> Value;
    /// Whether its linear maps run in int8 (for the startup line).
    fn is_int8(&self) -> bool {
        false
    }
}

impl Predictor for Classifier {
    fn predict(&self, inputs: &[&str], batch_size: usize) -> Result<Vec<Value>> {
        Task::of(self.model.config()).predict(self, inputs, batch_size)
    }

    fn route(&self) -> &'static str {
        Task::of(self.model.config()).route()
    }

    fn body(&self) -> BodyKind {
        match Task::of(self.model.config()).reads_questions() {
            true => BodyKind::Questions,
            false => BodyKind::Texts,
        }
    }

    fn info(&self) -> Value {
        let config = self.model.config();
        json!({
            "dir": self.dir.display().to_string(),
            "architecture": config.architecture.class(config.head),
            "task": Task::of(config).name(),
            "route": self.route(),
            "labels": config.labels,
            "int8": self.model.is_int8(),
        })
    }

    fn is_int8(&self) -> bool {
        self.model.is_int8()
    }
}

/// A translator with the decoding its route uses: `POST /v1/translate` with
/// `{"texts": [...]}`, answered with `{"translation": "..."}` per text.
pub struct TranslationService {
    pub translator: Translator,
    pub options: DecodeOptions,
}

impl Predictor for TranslationService {
    fn predict(&self, inputs: &[&str], batch_size: usize) -> Result<Vec<Value>> {
        let lines: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let out = self
            .translator
            .translate(&lines, &self.options, batch_size, false)?;
        Ok(out
            .lines
            .into_iter()
            .map(|t| json!({ "translation": t }))
            .collect())
    }

    fn route(&self) -> &'static str {
        "/v1/translate"
    }

    fn body(&self) -> BodyKind {
        BodyKind::Texts
    }

    fn info(&self) -> Value {
        let c = &self.translator.model.config;
        json!({
            "dir": self.translator.dir.display().to_string(),
            "architecture": "MarianMTModel",
            "task": "translation",
            "route": self.route(),
            "vocab_size": c.vocab_size,
            "beam": self.options.beam,
            "int8": false,
        })
    }
}
