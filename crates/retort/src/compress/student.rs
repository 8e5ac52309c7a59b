//! Building a student: from chosen teacher layers (DistilBERT-style) or fresh from a size.

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::encoder::{layer_prefix, EncoderInput, LayerActivity, LayerNames};
use crate::model::params::ParamBuilder;
use crate::model::transformer::Transformer;

/// What a student built from teacher layers keeps of the teacher: everything by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keep {
    /// The teacher token ids whose embeddings the student keeps; token `i` of the student is
    /// `tokens[i]` of the teacher (its tokenizer must agree: see `compress::vocab`).
    pub tokens: Option<Vec<u32>>,
    /// For each teacher layer, the attention heads kept (see [`heads_to_keep`]).
    pub heads: Option<Vec<KeptUnits>>,
    /// For each teacher layer, the feed-forward neurons kept; the same number in every layer
    /// (see [`ffn_to_keep`]).
    pub ffn: Option<Vec<KeptUnits>>,
}

/// The attention heads or feed-forward neurons a layer keeps, and what the dropped ones
/// added on average.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptUnits {
    /// Kept heads or neurons, ascending.
    pub units: Vec<u32>,
    /// The dropped units' mean contribution to their block's output (`[hidden]`), folded into
    /// the output bias so the pruned layer keeps the mean output of the whole one.
    pub bias_shift: Vec<f32>,
}

/// A student with the teacher's embeddings and head and a copy of teacher layers `layers`
/// (0-based, in order: student layer i starts as teacher layer `layers[i]`), keeping the
/// tokens, attention heads and feed-forward neurons `keep` names.
pub fn from_teacher_layers(
    teacher: &Transformer,
    layers: &[usize],
    keep: &Keep,
) -> Result<Transformer> {
    let arch = teacher.config.architecture;
    let depth = teacher.config.num_layers;
    if layers.is_empty() {
        return Err(Error::Invalid("student.teacher_layers is empty".into()));
    }
    if let Some(bad) = layers.iter().find(|&&l| l >= depth) {
        return Err(Error::Invalid(format!(
            "student.teacher_layers names layer {bad}, but the teacher has layers 0..{}",
            depth - 1
        )));
    }
    if keep.heads.is_some() && !teacher.config.pruned_heads.is_empty() {
        return Err(Error::Invalid(
            "the teacher's attention heads are already pruned: keep all of them".into(),
        ));
    }
    if keep.heads.is_some() && teacher.config.relative_attention_buckets > 0 {
        // The relative-position bias has a row per head, shared by every layer.
        return Err(Error::Invalid(
            "student.keep_heads is not supported for a teacher with a relative-position bias (MPNet): keep all heads".into(),
        ));
    }
    let head_dim = teacher.config.head_dim();
    let word = param_name(teacher, &teacher.encoder.embeddings.word)?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in teacher.params.iter() {
        let t = var.as_tensor();
        let in_layer = (0..depth).find(|&j| name.starts_with(&layer_prefix(arch, j)));
        match in_layer {
            None if name == word => {
                tensors.insert(name.to_string(), select_rows(t, keep.tokens.as_deref())?);
            }
            None => {
                tensors.insert(name.to_string(), t.clone());
            }
            Some(j) => {
                let names = LayerNames::new(arch, j);
                let heads = keep.heads.as_ref().map(|h| &h[j]);
                let t = select_heads(name, t, &names, heads, head_dim)?;
                let t = select_neurons(name, &t, &names, keep.ffn.as_ref().map(|f| &f[j]))?;
                let rest = &name[layer_prefix(arch, j).len()..];
                for (i, _) in layers.iter().enumerate().filter(|(_, &l)| l == j) {
                    tensors.insert(format!("{}{rest}", layer_prefix(arch, i)), t.clone());
                }
            }
        }
    }
    let pad_token_id = match &keep.tokens {
        None => teacher.config.pad_token_id,
        Some(ids) => ids
            .iter()
            .position(|&id| id == teacher.config.pad_token_id)
            .ok_or_else(|| {
                Error::Invalid("the kept tokens must include the padding token".into())
            })? as u32,
    };
    let config = ModelConfig {
        num_layers: layers.len(),
        pad_token_id,
        vocab_size: keep
            .tokens
            .as_ref()
            .map_or(teacher.config.vocab_size, Vec::len),
        intermediate_size: keep
            .ffn
            .as_ref()
            .map_or(teacher.config.intermediate_size, |f| f[0].units.len()),
        pruned_heads: student_pruned_heads(&teacher.config, layers, keep.heads.as_deref()),
        // A student's own thresholds are chosen on dev when it is trained.
        label_thresholds: Vec::new(),
        ..teacher.config.clone()
    };
    Transformer::from_tensors(config, tensors, "(teacher layers)", 0)
}

