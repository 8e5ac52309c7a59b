//! The transformer encoder shared by BERT and DistilBERT: embeddings and post-LN layers.
//!
//! Both families compute the same thing; they differ only in tensor names (see
//! [`LayerNames`]) and in DistilBERT having no token-type embeddings. The forward pass can
//! return every layer's hidden states and attention probabilities, which distillation needs.

use candle_core::{DType, Tensor, TensorId, Var, D};

use super::config::{Architecture, ModelConfig};
use super::kernels;
use super::layers::{dropout, softmax_last, LayerNorm, Linear, Pass};
use super::params::{Init, ParamBuilder};
use crate::error::{Error, Result};

/// Std of BERT's normal initialisation (`initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// Additive attention bias for padded keys: large enough that their softmax weight is 0.
const MASKED: f64 = -1e9;

/// Creates a linear map `in -> out` named `{name}.weight` / `{name}.bias`.
pub fn linear(b: &mut ParamBuilder, name: &str, in_dim: usize, out_dim: usize) -> Result<Linear> {
    Ok(Linear::new(
        b.get(
            &format!("{name}.weight"),
            &[out_dim, in_dim],
            Init::Normal(INIT_STD),
        )?,
        b.get(&format!("{name}.bias"), &[out_dim], Init::Zeros)?,
    ))
}

pub(crate) fn layer_norm(
    b: &mut ParamBuilder,
    name: &str,
    dim: usize,
    eps: f64,
) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: b.get(&format!("{name}.weight"), &[dim], Init::Ones)?,
        bias: b.get(&format!("{name}.bias"), &[dim], Init::Zeros)?,
        eps,
    })
}

/// A batch as the encoder sees it.
#[derive(Debug, Clone)]
pub struct EncoderInput {
    /// `[batch, seq]` u32 token ids.
    pub input_ids: Tensor,
    /// `[batch, seq]` u32 segment ids (ignored by DistilBERT).
    pub token_type_ids: Tensor,
    /// `[batch, seq]` f32, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// `[batch, seq, width]` f32 added to the looked-up word embeddings: an adversarial
    /// perturbation (the `adversarial_kl` term); `None` for real inputs.
    pub word_noise: Option<Tensor>,
    /// `[batch, tgt_len]` u32: a translator's decoder inputs under teacher forcing (the start
    /// token, then the target's tokens; padding after them, which the causal mask keeps from
    /// every real position). `None` for an encoder.
    pub target_ids: Option<Tensor>,
}

impl EncoderInput {
    /// Rows `start..start + len` of the batch (views, no copy).
    pub fn narrow_batch(&self, start: usize, len: usize) -> Result<Self> {
        let take = |t: &Tensor| t.narrow(0, start, len);
        Ok(Self {
            input_ids: take(&self.input_ids)?,
            token_type_ids: take(&self.token_type_ids)?,
            attention_mask: take(&self.attention_mask)?,
            word_noise: self.word_noise.as_ref().map(take).transpose()?,
            target_ids: self.target_ids.as_ref().map(take).transpose()?,
        })
    }
}

/// `n` items cut into `parts` consecutive ranges whose lengths differ by at most one (the
/// longer ones last): how a batch is shared out over the threads.
pub fn even_parts(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = (n - start) / (parts - p);
        out.push(start..start + len);
        start += len;
    }
    out
}

/// What the encoder returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `[batch, seq, hidden]` output of the last layer.
    pub last_hidden_state: Tensor,
    /// The embedding output then each layer's output (`num_layers + 1` tensors), if asked for.
    pub hidden_states: Vec<Tensor>,
    /// Each layer's attention probabilities `[batch, heads, seq, seq]`, if asked for.
    pub attentions: Vec<Tensor>,
    /// The word-embedding rows looked up, as their own variable (see [`Pass::word_rows`]).
    pub word_rows: Option<WordRows>,
}

/// The word-embedding rows a batch looked up, as a variable of their own: its gradient,
/// added row by row into the table's, is the table's gradient.
#[derive(Debug, Clone)]
pub struct WordRows {
    /// The word-embedding table they come from.
    pub table: TensorId,
    /// The token id of each row (the batch's ids, flattened).
    pub ids: Vec<u32>,
    /// `[batch, seq, hidden]`.
    pub rows: Var,
}

