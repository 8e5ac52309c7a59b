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

use super::int8::Int8Weight;
use super::transformer::Transformer;
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

/// Refuses a marker whose method this version cannot read (`"int4"`, a later format): read
/// as int8, its bytes would give a wrong model.
pub fn check_method(config: &Value, path: &Path) -> Result<()> {
    match config[MARKER].get("method").and_then(Value::as_str) {
        Some("int8") => Ok(()),
        other => Err(Error::Config {
            path: path.to_path_buf(),
            message: format!(
                "{MARKER}.method is {}; this version of Retort reads only \"int8\"",
                other.map_or("missing".to_string(), |m| format!("{m:?}"))
            ),
        }),
    }
}

fn checkpoint_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads an int8 `model.safetensors`: every tensor as f32 (int8 weights dequantised), and
/// the int8 weights themselves by tensor name.
pub fn read(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, Int8Weight>)> {
    let device = &Device::Cpu;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "model weights"))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| checkpoint_error(path, format!("not a readable safetensors file: {e}")))?;
    let mut tensors = HashMap::new();
    let mut int8 = HashMap::new();
    for (name, view) in file.iter() {
        let shape = view.shape().to_vec();
        match view.dtype() {
            Dtype::F32 | Dtype::F16 | Dtype::BF16 => {
                tensors.insert(name.to_string(), float_tensor(name, &view, path)?);
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
                let scales = float_tensor(&scale_name, &scales, path)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let w = Int8Weight::from_parts(q, scales, out_dim, in_dim)
                    .map_err(|e| checkpoint_error(path, format!("{name}: {e}")))?;
                let dequantized = Tensor::from_vec(w.dequantize(), (out_dim, in_dim), device)?;
                tensors.insert(name.to_string(), dequantized);
                int8.insert(name.to_string(), w);
            }
            other => {
                return Err(checkpoint_error(
                    path,
                    format!(
                        "tensor {name} is stored as {other:?}; an int8 checkpoint holds F32 \
                         (or F16 / BF16) tensors and I8 encoder linear weights"
                    ),
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

/// A floating-point tensor of the file as f32; any other dtype is an error naming it.
fn float_tensor(
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
    path: &Path,
) -> Result<Tensor> {
    let device = &Device::Cpu;
    let dtype = match view.dtype() {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        other => {
            return Err(checkpoint_error(
                path,
                format!("tensor {name} is stored as {other:?}; it must be F32, F16 or BF16"),
            ))
        }
    };
    Ok(Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)?.to_dtype(DType::F32)?)
}

/// Gives every encoder linear map of `model` its int8 weight from `int8` (by tensor name).
pub fn attach(
    model: &mut Transformer,
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
pub fn write(model: &Transformer, path: &Path) -> Result<()> {
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
