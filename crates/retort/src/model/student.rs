//! Building a student: from chosen teacher layers (DistilBERT-style) or fresh from a size.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::classifier::SequenceClassifier;
use super::config::ModelConfig;
use super::encoder::layer_prefix;
use super::params::ParamBuilder;
use crate::error::{Error, Result};

/// A student with the teacher's embeddings and head and a copy of teacher layers `layers`
/// (0-based, in order: student layer i starts as teacher layer `layers[i]`).
pub fn from_teacher_layers(
    teacher: &SequenceClassifier,
    layers: &[usize],
) -> Result<SequenceClassifier> {
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
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in teacher.params.iter() {
        let in_layer = (0..depth).find(|&j| name.starts_with(&layer_prefix(arch, j)));
        match in_layer {
            None => {
                tensors.insert(name.to_string(), var.as_tensor().clone());
            }
            Some(j) => {
                let rest = &name[layer_prefix(arch, j).len()..];
                for (i, _) in layers.iter().enumerate().filter(|(_, &l)| l == j) {
                    tensors.insert(
                        format!("{}{rest}", layer_prefix(arch, i)),
                        var.as_tensor().clone(),
                    );
                }
            }
        }
    }
    let config = ModelConfig {
        num_layers: layers.len(),
        ..teacher.config.clone()
    };
    let device = teacher.encoder.embeddings.word.device().clone();
    SequenceClassifier::from_tensors(config, tensors, "(teacher layers)", &device, 0)
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
pub fn fresh(
    teacher: &ModelConfig,
    shape: StudentShape,
    device: &Device,
    seed: u64,
) -> Result<SequenceClassifier> {
    let config = ModelConfig {
        num_layers: shape.layers,
        hidden_size: shape.hidden_size,
        num_heads: shape.heads,
        intermediate_size: shape.intermediate_size,
        ..teacher.clone()
    };
    config
        .validate()
        .map_err(|m| Error::Invalid(format!("student: {m}")))?;
    SequenceClassifier::fresh(config, device, seed)
}

/// Starts a narrower student's embeddings from the teacher's: its word, position and
/// token-type tables become the teacher's projected onto their top principal directions.
///
/// A fresh student otherwise learns what every word means from the task data alone; the
/// projection hands it the teacher's word geometry (the directions of most variance) at the
/// student's width, which is most of what a small model can keep of it.
pub fn init_embeddings_from_teacher(
    student: &SequenceClassifier,
    teacher: &SequenceClassifier,
) -> Result<()> {
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
        let scaled = (projected * (super::encoder::INIT_STD / std.max(1e-12)))?;
        let full = if rows < dst.dim(0)? {
            Tensor::cat(&[&scaled, &dst.narrow(0, rows, dst.dim(0)? - rows)?], 0)?
        } else {
            scaled
        };
        find_var(student, dst)?.set(&full)?;
    }
    Ok(())
}

/// The variable behind a tensor of the student's.
fn find_var<'a>(model: &'a SequenceClassifier, t: &Tensor) -> Result<&'a candle_core::Var> {
    model
        .params
        .iter()
        .find(|(_, v)| v.as_tensor().id() == t.id())
        .map(|(_, v)| v)
        .ok_or_else(|| Error::Invalid("tensor is not a parameter of the model".into()))
}

/// The top-`k` principal directions of the rows of `x` (`[n, d]` → `[d, k]`, orthonormal
/// columns), by orthogonal iteration on the covariance: a few dozen d×d×k products.
fn principal_directions(x: &Tensor, k: usize, seed: u64) -> Result<Tensor> {
    let centered = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let cov = (centered.t()?.matmul(&centered)? / x.dim(0)? as f64)?;
    let d = cov.dim(0)?;
    let mut b = ParamBuilder::fresh(x.device(), seed);
    let mut q = b
        .get("q", &[d, k], super::params::Init::Normal(1.0))?
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
    use serde_json::json;

    fn teacher() -> SequenceClassifier {
        let cfg = ModelConfig::from_json(&json!({
            "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 4,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16
        }))
        .unwrap();
        SequenceClassifier::fresh(cfg, &Device::Cpu, 3).unwrap()
    }

    fn same(a: &SequenceClassifier, an: &str, b: &SequenceClassifier, bn: &str) -> bool {
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
        let s = from_teacher_layers(&t, &[1, 3]).unwrap();
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
        assert!(from_teacher_layers(&t, &[4]).is_err());
        assert!(from_teacher_layers(&t, &[]).is_err());
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
        let s = fresh(&t.config, shape, &Device::Cpu, 0).unwrap();
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
        let s = fresh(&t.config, wide, &Device::Cpu, 0).unwrap();
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
        let s = fresh(&t.config, shape, &Device::Cpu, 0).unwrap();
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
        };
        let out = s
            .forward(&input, Pass::INFERENCE, Outputs::default())
            .unwrap();
        assert_eq!(out.logits.dims(), &[1, 2]);
        let bad = StudentShape { heads: 3, ..shape };
        assert!(fresh(&t.config, bad, &Device::Cpu, 0).is_err());
    }
}