/// The rows of `table` (`[vocab, width]`) for `ids` (`[batch, seq]`): `[batch, seq, width]`.
fn look_up(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (batch, seq) = ids.dims2()?;
    let flat = table.index_select(&ids.flatten_all()?, 0)?;
    Ok(flat.reshape((batch, seq, table.dim(1)?))?)
}

/// The word embeddings of the input's ids (`[batch, seq]` → `[batch, seq, width]`), plus its
/// `word_noise` when it has one; with `pass.grad && pass.word_rows`, the rows as a variable of
/// their own (see [`Pass::word_rows`]). Every model with a word table embeds through this.
pub fn look_up_words(
    table: &Tensor,
    input: &EncoderInput,
    pass: Pass,
) -> Result<(Tensor, Option<WordRows>)> {
    let ids = &input.input_ids;
    let (words, word_rows) = if pass.grad && pass.word_rows {
        let rows = Var::from_tensor(&look_up(&table.detach(), ids)?)?;
        let word_rows = WordRows {
            table: table.id(),
            ids: ids.flatten_all()?.to_vec1::<u32>()?,
            rows: rows.clone(),
        };
        (rows.as_tensor().clone(), Some(word_rows))
    } else {
        (look_up(table, ids)?, None)
    };
    match &input.word_noise {
        None => Ok((words, word_rows)),
        Some(noise) if noise.dims() == words.dims() => Ok(((words + noise)?, word_rows)),
        Some(noise) => Err(Error::Invalid(format!(
            "an input perturbation of shape {:?} cannot be added to word embeddings of shape {:?}: the teacher's and the student's word embeddings must be as wide for adversarial_kl",
            noise.dims(),
            words.dims()
        ))),
    }
}

/// Which intermediate outputs to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outputs {
    pub hidden_states: bool,
    pub attentions: bool,
    /// The last layer's output at every position. Without it (and without the two above), a
    /// model whose head reads only the first token (a sequence head: [CLS]) runs its last
    /// layer for that position only, and its `last_hidden_state` is `[batch, 1, hidden]`.
    pub last_hidden_state: bool,
}

impl Outputs {
    /// Whether anything asked for needs the last layer at every position.
    pub fn whole_last_layer(self) -> bool {
        self.hidden_states || self.attentions || self.last_hidden_state
    }
}

/// Token, position and (BERT) token-type embeddings, then LayerNorm and dropout.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub word: Tensor,
    pub position: Tensor,
    /// The position row of the first token (MPNet counts from `pad_token_id + 1`).
    pub position_offset: usize,
    pub token_type: Option<Tensor>,
    pub norm: LayerNorm,
    pub dropout: f32,
}

impl Embeddings {
    fn new(b: &mut ParamBuilder, cfg: &ModelConfig, prefix: &str) -> Result<Self> {
        let h = cfg.hidden_size;
        let p = format!("{prefix}embeddings");
        let word = b.get(
            &format!("{p}.word_embeddings.weight"),
            &[cfg.vocab_size, h],
            Init::Normal(INIT_STD),
        )?;
        let position = b.get(
            &format!("{p}.position_embeddings.weight"),
            &[cfg.max_position_embeddings, h],
            Init::Normal(INIT_STD),
        )?;
        let token_type = match cfg.architecture {
            Architecture::Bert => Some(b.get(
                &format!("{p}.token_type_embeddings.weight"),
                &[cfg.type_vocab_size, h],
                Init::Normal(INIT_STD),
            )?),
            Architecture::DistilBert | Architecture::MpNet => None,
            Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
                unreachable!("not a transformer: Transformer::build refuses it")
            }
        };
        let norm = layer_norm(b, &format!("{p}.LayerNorm"), h, cfg.layer_norm_eps)?;
        Ok(Self {
            word,
            position,
            token_type,
            norm,
            dropout: cfg.hidden_dropout,
            position_offset: cfg.position_offset,
        })
    }

    fn detached(&self) -> Self {
        Self {
            word: self.word.detach(),
            position: self.position.detach(),
            position_offset: self.position_offset,
            token_type: self.token_type.as_ref().map(Tensor::detach),
            norm: self.norm.detached(),
            dropout: self.dropout,
        }
    }

    /// The embedded batch, and the word rows as their own variable when `pass.word_rows`.
    fn forward(&self, input: &EncoderInput, pass: Pass) -> Result<(Tensor, Option<WordRows>)> {
        let seq = input.input_ids.dim(1)?;
        let (words, word_rows) = look_up_words(&self.word, input, pass)?;
        let x = words.broadcast_add(&self.position.narrow(0, self.position_offset, seq)?)?;
        // BERT's token-type embeddings are added inside the fused LayerNorm.
        let normed = match &self.token_type {
            Some(tt) => {
                let types = look_up(tt, &input.token_type_ids)?;
                self.norm.forward_residual(&x, &types)?
            }
            None => self.norm.forward(&x)?,
        };
        Ok((dropout(&normed, self.dropout, pass)?, word_rows))
    }
}

