//! A ReLU microstep through a sparse recurrent matrix in CSR form, `out = relu(h·Wᵀ + drive)`
//! with the drive added to a subset of columns, and its backward pass (through `Wᵀ` for the
//! state, sampled dense-dense products for the matrix values). Batch rows run in parallel.

use crate::par::for_row_chunks;

/// The structure of an `n x n` CSR matrix (row = output unit, columns = input units).
#[derive(Debug, Clone, Copy)]
pub struct CsrRef<'a> {
    /// Rows and columns.
    pub n: usize,
    /// `row_ptr[i]..row_ptr[i + 1]` are row `i`'s entries.
    pub row_ptr: &'a [usize],
    /// Column of each entry.
    pub col: &'a [u32],
}

impl CsrRef<'_> {
    fn check(&self, values: usize) -> Result<(), String> {
        if self.row_ptr.len() != self.n + 1 || self.col.len() != values {
            return Err(format!(
                "csr: {} row pointers for n = {}, {} columns for {} values",
                self.row_ptr.len(),
                self.n,
                self.col.len(),
                values
            ));
        }
        Ok(())
    }
}

/// Rows per worker so that each gets about this many multiply-adds.
const MIN_WORK: usize = 200_000;

fn min_rows(nnz: usize) -> usize {
    (MIN_WORK / nnz.max(1)).max(1)
}

/// `out[b, i] = relu(Σ_e val[e]·h[b, col[e]] + drive[b, j])` for `i = cols[j]` of the drive
/// (`drive`: `[batch, cols.len()]`), else without a drive term.
pub fn relu_step_forward(
    m: CsrRef,
    val: &[f32],
    h: &[f32],
    drive: Option<(&[f32], &[u32])>,
    out: &mut [f32],
) -> Result<(), String> {
    m.check(val.len())?;
    let n = m.n;
    if h.len() != out.len() || h.len() % n.max(1) != 0 {
        return Err(format!(
            "csr: h {} and out {} must be [batch, {n}]",
            h.len(),
            out.len()
        ));
    }
    if let Some((d, cols)) = drive {
        if d.len() * n != h.len() * cols.len() || cols.iter().any(|&c| c as usize >= n) {
            return Err("csr: drive must be [batch, k] with column indices < n".into());
        }
    }
    for_row_chunks(out, n, min_rows(val.len()), |rows, chunk| {
        for (r, b) in rows.enumerate() {
            let hb = &h[b * n..(b + 1) * n];
            let ob = &mut chunk[r * n..(r + 1) * n];
            for (i, o) in ob.iter_mut().enumerate() {
                let mut s = 0f32;
                for e in m.row_ptr[i]..m.row_ptr[i + 1] {
                    s += val[e] * hb[m.col[e] as usize];
                }
                *o = s;
            }
            if let Some((d, cols)) = drive {
                let k = cols.len();
                for (j, &c) in cols.iter().enumerate() {
                    ob[c as usize] += d[b * k + j];
                }
            }
            for o in ob.iter_mut() {
                *o = o.max(0.0);
            }
        }
    });
    Ok(())
}

/// The gradients of [`relu_step_forward`]. `t` is the transpose's structure and `t_val` its
/// values (the matrix's values in transposed order, gathered once per call so the state
/// gradient reads them contiguously). Each output is written where given: `dh` `[batch, n]`,
/// `dval` `[nnz]` (in `m`'s order), `ddrive` `[batch, cols.len()]`.
#[allow(clippy::too_many_arguments)]
pub fn relu_step_backward(
    m: CsrRef,
    t: CsrRef,
    t_val: &[f32],
    h: &[f32],
    out: &[f32],
    g: &[f32],
    dh: Option<&mut [f32]>,
    dval: Option<&mut [f32]>,
    ddrive: Option<(&mut [f32], &[u32])>,
) -> Result<(), String> {
    m.check(t_val.len())?;
    t.check(t_val.len())?;
    let n = m.n;
    let nnz = t_val.len();
    if out.len() != g.len() || h.len() != g.len() {
        return Err("csr backward: h, out and g must have the same shape".into());
    }
    let batch = g.len() / n.max(1);
    // gradient at the pre-activation: g where the unit was active
    let gz: Vec<f32> = g
        .iter()
        .zip(out)
        .map(|(&gv, &o)| if o > 0.0 { gv } else { 0.0 })
        .collect();
    if let Some(dh) = dh {
        for_row_chunks(dh, n, min_rows(nnz), |rows, chunk| {
            for (r, b) in rows.enumerate() {
                let gb = &gz[b * n..(b + 1) * n];
                for (j, d) in chunk[r * n..(r + 1) * n].iter_mut().enumerate() {
                    let mut s = 0f32;
                    for e in t.row_ptr[j]..t.row_ptr[j + 1] {
                        s += t_val[e] * gb[t.col[e] as usize];
                    }
                    *d = s;
                }
            }
        });
    }
    if let Some(dval) = dval {
        // one "row" per matrix entry; entries of row i read gz[:, i] and h[:, col]
        let row_of: Vec<u32> = (0..n)
            .flat_map(|i| std::iter::repeat_n(i as u32, m.row_ptr[i + 1] - m.row_ptr[i]))
            .collect();
        for_row_chunks(
            dval,
            1,
            (MIN_WORK / batch.max(1)).max(1),
            |entries, chunk| {
                for (r, e) in entries.enumerate() {
                    let (i, c) = (row_of[e] as usize, m.col[e] as usize);
                    chunk[r] = (0..batch).map(|b| gz[b * n + i] * h[b * n + c]).sum();
                }
            },
        );
    }
    if let Some((dd, cols)) = ddrive {
        let k = cols.len();
        for b in 0..batch {
            for (j, &c) in cols.iter().enumerate() {
                dd[b * k + j] = gz[b * n + c as usize];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_matches_a_dense_product() {
        // W = [[0, 2, 0], [1, 0, -1], [0, 0, 3]]
        let (row_ptr, col, val) = ([0usize, 1, 3, 4], [1u32, 0, 2, 2], [2.0f32, 1.0, -1.0, 3.0]);
        let m = CsrRef {
            n: 3,
            row_ptr: &row_ptr,
            col: &col,
        };
        let h = [1.0f32, 2.0, 3.0, -1.0, 0.5, 1.0];
        let mut out = [0f32; 6];
        let drive = [10.0f32, -20.0];
        relu_step_forward(m, &val, &h, Some((&drive, &[2])), &mut out).unwrap();
        // sample 0: z = [4, 1 - 3, 9 + 10] ; sample 1: z = [1, -1 - 1, 3 - 20]
        assert_eq!(out, [4.0, 0.0, 19.0, 1.0, 0.0, 0.0]);
    }
}
