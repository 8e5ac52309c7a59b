//! An encoder–decoder transformer for translation, in the layout of transformers'
//! `MarianMTModel`: one embedding table shared by the source, the target and the output
//! projection (scaled by √d_model on the way in), sinusoidal positions, post-LN layers (self-
//! attention, then in the decoder cross-attention over the source, then the feed-forward
//! block), no final layer norm, a `final_logits_bias`. Tensor names are Marian's
//! (`model.encoder.layers.0.self_attn.q_proj.weight`, `model.shared.weight`, ...).
//!
//! Attention here reads queries and keys of different lengths (cross-attention), a causal
//! mask (the decoder's self-attention) and a key-padding mask, through plain tensor products
//! and the softmax kernel, all with backward passes. Incremental decoding keeps each layer's
//! keys and values ([`DecoderState`]), so a step costs one token's work; the cached step and
//! the whole-prefix pass give the same logits (tested).

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::config::{Activation, ModelConfig};
use super::encoder::{layer_norm, linear};
use super::layers::{activate, dropout, softmax_last, LayerNorm, Linear, Pass};
use super::params::{Init, ParamBuilder, Params, TensorSource};
use super::{EncoderInput, Model, ModelOutput, Outputs};
use crate::error::{Error, Result};

/// What masked attention scores are set to: far below any real score, still finite.
const MASKED: f32 = -1e9;

/// The sizes of an encoder–decoder, saved as a Marian `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Attention heads, in every attention block.
    #[serde(rename = "encoder_attention_heads")]
    pub heads: usize,
    /// The feed-forward blocks' inner width.
    #[serde(rename = "encoder_ffn_dim")]
    pub ffn_dim: usize,
    /// The longest sequence the position table covers, source or target.
    #[serde(rename = "max_position_embeddings")]
    pub max_positions: usize,
    pub dropout: f32,
    pub pad_token_id: u32,
    /// The first token of every decoder input.
    pub decoder_start_token_id: u32,
    pub eos_token_id: u32,
}