/// The common prefix of layer `i`'s tensor names in the given layout.
pub fn layer_prefix(arch: Architecture, i: usize) -> String {
    match arch {
        Architecture::Bert => format!("bert.encoder.layer.{i}."),
        Architecture::DistilBert => format!("distilbert.transformer.layer.{i}."),
        Architecture::MpNet => format!("mpnet.encoder.layer.{i}."),
        Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
            unreachable!("not a transformer: Transformer::build refuses it")
        }
    }
}

/// The Hugging Face names of one layer's tensors (without `.weight`/`.bias`).
pub struct LayerNames {
    pub query: String,
    pub key: String,
    pub value: String,
    pub attn_out: String,
    pub attn_norm: String,
    pub ffn_in: String,
    pub ffn_out: String,
    pub ffn_norm: String,
}

impl LayerNames {
    /// The names of the six linear maps, in the order of [`Layer::linears`].
    pub fn linears(&self) -> [&str; 6] {
        [
            &self.query,
            &self.key,
            &self.value,
            &self.attn_out,
            &self.ffn_in,
            &self.ffn_out,
        ]
    }

    /// Names of layer `i` in the given layout.
    pub fn new(arch: Architecture, i: usize) -> Self {
        let n = |base: &str, s: &str| format!("{base}{s}");
        match arch {
            Architecture::Bert => {
                let b = layer_prefix(arch, i);
                LayerNames {
                    query: n(&b, "attention.self.query"),
                    key: n(&b, "attention.self.key"),
                    value: n(&b, "attention.self.value"),
                    attn_out: n(&b, "attention.output.dense"),
                    attn_norm: n(&b, "attention.output.LayerNorm"),
                    ffn_in: n(&b, "intermediate.dense"),
                    ffn_out: n(&b, "output.dense"),
                    ffn_norm: n(&b, "output.LayerNorm"),
                }
            }
            Architecture::DistilBert => {
                let b = layer_prefix(arch, i);
                LayerNames {
                    query: n(&b, "attention.q_lin"),
                    key: n(&b, "attention.k_lin"),
                    value: n(&b, "attention.v_lin"),
                    attn_out: n(&b, "attention.out_lin"),
                    attn_norm: n(&b, "sa_layer_norm"),
                    ffn_in: n(&b, "ffn.lin1"),
                    ffn_out: n(&b, "ffn.lin2"),
                    ffn_norm: n(&b, "output_layer_norm"),
                }
            }
            Architecture::MpNet => {
                let b = layer_prefix(arch, i);
                LayerNames {
                    query: n(&b, "attention.attn.q"),
                    key: n(&b, "attention.attn.k"),
                    value: n(&b, "attention.attn.v"),
                    attn_out: n(&b, "attention.attn.o"),
                    attn_norm: n(&b, "attention.LayerNorm"),
                    ffn_in: n(&b, "intermediate.dense"),
                    ffn_out: n(&b, "output.dense"),
                    ffn_norm: n(&b, "output.LayerNorm"),
                }
            }
            Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
                unreachable!("not a transformer: Transformer::build refuses it")
            }
        }
    }
}

/// Below this many multiply-adds each, the query, key and value products of a short input run
/// one after the other: handing one to the other thread costs more than it saves. Batch-1
/// latency at 16 tokens (BENCHMARKS.md): 6 × 384 models (2.4M each) 5–12% faster side by
/// side, the 4 × 256 student (1M each) 20% slower.
const SIDE_BY_SIDE_MIN_MACS: usize = 1 << 21;

