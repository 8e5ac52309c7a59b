//! The transformer: encoder + task head, built from a config and (optionally) a checkpoint;
//! the [`Model`](super::Model) implementation for BERT and DistilBERT checkpoints.

use candle_core::Tensor;
use rayon::prelude::*;

use super::config::{HeadKind, ModelConfig};
use super::encoder::{even_parts, Encoder, EncoderInput, LayerNames, Outputs, WordRows};
use super::heads::{head_prefixes, Head};
use super::kernels;
use super::layers::{Linear, Pass};
use super::params::{ParamBuilder, Params, TensorSource};
use crate::error::{Error, Result};

/// The output of a model's forward pass.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// Unnormalised scores: `[batch, labels]` for a sequence head, `[batch, seq, labels]` for
    /// a token head.
    pub logits: Tensor,
    /// Embedding output and each layer's output, when asked for.
    pub hidden_states: Vec<Tensor>,
    /// Each layer's attention probabilities, when asked for.
    pub attentions: Vec<Tensor>,
    /// `[batch, seq, hidden]` output of the last layer.
    pub last_hidden_state: Tensor,
    /// The word-embedding rows looked up, as their own variable (see `Pass::word_rows`).
    pub word_rows: Option<WordRows>,
}

impl ModelOutput {
    /// Joins the outputs of consecutive parts of a batch along the batch dimension.
    pub(super) fn concat(parts: Vec<ModelOutput>) -> Result<Self> {
        let cat = |pick: &dyn Fn(&ModelOutput) -> &Tensor| -> Result<Tensor> {
            let ts: Vec<&Tensor> = parts.iter().map(pick).collect();
            Ok(Tensor::cat(&ts, 0)?)
        };
        let per_layer = |n: usize, pick: &dyn Fn(&ModelOutput, usize) -> &Tensor| {
            (0..n)
                .map(|i| cat(&|p| pick(p, i)))
                .collect::<Result<Vec<_>>>()
        };
        let first = &parts[0];
        Ok(ModelOutput {
            logits: cat(&|p| &p.logits)?,
            hidden_states: per_layer(first.hidden_states.len(), &|p, i| &p.hidden_states[i])?,
            attentions: per_layer(first.attentions.len(), &|p, i| &p.attentions[i])?,
            last_hidden_state: cat(&|p| &p.last_hidden_state)?,
            // Only inference batches are split, and they take no gradients.
            word_rows: None,
        })
    }
}

/// Splits an inference batch into up to `threads` consecutive parts of at least
/// [`MIN_SPLIT_TOKENS`] tokens each (one part when that is not possible).
pub(super) fn split_batch(input: &EncoderInput, threads: usize) -> Result<Vec<EncoderInput>> {
    let (batch, seq) = input.input_ids.dims2()?;
    let parts = threads
        .min(batch)
        .min(batch * seq / MIN_SPLIT_TOKENS)
        .max(1);
    even_parts(batch, parts)
        .into_iter()
        .map(|r| input.narrow_batch(r.start, r.len()))
        .collect()
}

/// An inference batch is split over the threads only when each part has at least this many
/// tokens: below it, one pass with multi-threaded ops is as fast.
const MIN_SPLIT_TOKENS: usize = 64;

/// A BERT-family encoder with a task head (sequence or token classification).
#[derive(Debug, Clone)]
pub struct Transformer {
    pub config: ModelConfig,
    pub encoder: Encoder,
    pub head: Head,
    pub params: Params,
}

/// What happened while building a model from a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The checkpoint had no classification head: it was initialised afresh.
    pub fresh_head: bool,
    /// Tensors in the file that the model did not use (e.g. `position_ids` buffers).
    pub unused: Vec<String>,
}

impl Transformer {
    /// A model with freshly initialised parameters (reproducible from `seed`).
    pub fn fresh(config: ModelConfig, seed: u64) -> Result<Self> {
        let mut b = ParamBuilder::fresh(seed);
        Self::build(config, &mut b)
    }

    /// Builds the model through `b`, which may hold a checkpoint. Any encoder tensor the
    /// checkpoint lacks is an error; a missing head is initialised and reported.
    pub fn from_builder(config: ModelConfig, mut b: ParamBuilder) -> Result<(Self, LoadReport)> {
        let model = Self::build(config, &mut b)?;
        let heads = head_prefixes(model.config.architecture, model.config.head);
        let (head_missing, encoder_missing): (Vec<&String>, Vec<&String>) = b
            .missing()
            .iter()
            .partition(|n| heads.iter().any(|p| n.starts_with(p)));
        if !encoder_missing.is_empty() {
            let shown: Vec<&str> = encoder_missing.iter().take(5).map(|s| s.as_str()).collect();
            return Err(Error::Checkpoint {
                path: b.source_path().map(|p| p.to_path_buf()).unwrap_or_default(),
                message: format!(
                    "{} encoder tensor(s) missing, e.g. {} — is this a {} checkpoint?",
                    encoder_missing.len(),
                    shown.join(", "),
                    model.config.architecture.model_type()
                ),
            });
        }
        let classifier_missing = head_missing.iter().any(|n| n.starts_with("classifier."));
        let report = LoadReport {
            fresh_head: classifier_missing,
            unused: b.unused(),
        };
        Ok((model, report))
    }