impl Seq2SeqConfig {
    /// A translator of `layers` layers each side, `d_model` wide with `heads` heads and a
    /// feed-forward 4 × as wide, dropout 0.1, over `vocab_size` tokens of a `retort vocab`
    /// vocabulary (padding, start and end at ids 0, 1 and 2).
    pub fn shape(
        vocab_size: usize,
        d_model: usize,
        layers: usize,
        heads: usize,
        max_positions: usize,
    ) -> Self {
        Self {
            vocab_size,
            d_model,
            encoder_layers: layers,
            decoder_layers: layers,
            heads,
            ffn_dim: 4 * d_model,
            max_positions,
            dropout: 0.1,
            pad_token_id: 0,
            decoder_start_token_id: 1,
            eos_token_id: 2,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }

    /// The sizes must make a model: every count positive, heads dividing the width evenly
    /// (the sinusoidal table needs an even width), special tokens inside the vocabulary.
    pub fn check(&self) -> Result<()> {
        let counts = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("heads", self.heads),
            ("ffn_dim", self.ffn_dim),
            ("max_positions", self.max_positions),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Invalid(format!(
                "a translator's {name} must be at least 1"
            )));
        }
        if !self.d_model.is_multiple_of(self.heads) || !self.d_model.is_multiple_of(2) {
            return Err(Error::Invalid(format!(
                "d_model {} must be even and divisible by heads {}",
                self.d_model, self.heads
            )));
        }
        let specials = [
            self.pad_token_id,
            self.decoder_start_token_id,
            self.eos_token_id,
        ];
        if specials.iter().any(|&t| t as usize >= self.vocab_size) {
            return Err(Error::Invalid(format!(
                "the special tokens {specials:?} must be below vocab_size {}",
                self.vocab_size
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Invalid(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// Multi-head attention of queries over keys and values that may be other, longer or
/// shorter sequences.
#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn new(b: &mut ParamBuilder, name: &str, d: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            q: linear(b, &format!("{name}.q_proj"), d, d)?,
            k: linear(b, &format!("{name}.k_proj"), d, d)?,
            v: linear(b, &format!("{name}.v_proj"), d, d)?,
            out: linear(b, &format!("{name}.out_proj"), d, d)?,
            heads,
        })
    }

    fn detached(&self) -> Self {
        Self {
            q: self.q.detached(),
            k: self.k.detached(),
            v: self.v.detached(),
            out: self.out.detached(),
            heads: self.heads,
        }
    }

    /// `[batch, len, d]` → `[batch, heads, len, head_dim]` through `map`.
    fn split_heads(&self, x: &Tensor, map: &Linear) -> Result<Tensor> {
        let (batch, len, d) = x.dims3()?;
        Ok(map
            .forward(x)?
            .reshape((batch, len, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// The keys and values of `x`, split into heads.
    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.split_heads(x, &self.k)?, self.split_heads(x, &self.v)?))
    }

    /// `query`: `[batch, q_len, d]`; `keys`, `values`: `[batch, heads, k_len, head_dim]`;
    /// `bias`: added to the scores, broadcast to `[batch, heads, q_len, k_len]`.
    fn forward(
        &self,
        query: &Tensor,
        (keys, values): (&Tensor, &Tensor),
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (batch, q_len, d) = query.dims3()?;
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        // Marian scales the projected queries (bias included), before the product.
        let q = (self.split_heads(query, &self.q)? * scale)?;
        let mut scores = q.matmul(&keys.transpose(2, 3)?.contiguous()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = softmax_last(&scores)?;
        let context = probs
            .matmul(values)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, q_len, d))?;
        self.out.forward(&context)
    }
}

/// The feed-forward block: `fc2(act(fc1(x)))`.
#[derive(Debug, Clone)]
struct FeedForward {
    fc1: Linear,
    fc2: Linear,
}

impl FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2
            .forward(&activate(&self.fc1.forward(x)?, Activation::Gelu)?)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    ffn: FeedForward,
    final_norm: LayerNorm,
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    cross_attn: Attention,
    cross_attn_norm: LayerNorm,
    ffn: FeedForward,
    final_norm: LayerNorm,
}

/// The encoder–decoder: its parameters and the (constant) sinusoidal position table.
#[derive(Debug, Clone)]
pub struct Seq2Seq {
    pub config: Seq2SeqConfig,
    /// `config` as the trainer, the objective and the tasks read a model's (see
    /// [`ModelConfig::translator`]).
    model_config: ModelConfig,
    shared: Tensor,
    final_logits_bias: Tensor,
    /// `[max_positions, d_model]`: sines in the first half of each row, cosines in the second
    /// (Marian's `MarianSinusoidalPositionalEmbedding`).
    positions: Tensor,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    pub params: Params,
}

/// The decoder's memory during incremental decoding: per layer, the source's keys and
/// values (computed once) and the keys and values of the tokens decoded so far.
pub struct DecoderState {
    cross: Vec<(Tensor, Tensor)>,
    past: Vec<Option<(Tensor, Tensor)>>,
    /// `[batch, 1, 1, src_len]`: the source's padding, masked.
    source_bias: Tensor,
    /// Tokens decoded so far (the next token's position).
    position: usize,
}

impl DecoderState {
    /// Keeps batch rows `rows` (in that order, repeats allowed): beam search's reordering.
    pub fn select(&mut self, rows: &[u32]) -> Result<()> {
        let index = Tensor::new(rows, &Device::Cpu)?;
        let pick = |t: &Tensor| t.index_select(&index, 0);
        for (k, v) in self.cross.iter_mut() {
            (*k, *v) = (pick(k)?, pick(v)?);
        }
        for (k, v) in self.past.iter_mut().flatten() {
            (*k, *v) = (pick(k)?, pick(v)?);
        }
        self.source_bias = pick(&self.source_bias)?;
        Ok(())
    }