/// One post-LN transformer layer: self-attention, then a feed-forward block.
#[derive(Debug, Clone)]
pub struct Layer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attn_out: Linear,
    pub attn_norm: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub ffn_norm: LayerNorm,
    cfg: LayerShape,
}

#[derive(Debug, Clone, Copy)]
struct LayerShape {
    /// Heads of this layer (fewer than the config's where some are pruned).
    heads: usize,
    activation: super::config::Activation,
    hidden_dropout: f32,
    attention_dropout: f32,
}

impl Layer {
    fn new(b: &mut ParamBuilder, cfg: &ModelConfig, i: usize) -> Result<Self> {
        let names = LayerNames::new(cfg.architecture, i);
        let (h, f, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        // With pruned heads, the attention works in a narrower space than the hidden states.
        let heads = cfg.heads_in_layer(i);
        let a = heads * cfg.head_dim();
        Ok(Self {
            query: linear(b, &names.query, h, a)?,
            key: linear(b, &names.key, h, a)?,
            value: linear(b, &names.value, h, a)?,
            attn_out: linear(b, &names.attn_out, a, h)?,
            attn_norm: layer_norm(b, &names.attn_norm, h, eps)?,
            ffn_in: linear(b, &names.ffn_in, h, f)?,
            ffn_out: linear(b, &names.ffn_out, f, h)?,
            ffn_norm: layer_norm(b, &names.ffn_norm, h, eps)?,
            cfg: LayerShape {
                heads,
                activation: cfg.activation,
                hidden_dropout: cfg.hidden_dropout,
                attention_dropout: cfg.attention_dropout,
            },
        })
    }

    /// The six linear maps (attention projections and feed-forward), in the order of
    /// [`LayerNames::linears`].
    pub fn linears(&self) -> [&Linear; 6] {
        let l = self;
        [
            &l.query,
            &l.key,
            &l.value,
            &l.attn_out,
            &l.ffn_in,
            &l.ffn_out,
        ]
    }

    /// [`Layer::linears`], mutably.
    pub fn linears_mut(&mut self) -> [&mut Linear; 6] {
        let l = self;
        [
            &mut l.query,
            &mut l.key,
            &mut l.value,
            &mut l.attn_out,
            &mut l.ffn_in,
            &mut l.ffn_out,
        ]
    }

    fn detached(&self) -> Self {
        Self {
            query: self.query.detached(),
            key: self.key.detached(),
            value: self.value.detached(),
            attn_out: self.attn_out.detached(),
            attn_norm: self.attn_norm.detached(),
            ffn_in: self.ffn_in.detached(),
            ffn_out: self.ffn_out.detached(),
            ffn_norm: self.ffn_norm.detached(),
            cfg: self.cfg,
        }
    }

    /// The query, key and value projections of `x`. For a sentence or two each product is too
    /// small to split over the threads, so the three run side by side instead (when each is
    /// worth a thread: [`SIDE_BY_SIDE_MIN_MACS`]).
    fn project_qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let hidden = x.dim(D::Minus1)?;
        let rows = x.elem_count() / hidden;
        let small = rows <= kernels::SMALL_M_ROWS;
        if !small || rows * hidden * hidden < SIDE_BY_SIDE_MIN_MACS || !kernels::may_fork() {
            return Ok((
                self.query.forward(x)?,
                self.key.forward(x)?,
                self.value.forward(x)?,
            ));
        }
        let (q, (k, v)) = rayon::join(
            || self.query.forward(x),
            || rayon::join(|| self.key.forward(x), || self.value.forward(x)),
        );
        Ok((q?, k?, v?))
    }

    /// Returns the layer output and its attention probabilities.
    fn forward(&self, x: &Tensor, mask_bias: &Tensor, pass: Pass) -> Result<(Tensor, Tensor)> {
        let (h, probs) = self.attend(x, mask_bias, pass)?;
        let inner = self.ffn_in.forward_activated(&h, self.cfg.activation)?;
        Ok((self.feed_forward_out(&inner, &h, pass)?, probs))
    }

