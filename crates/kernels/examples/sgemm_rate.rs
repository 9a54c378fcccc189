//! GFLOP/s of the packed product on the recurrent layers' shapes:
//! `cargo run --release -p autoresearch-kernels --example sgemm_rate`.

use std::time::Instant;

use autoresearch_kernels::gemm::MatRef;
use autoresearch_kernels::sgemm::sgemm;

fn rate(m: usize, k: usize, n: usize, b_transposed: bool, parallel: bool) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    let bm = if b_transposed {
        MatRef::row_major(&b, n, k).t()
    } else {
        MatRef::row_major(&b, k, n)
    };
    let reps = (2e9 / (2.0 * (m * k * n) as f64)).max(3.0) as usize;
    let run = |c: &mut [f32]| {
        for _ in 0..reps {
            sgemm(c, n, MatRef::row_major(&a, m, k), bm, false, parallel).unwrap_or(());
        }
    };
    run(&mut c);
    let t = Instant::now();
    run(&mut c);
    2.0 * (m * k * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    for (m, k, n) in [
        (128, 256, 1024),
        (128, 1024, 256),
        (3584, 256, 1024),
        (1024, 3584, 256),
        (128, 256, 256),
    ] {
        for bt in [false, true] {
            println!(
                "{m}x{k}x{n} b_t={bt}: 1 thread {:.1} GFLOP/s, pool {:.1} GFLOP/s",
                rate(m, k, n, bt, false),
                rate(m, k, n, bt, true)
            );
        }
    }
}
