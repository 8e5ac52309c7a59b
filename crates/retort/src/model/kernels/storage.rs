//! Plumbing shared by the kernels: storage access, row splitting, the strided `Mat` view.

use candle_core::{bail, CpuStorage, Device, Layout, Result, Shape, Storage, Tensor};

/// The f32 values of a contiguous CPU storage under `layout`.
pub(super) fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused kernel: expected a contiguous tensor")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Runs `f` on the f32 values of the tensors (made contiguous first). Backward passes use
/// it to read their inputs without copying them.
pub(super) fn with_values<const N: usize, R>(
    tensors: [&Tensor; N],
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let tensors = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: [&[f32]; N] = [&[]; N];
    for (slot, (storage, layout)) in slices.iter_mut().zip(&guards) {
        *slot = match &**storage {
            Storage::Cpu(s) => values(s, layout)?,
            _ => bail!("fused kernels run on the CPU only"),
        };
    }
    f(slices)
}

pub(super) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(values, shape.into(), &Device::Cpu)
}

/// Size of the last dimension, and the number of rows before it.
pub(super) fn rows_cols(shape: &Shape) -> Result<(usize, usize)> {
    let cols = *shape.dims().last().unwrap_or(&1);
    if cols == 0 {
        bail!("fused kernel: empty last dimension in {shape:?}")
    }
    Ok((shape.elem_count() / cols, cols))
}

/// Values handed to one rayon task, in whole rows of `row_len`: ~16k values amortise the
/// scheduling yet still split a batch over the cores.
pub(super) fn task_len(row_len: usize) -> usize {
    ((1 << 14) / row_len).max(1) * row_len
}

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a> Mat<'a> {
    /// A `rows × cols` block of row-major data with row stride `rs`.
    pub(super) fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    pub(super) fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    pub(super) fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}
