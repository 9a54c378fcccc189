//! Tests of the `spike` kernels against naive reference loops.

use super::*;

/// Deterministic test data: a fraction `density` of non-zeros (multiples of 1/8, some 1.0).
fn sparse_data(n: usize, seed: u64, density: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let r = crate::encode::random_bits(seed, i as u64);
            if ((r & 0xFFFF) as f64) < density * 65536.0 {
                if r >> 63 == 1 {
                    1.0
                } else {
                    ((r >> 40) % 17) as f32 / 8.0 - 1.0
                }
            } else {
                0.0
            }
        })
        .collect()
}

fn dense_data(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| ((crate::encode::random_bits(seed, i as u64) >> 40) % 2049) as f32 / 1024.0 - 1.0)
        .collect()
}

/// `a·b` for row-major `[m, k]` and `[k, n]`, in f64.
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                out[i * n + j] += a[i * k + p] as f64 * b[p * n + j] as f64;
            }
        }
    }
    out
}

fn naive_t(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn compressed_rows_hold_every_non_zero_and_fall_back_when_dense() -> Result<(), String> {
    let (r, c) = (37, 53);
    let x = sparse_data(r * c, 1, 0.2);
    let s = SparseRows::from_dense(&x, r, c, 1.0)?.ok_or("dense")?;
    assert_eq!(s.nnz(), x.iter().filter(|&&v| v != 0.0).count());
    assert!(SparseRows::from_dense(&x, r, c, 0.05)?.is_none());
    assert!(SparseRows::from_dense(&x, r, c + 1, 1.0).is_err());
    // every entry of every row is where it should be, with its value; -0 is a zero, NaN is not
    let (r, c) = (5, 150);
    let mut x = sparse_data(r * c, 7, 0.3);
    x[3] = -0.0;
    x[c + 67] = f32::NAN;
    x[2 * c + 149] = 1.0;
    let s = SparseRows::from_dense(&x, r, c, 1.0)?.ok_or("dense")?;
    assert!(!s.is_binary());
    for i in 0..r {
        let (idx, val) = s.row(i);
        let want: Vec<u32> = (0..c as u32)
            .filter(|&j| x[i * c + j as usize] != 0.0)
            .collect();
        assert_eq!(idx, want.as_slice(), "row {i}");
        for (&j, &v) in idx.iter().zip(val) {
            let w = x[i * c + j as usize];
            assert!(v == w || (v.is_nan() && w.is_nan()));
        }
    }
    Ok(())
}

#[test]
fn spike_linear_matches_naive_products_sparse_and_dense() -> Result<(), String> {
    // odd sizes; widths that exercise every block size and the remainder
    // (spikes only, and general values)
    for ((r, k, n, density), binary) in [
        (29, 131, 517, 0.13),
        (64, 40, 10, 0.1),
        (7, 3, 1, 0.5),
        (50, 90, 33, 0.9),
        (2100, 19, 40, 0.1), // many rows
    ]
    .into_iter()
    .flat_map(|c| [(c, true), (c, false)])
    {
        let mut x = sparse_data(r * k, 2, density);
        if binary {
            x.iter_mut()
                .for_each(|v| *v = f32::from(u8::from(*v != 0.0)));
        }
        if let Some(s) = SparseRows::from_dense(&x, r, k, 1.0)? {
            assert_eq!(s.is_binary(), binary);
        }
        let w = dense_data(n * k, 3);
        let bias = dense_data(n, 4);
        let g = dense_data(r * n, 5);
        let lin = SpikeLinear {
            x: &x,
            rows: r,
            inputs: k,
            w: &w,
            outputs: n,
        };
        let what = format!("{r}x{k}x{n} at {density}, binary {binary}");
        let mut y = vec![f32::NAN; r * n];
        let sparse = lin.forward(Some(&bias), &mut y)?;
        assert_eq!(sparse.is_some(), density < MAX_DENSITY, "{what}");
        let mut want = naive(&x, &naive_t(&w, n, k), r, k, n);
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[i % n] as f64;
        }
        assert_close(&format!("y {what}"), &y, &want);
        lin.forward(None, &mut y)?;
        assert_close(
            &format!("y {what}"),
            &y,
            &naive(&x, &naive_t(&w, n, k), r, k, n),
        );
        let want_db: Vec<f64> = (0..n)
            .map(|j| (0..r).map(|i| g[i * n + j] as f64).sum())
            .collect();
        let want_dw = naive(&naive_t(&g, r, n), &x, n, r, k);
        for cached in [sparse.as_ref(), None] {
            let (mut dw, mut db) = (vec![f32::NAN; n * k], vec![f32::NAN; n]);
            lin.weight_grad(cached, &g, &mut dw, Some(&mut db))?;
            assert_close(&format!("dw {what}"), &dw, &want_dw);
            assert_close(&format!("db {what}"), &db, &want_db);
            let mut dw2 = vec![f32::NAN; n * k];
            lin.weight_grad(cached, &g, &mut dw2, None)?;
            assert_eq!(dw, dw2);
        }
        let mut dx = vec![f32::NAN; r * k];
        lin.input_grad(&g, &mut dx)?;
        assert_close(&format!("dx {what}"), &dx, &naive(&g, &w, r, n, k));
        let mut db = vec![f32::NAN; n];
        column_sums(&g, n, &mut db)?;
        assert_close(&format!("db {what}"), &db, &want_db);
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() -> Result<(), String> {
    let (r, k, n) = (300, 200, 150);
    let x = sparse_data(r * k, 6, 0.15);
    let (w, g) = (dense_data(n * k, 7), dense_data(r * n, 8));
    let lin = SpikeLinear {
        x: &x,
        rows: r,
        inputs: k,
        w: &w,
        outputs: n,
    };
    type Run = (Vec<f32>, Vec<f32>, Vec<f32>);
    let run = |threads: usize| -> Result<Run, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?;
        pool.install(|| {
            let (mut y, mut dw, mut db) = (vec![0.0; r * n], vec![0.0; n * k], vec![0.0; n]);
            let s = lin.forward(Some(&w[..n]), &mut y)?;
            lin.weight_grad(s.as_ref(), &g, &mut dw, Some(&mut db))?;
            Ok((y, dw, db))
        })
    };
    let one = run(1)?;
    assert_eq!(one, run(2)?);
    assert_eq!(one, run(5)?);
    Ok(())
}

#[test]
fn bad_shapes_are_errors() {
    let x = vec![0.0; 12];
    let lin = SpikeLinear {
        x: &x,
        rows: 3,
        inputs: 4,
        w: &[0.0; 8],
        outputs: 2,
    };
    assert!(lin.forward(None, &mut [0.0; 5]).is_err());
    assert!(lin.forward(Some(&[0.0; 3]), &mut [0.0; 6]).is_err());
    assert!(lin.forward(None, &mut [0.0; 6]).is_ok());
    assert!(SpikeLinear { rows: 4, ..lin }
        .forward(None, &mut [0.0; 8])
        .is_err());
    assert!(lin
        .weight_grad(None, &[0.0; 5], &mut [0.0; 8], None)
        .is_err());
    assert!(lin
        .weight_grad(None, &[0.0; 6], &mut [0.0; 8], Some(&mut [0.0; 3]))
        .is_err());
    assert!(lin.input_grad(&[0.0; 6], &mut [0.0; 11]).is_err());
    assert!(column_sums(&[0.0; 7], 2, &mut [0.0; 2]).is_err());
}