    fn build(config: ModelConfig, b: &mut ParamBuilder) -> Result<Self> {
        if !config.architecture.is_transformer() {
            return Err(Error::Invalid(format!(
                "a {} model is not a transformer: load it with model::load_model",
                config.architecture.model_type()
            )));
        }
        let encoder = Encoder::new(b, &config)?;
        let head = Head::new(b, &config)?;
        let params = b.take_params();
        Ok(Self {
            config,
            encoder,
            head,
            params,
        })
    }

    /// The same model with a `head` over classes `labels`: unchanged when both equal its own
    /// (or `labels` is empty and the head is the same), otherwise with a freshly initialised
    /// classifier layer (the encoder, and a sequence head's pooler, are kept).
    pub fn with_head(self, head: HeadKind, labels: &[String], seed: u64) -> Result<Self> {
        let same_labels = labels.is_empty() || labels == self.config.labels.as_slice();
        if head == self.config.head && same_labels {
            return Ok(self);
        }
        let tensors = self
            .params
            .iter()
            .filter(|(n, _)| !n.starts_with("classifier."))
            .map(|(n, v)| (n.to_string(), v.as_tensor().clone()))
            .collect();
        let config = ModelConfig {
            head,
            labels: match labels.is_empty() {
                true => self.config.labels.clone(),
                false => labels.to_vec(),
            },
            // A fresh head's thresholds are chosen again when it has been trained.
            label_thresholds: Vec::new(),
            ..self.config.clone()
        };
        Self::from_tensors(config, tensors, "(new head)", seed)
    }

