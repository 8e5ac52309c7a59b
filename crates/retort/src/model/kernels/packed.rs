//! A linear map's weight packed once for inference, and the product that reads it.
//!
//! The gemm crate packs the weight matrix into its own panel layout at every call. In a
//! training step that is a small share (the weights change every step anyway), but an
//! inference pass multiplies the same frozen weights again and again, and with a sentence or
//! a few (16–256 rows) the packing costs as much as the product (`perf`: 22% of batch-1
//! time in gemm's packing and dispatch, 44% in its micro-kernels). Here the weight is
//! rearranged once, when a model is prepared for inference, into panels of [`NR`] outputs
//! whose values for one input column are contiguous and 64-byte aligned; the product then
//! streams each panel once and keeps a tile of [`MR`] rows × [`NR`] outputs in registers.

use super::may_fork;

/// Outputs per panel: two AVX-512 registers.
const NR: usize = 32;
/// Rows per register tile: 12 × 2 accumulators of the 32 AVX-512 registers, leaving room
/// for the two weight vectors and the broadcast input value.
const MR: usize = 12;
/// Products smaller than this many multiply-adds run on the calling thread (waking the
/// second thread costs more than it saves; the same threshold as the other products).
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// One cache line of values.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// The weight `[out, inp]` of `x Wᵀ + b` in panels: panel `p` holds, for each input column
/// `i`, the values `W[p·NR + j, i]` for `j < NR` (zero past `out`), one after the other.
pub struct PackedWeight {
    lines: Vec<Line>,
    inp: usize,
    out: usize,
}

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedWeight[{}, {}]", self.out, self.inp)
    }
}

/// Whether packing pays on this CPU: the tiles are AVX-512; elsewhere only the portable
/// loop reads packed weights, slower than the gemm crate's own kernels for the CPU.
pub fn packing_pays() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PackedWeight {
    /// Packs the row-major weight `w` (`out × inp`).
    pub fn pack(w: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(
            w.len(),
            out * inp,
            "packed weight: {out} × {inp} values expected"
        );
        let lines_per_panel = inp * NR / 16;
        let mut lines = vec![Line([0.0; 16]); out.div_ceil(NR) * lines_per_panel];
        for (o, row) in w.chunks_exact(inp).enumerate() {
            let (panel, j) = (o / NR, o % NR);
            for (i, &v) in row.iter().enumerate() {
                let at = panel * NR * inp + i * NR + j;
                lines[at / 16].0[at % 16] = v;
            }
        }
        Self { lines, inp, out }
    }

    /// `(out, inp)`, as the weight's shape.
    pub fn dims(&self) -> (usize, usize) {
        (self.out, self.inp)
    }

    fn values(&self) -> &[f32] {
        // SAFETY: `Line` is 16 f32 values with no padding (repr(C), 64 bytes).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.lines.len() * 16) }
    }

    /// The values of panel `p`: `inp` groups of `NR`.
    fn panel(&self, p: usize) -> &[f32] {
        &self.values()[p * NR * self.inp..(p + 1) * NR * self.inp]
    }

    /// `x Wᵀ (+ bias)` for `rows` rows of `x` (`rows × inp`, row-major), as a new `rows × out`
    /// buffer (not zero-filled first: every value is written before it is exposed).
    pub fn matmul_new(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let len = rows * self.out;
        let mut y = Vec::with_capacity(len);
        // SAFETY: the allocation holds `len` values; matmul_raw writes all of them before
        // `set_len` exposes them.
        unsafe {
            self.matmul_raw(y.as_mut_ptr(), x, rows, bias);
            y.set_len(len);
        }
        y
    }

    /// The product into raw memory. With enough work and a free thread, the two threads take
    /// half of the panels each (half of the weights each, every row). Safety: `y` must be
    /// valid for writes of `rows × out` values.
    unsafe fn matmul_raw(&self, y: *mut f32, x: &[f32], rows: usize, bias: Option<&[f32]>) {
        let (inp, out) = (self.inp, self.out);
        assert!(
            x.len() == rows * inp && bias.is_none_or(|b| b.len() == out),
            "packed linear: x has {} values for {rows} × {inp}, {out} outputs",
            x.len(),
        );
        let panels = out.div_ceil(NR);
        let dst = Dst(y);
        if panels >= 2 && rows * inp * out >= PARALLEL_MIN_MACS && may_fork() {
            let half = panels / 2;
            rayon::join(
                || self.panels(dst, x, rows, bias, 0..half),
                || self.panels(dst, x, rows, bias, half..panels),
            );
        } else {
            self.panels(dst, x, rows, bias, 0..panels);
        }
    }

    /// The outputs of panels `range`, every row.
    fn panels(
        &self,
        y: Dst,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        range: std::ops::Range<usize>,
    ) {
        for p in range.clone() {
            let cols = NR.min(self.out - p * NR);
            let mut init = [0f32; NR];
            if let Some(b) = bias {
                init[..cols].copy_from_slice(&b[p * NR..p * NR + cols]);
            }
            let tile = Tile {
                panel: self.panel(p),
                next: match p + 1 < range.end {
                    true => self.panel(p + 1),
                    false => &[],
                },
                inp: self.inp,
                init: &init,
                y: y.0.wrapping_add(p * NR),
                y_rs: self.out,
                cols,
            };
            // SAFETY: `matmul_raw` checked `x` (its caller, `y`); tile writes rows `< rows`,
            // columns `p·NR .. p·NR + cols` of `y`, which no other panel (thread) writes.
            unsafe { tile.run(x, rows) }
        }
    }
}

