//! A ReLU microstep through a sparse recurrent matrix, `relu(h·Wᵀ + drive)`: the connectome
//! core's hot path (`nn::Bpu`), with backward through `Wᵀ` for the state and for the matrix's
//! values (the `observed` training mode).

use std::sync::Arc;

use autoresearch_kernels::csr::{relu_step_backward, relu_step_forward, CsrRef};
use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};

use super::linear::{kernel_err, read, slice, tensor};
use super::weighted::{apply_any, WeightedOp};
use crate::connectome::Csr;

const OP: &str = "fused csr_relu";

/// The matrix's structure, its transpose and the drive's columns, built once per network.
#[derive(Debug, Clone)]
pub struct CsrPlan {
    n: usize,
    row_ptr: Vec<usize>,
    col: Vec<u32>,
    t_row_ptr: Vec<usize>,
    t_col: Vec<u32>,
    t_perm: Vec<u32>,
    drive_cols: Vec<u32>,
}

impl CsrPlan {
    /// The plan of `m` (values aside: they are the op's tensor operand) with the drive added to
    /// columns `drive_cols` of the state.
    pub fn new(m: &Csr, drive_cols: &[usize]) -> Self {
        let n = m.n;
        let mut t_row_ptr = vec![0usize; n + 1];
        for &c in &m.col {
            t_row_ptr[c as usize + 1] += 1;
        }
        for i in 0..n {
            t_row_ptr[i + 1] += t_row_ptr[i];
        }
        let mut next = t_row_ptr.clone();
        let (mut t_col, mut t_perm) = (vec![0u32; m.nnz()], vec![0u32; m.nnz()]);
        for r in 0..n {
            for e in m.row_ptr[r]..m.row_ptr[r + 1] {
                let c = m.col[e] as usize;
                t_col[next[c]] = r as u32;
                t_perm[next[c]] = e as u32;
                next[c] += 1;
            }
        }
        CsrPlan {
            n,
            row_ptr: m.row_ptr.clone(),
            col: m.col.clone(),
            t_row_ptr,
            t_col,
            t_perm,
            drive_cols: drive_cols.iter().map(|&c| c as u32).collect(),
        }
    }

    fn matrix(&self) -> CsrRef<'_> {
        CsrRef {
            n: self.n,
            row_ptr: &self.row_ptr,
            col: &self.col,
        }
    }

    fn transpose(&self) -> CsrRef<'_> {
        CsrRef {
            n: self.n,
            row_ptr: &self.t_row_ptr,
            col: &self.t_col,
        }
    }
}

/// The op (the plan is shared by every step of a forward pass).
struct CsrRelu(Arc<CsrPlan>);

impl WeightedOp for CsrRelu {
    const NAME: &'static str = OP;

    fn fwd(
        &self,
        h: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        drive: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = &self.0;
        let hs = slice(h.0, h.1, OP)?;
        let mut out = vec![0f32; hs.len()];
        let drive = drive
            .map(|(s, l)| slice(s, l, OP).map(|d| (d, plan.drive_cols.as_slice())))
            .transpose()?;
        relu_step_forward(plan.matrix(), slice(w.0, w.1, OP)?, hs, drive, &mut out)
            .map_err(kernel_err)?;
        Ok((CpuStorage::F32(out), h.1.shape().clone()))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        drive: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let plan = &self.0;
        let mut dh = h.track_op().then(|| vec![0f32; h.elem_count()]);
        let mut dw = w.track_op().then(|| vec![0f32; w.elem_count()]);
        let mut dd = drive
            .filter(|d| d.track_op())
            .map(|d| vec![0f32; d.elem_count()]);
        read(h, OP, |hs| {
            read(w, OP, |ws| {
                // the values in transposed order, once, so dh reads them contiguously
                let t_val: Vec<f32> = plan.t_perm.iter().map(|&e| ws[e as usize]).collect();
                read(res, OP, |out| {
                    read(grad, OP, |g| {
                        relu_step_backward(
                            plan.matrix(),
                            plan.transpose(),
                            &t_val,
                            hs,
                            out,
                            g,
                            dh.as_deref_mut(),
                            dw.as_deref_mut(),
                            dd.as_deref_mut().map(|d| (d, plan.drive_cols.as_slice())),
                        )
                        .map_err(kernel_err)
                    })
                })
            })
        })?;
        Ok((
            dh.map(|v| tensor(v, h.shape())).transpose()?,
            dw.map(|v| tensor(v, w.shape())).transpose()?,
            match (dd, drive) {
                (Some(v), Some(d)) => Some(tensor(v, d.shape())?),
                _ => None,
            },
        ))
    }
}

/// `relu(h·Wᵀ + P drive)` where `W` has `plan`'s structure and the entry values `values`, and
/// `P` adds drive column `j` to state column `plan.drive_cols[j]`.
///
/// # Shapes
/// `h`: `[B, N]`, `values`: `[nnz]`, `drive`: `[B, |drive_cols|]` -> `[B, N]`.
pub fn csr_relu(
    plan: &Arc<CsrPlan>,
    h: &Tensor,
    values: &Tensor,
    drive: Option<&Tensor>,
) -> Result<Tensor> {
    let (_, n) = h.dims2()?;
    if n != plan.n || values.elem_count() != plan.col.len() {
        bail!(
            "{OP}: h {:?} and values {:?} do not fit a {}-node matrix with {} entries",
            h.dims(),
            values.dims(),
            plan.n,
            plan.col.len()
        );
    }
    if let Some(d) = drive {
        if d.dims() != [h.dim(0)?, plan.drive_cols.len()] {
            bail!(
                "{OP}: drive {:?} must be [B, {}] for h {:?}",
                d.dims(),
                plan.drive_cols.len(),
                h.dims()
            );
        }
    }
    apply_any(CsrRelu(plan.clone()), h, values, drive)
}