    /// The layer's output at the first position only, `[batch, 1, hidden]`: that position's
    /// query attends over every key, and the rest of the layer runs on its row alone. It is
    /// all a sequence head reads of the last layer; the other rows' outputs would be computed
    /// and never read (for a 3-layer student, over a quarter of its matrix products). The
    /// fused attention kernels need as many queries as keys, so this one query per sentence
    /// goes through candle's products and the differentiable `softmax_last`.
    fn forward_first(&self, x: &Tensor, attention_bias: &Tensor, pass: Pass) -> Result<Tensor> {
        let (batch, seq, _) = x.dims3()?;
        let heads = self.cfg.heads;
        let first = x.narrow(1, 0, 1)?.contiguous()?;
        let q = self.query.forward(&first)?;
        let (k, v) = (self.key.forward(x)?, self.value.forward(x)?);
        let width = q.dim(2)?;
        let dim = width / heads;
        // [batch, len, heads · dim] → [batch, heads, len, dim]
        let split = |t: &Tensor, len: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, len, heads, dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let keys_t = split(&k, seq)?.transpose(2, 3)?.contiguous()?;
        let scores = (split(&q, 1)?.matmul(&keys_t)? * (1.0 / (dim as f64).sqrt()))?
            .broadcast_add(&attention_bias.narrow(2, 0, 1)?)?;
        let probs = dropout(&softmax_last(&scores)?, self.cfg.attention_dropout, pass)?;
        let context = probs
            .matmul(&split(&v, seq)?)?
            .transpose(1, 2)?
            .reshape((batch, 1, width))?;
        let h = self.attention_out(&context, &first, pass)?;
        let inner = self.ffn_in.forward_activated(&h, self.cfg.activation)?;
        self.feed_forward_out(&inner, &h, pass)
    }

    /// The attention block: its normalised output (the feed-forward input) and probabilities.
    fn attend(&self, x: &Tensor, mask_bias: &Tensor, pass: Pass) -> Result<(Tensor, Tensor)> {
        let (context, probs) = self.context(x, mask_bias, pass)?;
        Ok((self.attention_out(&context, x, pass)?, probs))
    }

    /// The heads' outputs side by side (`[batch, seq, heads · head_dim]`) and the attention
    /// probabilities.
    fn context(&self, x: &Tensor, mask_bias: &Tensor, pass: Pass) -> Result<(Tensor, Tensor)> {
        let heads = self.cfg.heads;
        // The attention kernels read and write heads in place in [batch, seq, hidden]: no
        // transposes or copies around the per-head products.
        let (q, k, v) = self.project_qkv(x)?;
        let probs = kernels::attention_probs(&q, &k, mask_bias, heads)?;
        let kept = dropout(&probs, self.cfg.attention_dropout, pass)?;
        Ok((kernels::attention_context(&kept, &v, heads)?, probs))
    }

    /// The output projection of the heads' context, added to the layer input and normalised.
    fn attention_out(&self, context: &Tensor, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let attn = dropout(
            &self.attn_out.forward(context)?,
            self.cfg.hidden_dropout,
            pass,
        )?;
        self.attn_norm.forward_residual(&attn, x)
    }

    /// Each head's contribution to the attention output over the real tokens (`mask`,
    /// `[batch · seq, 1]`) of `context`: the sum of its norms and the sum of its vectors.
    fn head_activity(&self, context: &Tensor, mask: &Tensor) -> Result<HeadActivity> {
        let (heads, width) = (self.cfg.heads, context.dim(2)?);
        let dim = width / heads;
        let flat = context.reshape(((), width))?;
        let (mut norm_sum, mut sum) = (Vec::with_capacity(heads), Vec::with_capacity(heads));
        for h in 0..heads {
            let w = self.attn_out.weight.narrow(1, h * dim, dim)?; // [hidden, dim]
            let out = flat.narrow(1, h * dim, dim)?.matmul(&w.t()?)?;
            let real = out.broadcast_mul(mask)?;
            norm_sum.push(real.sqr()?.sum(1)?.sqrt()?.sum_all()?);
            sum.push(real.sum(0)?);
        }
        Ok(HeadActivity {
            norm_sum: Tensor::stack(&norm_sum, 0)?,
            sum: Tensor::stack(&sum, 0)?,
        })
    }

    /// The rest of the feed-forward block, from the activated inner values to the layer output.
    fn feed_forward_out(&self, inner: &Tensor, h: &Tensor, pass: Pass) -> Result<Tensor> {
        let out = dropout(&self.ffn_out.forward(inner)?, self.cfg.hidden_dropout, pass)?;
        self.ffn_norm.forward_residual(&out, h)
    }
}