    /// Another head on this model's encoder (multi-task distillation gives a student one per
    /// task): a model whose encoder *is* this one's, the same variables, so training either
    /// trains both, with a head of its own for `head` over `labels` (one sigmoid per label
    /// when `multi_label`). The head's tensors are taken from `head_tensors` by name (e.g. a
    /// task teacher's head, when its width is the student's), the rest initialised from
    /// `seed`.
    pub fn sharing_encoder(
        &self,
        head: HeadKind,
        labels: &[String],
        multi_label: bool,
        head_tensors: std::collections::HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<Self> {
        let config = ModelConfig {
            head,
            labels: labels.to_vec(),
            multi_label,
            label_thresholds: Vec::new(),
            ..self.config.clone()
        };
        let source = TensorSource::from_tensors("(task head)", head_tensors);
        let mut b = ParamBuilder::from_source(source, seed);
        let head = Head::new(&mut b, &config)?;
        let own_head = head_prefixes(self.config.architecture, self.config.head);
        let encoder = self
            .params
            .filtered(|n| !own_head.iter().any(|p| n.starts_with(p)));
        Ok(Self {
            config,
            encoder: self.encoder.clone(),
            head,
            params: Params::merged(&encoder, &b.take_params()),
        })
    }

    /// The tensors of this model's head, by name (what [`Transformer::sharing_encoder`] can
    /// start another model's head from).
    pub fn head_tensors(&self) -> std::collections::HashMap<String, Tensor> {
        let prefixes = head_prefixes(self.config.architecture, self.config.head);
        self.params
            .iter()
            .filter(|(n, _)| prefixes.iter().any(|p| n.starts_with(p)))
            .map(|(n, v)| (n.to_string(), v.as_tensor().clone()))
            .collect()
    }

    /// A model of `config` whose parameters are copied from `tensors` (by HF name); a missing
    /// head is initialised from `seed`, a missing encoder tensor is an error naming `origin`.
    pub fn from_tensors(
        config: ModelConfig,
        tensors: std::collections::HashMap<String, Tensor>,
        origin: &str,
        seed: u64,
    ) -> Result<Self> {
        let source = TensorSource::from_tensors(origin, tensors);
        let (model, _) = Self::from_builder(config, ParamBuilder::from_source(source, seed))?;
        Ok(model)
    }

    /// Runs the model on a batch.
    pub fn forward(
        &self,
        input: &EncoderInput,
        pass: Pass,
        outputs: Outputs,
    ) -> Result<ModelOutput> {
        if pass.grad {
            Self::run(&self.encoder, &self.head, input, pass, outputs)
        } else {
            // No gradients wanted: run on detached parameters so that no op records a
            // backward pass and intermediate buffers are freed as the pass goes.
            let (encoder, head) = (self.encoder.detached(), self.head.detached());
            // Inside work already split over the threads (a training part running its
            // teacher), the pass stays on its thread.
            let threads = match kernels::may_fork() {
                true => rayon::current_num_threads(),
                false => 1,
            };
            let parts = split_batch(input, threads)?;
            if parts.len() == 1 {
                return kernels::on_pool(|| Self::run(&encoder, &head, input, pass, outputs));
            }
            // Sequences are independent: each thread runs its share of the batch start to
            // end, instead of both threads meeting at every op of one shared pass (the
            // serial glue between ops then runs on both cores too).
            let outs = parts
                .par_iter()
                .map(|part| Self::run(&encoder, &head, part, pass, outputs))
                .collect::<Result<Vec<_>>>()?;
            ModelOutput::concat(outs)
        }
    }

    fn run(
        encoder: &Encoder,
        head: &Head,
        input: &EncoderInput,
        pass: Pass,
        outputs: Outputs,
    ) -> Result<ModelOutput> {
        // A sequence head reads the first token only: unless more is asked for, the last
        // layer computes that row alone.
        let first_only = matches!(head, Head::Sequence(_)) && !outputs.whole_last_layer();
        let enc = encoder.forward(input, pass, outputs, first_only)?;
        let logits = head.forward(&enc.last_hidden_state, pass)?;
        Ok(ModelOutput {
            logits,
            hidden_states: enc.hidden_states,
            attentions: enc.attentions,
            last_hidden_state: enc.last_hidden_state,
            word_rows: enc.word_rows,
        })
    }

    /// Switches every linear map of the encoder layers to int8 weights (see [`super::int8`]).
    /// The head and the embeddings stay f32: they are a small share of the work.
    pub fn quantize_int8(&mut self) -> Result<()> {
        for (_, linear) in self.encoder_linears_mut() {
            linear.quantize_int8()?;
        }
        Ok(())
    }

    /// Packs every linear map of the encoder layers for inference ([`Linear::pack`]): for a
    /// model that only runs inference from now on (eval, predict, serve, a frozen teacher).
    /// A clone of the model is not packed.
    pub fn pack_for_inference(&mut self) -> Result<()> {
        for (_, linear) in self.encoder_linears_mut() {
            linear.pack()?;
        }
        Ok(())
    }

    /// Whether the encoder's linear maps run in int8.
    pub fn is_int8(&self) -> bool {
        self.encoder_linears().iter().any(|(_, l)| l.int8.is_some())
    }

    /// The HF names (without `.weight`) of the encoder's linear maps, layer by layer.
    fn encoder_linear_names(&self) -> Vec<String> {
        let arch = self.config.architecture;
        (0..self.encoder.layers.len())
            .flat_map(|i| LayerNames::new(arch, i).linears().map(str::to_string))
            .collect()
    }

    /// The encoder's linear maps by their HF name (without `.weight`), layer by layer.
    pub fn encoder_linears(&self) -> Vec<(String, &Linear)> {
        let linears = self.encoder.layers.iter().flat_map(|l| l.linears());
        self.encoder_linear_names()
            .into_iter()
            .zip(linears)
            .collect()
    }

    /// [`Self::encoder_linears`], mutably.
    pub fn encoder_linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let names = self.encoder_linear_names();
        let linears = self.encoder.layers.iter_mut().flat_map(|l| l.linears_mut());
        names.into_iter().zip(linears).collect()
    }
}

impl super::Model for Transformer {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn forward(&self, input: &EncoderInput, pass: Pass, outputs: Outputs) -> Result<ModelOutput> {
        Transformer::forward(self, input, pass, outputs)
    }

    fn save(&self, dir: &std::path::Path) -> Result<()> {
        super::checkpoint::save_classifier(self, dir)
    }

    fn is_int8(&self) -> bool {
        Transformer::is_int8(self)
    }

    fn as_transformer(&self) -> Option<&Transformer> {
        Some(self)
    }