/// The student's `pruned_heads`: for student layer i, the heads teacher layer `layers[i]`
/// lost, already (the teacher's own `pruned_heads`) or now (those `kept` leaves out).
fn student_pruned_heads(
    teacher: &ModelConfig,
    layers: &[usize],
    kept: Option<&[KeptUnits]>,
) -> BTreeMap<usize, Vec<usize>> {
    let pruned_in = |j: usize| -> Vec<usize> {
        match kept {
            Some(kept) => (0..teacher.num_heads)
                .filter(|&h| !kept[j].units.contains(&(h as u32)))
                .collect(),
            None => teacher.pruned_heads.get(&j).cloned().unwrap_or_default(),
        }
    };
    layers
        .iter()
        .enumerate()
        .map(|(i, &j)| (i, pruned_in(j)))
        .filter(|(_, heads)| !heads.is_empty())
        .collect()
}

/// Rows `ids` of `t` (all of it for `None`).
fn select_rows(t: &Tensor, ids: Option<&[u32]>) -> Result<Tensor> {
    let Some(ids) = ids else {
        return Ok(t.clone());
    };
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= t.dim(0).unwrap_or(0)) {
        return Err(Error::Invalid(format!(
            "a kept token id ({bad}) is outside the teacher's vocabulary"
        )));
    }
    Ok(t.index_select(&Tensor::new(ids, t.device())?, 0)?)
}

/// The part of layer tensor `name` that attention heads `kept` need: their rows of the query,
/// key and value maps, their columns of the output map, whose bias takes the dropped heads'
/// mean contribution; other tensors whole.
fn select_heads(
    name: &str,
    t: &Tensor,
    names: &LayerNames,
    kept: Option<&KeptUnits>,
    head_dim: usize,
) -> Result<Tensor> {
    let Some(kept) = kept else {
        return Ok(t.clone());
    };
    let d = head_dim as u32;
    let rows: Vec<u32> = kept
        .units
        .iter()
        .flat_map(|&h| h * d..(h + 1) * d)
        .collect();
    let inner = [&names.query, &names.key, &names.value];
    select_block(name, t, &inner, &names.attn_out, &rows, &kept.bias_shift)
}

/// The part of layer tensor `name` that feed-forward neurons `kept` need: rows of the
/// inner projection and its bias, columns of the outer projection, whose bias takes the
/// dropped neurons' mean contribution; other tensors whole.
fn select_neurons(
    name: &str,
    t: &Tensor,
    names: &LayerNames,
    kept: Option<&KeptUnits>,
) -> Result<Tensor> {
    let Some(kept) = kept else {
        return Ok(t.clone());
    };
    select_block(
        name,
        t,
        &[&names.ffn_in],
        &names.ffn_out,
        &kept.units,
        &kept.bias_shift,
    )
}

/// Narrows a block whose `inner` maps widen into a space that `outer` maps back from: rows
/// `rows` of each inner weight and bias, the same columns of the outer weight, and the outer
/// bias moved by `bias_shift`. Tensors of other maps come back whole.
fn select_block(
    name: &str,
    t: &Tensor,
    inner: &[&String],
    outer: &str,
    rows: &[u32],
    bias_shift: &[f32],
) -> Result<Tensor> {
    let index = Tensor::new(rows, t.device())?;
    let is = |base: &str| name == format!("{base}.weight") || name == format!("{base}.bias");
    if inner.iter().any(|base| is(base)) {
        Ok(t.index_select(&index, 0)?)
    } else if name == format!("{outer}.weight") {
        Ok(t.index_select(&index, 1)?.contiguous()?)
    } else if name == format!("{outer}.bias") {
        Ok((t + Tensor::new(bias_shift, t.device())?)?)
    } else {
        Ok(t.clone())
    }
}