    pub fn batch_size(&self) -> Result<usize> {
        Ok(self.source_bias.dim(0)?)
    }
}

impl Seq2Seq {
    /// A model with freshly initialised parameters (reproducible from `seed`).
    pub fn fresh(config: Seq2SeqConfig, seed: u64) -> Result<Self> {
        Self::build(config, &mut ParamBuilder::fresh(seed))
    }

    /// Loads `dir/config.json` and `dir/model.safetensors`; every tensor must be there.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e, "model config"))?;
        let config: Seq2SeqConfig = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: format!("not a translator's config: {e}"),
        })?;
        let source = TensorSource::load(&dir.join("model.safetensors"))?;
        let mut b = ParamBuilder::from_source(source, 0);
        let model = Self::build(config, &mut b)?;
        if let Some(name) = b.missing().first() {
            return Err(Error::Checkpoint {
                path: dir.join("model.safetensors"),
                message: format!("{} tensor(s) missing, e.g. {name}", b.missing().len()),
            });
        }
        Ok(model)
    }

    /// Writes `dir/config.json` (Marian's keys) and `dir/model.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e, "model directory"))?;
        let mut config = serde_json::to_value(&self.config).expect("the config serialises");
        let c = &self.config;
        let marian = serde_json::json!({
            "model_type": "marian", "architectures": ["MarianMTModel"],
            "decoder_attention_heads": c.heads, "decoder_ffn_dim": c.ffn_dim,
            "activation_function": "gelu", "scale_embedding": true,
            "static_position_embeddings": true, "normalize_embedding": false,
            "share_encoder_decoder_embeddings": true, "tie_word_embeddings": true,
            "attention_dropout": 0.0, "activation_dropout": 0.0, "bos_token_id": c.decoder_start_token_id,
            "d_model": c.d_model,
        });
        for (k, v) in marian.as_object().expect("an object") {
            config[k] = v.clone();
        }
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&config).expect("a JSON value serialises");
        std::fs::write(&path, text + "\n").map_err(|e| Error::create(&path, e, "model config"))?;
        self.params.save_safetensors(&dir.join("model.safetensors"))
    }

    fn build(config: Seq2SeqConfig, b: &mut ParamBuilder) -> Result<Self> {
        config.check()?;
        let (d, heads, ffn) = (config.d_model, config.heads, config.ffn_dim);
        let shared = b.get(
            "model.shared.weight",
            &[config.vocab_size, d],
            Init::Normal(0.02),
        )?;
        let final_logits_bias = b.get("final_logits_bias", &[1, config.vocab_size], Init::Zeros)?;
        let feed_forward = |b: &mut ParamBuilder, name: &str| -> Result<FeedForward> {
            Ok(FeedForward {
                fc1: linear(b, &format!("{name}.fc1"), d, ffn)?,
                fc2: linear(b, &format!("{name}.fc2"), ffn, d)?,
            })
        };
        let norm = |b: &mut ParamBuilder, name: String| layer_norm(b, &name, d, 1e-5);
        let mut encoder = Vec::with_capacity(config.encoder_layers);
        for i in 0..config.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            encoder.push(EncoderLayer {
                self_attn: Attention::new(b, &format!("{p}.self_attn"), d, heads)?,
                self_attn_norm: norm(b, format!("{p}.self_attn_layer_norm"))?,
                ffn: feed_forward(b, &p)?,
                final_norm: norm(b, format!("{p}.final_layer_norm"))?,
            });
        }
        let mut decoder = Vec::with_capacity(config.decoder_layers);
        for i in 0..config.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            decoder.push(DecoderLayer {
                self_attn: Attention::new(b, &format!("{p}.self_attn"), d, heads)?,
                self_attn_norm: norm(b, format!("{p}.self_attn_layer_norm"))?,
                cross_attn: Attention::new(b, &format!("{p}.encoder_attn"), d, heads)?,
                cross_attn_norm: norm(b, format!("{p}.encoder_attn_layer_norm"))?,
                ffn: feed_forward(b, &p)?,
                final_norm: norm(b, format!("{p}.final_layer_norm"))?,
            });
        }
        let positions = sinusoids(config.max_positions, d)?;
        Ok(Self {
            model_config: ModelConfig::translator(&config),
            config,
            shared,
            final_logits_bias,
            positions,
            encoder,
            decoder,
            params: b.take_params(),
        })
    }

    /// Whether a pass that takes no gradient would still record one: the parameters are
    /// variables, so inference runs on [`Seq2Seq::detached`] copies (no buffer kept for a
    /// backward pass that never comes), as `Transformer::forward` does.
    fn records_graph(&self, pass: Pass) -> bool {
        !pass.grad && self.shared.track_op()
    }

    /// The same model on detached parameters: inference records no backward pass.
    pub fn detached(&self) -> Self {
        let attn = |a: &Attention| a.detached();
        let ffn = |f: &FeedForward| FeedForward {
            fc1: f.fc1.detached(),
            fc2: f.fc2.detached(),
        };
        Self {
            config: self.config.clone(),
            model_config: self.model_config.clone(),
            shared: self.shared.detach(),
            final_logits_bias: self.final_logits_bias.detach(),
            positions: self.positions.clone(),
            encoder: self
                .encoder
                .iter()
                .map(|l| EncoderLayer {
                    self_attn: attn(&l.self_attn),
                    self_attn_norm: l.self_attn_norm.detached(),
                    ffn: ffn(&l.ffn),
                    final_norm: l.final_norm.detached(),
                })
                .collect(),
            decoder: self
                .decoder
                .iter()
                .map(|l| DecoderLayer {
                    self_attn: attn(&l.self_attn),
                    self_attn_norm: l.self_attn_norm.detached(),
                    cross_attn: attn(&l.cross_attn),
                    cross_attn_norm: l.cross_attn_norm.detached(),
                    ffn: ffn(&l.ffn),
                    final_norm: l.final_norm.detached(),
                })
                .collect(),
            params: self.params.clone(),
        }
    }

    /// Token embeddings (scaled by √d_model) plus the positions from `start`, then dropout.
    fn embed(&self, ids: &Tensor, start: usize, pass: Pass) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        if start + len > self.config.max_positions {
            return Err(Error::Invalid(format!(
                "a sequence of {} tokens is longer than the model's {} positions",
                start + len,
                self.config.max_positions
            )));
        }
        let d = self.config.d_model;
        let words = self
            .shared
            .embedding(&ids.flatten_all()?)?
            .reshape((batch, len, d))?;
        let scaled = (words * (d as f64).sqrt())?;
        let x = scaled.broadcast_add(&self.positions.narrow(0, start, len)?)?;
        dropout(&x, self.config.dropout, pass)
    }

    /// `[batch, 1, 1, len]`: 0 over real tokens, [`MASKED`] over padding (`mask` 1 / 0).
    fn padding_bias(mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = mask.dims2()?;
        Ok(((1.0 - mask.to_dtype(DType::F32)?)? * MASKED as f64)?.reshape((batch, 1, 1, len))?)
    }

    /// The encoder's output `[batch, src_len, d]` for source ids `[batch, src_len]` whose
    /// real tokens `mask` marks with 1.
    pub fn encode(&self, source: &Tensor, mask: &Tensor, pass: Pass) -> Result<Tensor> {
        if self.records_graph(pass) {
            return self.detached().encode(source, mask, pass);
        }
        let bias = Self::padding_bias(mask)?;
        let p = self.config.dropout;
        let mut x = self.embed(source, 0, pass)?;
        for layer in &self.encoder {
            let kv = layer.self_attn.keys_values(&x)?;
            let h = layer.self_attn.forward(&x, (&kv.0, &kv.1), Some(&bias))?;
            x = layer
                .self_attn_norm
                .forward_residual(&dropout(&h, p, pass)?, &x)?;
            let h = layer.ffn.forward(&x)?;
            x = layer
                .final_norm
                .forward_residual(&dropout(&h, p, pass)?, &x)?;
        }
        Ok(x)
    }

    /// Next-token logits `[batch, tgt_len, vocab]` for every position of the decoder inputs
    /// `target` (teacher forcing: each position sees the ones before it only).
    pub fn forward(
        &self,
        source: &Tensor,
        source_mask: &Tensor,
        target: &Tensor,
        pass: Pass,
    ) -> Result<Tensor> {
        if self.records_graph(pass) {
            return self.detached().forward(source, source_mask, target, pass);
        }
        self.logits(&self.decoder_states(source, source_mask, target, pass)?)
    }

    /// The decoder's last layer's output `[batch, tgt_len, d]` under teacher forcing (on
    /// parameters that record a graph only when `pass` takes gradients: see `forward`).
    fn decoder_states(
        &self,
        source: &Tensor,
        source_mask: &Tensor,
        target: &Tensor,
        pass: Pass,
    ) -> Result<Tensor> {
        let memory = self.encode(source, source_mask, pass)?;
        let source_bias = Self::padding_bias(source_mask)?;
        let len = target.dim(1)?;
        let causal = causal_bias(len)?;
        let p = self.config.dropout;
        let mut y = self.embed(target, 0, pass)?;
        for layer in &self.decoder {
            let kv = layer.self_attn.keys_values(&y)?;
            let h = layer.self_attn.forward(&y, (&kv.0, &kv.1), Some(&causal))?;
            y = layer
                .self_attn_norm
                .forward_residual(&dropout(&h, p, pass)?, &y)?;
            let kv = layer.cross_attn.keys_values(&memory)?;
            let h = layer
                .cross_attn
                .forward(&y, (&kv.0, &kv.1), Some(&source_bias))?;
            y = layer
                .cross_attn_norm
                .forward_residual(&dropout(&h, p, pass)?, &y)?;
            let h = layer.ffn.forward(&y)?;
            y = layer
                .final_norm
                .forward_residual(&dropout(&h, p, pass)?, &y)?;
        }
        Ok(y)
    }

    /// The output projection: the shared table, transposed, plus `final_logits_bias`.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(super::kernels::linear(
            hidden,
            &self.shared,
            &self.final_logits_bias.flatten_all()?,
        )?)
    }

    /// Starts incremental decoding of a batch of sources (inference: no dropout).
    pub fn start(&self, source: &Tensor, source_mask: &Tensor) -> Result<DecoderState> {
        let memory = self.encode(source, source_mask, Pass::INFERENCE)?;
        let cross = self
            .decoder
            .iter()
            .map(|l| l.cross_attn.keys_values(&memory))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            cross,
            past: vec![None; self.decoder.len()],
            source_bias: Self::padding_bias(source_mask)?,
            position: 0,
        })
    }

    /// One decoding step: the logits `[batch, vocab]` after `tokens` (`[batch]`, the last
    /// token of each row), reading and extending the state's cached keys and values.
    pub fn step(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor> {
        if self.records_graph(Pass::INFERENCE) {
            return self.detached().step(state, tokens);
        }
        let batch = tokens.dim(0)?;
        let mut y = self.embed(
            &tokens.reshape((batch, 1))?,
            state.position,
            Pass::INFERENCE,
        )?;
        for (i, layer) in self.decoder.iter().enumerate() {
            let (k, v) = layer.self_attn.keys_values(&y)?;
            let (k, v) = match state.past[i].take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                None => (k, v),
            };
            // The one query is the newest token: it may see every cached one.
            let h = layer.self_attn.forward(&y, (&k, &v), None)?;
            state.past[i] = Some((k, v));
            y = layer.self_attn_norm.forward_residual(&h, &y)?;
            let (ck, cv) = &state.cross[i];
            let h = layer
                .cross_attn
                .forward(&y, (ck, cv), Some(&state.source_bias))?;
            y = layer.cross_attn_norm.forward_residual(&h, &y)?;
            let h = layer.ffn.forward(&y)?;
            y = layer.final_norm.forward_residual(&h, &y)?;
        }
        state.position += 1;
        self.logits(&y)?.squeeze(1).map_err(Into::into)
    }
}