    fn packed_for_inference(&self) -> Result<Option<std::sync::Arc<dyn super::Model>>> {
        let mut packed = self.clone();
        packed.pack_for_inference()?;
        Ok(Some(std::sync::Arc::new(packed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::max_diff;
    use candle_core::Device;

    fn input(batch: usize, seq: usize) -> EncoderInput {
        let dev = Device::Cpu;
        let ids: Vec<u32> = (0..(batch * seq) as u32).collect();
        let ids = Tensor::from_vec(ids, (batch, seq), &dev).unwrap();
        EncoderInput {
            token_type_ids: ids.zeros_like().unwrap(),
            attention_mask: Tensor::ones((batch, seq), candle_core::DType::F32, &dev).unwrap(),
            input_ids: ids,
            word_noise: None,
            target_ids: None,
        }
    }

    #[test]
    fn batches_split_into_consecutive_parts_of_enough_tokens() {
        let sizes = |batch, seq, threads| -> Vec<usize> {
            let parts = split_batch(&input(batch, seq), threads).unwrap();
            let firsts: Vec<u32> = parts
                .iter()
                .map(|p| {
                    p.input_ids
                        .get(0)
                        .unwrap()
                        .get(0)
                        .unwrap()
                        .to_scalar()
                        .unwrap()
                })
                .collect();
            // Consecutive: each part starts where the previous one ended.
            let mut start = 0;
            for (p, first) in parts.iter().zip(firsts) {
                assert_eq!(first as usize, start * seq);
                start += p.input_ids.dim(0).unwrap();
            }
            parts.iter().map(|p| p.input_ids.dim(0).unwrap()).collect()
        };
        assert_eq!(sizes(32, 64, 2), vec![16, 16]);
        assert_eq!(sizes(5, 64, 2), vec![2, 3]);
        assert_eq!(sizes(7, 40, 3), vec![2, 2, 3]);
        // Too few tokens or sequences, or one thread: one part.
        assert_eq!(sizes(1, 128, 2), vec![1]);
        assert_eq!(sizes(4, 16, 2), vec![4]);
        assert_eq!(sizes(32, 64, 1), vec![32]);
    }

    fn tiny() -> Transformer {
        let cfg = ModelConfig::from_json(&serde_json::json!({
            "model_type": "bert", "vocab_size": 300, "hidden_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96,
            "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0
        }))
        .unwrap();
        Transformer::fresh(cfg, 3).unwrap()
    }

    #[test]
    fn packed_weights_give_the_same_outputs_and_never_reach_a_copy_or_a_gradient_pass() {
        if !kernels::packing_pays() {
            return; // nothing is packed on this CPU
        }
        let plain = tiny();
        let mut packed = plain.clone();
        packed.pack_for_inference().unwrap();
        assert!(packed
            .encoder_linears()
            .iter()
            .all(|(_, l)| l.packed.is_some()));
        let all = Outputs {
            hidden_states: true,
            attentions: true,
            last_hidden_state: true,
        };
        // One sentence (a whole pass on the pool), and several with padding (one part per
        // thread); the feed-forward width 96 leaves a narrow last panel.
        for (batch, seq) in [(1, 7), (1, 40), (5, 30)] {
            let mut inp = input(batch, seq);
            let mut mask = vec![1f32; batch * seq];
            mask[seq - 3..seq].fill(0.0);
            inp.attention_mask = Tensor::from_vec(mask, (batch, seq), &Device::Cpu).unwrap();
            let a = plain.forward(&inp, Pass::INFERENCE, all).unwrap();
            let b = packed.forward(&inp, Pass::INFERENCE, all).unwrap();
            assert!(max_diff(&a.logits, &b.logits) < 1e-5, "{batch} x {seq}");
            for (x, y) in a.hidden_states.iter().zip(&b.hidden_states) {
                assert!(max_diff(x, y) < 1e-5, "{batch} x {seq}: hidden states");
            }
        }
        // The packed weights are what inference reads: changing the model's own weights
        // afterwards does not reach them (why a model that trains must not be packed).
        let inp = input(1, 9);
        let before = packed.forward(&inp, Pass::INFERENCE, all).unwrap().logits;
        for (name, var) in packed.params.iter() {
            if name.contains("layer.0.") && name.ends_with("query.weight") {
                var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
            }
        }
        let stale = packed.forward(&inp, Pass::INFERENCE, all).unwrap().logits;
        assert_eq!(max_diff(&before, &stale), 0.0);
        // A copy is not packed: it sees the change.
        let copy = packed.clone();
        assert!(copy
            .encoder_linears()
            .iter()
            .all(|(_, l)| l.packed.is_none()));
        let fresh = copy.forward(&inp, Pass::INFERENCE, all).unwrap().logits;
        assert!(max_diff(&before, &fresh) > 1e-6);
        // A pass that takes gradients runs on the weights themselves: each gets a gradient.
        let out = packed
            .forward(&input(2, 6), Pass::GRAD_NO_DROPOUT, Outputs::default())
            .unwrap();
        let grads = out.logits.sum_all().unwrap().backward().unwrap();
        for (name, linear) in packed.encoder_linears() {
            assert!(grads.get(&linear.weight).is_some(), "{name}");
        }
    }
}