/// The same model with every pruned attention head back, its weights zero: a zero head adds
/// nothing to the output, so the logits are unchanged. transformers 5 no longer reads
/// `pruned_heads`, but it reads this model at its full shape.
pub fn with_all_heads(model: &Transformer) -> Result<Transformer> {
    let config = &model.config;
    let (arch, d) = (config.architecture, config.head_dim());
    let mut tensors: HashMap<String, Tensor> = model
        .params
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_tensor().clone()))
        .collect();
    for (&layer, pruned) in &config.pruned_heads {
        let names = LayerNames::new(arch, layer);
        let mut widen = |name: String, dim: usize| -> Result<()> {
            let t = tensors
                .get(&name)
                .ok_or_else(|| Error::Invalid(format!("no tensor {name}")))?;
            let mut parts = Vec::with_capacity(config.num_heads);
            let mut next = 0;
            for h in 0..config.num_heads {
                if pruned.contains(&h) {
                    let mut shape = t.dims().to_vec();
                    shape[dim] = d;
                    parts.push(Tensor::zeros(shape, t.dtype(), t.device())?);
                } else {
                    parts.push(t.narrow(dim, next * d, d)?);
                    next += 1;
                }
            }
            let full = Tensor::cat(&parts, dim)?;
            tensors.insert(name, full);
            Ok(())
        };
        for base in [&names.query, &names.key, &names.value] {
            widen(format!("{base}.weight"), 0)?;
            widen(format!("{base}.bias"), 0)?;
        }
        widen(format!("{}.weight", names.attn_out), 1)?;
    }
    let config = ModelConfig {
        pruned_heads: BTreeMap::new(),
        ..config.clone()
    };
    Transformer::from_tensors(config, tensors, "(heads restored)", 0)
}

/// How much each of the teacher's heads and neurons contributes over a sample of examples:
/// per layer, sums over the real tokens, and the number of those tokens. Measured once
/// ([`measure_activity`]) for both [`heads_to_keep`] and [`ffn_to_keep`].
#[derive(Debug, Clone)]
pub struct Activity {
    pub layers: Vec<LayerActivity>,
    pub tokens: usize,
}

/// The teacher's head and neuron activity summed over `batches` (one inference pass each).
pub fn measure_activity(teacher: &Transformer, batches: &[EncoderInput]) -> Result<Activity> {
    if batches.is_empty() {
        return Err(Error::Invalid(
            "choosing heads or neurons to keep needs at least one batch of examples".into(),
        ));
    }
    let mut sums: Vec<LayerActivity> = Vec::new();
    let mut tokens = 0;
    for batch in batches {
        let (layers, n) = teacher.encoder.activity(batch)?;
        tokens += n;
        sums = if sums.is_empty() {
            layers
        } else {
            sums.iter()
                .zip(&layers)
                .map(|(a, b)| a.add(b))
                .collect::<Result<_>>()?
        };
    }
    Ok(Activity {
        layers: sums,
        tokens,
    })
}

/// For each teacher layer, the `k` attention heads that contribute most over `batches`: a
/// head's importance is the mean norm, over real tokens, of what it adds to the attention
/// output. The dropped heads' mean contribution becomes a bias shift.
pub fn heads_to_keep(
    teacher: &Transformer,
    activity: &Activity,
    k: usize,
) -> Result<Vec<KeptUnits>> {
    let heads = teacher.config.num_heads;
    if k == 0 || k > heads || !teacher.config.pruned_heads.is_empty() {
        return Err(Error::Invalid(format!(
            "cannot keep {k} attention heads of {heads} in every layer{}",
            match teacher.config.pruned_heads.is_empty() {
                true => "",
                false => " (the teacher's heads are already pruned)",
            }
        )));
    }
    let per_token = 1.0 / activity.tokens.max(1) as f64;
    activity
        .layers
        .iter()
        .map(|layer| {
            let score = (&layer.heads.norm_sum * per_token)?.to_vec1::<f32>()?;
            let units = top_k(&score, k);
            let mean = (&layer.heads.sum * per_token)?.to_vec2::<f32>()?;
            let mut bias_shift = vec![0.0f32; mean[0].len()];
            for (h, row) in mean.iter().enumerate() {
                if !units.contains(&(h as u32)) {
                    bias_shift.iter_mut().zip(row).for_each(|(b, m)| *b += m);
                }
            }
            Ok(KeptUnits { units, bias_shift })
        })
        .collect()
}