/// The translator is a [`Model`]: the trainer, the objective (word-level distillation reads its
/// next-token rows like any logits) and `retort train` run it as they run an encoder. Its
/// input carries the decoder's inputs (`target_ids`); it has no hidden states or attention
/// maps to match, and its one table serves as input and output embeddings, so the word rows
/// of a batch are not split out of it (`Pass::word_rows` is ignored).
impl Model for Seq2Seq {
    fn config(&self) -> &ModelConfig {
        &self.model_config
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn forward(&self, input: &EncoderInput, pass: Pass, outputs: Outputs) -> Result<ModelOutput> {
        if outputs.hidden_states || outputs.attentions {
            return Err(Error::Invalid(
                "a translator gives no hidden states or attention maps: the intermediate terms (hidden_mse, cosine, attention_mse, attention_kl) do not apply to it".into(),
            ));
        }
        if self.records_graph(pass) {
            return Model::forward(&self.detached(), input, pass, outputs);
        }
        let target = input.target_ids.as_ref().ok_or_else(|| {
            Error::Invalid("a translator's input needs its decoder inputs (target_ids)".into())
        })?;
        let states = self.decoder_states(&input.input_ids, &input.attention_mask, target, pass)?;
        Ok(ModelOutput {
            logits: self.logits(&states)?,
            last_hidden_state: states,
            hidden_states: Vec::new(),
            attentions: Vec::new(),
            word_rows: None,
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        Seq2Seq::save(self, dir)
    }

    /// Parameters in total and without the shared embedding table (which is also the output
    /// projection).
    fn parameter_counts(&self) -> (usize, usize) {
        let total = self.params.count();
        (
            total,
            total - self.params.count_where(|n| n == "model.shared.weight"),
        )
    }

    fn as_seq2seq(&self) -> Option<&Seq2Seq> {
        Some(self)
    }
}

/// `[1, 1, len, len]`: 0 where a position may look (itself and before), [`MASKED`] after.
fn causal_bias(len: usize) -> Result<Tensor> {
    let values: Vec<f32> = (0..len * len)
        .map(|k| if k % len > k / len { MASKED } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(values, (1, 1, len, len), &Device::Cpu)?)
}

/// Marian's sinusoidal table: row `pos` holds sin(pos / 10000^(2k/d)) for k < d/2, then
/// cos of the same angles.
fn sinusoids(max_positions: usize, d: usize) -> Result<Tensor> {
    let half = d / 2;
    let mut values = vec![0f32; max_positions * d];
    for pos in 0..max_positions {
        for k in 0..half {
            let angle = pos as f64 / 10000f64.powf(2.0 * k as f64 / d as f64);
            values[pos * d + k] = angle.sin() as f32;
            values[pos * d + half + k] = angle.cos() as f32;
        }
    }
    Ok(Tensor::from_vec(values, (max_positions, d), &Device::Cpu)?)
}

/// `ids` as a padded `[batch, len]` tensor and its `[batch, len]` mask (1 real, 0 padding).
pub fn pad_ids(ids: &[Vec<u32>], pad: u32) -> Result<(Tensor, Tensor)> {
    let len = ids.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut flat = Vec::with_capacity(ids.len() * len);
    let mut mask = Vec::with_capacity(ids.len() * len);
    for row in ids {
        flat.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(pad, len - row.len())),
        );
        mask.extend((0..len).map(|j| if j < row.len() { 1f32 } else { 0.0 }));
    }
    let shape = (ids.len(), len);
    Ok((
        Tensor::from_vec(flat, shape, &Device::Cpu)?,
        Tensor::from_vec(mask, shape, &Device::Cpu)?,
    ))
}

/// Last-dimension log-softmax of `[rows, vocab]` logits, as plain numbers per row.
pub fn log_probs(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?.to_vec2::<f32>()?)
}