/// The output pointer, shared by the two threads (they write disjoint columns).
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: each thread writes only the columns of its own panels (see `PackedWeight::panels`).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

/// One panel's product: every row of `x` against `NR` outputs.
struct Tile<'a> {
    panel: &'a [f32],
    /// The next panel this thread computes (empty after its last): fetched into the cache
    /// while this one computes, so the weights' trip from memory overlaps the arithmetic.
    next: &'a [f32],
    inp: usize,
    /// Each output's starting value (the bias, or 0).
    init: &'a [f32; NR],
    /// Row 0, first column of this panel in the output.
    y: *mut f32,
    y_rs: usize,
    /// Outputs of this panel that exist (`NR`, or fewer in the last panel).
    cols: usize,
}

impl Tile<'_> {
    /// Safety: `y` must be valid for writes at `r·y_rs + j` for `r < rows`, `j < cols`, and
    /// `x` must hold `rows × inp` values.
    unsafe fn run(&self, x: &[f32], rows: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above); bounds as the caller's.
                return unsafe { self.run_avx512(x, rows) };
            }
        }
        // SAFETY: as the caller's.
        unsafe { self.run_portable(x, rows) }
    }

    /// Blocks of `MR` rows, then the leftover rows as one smaller block.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, x: &[f32], rows: usize) {
        let mut r0 = 0;
        while r0 + MR <= rows {
            // SAFETY: rows r0 .. r0 + MR exist in x and y.
            unsafe { self.block::<MR>(x, r0, r0 == 0) };
            r0 += MR;
        }
        // SAFETY (every arm): rows r0 .. rows exist in x and y.
        unsafe {
            match rows - r0 {
                0 => {}
                1 => self.block::<1>(x, r0, r0 == 0),
                2 => self.block::<2>(x, r0, r0 == 0),
                3 => self.block::<3>(x, r0, r0 == 0),
                4 => self.block::<4>(x, r0, r0 == 0),
                5 => self.block::<5>(x, r0, r0 == 0),
                6 => self.block::<6>(x, r0, r0 == 0),
                7 => self.block::<7>(x, r0, r0 == 0),
                8 => self.block::<8>(x, r0, r0 == 0),
                9 => self.block::<9>(x, r0, r0 == 0),
                10 => self.block::<10>(x, r0, r0 == 0),
                11 => self.block::<11>(x, r0, r0 == 0),
                _ => unreachable!("fewer than MR rows are left"),
            }
        }
    }

    /// `M` rows from `r0` in 2·M accumulators: per input column, two aligned loads of the
    /// panel feed 2·M multiply-adds, each row's value broadcast once.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const M: usize>(&self, x: &[f32], r0: usize, prefetch: bool) {
        use std::arch::x86_64::*;
        let (inp, panel) = (self.inp, self.panel.as_ptr());
        let prefetch = prefetch && !self.next.is_empty();
        let xr = x.as_ptr().wrapping_add(r0 * inp);
        // SAFETY: `init` holds NR = 32 values.
        let init = unsafe {
            [
                _mm512_loadu_ps(self.init.as_ptr()),
                _mm512_loadu_ps(self.init.as_ptr().add(16)),
            ]
        };
        let mut acc = [init; M];
        for i in 0..inp {
            // SAFETY: the panel holds inp × NR values, 64-byte aligned in groups of 16; the
            // caller guarantees rows r0 .. r0 + M of x.
            unsafe {
                if prefetch {
                    // A prefetch never faults; both lines are in `next` (inp × NR values).
                    let line = self.next.as_ptr().add(i * NR);
                    _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
                    _mm_prefetch::<_MM_HINT_T1>(line.add(16) as *const i8);
                }
                let b0 = _mm512_load_ps(panel.add(i * NR));
                let b1 = _mm512_load_ps(panel.add(i * NR + 16));
                for (r, a) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*xr.add(r * inp + i));
                    a[0] = _mm512_fmadd_ps(v, b0, a[0]);
                    a[1] = _mm512_fmadd_ps(v, b1, a[1]);
                }
            }
        }
        // The last panel may be narrower than NR: masked stores write only its columns.
        let mask = |from: usize| -> u16 {
            let n = self.cols.saturating_sub(from).min(16);
            ((1u32 << n) - 1) as u16
        };
        let (m0, m1) = (mask(0), mask(16));
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: row r0 + r exists in y (the caller's guarantee); masked lanes are
            // neither read nor written.
            unsafe {
                let row = self.y.add((r0 + r) * self.y_rs);
                _mm512_mask_storeu_ps(row, m0, a[0]);
                _mm512_mask_storeu_ps(row.add(16), m1, a[1]);
            }
        }
    }

    /// The same product one value at a time (CPUs without AVX-512).
    unsafe fn run_portable(&self, x: &[f32], rows: usize) {
        let inp = self.inp;
        for r in 0..rows {
            let xr = &x[r * inp..(r + 1) * inp];
            for j in 0..self.cols {
                let sum = xr.iter().enumerate().fold(self.init[j], |s, (i, v)| {
                    v.mul_add(self.panel[i * NR + j], s)
                });
                // SAFETY: r < rows and j < cols (the caller's guarantee).
                unsafe { *self.y.add(r * self.y_rs + j) = sum };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::linear_f64;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7 % 13) as f32 - 6.0) / 7.0)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((*g as f64 - w).abs() < 1e-4, "{what} [{k}]: {g} vs {w}");
        }
    }

    #[test]
    fn packed_product_matches_a_plain_one_on_every_tile_shape() {
        // Full and leftover row blocks (1 .. 11 rows left), a narrow last panel, one
        // output, and (the last two) enough work to split the panels over two threads.
        for (rows, inp, out) in [
            (1, 16, 4),
            (5, 37, 7),
            (13, 64, 33),
            (24, 3, 1),
            (35, 384, 70),
            (128, 384, 384),
            (40, 384, 1538),
        ] {
            let (x, w, b) = (values(rows * inp, 1), values(out * inp, 2), values(out, 3));
            let packed = PackedWeight::pack(&w, out, inp);
            let want = linear_f64(&x, &w, &b, inp);
            let y = packed.matmul_new(&x, rows, Some(&b));
            assert_close(&y, &want, &format!("{rows}x{inp}x{out}"));
            // Without a bias, the product alone.
            let zero = vec![0f32; out];
            let want = linear_f64(&x, &w, &zero, inp);
            let y = packed.matmul_new(&x, rows, None);
            assert_close(&y, &want, &format!("{rows}x{inp}x{out}, no bias"));
        }
    }

    #[test]
    fn the_portable_path_matches_too() {
        let (rows, inp, out) = (7, 20, 40);
        let (x, w, b) = (values(rows * inp, 4), values(out * inp, 5), values(out, 6));
        let packed = PackedWeight::pack(&w, out, inp);
        let mut y = vec![f32::NAN; rows * out];
        for p in 0..out.div_ceil(NR) {
            let cols = NR.min(out - p * NR);
            let mut init = [0f32; NR];
            init[..cols].copy_from_slice(&b[p * NR..p * NR + cols]);
            let tile = Tile {
                panel: packed.panel(p),
                next: &[],
                inp,
                init: &init,
                y: y.as_mut_ptr().wrapping_add(p * NR),
                y_rs: out,
                cols,
            };
            // SAFETY: y holds rows × out values; this panel's columns are p·NR .. + cols.
            unsafe { tile.run_portable(&x, rows) };
        }
        assert_close(&y, &linear_f64(&x, &w, &b, inp), "portable");
    }
}
