//! The teacher's logits over a transfer set, computed once and kept on disk.
//!
//! Distilling on logits alone needs the teacher only as a function of each example, so its
//! forward pass over the whole (possibly augmented) training set is done once and stored,
//! keyed by the teacher's weights and config and by the exact token ids and rows it saw
//! (which covers the data, the tokenizer, the max length and the task). A second run, or a
//! second epoch, reads it. The entry holds the task's rows of logits (one per sentence, one
//! per word, ...) of every example in order: `[rows, labels]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::fingerprint::Fnv;
use crate::infer::row_logits;
use crate::model::{Model, RowAxis};
use crate::task::view::MASKED;
use crate::task::TaskData;

/// Where the cache entry for this teacher and these inputs lives.
pub fn cache_path(cache_dir: &Path, teacher_dir: &Path, inputs: &TaskData) -> Result<PathBuf> {
    let mut h = Fnv::default();
    for name in ["config.json", "model.safetensors"] {
        h.file(teacher_dir, name, "teacher checkpoint")?;
    }
    for (e, rows) in inputs.examples.iter().zip(&inputs.rows) {
        h.bytes(&(e.ids.len() as u32).to_le_bytes());
        for id in &e.ids {
            h.bytes(&id.to_le_bytes());
        }
        // A sentence's single row at 0 adds nothing, so entries from before tasks stay valid.
        if rows.positions != [0] {
            h.bytes(&(rows.len() as u32).to_le_bytes());
            for p in &rows.positions {
                h.bytes(&p.to_le_bytes());
            }
        }
    }
    Ok(cache_dir.join(format!("teacher-logits-{:016x}.safetensors", h.finish())))
}

/// Teacher logits `[rows, labels]` and how they were obtained.
pub struct CachedLogits {
    pub logits: Tensor,
    /// True when read from disk rather than computed.
    pub hit: bool,
    pub path: PathBuf,
    /// Time spent in the teacher phase (computing, or reading).
    pub seconds: f64,
}

/// Reads the cached logits of `teacher` over `inputs`, computing and storing them first when
/// absent. `progress` is told how many examples are done.
pub fn teacher_logits(
    teacher: &dyn Model,
    teacher_dir: &Path,
    inputs: &TaskData,
    cache_dir: &Path,
    batch_size: usize,
    progress: &dyn Fn(usize),
) -> Result<CachedLogits> {
    let start = Instant::now();
    let path = cache_path(cache_dir, teacher_dir, inputs)?;
    let device = Device::Cpu;
    let rows: usize = inputs.rows.iter().map(|r| r.len()).sum();
    if path.exists() {
        let map =
            candle_core::safetensors::load(&path, &device).map_err(|e| Error::Checkpoint {
                path: path.clone(),
                message: format!("unreadable teacher cache (delete it to recompute): {e}"),
            })?;
        if let Some(t) = map
            .get("logits")
            .filter(|t| t.dims().first() == Some(&rows))
        {
            return Ok(CachedLogits {
                logits: t.clone(),
                hit: true,
                path,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
    }
    let per_example = row_logits(
        teacher,
        &inputs.examples,
        &inputs.positions(),
        batch_size,
        progress,
    )?;
    let tensor = rows_tensor(
        teacher.config().head.row_axis(),
        teacher.config().num_labels(),
        inputs,
        per_example,
    )?;
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e, "cache directory"))?;
    // Write to a temporary name, then rename: an interrupted run never leaves a torn entry.
    let tmp = path.with_extension("partial");
    candle_core::safetensors::save(
        &HashMap::from([("logits".to_string(), tensor.clone())]),
        &tmp,
    )
    .map_err(|e| Error::Checkpoint {
        path: tmp.clone(),
        message: format!("cannot write teacher cache: {e}"),
    })?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e, "teacher cache"))?;
    Ok(CachedLogits {
        logits: tensor,
        hit: false,
        path,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Every example's rows as one `[rows, width]` tensor: `width` is the number of labels along
/// [`RowAxis::Labels`]; along [`RowAxis::Positions`] it is the longest example's token count,
/// each row padded with [`MASKED`] (what a batch's own rows have at padding positions).
fn rows_tensor(
    axis: RowAxis,
    labels: usize,
    inputs: &TaskData,
    per_example: Vec<Vec<f32>>,
) -> Result<Tensor> {
    let rows: usize = inputs.rows.iter().map(|r| r.len()).sum();
    let (flat, width) = match axis {
        RowAxis::Labels => (per_example.concat(), labels),
        RowAxis::Positions => {
            let width = inputs
                .examples
                .iter()
                .map(|e| e.ids.len())
                .max()
                .unwrap_or(0);
            let mut flat = Vec::with_capacity(rows * width);
            for (values, e) in per_example.iter().zip(&inputs.examples) {
                for row in values.chunks(e.ids.len().max(1)) {
                    flat.extend_from_slice(row);
                    flat.extend(std::iter::repeat_n(MASKED, width - row.len()));
                }
            }
            (flat, width)
        }
    };
    Ok(Tensor::from_vec(flat, (rows, width), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_values() {
        let mut h = Fnv::default();
        h.bytes(b"a");
        assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
    }
}