/// Embeddings followed by a stack of layers.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub embeddings: Embeddings,
    pub layers: Vec<Layer>,
    /// MPNet's relative-position bias table, `[buckets, heads]`, shared by every layer.
    pub relative_bias: Option<Tensor>,
}

impl Encoder {
    /// Creates (or loads, through the builder) the encoder's parameters.
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        let prefix = match cfg.architecture {
            Architecture::Bert => "bert.",
            Architecture::DistilBert => "distilbert.",
            Architecture::MpNet => "mpnet.",
            Architecture::BiLstm | Architecture::Cnn | Architecture::Marian => {
                unreachable!("not a transformer: Transformer::build refuses it")
            }
        };
        let embeddings = Embeddings::new(b, cfg, prefix)?;
        let layers = (0..cfg.num_layers)
            .map(|i| Layer::new(b, cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let relative_bias = match cfg.relative_attention_buckets {
            0 => None,
            buckets => Some(b.get(
                &format!("{prefix}encoder.relative_attention_bias.weight"),
                &[buckets, cfg.num_heads],
                Init::Normal(INIT_STD),
            )?),
        };
        Ok(Self {
            embeddings,
            layers,
            relative_bias,
        })
    }

    /// The same encoder on detached parameters: a forward pass through it records no
    /// backward pass (see [`Pass::grad`]). Cheap: tensors share their storage.
    pub fn detached(&self) -> Self {
        Self {
            embeddings: self.embeddings.detached(),
            layers: self.layers.iter().map(Layer::detached).collect(),
            relative_bias: self.relative_bias.as_ref().map(Tensor::detach),
        }
    }

    /// Runs the encoder. Padding (mask 0) never changes the outputs at real tokens. With
    /// `first_only` (which `outputs` must allow: see [`Outputs::whole_last_layer`]), the last
    /// layer runs for the first position only ([`Layer::forward_first`]): `last_hidden_state`
    /// is then `[batch, 1, hidden]`.
    pub fn forward(
        &self,
        input: &EncoderInput,
        pass: Pass,
        outputs: Outputs,
        first_only: bool,
    ) -> Result<EncoderOutput> {
        let mask_bias = self.attention_bias(input)?;
        let (mut x, word_rows) = self.embeddings.forward(input, pass)?;
        let mut hidden_states = Vec::new();
        let mut attentions = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if first_only && i + 1 == self.layers.len() {
                x = layer.forward_first(&x, &mask_bias, pass)?;
                break;
            }
            if outputs.hidden_states {
                hidden_states.push(x.clone());
            }
            let (y, probs) = layer.forward(&x, &mask_bias, pass)?;
            if outputs.attentions {
                attentions.push(probs);
            }
            x = y;
        }
        if outputs.hidden_states {
            hidden_states.push(x.clone());
        }
        Ok(EncoderOutput {
            last_hidden_state: x,
            hidden_states,
            attentions,
            word_rows,
        })
    }

    /// What every layer adds to its attention scores: the padding mask over the keys, plus,
    /// for MPNet, the relative-position bias of each head (`[batch, heads, seq, seq]`).
    fn attention_bias(&self, input: &EncoderInput) -> Result<Tensor> {
        let mask = mask_bias(input)?;
        let Some(table) = &self.relative_bias else {
            return Ok(mask);
        };
        let seq = input.input_ids.dim(1)?;
        Ok(position_bias(table, seq)?
            .unsqueeze(0)?
            .broadcast_add(&mask)?
            .contiguous()?)
    }

