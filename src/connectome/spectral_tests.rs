//! Tests of the spectral radius: periodic, complex-dominant, block and random matrices.

use super::*;

/// The cycle permutation `i -> i + 1 (mod n)`.
fn cycle(n: usize) -> Csr {
    Csr::from_triplets(n, (0..n).map(|i| ((i + 1) % n, i, 1.0)).collect())
}

/// ρ from nalgebra's eigenvalues of a whole dense matrix (no blocks, no fallback).
fn reference(m: DMatrix<f64>) -> f64 {
    let eig = m.complex_eigenvalues();
    eig.iter().map(|z| z.norm()).fold(0.0, f64::max)
}

/// Seeded: `degree` entries per row in ±[0.5, 1.5) (negative with probability `negative`)
/// plus a Hamiltonian cycle, so the matrix is one strongly connected block.
fn random(n: usize, degree: usize, negative: f64, seed: u64) -> Csr {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = Vec::new();
    for post in 0..n {
        for _ in 0..degree {
            let (pre, v) = (rng.random_range(0..n), rng.random_range(0.5..1.5f32));
            let negate = rng.random_range(0.0..1.0) < negative;
            t.push((post, pre, if negate { -v } else { v }));
        }
        t.push(((post + 1) % n, post, rng.random_range(0.5..1.5)));
    }
    Csr::from_triplets(n, t)
}

/// Scales `w` to 0.95 and checks the re-measured radius; returns its method.
fn assert_scales(w: &Csr) -> String {
    let s = scale_to_radius(w, 0.95).expect("scales");
    let m = s.measured.value;
    assert!((m - 0.95).abs() <= 1e-4, "measured {m} after scaling");
    assert!((s.scale * s.raw.value - 0.95).abs() < 1e-12);
    s.measured.method
}

#[test]
fn cycle_permutations_have_radius_one() {
    let (d, p) = ("dense_eigenvalues", "power_shifted");
    for (n, method) in [(5, d), (4, d), (200, d), (2000, p)] {
        let r = spectral_radius(&cycle(n)).expect("radius");
        assert!((r.value - 1.0).abs() < 1e-9, "n = {n}: {r:?}");
        assert_eq!((r.method.as_str(), r.converged), (method, true), "n = {n}");
        assert_eq!(assert_scales(&cycle(n)), method);
    }
    // nalgebra's QR iteration stalls on an even cycle; the random similarity fixes that.
    let m = dense(&cycle(200));
    assert!(Schur::try_new(m.clone(), f64::EPSILON, 30 * 200 + 100).is_none());
    assert!((max_modulus(m).expect("fallback converges") - 1.0).abs() < 1e-9);
}

#[test]
fn plain_power_iteration_oscillates_on_a_periodic_matrix_where_the_shift_converges() {
    // W = [[0, A], [B, 0]] (A ~ 3 B) is bipartite: -ρ is an eigenvalue as well as ρ.
    let (half, n) = (600, 1200);
    let (a, b) = (random(half, 6, 0.0, 1).scaled(3.0), random(half, 6, 0.0, 2));
    let mut t: Vec<_> = a
        .triplets()
        .into_iter()
        .map(|(r, c, v)| (r, half + c, v))
        .collect();
    t.extend(b.triplets().into_iter().map(|(r, c, v)| (half + r, c, v)));
    let w = Csr::from_triplets(n, t);
    let rho = reference(dense(&a) * dense(&b)).sqrt(); // ρ(W)² = ρ(W²) = ρ(AB)
                                                       // Naive ‖Wx‖/‖x‖ from a random x keeps jumping between two values around ρ.
    let mut rng = StdRng::seed_from_u64(7);
    let mut x: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
    let (mut y, mut estimates) = (vec![0.0; n], Vec::new());
    for _ in 0..2000 {
        w.matvec(&x, &mut y);
        estimates.push(norm(&y) / norm(&x));
        x = normalized(y.clone());
    }
    let (e1, e2) = (estimates[1998], estimates[1999]);
    assert!(
        (e1 - e2).abs() > 0.1 * rho,
        "naive {e1} and {e2}, ρ = {rho}"
    );
    assert!(
        ((e1 * e2).sqrt() - rho).abs() < 1e-6 * rho,
        "geometric mean {e1} {e2}"
    );
    let r = spectral_radius(&w).expect("the shifted power iteration converges");
    assert_eq!(r.method, "power_shifted");
    assert!((r.value - rho).abs() < 1e-9 * rho, "{} vs {rho}", r.value);
    assert_eq!(assert_scales(&w), "power_shifted");
}

/// D: 700 rotation blocks `r [[0, -1], [1, 0]]` (one r = 1.7, the others at most 1.5) and
/// 50 symmetric blocks with eigenvalues ±0.64, 1500 nodes, as a dense f64 matrix.
fn rotation_blocks() -> DMatrix<f64> {
    let mut d = DMatrix::zeros(1500, 1500);
    for k in 0..700 {
        let r = if k == 123 {
            1.7
        } else {
            0.2 + 1.3 * k as f64 / 699.0
        };
        (d[(2 * k, 2 * k + 1)], d[(2 * k + 1, 2 * k)]) = (-r, r);
    }
    for i in (1400..1500).step_by(2) {
        (d[(i, i)], d[(i, i + 1)], d[(i + 1, i)], d[(i + 1, i + 1)]) = (0.5, 0.4, 0.4, -0.5);
    }
    d
}

