//! The packed product with its right operand packed once and reused: a recurrent layer
//! multiplies the same `W_hhᵀ` by a new hidden state at every step, and repacking it (a
//! strided gather of the whole matrix) would cost about a fifth of each step's product.
//!
//! Products run on the calling thread: a recurrent kernel splits the batch over threads for a
//! whole sequence (batch rows never interact), so every step's product is already one
//! thread's share. Each element of the result is summed in the same order as by
//! [`crate::sgemm::sgemm`], so the two give the same bits.

use crate::gemm::MatRef;
use crate::sgemm::{
    aligned, pack_a, pack_b, prefetch_tile, tile, write_row, KC, MC, MR, NR, SCRATCH,
};

/// A `k x n` right operand packed into the `KC x NR` column panels the microkernel reads.
#[derive(Debug, Clone)]
pub struct PackedB {
    data: Vec<f32>,
    k: usize,
    n: usize,
    /// Inner terms per block (the same even split as the unpacked product).
    kc: usize,
}

impl PackedB {
    /// Packs `b` (any strides).
    pub fn new(b: MatRef<'_>) -> Result<Self, String> {
        let (k, n) = (b.rows, b.cols);
        if k == 0 || n == 0 {
            return Err(format!("packed matmul: empty right operand {k}x{n}"));
        }
        if b.data.len() <= b.last_index() {
            return Err("packed matmul: operand slice shorter than its view".to_string());
        }
        let kc = k.div_ceil(k.div_ceil(KC));
        let n_pad = n.div_ceil(NR) * NR;
        let mut data = vec![0.0f32; k * n_pad];
        // block `pc` of inner terms holds every column panel of those terms, contiguous
        for pc in (0..k).step_by(kc) {
            let ks = pc..(pc + kc).min(k);
            pack_b(&b, ks.clone(), 0..n, &mut data[pc * n_pad..ks.end * n_pad]);
        }
        Ok(PackedB { data, k, n, kc })
    }

    /// Rows (inner dimension) of the operand.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of the operand.
    pub fn cols(&self) -> usize {
        self.n
    }
}

#[inline(always)]
fn product_impl<const FMA: bool>(
    dst: &mut [f32],
    rs: usize,
    a: &MatRef<'_>,
    b: &PackedB,
    set: bool,
) {
    let (m, k, n) = (a.rows, b.k, b.n);
    let n_pad = n.div_ceil(NR) * NR;
    let a_len = KC * MC.min(m.div_ceil(MR) * MR);
    let mut scratch = SCRATCH.with(|s| s.take());
    let (ap, _) = aligned(&mut scratch, a_len, 0);
    for pc in (0..k).step_by(b.kc) {
        let ks = pc..(pc + b.kc).min(k);
        let kc = ks.len();
        let block = &b.data[pc * n_pad..ks.end * n_pad];
        let first = set && pc == 0;
        for ic in (0..m).step_by(MC) {
            let irows = ic..(ic + MC).min(m);
            pack_a(a, irows.clone(), ks.clone(), ap);
            for (jp, j0) in (0..n).step_by(NR).enumerate() {
                let nr = NR.min(n - j0);
                let bpanel = &block[jp * kc * NR..(jp + 1) * kc * NR];
                for (ip, i0) in irows.clone().step_by(MR).enumerate() {
                    let mr = MR.min(irows.end - i0);
                    prefetch_tile(dst.as_ptr().wrapping_add(i0 * rs + j0), rs, mr);
                    let acc = tile::<FMA>(kc, &ap[ip * kc * MR..(ip + 1) * kc * MR], bpanel);
                    for (i, row) in acc.iter().enumerate().take(mr) {
                        let at = (i0 + i) * rs + j0;
                        write_row(&mut dst[at..at + nr], row, first);
                    }
                }
            }
        }
    }
    SCRATCH.with(|s| s.replace(scratch));
}

#[inline(always)]
fn product_plain(dst: &mut [f32], rs: usize, a: &MatRef<'_>, b: &PackedB, set: bool) {
    product_impl::<false>(dst, rs, a, b, set)
}

#[inline(always)]
fn product_fused(dst: &mut [f32], rs: usize, a: &MatRef<'_>, b: &PackedB, set: bool) {
    product_impl::<true>(dst, rs, a, b, set)
}

/// Runs the FMA build where the CPU has AVX2+FMA (the same choice as [`crate::sgemm::sgemm`]).
fn product(dst: &mut [f32], rs: usize, a: &MatRef<'_>, b: &PackedB, set: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(dst: &mut [f32], rs: usize, a: &MatRef<'_>, b: &PackedB, set: bool) {
            product_fused(dst, rs, a, b, set)
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features `avx2` was compiled for.
            unsafe { avx2(dst, rs, a, b, set) };
            return;
        }
    }
    product_plain(dst, rs, a, b, set)
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`) on the calling thread; `dst` row-major
/// `a.rows x b.cols` with row stride `dst_row_stride`.
pub fn sgemm_packed(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef<'_>,
    b: &PackedB,
    accumulate: bool,
) -> Result<(), String> {
    let (m, n) = (a.rows, b.n);
    if a.cols != b.k {
        return Err(format!(
            "packed matmul: {}x{} times {}x{}",
            a.rows, a.cols, b.k, b.n
        ));
    }
    if m == 0 {
        return Ok(());
    }
    if dst_row_stride < n || dst.len() < (m - 1) * dst_row_stride + n {
        return Err(format!("packed matmul: destination too small for {m}x{n}"));
    }
    if a.data.len() <= a.last_index() {
        return Err("packed matmul: operand slice shorter than its view".to_string());
    }
    product(dst, dst_row_stride, &a, b, !accumulate);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sgemm::sgemm;
    use crate::sgemm::tests::data;

    #[test]
    fn same_bits_as_the_unpacked_product() -> Result<(), String> {
        for (m, k, n) in [
            (1, 1, 1),
            (5, 3, 7),
            (64, 256, 1024),
            (13, 700, 37),
            (130, 70, 20),
        ] {
            let (ad, bd) = (data(m * k, 1), data(k * n, 2));
            let a = MatRef::row_major(&ad, m, k);
            for b in [
                MatRef::row_major(&bd, k, n),
                MatRef::row_major(&bd, n, k).t(),
            ] {
                let packed = PackedB::new(b)?;
                for accumulate in [false, true] {
                    let mut want = data(m * (n + 3), 5);
                    let mut got = want.clone();
                    sgemm(&mut want, n + 3, a, b, accumulate, false)?;
                    sgemm_packed(&mut got, n + 3, a, &packed, accumulate)?;
                    assert_eq!(got, want, "{m}x{k}x{n} accumulate {accumulate}");
                }
            }
        }
        let packed = PackedB::new(MatRef::row_major(&[1.0; 6], 2, 3))?;
        assert!(sgemm_packed(
            &mut [0.0; 9],
            3,
            MatRef::row_major(&[1.0; 9], 3, 3),
            &packed,
            false
        )
        .is_err());
        Ok(())
    }
}