    /// For each layer, how much each attention head and feed-forward neuron contributes over
    /// the real tokens of `input`, and the number of real tokens: to choose which heads and
    /// neurons a pruned student keeps and to fold the mean output of the others into a bias.
    /// Inference only.
    pub fn activity(&self, input: &EncoderInput) -> Result<(Vec<LayerActivity>, usize)> {
        let encoder = self.detached();
        let mask_bias = encoder.attention_bias(input)?;
        let mask = input.attention_mask.to_dtype(DType::F32)?;
        let tokens = mask.sum_all()?.to_scalar::<f32>()? as usize;
        let flat_mask = mask.reshape(((), 1))?;
        let mask = mask.unsqueeze(2)?;
        let (mut x, _) = encoder.embeddings.forward(input, Pass::INFERENCE)?;
        let mut activity = Vec::with_capacity(encoder.layers.len());
        for layer in &encoder.layers {
            let (context, _) = layer.context(&x, &mask_bias, Pass::INFERENCE)?;
            let heads = layer.head_activity(&context, &flat_mask)?;
            let h = layer.attention_out(&context, &x, Pass::INFERENCE)?;
            let inner = layer.ffn_in.forward_activated(&h, layer.cfg.activation)?;
            let real = inner.broadcast_mul(&mask)?;
            let ffn = FfnActivity {
                sum: real.sum((0, 1))?,
                abs_sum: real.abs()?.sum((0, 1))?,
            };
            activity.push(LayerActivity { heads, ffn });
            x = layer.feed_forward_out(&inner, &h, Pass::INFERENCE)?;
        }
        Ok((activity, tokens))
    }
}

/// Sums over tokens of one layer's head and neuron contributions (see [`Encoder::activity`]).
#[derive(Debug, Clone)]
pub struct LayerActivity {
    pub heads: HeadActivity,
    pub ffn: FfnActivity,
}

impl LayerActivity {
    /// The sums over the tokens of both (two batches' activity together).
    pub fn add(&self, other: &Self) -> Result<Self> {
        Ok(Self {
            heads: HeadActivity {
                norm_sum: (&self.heads.norm_sum + &other.heads.norm_sum)?,
                sum: (&self.heads.sum + &other.heads.sum)?,
            },
            ffn: FfnActivity {
                sum: (&self.ffn.sum + &other.ffn.sum)?,
                abs_sum: (&self.ffn.abs_sum + &other.ffn.abs_sum)?,
            },
        })
    }
}

/// Per head: the sum of the norms (`[heads]`) and of the vectors (`[heads, hidden]`) it adds
/// to the attention output.
#[derive(Debug, Clone)]
pub struct HeadActivity {
    pub norm_sum: Tensor,
    pub sum: Tensor,
}

/// Per feed-forward neuron: the sum of its activations and of their absolute values
/// (`[intermediate]` each).
#[derive(Debug, Clone)]
pub struct FfnActivity {
    pub sum: Tensor,
    pub abs_sum: Tensor,
}

/// The attention bias of a batch, `[batch, 1, 1, seq]`: 0 for real keys, MASKED for padding.
/// MPNet's relative-position bias for sequences of `seq` tokens: `[heads, seq, seq]`, the
/// row of `table` (`[buckets, heads]`) for the bucket of each key's offset from each query.
fn position_bias(table: &Tensor, seq: usize) -> Result<Tensor> {
    let (buckets, heads) = table.dims2()?;
    let ids: Vec<u32> = (0..seq)
        .flat_map(|q| (0..seq).map(move |k| relative_position_bucket(k as i64 - q as i64, buckets)))
        .map(|b| b as u32)
        .collect();
    let ids = Tensor::from_vec(ids, seq * seq, table.device())?;
    Ok(table
        .index_select(&ids, 0)?
        .reshape((seq, seq, heads))?
        .permute((2, 0, 1))?)
}

/// Offsets beyond this many tokens share the last bucket (transformers' `max_distance`).
const MAX_DISTANCE: u64 = 128;

/// T5's bidirectional bucket of a key `relative` tokens after the query (before: negative),
/// as MPNet computes it: half the buckets for keys before the query, half for keys at or
/// after it; within a half, one bucket per offset below a quarter of the buckets, then
/// logarithmically wider ones up to `MAX_DISTANCE`. transformers computes the logarithm in
/// f32; here it is exact integer arithmetic, which gives the same buckets (checked against
/// transformers for every offset up to ±1000 with 32 buckets).
pub fn relative_position_bucket(relative: i64, buckets: usize) -> usize {
    let half = buckets / 2;
    let mut bucket = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs();
    let exact = (half / 2) as u64;
    if n < exact {
        return bucket + n as usize;
    }
    bucket += exact as usize;
    // The largest k < half - exact with log(n / exact) / log(MAX / exact) · (half - exact) ≥ k,
    // i.e. exact^(span - k) · MAX^k ≤ n^span (span = half - exact), in integers.
    let span = (half as u64 - exact) as u32;
    let fits = |k: u32| -> bool {
        let lhs = (exact as u128)
            .checked_pow(span - k)
            .and_then(|a| a.checked_mul((MAX_DISTANCE as u128).checked_pow(k)?));
        let rhs = (n.min(MAX_DISTANCE) as u128).checked_pow(span);
        matches!((lhs, rhs), (Some(l), Some(r)) if l <= r)
    };
    let k = (1..span).take_while(|&k| fits(k)).last().unwrap_or(0);
    bucket + k as usize
}