/// The nonzero entries of `m` as an f32 CSR matrix.
fn to_csr(m: &DMatrix<f64>) -> Csr {
    let n = m.nrows();
    let t = (0..n * n).map(|k| (k / n, k % n, m[(k / n, k % n)] as f32));
    Csr::from_triplets(n, t.filter(|e| e.2 != 0.0).collect())
}

#[test]
fn rotation_blocks_have_complex_dominant_pairs() {
    let w = Csr::from_triplets(2, vec![(0, 1, -2.0), (1, 0, 2.0)]);
    let r = spectral_radius(&w).expect("radius");
    assert_eq!((r.value, r.method.as_str()), (2.0, "dense_eigenvalues"));
    assert_scales(&w);
    // Block diagonal: each 2-node block is its own strongly connected component.
    let w = to_csr(&rotation_blocks());
    let r = spectral_radius(&w).expect("radius");
    assert!((r.value - 1.7).abs() < 1e-6, "{r:?}");
    assert_eq!(r.method, "dense_eigenvalues");
    assert_scales(&w);
}

#[test]
fn mixed_rotation_blocks_take_the_arnoldi_path() {
    // G D Gᵀ, G = Givens rotations on the pairs (2k + 1, 2k + 2): D's eigenvalues, but one
    // strongly connected signed 1500-node block.
    let mut g = DMatrix::<f64>::identity(1500, 1500);
    let mut rng = StdRng::seed_from_u64(11);
    for i in (1..1499).step_by(2) {
        let (sin, cos) = rng.random_range(0.3..1.2f64).sin_cos();
        (g[(i, i)], g[(i, i + 1)], g[(i + 1, i)], g[(i + 1, i + 1)]) = (cos, -sin, sin, cos);
    }
    let w = to_csr(&(&g * rotation_blocks() * g.transpose()));
    assert_eq!(cyclic_blocks(&w).len(), 1);
    let r = spectral_radius(&w).expect("radius");
    assert_eq!(r.method, "arnoldi");
    assert!((r.value - 1.7).abs() < 1e-6, "{r:?}");
    assert_eq!(assert_scales(&w), "arnoldi");
}

#[test]
fn random_matrices_match_dense_eigenvalues() {
    let cases = [
        (50, 0.4, "dense_eigenvalues"),
        (1030, 0.0, "power_shifted"),
        (1030, 0.3, "arnoldi"),
    ];
    for (n, negative, method) in cases {
        let w = random(n, 10, negative, n as u64);
        let (r, rho) = (spectral_radius(&w).expect("radius"), reference(dense(&w)));
        assert_eq!(r.method, method);
        assert!(
            (r.value - rho).abs() <= 1e-6 * rho,
            "n = {n}: {} vs {rho}",
            r.value
        );
        assert_eq!(assert_scales(&w), method);
    }
}

#[test]
fn radius_is_the_largest_over_strongly_connected_blocks() {
    // A 3-cycle of weight 2, a chain 3 -> … -> 40 feeding it, a self-loop -3 and a zero one.
    let mut t = vec![
        (1, 0, 2.0),
        (2, 1, 2.0),
        (0, 2, 2.0),
        (41, 41, -3.0),
        (42, 42, 0.0),
    ];
    t.extend((3..40).map(|i| (i + 1, i, 5.0)));
    t.push((0, 40, 5.0));
    let w = Csr::from_triplets(43, t);
    assert_eq!(cyclic_blocks(&w), vec![vec![0, 1, 2], vec![41]]);
    let r = spectral_radius(&w).expect("radius");
    assert!((r.value - 3.0).abs() < 1e-12, "{r:?}");
}

#[test]
fn acyclic_matrices_bad_targets_and_bad_values_are_errors_when_scaling() {
    let chain = Csr::from_triplets(30, (0..29).map(|i| (i + 1, i, 2.0)).collect());
    let zero = |n| Csr::from_triplets(n, vec![]);
    for w in [chain, zero(5), zero(0)] {
        let r = spectral_radius(&w).expect("radius");
        let got = (r.value, r.method.as_str(), r.converged);
        assert_eq!(got, (0.0, "acyclic", true));
        let err = scale_to_radius(&w, 0.95).expect_err("radius 0 cannot be scaled");
        assert!(err.to_string().contains("spectral radius 0"), "{err}");
    }
    for target in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(scale_to_radius(&cycle(3), target).is_err(), "{target}");
    }
    let w = Csr::from_triplets(2, vec![(0, 1, f32::NAN), (1, 0, 1.0)]);
    assert!(spectral_radius(&w).is_err());
}

#[test]
fn all_moduli_come_largest_first() -> Result<()> {
    // a rotation pair of modulus 2 and a real eigenvalue -1
    let m = Csr::from_triplets(3, vec![(0, 1, -2.0), (1, 0, 2.0), (2, 2, -1.0)]);
    let moduli = eigen_moduli(&m)?;
    assert_eq!(moduli.len(), 3);
    for (got, want) in moduli.iter().zip([2.0, 2.0, 1.0]) {
        assert!((got - want).abs() < 1e-12, "{moduli:?}");
    }
    Ok(())
}