/// For each teacher layer, the `k` feed-forward neurons that contribute most over `batches`:
/// a neuron's importance is its mean absolute activation over real tokens times the norm of
/// its output weights (how much it moves the layer's output).
pub fn ffn_to_keep(teacher: &Transformer, activity: &Activity, k: usize) -> Result<Vec<KeptUnits>> {
    let width = teacher.config.intermediate_size;
    if k == 0 || k > width {
        return Err(Error::Invalid(format!(
            "cannot keep {k} feed-forward neurons of {width}"
        )));
    }
    let per_token = 1.0 / activity.tokens.max(1) as f64;
    let mut kept = Vec::with_capacity(activity.layers.len());
    for (layer_sums, layer) in activity.layers.iter().zip(&teacher.encoder.layers) {
        let sum = &layer_sums.ffn;
        let w_out = &layer.ffn_out.weight; // [hidden, intermediate]
        let out_norm = w_out.sqr()?.sum(0)?.sqrt()?;
        let score = ((&sum.abs_sum * per_token)? * out_norm)?.to_vec1::<f32>()?;
        let units = top_k(&score, k);
        let mut dropped_mean = (&sum.sum * per_token)?.to_vec1::<f32>()?;
        for &n in &units {
            dropped_mean[n as usize] = 0.0;
        }
        let dropped_mean = Tensor::new(dropped_mean.as_slice(), w_out.device())?;
        let bias_shift = w_out
            .matmul(&dropped_mean.unsqueeze(1)?)?
            .squeeze(1)?
            .to_vec1::<f32>()?;
        kept.push(KeptUnits { units, bias_shift });
    }
    Ok(kept)
}

/// Indices of the `k` largest scores, ascending (ties to the lower index).
fn top_k(score: &[f32], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..score.len() as u32).collect();
    order.sort_by(|&a, &b| {
        score[b as usize]
            .total_cmp(&score[a as usize])
            .then(a.cmp(&b))
    });
    order.truncate(k);
    order.sort_unstable();
    order
}

/// The size of a fresh student.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StudentShape {
    pub layers: usize,
    pub hidden_size: usize,
    pub heads: usize,
    pub intermediate_size: usize,
}

/// A freshly initialised student of the given shape that shares the teacher's vocabulary,
/// positions, labels and layout (so it uses the teacher's tokenizer).
pub fn fresh(teacher: &ModelConfig, shape: StudentShape, seed: u64) -> Result<Transformer> {
    let config = ModelConfig {
        num_layers: shape.layers,
        hidden_size: shape.hidden_size,
        num_heads: shape.heads,
        intermediate_size: shape.intermediate_size,
        pruned_heads: BTreeMap::new(),
        // A student's own thresholds are chosen on dev when it is trained.
        label_thresholds: Vec::new(),
        ..teacher.clone()
    };
    config
        .validate()
        .map_err(|m| Error::Invalid(format!("student: {m}")))?;
    Transformer::fresh(config, seed)
}