fn mask_bias(input: &EncoderInput) -> Result<Tensor> {
    let (batch, seq) = input.input_ids.dims2()?;
    Ok(
        ((input.attention_mask.to_dtype(DType::F32)? - 1.0)? * -MASKED)?
            .reshape((batch, 1, 1, seq))?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_position_buckets_are_transformers_buckets() {
        // (key offset from the query, bucket) as transformers' MPNetEncoder computes them
        // with 32 buckets; the exact ones below 8, logarithmic ones up to 128, then the last.
        let torch = [
            (-129, 15),
            (-128, 15),
            (-127, 15),
            (-65, 14),
            (-64, 14),
            (-63, 13),
            (-33, 12),
            (-32, 12),
            (-31, 11),
            (-17, 10),
            (-16, 10),
            (-15, 9),
            (-8, 8),
            (-7, 7),
            (0, 0),
            (7, 23),
            (8, 24),
            (15, 25),
            (16, 26),
            (17, 26),
            (31, 27),
            (32, 28),
            (33, 28),
            (63, 29),
            (64, 30),
            (65, 30),
            (127, 31),
            (128, 31),
            (129, 31),
            (1000, 31),
        ];
        for (offset, bucket) in torch {
            assert_eq!(
                relative_position_bucket(offset, 32),
                bucket,
                "offset {offset}"
            );
        }
    }
    use crate::model::Transformer;
    use candle_core::Device;
    use serde_json::json;

    #[test]
    fn head_activity_splits_the_attention_output_by_head() {
        let cfg = ModelConfig::from_json(&json!({
            "model_type": "bert", "vocab_size": 40, "hidden_size": 12, "num_hidden_layers": 1,
            "num_attention_heads": 3, "intermediate_size": 8, "max_position_embeddings": 8
        }))
        .unwrap();
        let model = Transformer::fresh(cfg, 5).unwrap();
        let encoder = model.encoder.detached();
        // Two sentences, the second padded: padding must not count.
        let input = EncoderInput {
            input_ids: Tensor::new(&[[2u32, 9, 17, 3], [2, 30, 3, 0]], &Device::Cpu).unwrap(),
            token_type_ids: Tensor::zeros((2, 4), DType::U32, &Device::Cpu).unwrap(),
            attention_mask: Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 1., 0.]], &Device::Cpu)
                .unwrap(),
            word_noise: None,
            target_ids: None,
        };
        let (x, _) = encoder.embeddings.forward(&input, Pass::INFERENCE).unwrap();
        let layer = &encoder.layers[0];
        let (context, _) = layer
            .context(&x, &mask_bias(&input).unwrap(), Pass::INFERENCE)
            .unwrap();
        let mask = input.attention_mask.reshape(((), 1)).unwrap();
        let heads = layer.head_activity(&context, &mask).unwrap();
        // Σ over heads and real tokens of the contributions, plus the bias once per token, is
        // the attention output summed over the real tokens.
        let out = layer
            .attn_out
            .forward(&context)
            .unwrap()
            .reshape((8, 12))
            .unwrap();
        let want = out.broadcast_mul(&mask).unwrap().sum(0).unwrap();
        let got = (heads.sum.sum(0).unwrap() + (&layer.attn_out.bias * 7.0).unwrap()).unwrap();
        let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        // Head 1's norm sum by hand.
        let w = layer.attn_out.weight.narrow(1, 4, 4).unwrap();
        let c = context.reshape((8, 12)).unwrap().narrow(1, 4, 4).unwrap();
        let norms = c
            .matmul(&w.t().unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .sum(1)
            .unwrap();
        let norms = norms.sqrt().unwrap().to_vec1::<f32>().unwrap();
        let want: f32 = norms[..7].iter().sum();
        let got = heads.norm_sum.to_vec1::<f32>().unwrap()[1];
        assert!((want - got).abs() < 1e-5, "{want} vs {got}");
    }
}
