//! Named parameters: where every trainable tensor of a model lives, and how it is created.
//!
//! A model is built by asking a [`ParamBuilder`] for each tensor by its Hugging Face name.
//! The builder takes the tensor from a checkpoint when it has one (checking its shape), or
//! initialises it as BERT does, and remembers which names it had to initialise. The result
//! is a [`Params`]: the ordered list of [`Var`]s an optimiser updates and a checkpoint saves.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};

/// How a tensor missing from the checkpoint is initialised (BERT's `_init_weights`).
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Normal(0, std): weights of linear maps and embeddings.
    Normal(f64),
    Zeros,
    Ones,
}

/// Every parameter of a model, in creation order, by name.
#[derive(Debug, Clone, Default)]
pub struct Params {
    vars: Vec<(String, Var)>,
}

impl Params {
    /// The parameters, in the order the model created them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The parameters of `a` followed by those of `b` (the variables are shared, not copied).
    pub fn merged(a: &Params, b: &Params) -> Params {
        Params {
            vars: a.vars.iter().chain(&b.vars).cloned().collect(),
        }
    }

    /// The parameters whose name satisfies `keep` (the variables are shared, not copied).
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> Params {
        Params {
            vars: self.vars.iter().filter(|(n, _)| keep(n)).cloned().collect(),
        }
    }

    /// The same parameters under `prefix` + their names (the variables are shared, not copied).
    pub fn prefixed(&self, prefix: &str) -> Params {
        Params {
            vars: self
                .vars
                .iter()
                .map(|(n, v)| (format!("{prefix}{n}"), v.clone()))
                .collect(),
        }
    }

    /// Looks a parameter up by name.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// All variables, for an optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Number of parameters (scalars) whose name satisfies `keep`.
    pub fn count_where(&self, keep: impl Fn(&str) -> bool) -> usize {
        self.iter()
            .filter(|(n, _)| keep(n))
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// Total number of parameters.
    pub fn count(&self) -> usize {
        self.count_where(|_| true)
    }

    /// Writes all parameters to a safetensors file under their names.
    pub fn save_safetensors(&self, path: &std::path::Path) -> Result<()> {
        write_safetensors(self.iter().map(|(n, v)| (n, v.as_tensor())), path)
    }
}

/// Writes `tensors` as a safetensors file at `path`. The file is written beside `path` with
/// `std::fs::write`, so its mode follows the umask like every other output (the safetensors
/// crate's own writer leaves its temporary file's 0600), then renamed over `path`, so a reader
/// never sees it half written.
pub fn write_safetensors<S, V>(
    tensors: impl IntoIterator<Item = (S, V)>,
    path: &std::path::Path,
) -> Result<()>
where
    S: AsRef<str> + Ord + std::fmt::Display,
    V: safetensors::View,
{
    let bytes = safetensors::serialize(tensors, None).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })?;
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, bytes).map_err(|e| Error::create(&tmp, e, "weights"))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::create(path, e, "weights"))
}

/// Tensors of a checkpoint file, looked up under a name and its historical spellings.
pub struct TensorSource {
    pub path: std::path::PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl TensorSource {
    /// Loads every tensor of a safetensors file as f32.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                what: "model weights (safetensors)".into(),
            });
        }
        let tensors =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("not a readable safetensors file: {e}"),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Wraps tensors already in memory (tests, students built from a teacher).
    pub fn from_tensors(
        path: impl Into<std::path::PathBuf>,
        tensors: HashMap<String, Tensor>,
    ) -> Self {
        Self {
            path: path.into(),
            tensors,
        }
    }

    /// Names in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }

    /// Finds `name`, also without its model prefix (`bert.`, `mpnet.` in a base checkpoint saved by
    /// `BertModel`) and with LayerNorm's old `gamma`/`beta` names. Returns the name found too.
    fn find(&self, name: &str) -> Option<(&str, &Tensor)> {
        candidate_names(name)
            .into_iter()
            .find_map(|n| self.tensors.get_key_value(&n))
            .map(|(k, t)| (k.as_str(), t))
    }
}

/// Refuses a parameter stored in a dtype other than F32, F16 or BF16 (converted to f32).
/// Integers of the right byte count would otherwise be converted as numbers and silently
/// change the model (int8 weights come through [`super::quantized`], already dequantised).
fn check_float(name: &str, dtype: DType, path: Option<&std::path::Path>) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        other => Err(Error::Checkpoint {
            path: path.map(|p| p.to_path_buf()).unwrap_or_default(),
            message: format!(
                "tensor {name} is stored as {}; model parameters must be F32, F16 or BF16",
                dtype_name(other)
            ),
        }),
    }
}

/// A dtype as safetensors spells it (`I32`, `F64`, ...).
fn dtype_name(dtype: DType) -> String {
    format!("{dtype:?}").to_uppercase()
}

fn candidate_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    for prefix in ["bert.", "distilbert.", "mpnet."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            names.push(rest.to_string());
        }
    }
    let legacy: Vec<String> = names
        .iter()
        .filter_map(|n| {
            n.strip_suffix("LayerNorm.weight")
                .map(|s| format!("{s}LayerNorm.gamma"))
                .or_else(|| {
                    n.strip_suffix("LayerNorm.bias")
                        .map(|s| format!("{s}LayerNorm.beta"))
                })
        })
        .collect();
    names.extend(legacy);
    names
}

