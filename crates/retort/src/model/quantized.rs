//! Int8 checkpoints: the Hugging Face layout with the encoder's linear weights stored as int8.
//!
//! - `config.json` is the model's usual config plus a `"retort_quantization"` object (the
//!   marker; deliberately not transformers' `quantization_config`, which transformers would
//!   try to interpret);
//! - `model.safetensors` holds every tensor under its usual name; the weight of each encoder
//!   linear map (`...query.weight`, `...intermediate.dense.weight`, ...) is `I8 [out, in]` and
//!   its per-output-channel scales are `F32 [out]` under `...weight_scale`. Everything else
//!   (embeddings, LayerNorms, biases, head) is F32.
//!
//! Loading such a directory gives a model whose encoder runs in int8 (see [`super::int8`]),
//! so `predict`, `eval` and `serve` use it without a flag.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

use super::classifier::SequenceClassifier;
use super::int8::Int8Weight;
use crate::error::{Error, Result};

/// The key in `config.json` that marks an int8 checkpoint.
pub const MARKER: &str = "retort_quantization";
/// Suffix of the per-channel scales next to an int8 weight.
pub const SCALE_SUFFIX: &str = "_scale";

/// What the marker says: enough for a reader to dequantise the weights by hand.
pub fn marker() -> Value {
    json!({
        "method": "int8",
        "weights": "encoder linear maps: I8 [out, in] per output channel, symmetric; \
                    F32 scales [out] in <name>.weight_scale; w = q * scale",
        "activations": "int8 per row, dynamic (computed at run time)",
    })
}

/// Whether a parsed `config.json` marks an int8 checkpoint.
pub fn is_marked(config: &Value) -> bool {
    config.get(MARKER).is_some_and(|v| !v.is_null())
}

fn checkpoint_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads an int8 `model.safetensors`: every tensor as f32 (int8 weights dequantised), and
/// the int8 weights themselves by tensor name.
pub fn read(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, Int8Weight>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "model weights"))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| checkpoint_error(path, format!("not a readable safetensors file: {e}")))?;
    let mut tensors = HashMap::new();
    let mut int8 = HashMap::new();
    for (name, view) in file.iter() {
        let shape = view.shape().to_vec();
        match view.dtype() {
            Dtype::F32 => {
                let t = Tensor::from_raw_buffer(view.data(), DType::F32, &shape, device)?;
                tensors.insert(name.to_string(), t);
            }
            Dtype::I8 => {
                let [out_dim, in_dim] = shape[..] else {
                    return Err(checkpoint_error(
                        path,
                        format!("{name}: int8 tensors must be 2-D"),
                    ));
                };
                let scale_name = format!("{name}{SCALE_SUFFIX}");
                let scales = file
                    .tensor(&scale_name)
                    .map_err(|_| checkpoint_error(path, format!("{scale_name} is missing")))?;
                let q = view.data().iter().map(|&b| b as i8).collect();
                let scales = f32_values(scales.data());
                let w = Int8Weight::from_parts(q, scales, out_dim, in_dim)
                    .map_err(|e| checkpoint_error(path, format!("{name}: {e}")))?;
                let dequantized = Tensor::from_vec(w.dequantize(), (out_dim, in_dim), device)?;
                tensors.insert(name.to_string(), dequantized);
                int8.insert(name.to_string(), w);
            }
            other => {
                return Err(checkpoint_error(
                    path,
                    format!("{name}: dtype {other:?} (an int8 checkpoint holds only F32 and I8)"),
                ))
            }
        }
    }
    // The scales live inside their int8 weights.
    tensors.retain(|n, _| {
        n.strip_suffix(SCALE_SUFFIX)
            .is_none_or(|weight| !int8.contains_key(weight))
    });
    Ok((tensors, int8))
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Gives every encoder linear map of `model` its int8 weight from `int8` (by tensor name).
pub fn attach(
    model: &mut SequenceClassifier,
    mut int8: HashMap<String, Int8Weight>,
    path: &Path,
) -> Result<()> {
    for (name, linear) in model.encoder_linears_mut() {
        let key = format!("{name}.weight");
        let w = int8
            .remove(&key)
            .ok_or_else(|| checkpoint_error(path, format!("{key} is not stored as int8")))?;
        linear
            .set_int8(w)
            .map_err(|e| checkpoint_error(path, format!("{key}: {e}")))?;
    }
    if let Some(extra) = int8.keys().next() {
        return Err(checkpoint_error(
            path,
            format!("{extra} is int8 but not an encoder linear map"),
        ));
    }
    Ok(())
}

/// Writes `model.safetensors` of an int8 model: encoder linear weights as I8 + F32 scales,
/// every other parameter as F32.
pub fn write(model: &SequenceClassifier, path: &Path) -> Result<()> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut int8_names = std::collections::HashSet::new();
    for (name, linear) in model.encoder_linears() {
        let q = linear.int8.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "{name} is not int8: quantise the whole encoder first"
            ))
        })?;
        let (ints, scales) = q.weight.parts();
        let (out_dim, in_dim) = q.weight.dims();
        let weight = format!("{name}.weight");
        let bytes = ints.iter().map(|&v| v as u8).collect();
        owned.push((weight.clone(), Dtype::I8, vec![out_dim, in_dim], bytes));
        let scale_bytes = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        owned.push((
            format!("{weight}{SCALE_SUFFIX}"),
            Dtype::F32,
            vec![out_dim],
            scale_bytes,
        ));
        int8_names.insert(weight);
    }
    for (name, var) in model.params.iter() {
        if int8_names.contains(name) {
            continue;
        }
        let t = var.as_tensor();
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.to_string(), Dtype::F32, t.dims().to_vec(), bytes));
    }
    let views = owned
        .iter()
        .map(|(n, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .expect("sizes computed from the shapes");
            (n.as_str(), view)
        })
        .collect::<Vec<_>>();
    super::params::write_safetensors(views, path)
}
