//! Matrix products on the `gemm` crate, with one place deciding how they are threaded.

/// A read-only matrix view: element `(i, j)` is at `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The backing slice (starting at element `(0, 0)`).
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows, in elements.
    pub row_stride: usize,
    /// Distance between columns, in elements.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn last_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
        }
    }
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`), `dst` row-major `a.rows x b.cols` with row
/// stride `dst_row_stride`.
///
/// # Panics
/// Never: mismatched shapes or slices too short for the views are reported as `Err`.
pub fn matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
) -> Result<(), String> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(format!(
            "matmul: {}x{} times {}x{}",
            a.rows, a.cols, b.rows, b.cols
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let dst_needed = (m - 1) * dst_row_stride + n;
    if dst.len() < dst_needed || dst_row_stride < n {
        return Err(format!("matmul: destination too small for {m}x{n}"));
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_row_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return Ok(());
    }
    if a.data.len() <= a.last_index() || b.data.len() <= b.last_index() {
        return Err("matmul: operand slice shorter than its view".to_string());
    }
    let flops = 2 * m * n * k;
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && flops >= 1 << 20 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every index the views and the destination can reach was bounds-checked above,
    // the destination is exclusively borrowed and does not alias the read-only operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() -> Result<(), String> {
        let (m, k, n) = (37, 53, 29);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let bt: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let av = MatRef::row_major(&a, m, k);
        let bv = MatRef::row_major(&bt, n, k).t();
        let want = naive(av, bv);
        let mut got = vec![0.0; m * n];
        matmul(&mut got, n, av, bv, false)?;
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        matmul(&mut got, n, av, bv, true)?;
        for (g, w) in got.iter().zip(&want) {
            assert!((g - 2.0 * w).abs() < 2e-4);
        }
        assert!(matmul(&mut got, n, av, av, false).is_err());
        Ok(())
    }
}