/// Starts a narrower student's embeddings from the teacher's: its word, position and
/// token-type tables become the teacher's projected onto their top principal directions.
///
/// A fresh student otherwise learns what every word means from the task data alone; the
/// projection hands it the teacher's word geometry (the directions of most variance) at the
/// student's width, which is most of what a small model can keep of it.
pub fn init_embeddings_from_teacher(student: &Transformer, teacher: &Transformer) -> Result<()> {
    let (s, t) = (&student.encoder.embeddings, &teacher.encoder.embeddings);
    let width = student.config.hidden_size;
    if width > teacher.config.hidden_size || student.config.vocab_size != teacher.config.vocab_size
    {
        return Err(Error::Invalid(format!(
            "embeddings from the teacher need the same vocabulary and a student no wider than the teacher (student {width}, teacher {})",
            teacher.config.hidden_size
        )));
    }
    let projection = principal_directions(&t.word, width, 0)?;
    let mut pairs = vec![(&s.word, &t.word), (&s.position, &t.position)];
    if let (Some(st), Some(tt)) = (&s.token_type, &t.token_type) {
        pairs.push((st, tt));
    }
    for (dst, src) in pairs {
        let mean = src.mean_keepdim(0)?;
        let rows = dst.dim(0)?.min(src.dim(0)?);
        let projected = src
            .narrow(0, 0, rows)?
            .broadcast_sub(&mean)?
            .matmul(&projection)?;
        // Keep the student's initial scale (std 0.02) so the first steps behave as for a fresh model.
        let std = projected.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()? as f64;
        let scaled = (projected * (crate::model::encoder::INIT_STD / std.max(1e-12)))?;
        let full = if rows < dst.dim(0)? {
            Tensor::cat(&[&scaled, &dst.narrow(0, rows, dst.dim(0)? - rows)?], 0)?
        } else {
            scaled
        };
        find_var(student, dst)?.set(&full)?;
    }
    Ok(())
}

/// The variable behind a tensor of the model's.
fn find_var<'a>(model: &'a Transformer, t: &Tensor) -> Result<&'a candle_core::Var> {
    Ok(model
        .params
        .iter()
        .find(|(_, v)| v.as_tensor().id() == t.id())
        .ok_or_else(not_a_param)?
        .1)
}

/// The name of a tensor of the model's.
fn param_name<'a>(model: &'a Transformer, t: &Tensor) -> Result<&'a str> {
    Ok(model
        .params
        .iter()
        .find(|(_, v)| v.as_tensor().id() == t.id())
        .ok_or_else(not_a_param)?
        .0)
}

fn not_a_param() -> Error {
    Error::Invalid("tensor is not a parameter of the model".into())
}

/// The top-`k` principal directions of the rows of `x` (`[n, d]` → `[d, k]`, orthonormal
/// columns), by orthogonal iteration on the covariance: a few dozen d×d×k products.
pub(crate) fn principal_directions(x: &Tensor, k: usize, seed: u64) -> Result<Tensor> {
    let centered = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let cov = (centered.t()?.matmul(&centered)? / x.dim(0)? as f64)?;
    let d = cov.dim(0)?;
    let mut b = ParamBuilder::fresh(seed);
    let mut q = b
        .get("q", &[d, k], crate::model::params::Init::Normal(1.0))?
        .detach();
    for _ in 0..40 {
        q = orthonormalise(&cov.matmul(&q)?)?;
    }
    Ok(q)
}