/// Creates the parameters of a model, from a checkpoint where it has them.
pub struct ParamBuilder {
    source: Option<TensorSource>,
    rng: StdRng,
    params: Params,
    missing: Vec<String>,
    used: HashSet<String>,
}

impl ParamBuilder {
    /// A builder that initialises every tensor afresh, reproducibly from `seed`.
    pub fn fresh(seed: u64) -> Self {
        Self {
            source: None,
            rng: StdRng::seed_from_u64(seed),
            params: Params::default(),
            missing: Vec::new(),
            used: HashSet::new(),
        }
    }

    /// A builder that takes tensors from `source` and initialises only what it lacks.
    pub fn from_source(source: TensorSource, seed: u64) -> Self {
        Self {
            source: Some(source),
            ..Self::fresh(seed)
        }
    }

    /// The parameter `name` of the given shape.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let tensor = match self.source.as_ref().and_then(|s| s.find(name)) {
            Some((found, t)) => {
                if t.dims() != shape {
                    return Err(Error::Checkpoint {
                        path: self
                            .source
                            .as_ref()
                            .map(|s| s.path.clone())
                            .unwrap_or_default(),
                        message: format!(
                            "tensor {found} has shape {:?}, the config implies {shape:?}",
                            t.dims()
                        ),
                    });
                }
                check_float(found, t.dtype(), self.source_path())?;
                self.used.insert(found.to_string());
                t.to_dtype(DType::F32)?
            }
            None => {
                if self.source.is_some() {
                    self.missing.push(name.to_string());
                }
                self.init_tensor(shape, init)?
            }
        };
        // `detach` first: a variable (e.g. a teacher's weight) would be shared, not copied.
        let var = Var::from_tensor(&tensor.detach())?;
        let t = var.as_tensor().clone();
        self.params.vars.push((name.to_string(), var));
        Ok(t)
    }

    fn init_tensor(&mut self, shape: &[usize], init: Init) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => {
                let normal = Normal::new(0.0, std as f32).expect("std is positive");
                (0..n).map(|_| normal.sample(&mut self.rng)).collect()
            }
        };
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    /// Names that had to be initialised because the checkpoint lacked them.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// Names in the checkpoint that no parameter took.
    pub fn unused(&self) -> Vec<String> {
        let Some(source) = &self.source else {
            return Vec::new();
        };
        let mut unused: Vec<String> = source
            .names()
            .filter(|n| !self.used.contains(*n))
            .map(str::to_string)
            .collect();
        unused.sort();
        unused
    }

    /// The path of the checkpoint, if any.
    pub fn source_path(&self) -> Option<&std::path::Path> {
        self.source.as_ref().map(|s| s.path.as_path())
    }

    /// Hands over the parameters created so far (the builder keeps its missing/unused record).
    pub fn take_params(&mut self) -> Params {
        std::mem::take(&mut self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_base_and_legacy_names() {
        let names = candidate_names("bert.embeddings.LayerNorm.weight");
        assert!(names.contains(&"embeddings.LayerNorm.weight".to_string()));
        assert!(names.contains(&"embeddings.LayerNorm.gamma".to_string()));
        assert!(names.contains(&"bert.embeddings.LayerNorm.gamma".to_string()));
    }

    #[test]
    fn takes_from_source_checks_shapes_and_records_missing() {
        let dev = Device::Cpu;
        let t = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
        let source =
            TensorSource::from_tensors("mem", HashMap::from([("a.weight".to_string(), t)]));
        let mut b = ParamBuilder::from_source(source, 0);
        let a = b.get("a.weight", &[2, 3], Init::Zeros).unwrap();
        assert_eq!(a.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
        b.get("b.bias", &[4], Init::Zeros).unwrap();
        assert_eq!(b.missing(), ["b.bias"]);
        assert!(b.get("a.weight", &[3, 2], Init::Zeros).is_err());
    }

    #[test]
    fn half_precision_is_converted_and_other_dtypes_are_refused() {
        let dev = Device::Cpu;
        let half = Tensor::new(&[1.5f32, -2.0], &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let ints = Tensor::new(&[1i64, 2], &dev).unwrap();
        let source = TensorSource::from_tensors(
            "mem.safetensors",
            HashMap::from([("h".to_string(), half), ("i".to_string(), ints)]),
        );
        let mut b = ParamBuilder::from_source(source, 0);
        let h = b.get("h", &[2], Init::Zeros).unwrap();
        assert_eq!(h.to_vec1::<f32>().unwrap(), [1.5, -2.0]);
        let err = b.get("i", &[2], Init::Zeros).unwrap_err().to_string();
        assert!(
            err.contains("mem.safetensors") && err.contains("tensor i is stored as I64"),
            "{err}"
        );
    }

    #[test]
    fn fresh_init_is_reproducible() {
        let draw = || {
            let mut b = ParamBuilder::fresh(7);
            b.get("w", &[8], Init::Normal(0.02))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(draw(), draw());
    }
}