/// Gram–Schmidt on the columns of a `[d, k]` matrix.
fn orthonormalise(m: &Tensor) -> Result<Tensor> {
    let (d, k) = m.dims2()?;
    let cols = m.t()?.to_vec2::<f32>()?;
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(k);
    for mut c in cols {
        for q in &out {
            let dot: f32 = c.iter().zip(q).map(|(a, b)| a * b).sum();
            c.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = c.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
        c.iter_mut().for_each(|a| *a /= norm);
        out.push(c);
    }
    let flat: Vec<f32> = out.into_iter().flatten().collect();
    Ok(Tensor::from_vec(flat, (k, d), m.device())?
        .t()?
        .contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outputs, Pass};
    use candle_core::Device;
    use serde_json::json;

    fn teacher() -> Transformer {
        let cfg = ModelConfig::from_json(&json!({
            "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 4,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16
        }))
        .unwrap();
        Transformer::fresh(cfg, 3).unwrap()
    }

    fn same(a: &Transformer, an: &str, b: &Transformer, bn: &str) -> bool {
        let (x, y) = (a.params.get(an).unwrap(), b.params.get(bn).unwrap());
        let d = (x.as_tensor() - y.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        d.to_scalar::<f32>().unwrap() == 0.0
    }

    #[test]
    fn copies_chosen_layers_embeddings_and_head() {
        let t = teacher();
        let s = from_teacher_layers(&t, &[1, 3], &Keep::default()).unwrap();
        assert_eq!(s.config.num_layers, 2);
        let q = |i| format!("bert.encoder.layer.{i}.attention.self.query.weight");
        assert!(same(&s, &q(0), &t, &q(1)));
        assert!(same(&s, &q(1), &t, &q(3)));
        assert!(same(
            &s,
            "bert.embeddings.word_embeddings.weight",
            &t,
            "bert.embeddings.word_embeddings.weight"
        ));
        assert!(same(&s, "classifier.weight", &t, "classifier.weight"));
        // A copy, not shared storage: changing the student leaves the teacher alone.
        let v = s.params.get(&q(0)).unwrap();
        v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
        assert!(!same(&s, &q(0), &t, &q(1)));
        assert!(from_teacher_layers(&t, &[4], &Keep::default()).is_err());
        assert!(from_teacher_layers(&t, &[], &Keep::default()).is_err());
    }

    /// One sentence of token ids as an encoder batch.
    fn batch(ids: &[u32]) -> EncoderInput {
        let sentence = crate::text::Encoded {
            ids: ids.to_vec(),
            type_ids: vec![0; ids.len()],
        };
        crate::text::batch::pad_batch(&[&sentence], 0).unwrap()
    }

    fn logits(model: &Transformer, ids: &[u32]) -> Vec<f32> {
        let out = model
            .forward(&batch(ids), Pass::INFERENCE, Outputs::default())
            .unwrap();
        out.logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// Sets columns `from..` of the output map `name` of every layer to 0: whatever feeds
    /// those columns (feed-forward neurons, attention heads) then contributes nothing.
    fn silence(t: &Transformer, name: &str, from: usize) {
        for l in 0..t.config.num_layers {
            let v = t
                .params
                .get(&format!("bert.encoder.layer.{l}.{name}.weight"))
                .unwrap();
            let w = v.as_tensor();
            let width = w.dim(1).unwrap();
            let silenced = Tensor::cat(
                &[
                    &w.narrow(1, 0, from).unwrap(),
                    &w.narrow(1, from, width - from)
                        .unwrap()
                        .zeros_like()
                        .unwrap(),
                ],
                1,
            )
            .unwrap();
            v.set(&silenced).unwrap();
        }
    }

    #[test]
    fn pruning_keeps_what_the_kept_tokens_heads_and_neurons_compute() {
        let t = teacher();
        // Silence feed-forward neurons 16..32 and attention head 1 (of 2, 8 wide) of every
        // layer: they contribute nothing, so they are the ones pruned, and pruning changes no
        // output.
        silence(&t, "output.dense", 16);
        silence(&t, "attention.output.dense", 8);
        let teacher_ids = [2u32, 10, 20, 30, 11, 3];
        let sample = batch(&teacher_ids);
        let activity = measure_activity(&t, std::slice::from_ref(&sample)).unwrap();
        let ffn = ffn_to_keep(&t, &activity, 16).unwrap();
        let silent = |kept: &[KeptUnits], n: u32| {
            kept.iter().all(|k| {
                k.units == (0..n).collect::<Vec<u32>>() && k.bias_shift.iter().all(|&b| b == 0.0)
            })
        };
        assert!(silent(&ffn, 16), "{ffn:?}");
        let heads = heads_to_keep(&t, &activity, 1).unwrap();
        assert!(silent(&heads, 1), "{heads:?}");
        let tokens = vec![0u32, 1, 2, 3, 4, 10, 11, 20, 30];
        let keep = Keep {
            tokens: Some(tokens.clone()),
            heads: Some(heads),
            ffn: Some(ffn),
        };
        let pruned = from_teacher_layers(&t, &[0, 2], &keep).unwrap();
        assert_eq!(
            (pruned.config.vocab_size, pruned.config.intermediate_size),
            (9, 16)
        );
        assert_eq!(
            pruned.config.pruned_heads,
            BTreeMap::from([(0, vec![1]), (1, vec![1])])
        );
        let full = from_teacher_layers(&t, &[0, 2], &Keep::default()).unwrap();
        let student_ids: Vec<u32> = teacher_ids
            .iter()
            .map(|id| tokens.iter().position(|t| t == id).unwrap() as u32)
            .collect();
        let (a, b) = (logits(&full, &teacher_ids), logits(&pruned, &student_ids));
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
            "{a:?} vs {b:?}"
        );
        assert!(pruned.params.count() < full.params.count());
        // With its heads back as zeros it computes the same, at the full shape.
        let restored = with_all_heads(&pruned).unwrap();
        assert!(restored.config.pruned_heads.is_empty());
        assert_eq!(restored.encoder.layers[1].value.weight.dims(), &[16, 16]);
        let c = logits(&restored, &student_ids);
        assert!(b.iter().zip(&c).all(|(x, y)| (x - y).abs() < 1e-6));

        // A student of a pruned model keeps its pruned heads, renumbered by layer.
        let again = from_teacher_layers(&pruned, &[1], &Keep::default()).unwrap();
        assert_eq!(again.config.pruned_heads, BTreeMap::from([(0, vec![1])]));
        let kept = heads_to_keep(&t, &activity, 1).unwrap();
        let repruned = Keep {
            heads: Some(kept),
            ..Keep::default()
        };
        assert!(from_teacher_layers(&pruned, &[1], &repruned).is_err());
        let pruned_activity = measure_activity(&pruned, &[batch(&student_ids)]).unwrap();
        assert!(heads_to_keep(&pruned, &pruned_activity, 1).is_err());

        assert!(measure_activity(&t, &[]).is_err());
        assert!(ffn_to_keep(&t, &activity, 0).is_err());
        assert!(ffn_to_keep(&t, &activity, 33).is_err());
        assert!(heads_to_keep(&t, &activity, 0).is_err());
        assert!(heads_to_keep(&t, &activity, 3).is_err());
        let bad = Keep {
            tokens: Some(vec![0, 50]),
            ..Keep::default()
        };
        assert!(from_teacher_layers(&t, &[0], &bad).is_err());
    }

    #[test]
    fn dropped_neurons_leave_their_mean_output_in_the_bias() {
        let t = teacher();
        let sample = batch(&[2, 10, 20, 30, 11, 3]);
        let (activity, tokens) = t.encoder.activity(&sample).unwrap();
        assert_eq!(tokens, 6);
        let kept = ffn_to_keep(&t, &measure_activity(&t, &[sample]).unwrap(), 8).unwrap();
        // Layer 0 by hand: shift = Σ over dropped n of mean activation(n) · W_out[:, n].
        let mean = (&activity[0].ffn.sum / 6.0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let w = t.encoder.layers[0].ffn_out.weight.to_vec2::<f32>().unwrap();
        let dropped: Vec<usize> = (0..32)
            .filter(|n| !kept[0].units.contains(&(*n as u32)))
            .collect();
        assert_eq!(dropped.len(), 24);
        for (row, shift) in w.iter().zip(&kept[0].bias_shift) {
            let want: f32 = dropped.iter().map(|&n| mean[n] * row[n]).sum();
            assert!((want - shift).abs() < 1e-5, "{want} vs {shift}");
        }
        let keep = Keep {
            ffn: Some(kept.clone()),
            ..Keep::default()
        };
        let s = from_teacher_layers(&t, &[0], &keep).unwrap();
        let bias = |m: &Transformer| m.encoder.layers[0].ffn_out.bias.to_vec1::<f32>().unwrap();
        let (before, after) = (bias(&t), bias(&s));
        for i in 0..16 {
            assert!((after[i] - before[i] - kept[0].bias_shift[i]).abs() < 1e-6);
        }
    }

    #[test]
    fn dropped_heads_leave_their_mean_output_in_the_bias() {
        let t = teacher();
        let sample = batch(&[2, 10, 20, 30, 11, 3]);
        let (activity, tokens) = t.encoder.activity(&sample).unwrap();
        let kept = heads_to_keep(&t, &measure_activity(&t, &[sample]).unwrap(), 1).unwrap();
        for (layer, k) in activity.iter().zip(&kept) {
            // The kept head is the one with the larger mean norm; the shift is the other's
            // mean vector.
            let norms = layer.heads.norm_sum.to_vec1::<f32>().unwrap();
            let keep = if norms[0] >= norms[1] { 0 } else { 1 };
            assert_eq!(k.units, vec![keep as u32]);
            let sums = layer.heads.sum.to_vec2::<f32>().unwrap();
            for (shift, sum) in k.bias_shift.iter().zip(&sums[1 - keep]) {
                assert!((shift - sum / tokens as f32).abs() < 1e-6);
            }
        }
        let keep = Keep {
            heads: Some(kept.clone()),
            ..Keep::default()
        };
        let s = from_teacher_layers(&t, &[3], &keep).unwrap();
        let bias =
            |m: &Transformer, l: usize| m.encoder.layers[l].attn_out.bias.to_vec1::<f32>().unwrap();
        let (before, after) = (bias(&t, 3), bias(&s, 0));
        for i in 0..16 {
            assert!((after[i] - before[i] - kept[3].bias_shift[i]).abs() < 1e-6);
        }
        assert_eq!(s.encoder.layers[0].query.weight.dims(), &[8, 16]);
        assert_eq!(s.encoder.layers[0].attn_out.weight.dims(), &[16, 8]);
    }

    #[test]
    fn top_k_takes_the_largest_in_index_order() {
        assert_eq!(top_k(&[0.5, 3.0, 1.0, 3.0, -1.0], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[1.0, 1.0, 1.0], 2), vec![0, 1]);
    }

    #[test]
    fn principal_directions_find_the_dominant_axes() {
        // Points spread along x (std 3) and y (std 1), flat in z: the top-2 directions span x, y.
        let mut rows = Vec::new();
        for i in 0..200 {
            let a = ((i * 37) % 101) as f32 / 50.0 - 1.0;
            let b = ((i * 53) % 97) as f32 / 48.0 - 1.0;
            rows.extend([3.0 * a, b, 0.0]);
        }
        let x = Tensor::from_vec(rows, (200, 3), &Device::Cpu).unwrap();
        let p = principal_directions(&x, 2, 0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(p[2][0].abs() < 1e-3 && p[2][1].abs() < 1e-3, "{p:?}");
        assert!(
            (p[0][0].abs() - 1.0).abs() < 1e-3,
            "first direction is x: {p:?}"
        );
    }

    #[test]
    fn teacher_embeddings_seed_a_narrower_student() {
        let t = teacher();
        let shape = StudentShape {
            layers: 1,
            hidden_size: 8,
            heads: 2,
            intermediate_size: 16,
        };
        let s = fresh(&t.config, shape, 0).unwrap();
        init_embeddings_from_teacher(&s, &t).unwrap();
        let w = s.encoder.embeddings.word.to_vec2::<f32>().unwrap();
        // Rows keep the teacher's geometry: the nearest row to row 5 is the same in both.
        let tw = t.encoder.embeddings.word.to_vec2::<f32>().unwrap();
        let nearest = |m: &Vec<Vec<f32>>, i: usize| {
            (0..m.len())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let d = |j: usize| {
                        m[i].iter()
                            .zip(&m[j])
                            .map(|(x, y)| (x - y).powi(2))
                            .sum::<f32>()
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap()
        };
        assert_eq!(w[0].len(), 8);
        let agree = (0..50)
            .filter(|&i| nearest(&w, i) == nearest(&tw, i))
            .count();
        assert!(agree >= 20, "only {agree}/50 nearest neighbours kept");
        let wide = StudentShape {
            hidden_size: 32,
            heads: 2,
            ..shape
        };
        let s = fresh(&t.config, wide, 0).unwrap();
        assert!(init_embeddings_from_teacher(&s, &t).is_err());
    }

    #[test]
    fn fresh_student_has_the_asked_shape() {
        let t = teacher();
        let shape = StudentShape {
            layers: 1,
            hidden_size: 8,
            heads: 2,
            intermediate_size: 16,
        };
        let s = fresh(&t.config, shape, 0).unwrap();
        assert_eq!(
            (
                s.config.num_layers,
                s.config.hidden_size,
                s.config.vocab_size
            ),
            (1, 8, 50)
        );
        let ids = Tensor::new(&[[2u32, 7, 3]], &Device::Cpu).unwrap();
        let input = crate::model::EncoderInput {
            token_type_ids: ids.zeros_like().unwrap(),
            attention_mask: Tensor::ones((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
            input_ids: ids,
            word_noise: None,
            target_ids: None,
        };
        let out = s
            .forward(&input, Pass::INFERENCE, Outputs::default())
            .unwrap();
        assert_eq!(out.logits.dims(), &[1, 2]);
        let bad = StudentShape { heads: 3, ..shape };
        assert!(fresh(&t.config, bad, 0).is_err());
    }
}
