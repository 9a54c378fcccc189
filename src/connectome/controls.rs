//! Matched topology controls of a connectome matrix `W[post, pre]` (pathintegrationBPU's, plus a
//! strength-keeping degree shuffle), built from the unscaled primary so that the weight multiset
//! is preserved bit for bit, and the invariants that each control must keep, checked.
//!
//! An edge `pre -> post` is the CSR entry at row `post`, column `pre`. The caller rescales every
//! control to the target spectral radius afterwards.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::{index::sample, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::csr::{Csr, Triplet};
use crate::error::{Error, Result};

/// The config key that errors name.
const KEY: &str = "model.control";
/// Relative tolerance of the out-strength check (sums in f64 of the same f32 values).
const STRENGTH_TOL: f64 = 1e-9;

/// Which matrix the recurrent core uses: the connectome or a control built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// The connectome itself.
    #[default]
    Connectome,
    /// Same N, edge count and self-loop count; self-loops on distinct uniform nodes, the other
    /// edges distinct uniform off-diagonal pairs, the weights permuted over them.
    Random,
    /// Directed double-edge swaps `a->b, c->d => a->d, c->b` (self-loops fixed): exact in- and
    /// out-degrees; the weights are then permuted over all edges (upstream's behaviour).
    DegreeShuffle,
    /// The same swaps, each edge keeping its weight with its presynaptic neuron (`a->d` keeps
    /// `a->b`'s weight): exact degrees and out-strengths, no final permutation.
    DegreeShuffleStrength,
    /// The identical support with the weights permuted.
    WeightShuffle,
    /// W unchanged, but the caller resets the state h to 0 at every time step (the K microsteps
    /// still run through W within a step): only memory across time steps is removed.
    NoRecurrence,
}

impl ControlKind {
    /// The snake_case name (as in configs and file names).
    pub fn name(self) -> &'static str {
        match self {
            ControlKind::Connectome => "connectome",
            ControlKind::Random => "random",
            ControlKind::DegreeShuffle => "degree_shuffle",
            ControlKind::DegreeShuffleStrength => "degree_shuffle_strength",
            ControlKind::WeightShuffle => "weight_shuffle",
            ControlKind::NoRecurrence => "no_recurrence",
        }
    }

    /// Every kind, the connectome first.
    pub fn all() -> [ControlKind; 6] {
        [
            ControlKind::Connectome,
            ControlKind::Random,
            ControlKind::DegreeShuffle,
            ControlKind::DegreeShuffleStrength,
            ControlKind::WeightShuffle,
            ControlKind::NoRecurrence,
        ]
    }

    /// Added to the run seed to seed the control's generator (upstream's 10k / 20k / 30k).
    pub fn seed_offset(self) -> u64 {
        match self {
            ControlKind::Random => 10_000,
            ControlKind::DegreeShuffle => 20_000,
            ControlKind::WeightShuffle => 30_000,
            ControlKind::DegreeShuffleStrength => 40_000,
            ControlKind::Connectome | ControlKind::NoRecurrence => 0,
        }
    }

    /// Whether this is a rewiring control (a different matrix matched to the connectome).
    pub fn is_matched(self) -> bool {
        matches!(
            self,
            ControlKind::Random
                | ControlKind::DegreeShuffle
                | ControlKind::DegreeShuffleStrength
                | ControlKind::WeightShuffle
        )
    }
}

/// A control matrix with how it was built.
#[derive(Debug, Clone, Serialize)]
pub struct Control {
    /// The kind.
    pub kind: ControlKind,
    /// The generator's seed: `kind.seed_offset() + run seed`.
    pub seed: u64,
    /// The control matrix (unscaled).
    #[serde(skip)]
    pub matrix: Csr,
    /// Double-edge swaps attempted (degree shuffles; 0 otherwise).
    pub swaps_attempted: usize,
    /// Double-edge swaps accepted.
    pub swaps_accepted: usize,
    /// Fraction of the primary's edges `(post, pre)` that are not edges of the control.
    pub rewired_fraction: f64,
    /// `matrix.hash()`: equal hashes mean byte-identical matrices.
    pub hash: String,
}

/// One invariant of a control against its primary.
#[derive(Debug, Clone, Serialize)]
pub struct InvariantCheck {
    /// What is compared (`n`, `edge_count`, `weight_multiset`, …).
    pub name: String,
    /// Whether it holds.
    pub passed: bool,
    /// The numbers compared (`3638 = 3638`).
    pub detail: String,
}

/// Builds the control `kind` of `primary` (unscaled) for run seed `run_seed`.
pub fn build_control(primary: &Csr, kind: ControlKind, run_seed: u64) -> Result<Control> {
    well_formed(primary).map_err(|m| Error::invalid(KEY, format!("primary matrix: {m}")))?;
    let seed = kind.seed_offset().wrapping_add(run_seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let (matrix, swaps_attempted, swaps_accepted) = match kind {
        ControlKind::Connectome | ControlKind::NoRecurrence => (primary.clone(), 0, 0),
        ControlKind::WeightShuffle => {
            let mut val = primary.val.clone();
            val.shuffle(&mut rng);
            (
                Csr {
                    val,
                    ..primary.clone()
                },
                0,
                0,
            )
        }
        ControlKind::Random => (random_graph(primary, &mut rng)?, 0, 0),
        ControlKind::DegreeShuffle => double_edge_swaps(primary, &mut rng, false),
        ControlKind::DegreeShuffleStrength => double_edge_swaps(primary, &mut rng, true),
    };
    let kept: HashSet<(usize, usize)> = edges_of(&matrix).collect();
    let lost = edges_of(primary).filter(|e| !kept.contains(e)).count();
    Ok(Control {
        kind,
        seed,
        hash: matrix.hash(),
        matrix,
        swaps_attempted,
        swaps_accepted,
        rewired_fraction: lost as f64 / primary.nnz().max(1) as f64,
    })
}

/// The `(post, pre)` pairs of `w`'s entries.
fn edges_of(w: &Csr) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..w.n)
        .flat_map(move |r| (w.row_ptr[r]..w.row_ptr[r + 1]).map(move |e| (r, w.col[e] as usize)))
}

/// Upstream's `random`: the self-loops on distinct uniform nodes, the other edges distinct
/// uniform off-diagonal pairs (code `c -> post = c / (n-1)`, `pre = c % (n-1)`, `+1` if
/// `pre >= post`), then the primary's weights in random order.
fn random_graph(primary: &Csr, rng: &mut StdRng) -> Result<Csr> {
    let n = primary.n;
    let loops = primary.self_loops();
    let others = primary.nnz() - loops;
    let pairs = n.saturating_mul(n.saturating_sub(1));
    if others > pairs || loops > n {
        return Err(Error::invalid(
            KEY,
            format!(
                "random control: {others} non-self edges and {loops} self-loops do not fit in \
                 {n} nodes ({pairs} off-diagonal pairs)"
            ),
        ));
    }
    let loop_nodes = sample(rng, n, loops).into_vec();
    let codes = if others > pairs / 3 {
        sample(rng, pairs, others).into_vec()
    } else {
        let (mut seen, mut codes) = (HashSet::with_capacity(others), Vec::with_capacity(others));
        while codes.len() < others {
            let c = rng.random_range(0..pairs);
            if seen.insert(c) {
                codes.push(c);
            }
        }
        codes
    };
    let mut weights = primary.val.clone();
    weights.shuffle(rng);
    let positions = loop_nodes
        .into_iter()
        .map(|i| (i, i))
        .chain(codes.into_iter().map(|c| {
            let (post, pre) = (c / (n - 1), c % (n - 1));
            (post, if pre >= post { pre + 1 } else { pre })
        }));
    let triplets = positions
        .zip(weights)
        .map(|((post, pre), v)| (post, pre, v))
        .collect();
    Ok(Csr::from_triplets(n, triplets))
}

/// Upstream's directed double-edge swaps over the non-self edges, `max(10 E, 100)` attempts:
/// two distinct edges `a->b, c->d` with `a, b, c, d` distinct become `a->d, c->b` unless either
/// exists. `keep_strength`: each edge keeps its weight (with its presynaptic neuron); otherwise
/// the weights are permuted over all edges at the end. Returns the matrix, attempts, accepted.
fn double_edge_swaps(primary: &Csr, rng: &mut StdRng, keep_strength: bool) -> (Csr, usize, usize) {
    let (loops, mut edges): (Vec<Triplet>, Vec<Triplet>) =
        primary.triplets().into_iter().partition(|t| t.0 == t.1);
    let mut present: HashSet<(usize, usize)> = edges.iter().map(|t| (t.0, t.1)).collect();
    let m = edges.len();
    let attempts = if m < 2 { 0 } else { (10 * m).max(100) };
    let mut accepted = 0;
    for _ in 0..attempts {
        let i = rng.random_range(0..m);
        let j = rng.random_range(0..m - 1);
        let j = if j >= i { j + 1 } else { j };
        // Triplets are (post, pre): edge i is a -> b with a = pre, b = post.
        let ((b, a, w1), (d, c, w2)) = (edges[i], edges[j]);
        if a == c || a == d || b == c || b == d {
            continue;
        }
        if present.contains(&(d, a)) || present.contains(&(b, c)) {
            continue;
        }
        present.remove(&(b, a));
        present.remove(&(d, c));
        present.insert((d, a));
        present.insert((b, c));
        edges[i] = (d, a, w1);
        edges[j] = (b, c, w2);
        accepted += 1;
    }
    let mut all: Vec<Triplet> = loops.into_iter().chain(edges).collect();
    if !keep_strength {
        let mut weights: Vec<f32> = all.iter().map(|t| t.2).collect();
        weights.shuffle(rng);
        all.iter_mut().zip(weights).for_each(|(t, v)| t.2 = v);
    }
    (Csr::from_triplets(primary.n, all), attempts, accepted)
}

/// Checks `control` against `primary`: N, edge count, self-loops, the exact weight multiset,
/// the recorded hash; per kind also degrees, out-strengths, the support and the values.
pub fn check_invariants(primary: &Csr, control: &Control) -> Vec<InvariantCheck> {
    let c = &control.matrix;
    let formed = [("primary", primary), ("control", c)].map(|(what, w)| match well_formed(w) {
        Ok(()) => check("well_formed", true, format!("{what}: valid CSR")),
        Err(m) => check("well_formed", false, format!("{what}: {m}")),
    });
    if formed.iter().any(|f| !f.passed) {
        return formed.to_vec();
    }
    let mut out = vec![
        equal("n", primary.n, c.n),
        equal("edge_count", primary.nnz(), c.nnz()),
        equal("self_loops", primary.self_loops(), c.self_loops()),
        multiset(primary, c),
        check(
            "hash",
            control.hash == c.hash(),
            format!("recorded {} vs matrix {}", control.hash, c.hash()),
        ),
    ];
    let kind = control.kind;
    if matches!(
        kind,
        ControlKind::DegreeShuffle | ControlKind::DegreeShuffleStrength
    ) {
        out.push(lists("in_degree", &primary.in_degree(), &c.in_degree()));
        out.push(lists("out_degree", &primary.out_degree(), &c.out_degree()));
        let loops = |w: &Csr| edges_of(w).filter(|e| e.0 == e.1).collect::<Vec<_>>();
        let same = loops(primary) == loops(c);
        out.push(check(
            "self_loops_fixed",
            same,
            format!("same self-loop nodes: {same}"),
        ));
    }
    if kind == ControlKind::DegreeShuffleStrength {
        out.push(out_strength(primary, c));
    }
    if matches!(
        kind,
        ControlKind::WeightShuffle | ControlKind::Connectome | ControlKind::NoRecurrence
    ) {
        let same = primary.same_support(c);
        out.push(check("support", same, format!("identical support: {same}")));
    }
    if matches!(kind, ControlKind::Connectome | ControlKind::NoRecurrence) {
        let same = primary.same_support(c) && bits(&primary.val) == bits(&c.val);
        out.push(check("values", same, format!("identical values: {same}")));
    }
    out
}

fn check(name: &str, passed: bool, detail: String) -> InvariantCheck {
    InvariantCheck {
        name: name.into(),
        passed,
        detail,
    }
}

fn equal(name: &str, a: usize, b: usize) -> InvariantCheck {
    let op = if a == b { "=" } else { "!=" };
    check(name, a == b, format!("{a} {op} {b}"))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The sorted values compared bit for bit.
fn multiset(primary: &Csr, control: &Csr) -> InvariantCheck {
    let (a, b) = (primary.weight_multiset(), control.weight_multiset());
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x.to_bits() != y.to_bits());
    let detail = match (a.len() == b.len(), first) {
        (true, None) => format!("{} sorted values bitwise identical", a.len()),
        (false, _) => format!("{} values vs {}", a.len(), b.len()),
        (true, Some(k)) => format!("sorted value {k} of {}: {} vs {}", a.len(), a[k], b[k]),
    };
    check(
        "weight_multiset",
        a.len() == b.len() && first.is_none(),
        detail,
    )
}

/// Per-neuron lists compared exactly.
fn lists(name: &str, a: &[usize], b: &[usize]) -> InvariantCheck {
    let differ: Vec<usize> = (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .collect();
    let detail = match differ.first() {
        None => format!("all {} neurons equal", a.len()),
        Some(&i) => format!(
            "{} neurons differ, first neuron {i}: {:?} vs {:?}",
            differ.len(),
            a.get(i),
            b.get(i)
        ),
    };
    check(name, differ.is_empty(), detail)
}

/// Per-presynaptic sums of the weights (f64) equal within [`STRENGTH_TOL`] relative.
fn out_strength(primary: &Csr, control: &Csr) -> InvariantCheck {
    let strength = |w: &Csr| {
        let mut s = vec![0.0f64; w.n];
        for (&c, &v) in w.col.iter().zip(&w.val) {
            s[c as usize] += f64::from(v);
        }
        s
    };
    let (a, b) = (strength(primary), strength(control));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(f64::MIN_POSITIVE))
        .fold(0.0f64, f64::max);
    let passed = a.len() == b.len() && worst <= STRENGTH_TOL;
    let detail = format!("largest relative difference {worst:e} (tolerance {STRENGTH_TOL:e})");
    check("out_strength", passed, detail)
}

/// Whether `w` is a valid CSR matrix: `n + 1` nondecreasing row pointers ending at the entry
/// count, columns below `n` and strictly increasing within a row, one value per entry.
fn well_formed(w: &Csr) -> std::result::Result<(), String> {
    if w.row_ptr.len() != w.n + 1 || w.row_ptr.first() != Some(&0) {
        return Err(format!("{} row pointers for n = {}", w.row_ptr.len(), w.n));
    }
    if w.row_ptr.last() != Some(&w.col.len()) || w.col.len() != w.val.len() {
        return Err(format!(
            "last row pointer {:?}, {} columns, {} values",
            w.row_ptr.last(),
            w.col.len(),
            w.val.len()
        ));
    }
    for r in 0..w.n {
        let (start, end) = (w.row_ptr[r], w.row_ptr[r + 1]);
        if start > end || end > w.col.len() {
            return Err(format!("row {r}: pointers {start}..{end}"));
        }
        let row = &w.col[start..end];
        if row.iter().any(|&c| c as usize >= w.n) || row.windows(2).any(|p| p[0] >= p[1]) {
            return Err(format!(
                "row {r}: columns {row:?} not increasing below {}",
                w.n
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded directed graph: n = 60, 394 distinct non-self edges and 6 self-loops, integer
    /// weights 1..=20.
    fn primary(seed: u64) -> Csr {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pairs = HashSet::new();
        while pairs.len() < 394 {
            let (post, pre) = (rng.random_range(0..60), rng.random_range(0..60));
            if post != pre {
                pairs.insert((post, pre));
            }
        }
        let mut pairs: Vec<(usize, usize)> = pairs.into_iter().collect();
        pairs.sort_unstable();
        pairs.extend(sample(&mut rng, 60, 6).into_iter().map(|i| (i, i)));
        let t = pairs.into_iter();
        let t = t
            .map(|(r, c)| (r, c, rng.random_range(1..=20) as f32))
            .collect();
        Csr::from_triplets(60, t)
    }

    fn failures(checks: &[InvariantCheck]) -> Vec<&InvariantCheck> {
        checks.iter().filter(|c| !c.passed).collect()
    }

    #[test]
    fn kinds_names_offsets_and_serde() {
        let offsets = ControlKind::all().map(|k| (k.name(), k.seed_offset(), k.is_matched()));
        assert_eq!(
            offsets,
            [
                ("connectome", 0, false),
                ("random", 10_000, true),
                ("degree_shuffle", 20_000, true),
                ("degree_shuffle_strength", 40_000, true),
                ("weight_shuffle", 30_000, true),
                ("no_recurrence", 0, false),
            ]
        );
        for k in ControlKind::all() {
            let json = serde_json::to_string(&k).expect("serialises");
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(
                serde_json::from_str::<ControlKind>(&json).expect("parses"),
                k
            );
        }
        assert_eq!(ControlKind::default(), ControlKind::Connectome);
    }

    #[test]
    fn every_control_keeps_its_invariants_and_is_reproducible() {
        let p = primary(1);
        assert_eq!((p.n, p.nnz(), p.self_loops()), (60, 400, 6));
        for kind in ControlKind::all() {
            for seed in 0..5 {
                let c = build_control(&p, kind, seed).expect("builds");
                let checks = check_invariants(&p, &c);
                assert!(failures(&checks).is_empty(), "{kind:?} {seed}: {checks:?}");
                assert!(checks.len() >= 5);
                assert_eq!(c.seed, kind.seed_offset() + seed);
                let again = build_control(&p, kind, seed).expect("builds");
                assert_eq!((&again.hash, &again.matrix), (&c.hash, &c.matrix));
                let other = build_control(&p, kind, seed + 1).expect("builds");
                assert_eq!(kind.is_matched(), other.hash != c.hash, "{kind:?} {seed}");
            }
        }
    }

    #[test]
    fn degree_shuffles_rewire_most_edges() {
        let p = primary(2);
        for kind in [
            ControlKind::DegreeShuffle,
            ControlKind::DegreeShuffleStrength,
        ] {
            let c = build_control(&p, kind, 0).expect("builds");
            assert_eq!(c.swaps_attempted, 3940);
            assert!(c.swaps_accepted > 1000, "{kind:?}: {}", c.swaps_accepted);
            assert!(c.rewired_fraction > 0.5, "{kind:?}: {}", c.rewired_fraction);
            let checks = check_invariants(&p, &c);
            let names: Vec<&str> = checks.iter().map(|x| x.name.as_str()).collect();
            assert!(names.contains(&"in_degree") && names.contains(&"out_degree"));
            assert_eq!(
                kind == ControlKind::DegreeShuffleStrength,
                names.contains(&"out_strength")
            );
        }
        let w = build_control(&p, ControlKind::WeightShuffle, 0).expect("builds");
        assert_eq!((w.rewired_fraction, w.matrix.same_support(&p)), (0.0, true));
        assert_ne!(w.matrix.val, p.val);
    }

    #[test]
    fn random_control_has_distinct_pairs_and_the_self_loop_count() {
        let p = primary(3);
        for seed in 0..5 {
            let c = build_control(&p, ControlKind::Random, seed).expect("builds");
            let pairs: HashSet<(usize, usize)> = edges_of(&c.matrix).collect();
            assert_eq!(
                (pairs.len(), c.matrix.nnz(), c.matrix.self_loops()),
                (400, 400, 6)
            );
            assert!(c.rewired_fraction > 0.8, "{}", c.rewired_fraction);
        }
        // A dense graph takes the sampling branch (more than a third of the pairs).
        let full = (0..10).flat_map(|r| (0..10).map(move |c| (r, c, (r + c) as f32)));
        let dense = Csr::from_triplets(10, full.filter(|t| (t.0 + t.1) % 4 != 0).collect());
        let c = build_control(&dense, ControlKind::Random, 0).expect("builds");
        assert!(failures(&check_invariants(&dense, &c)).is_empty());
    }

    #[test]
    fn broken_controls_fail_their_checks() {
        let p = primary(4);
        let failed = |c: &Control| -> Vec<String> {
            failures(&check_invariants(&p, c))
                .iter()
                .map(|f| f.name.clone())
                .collect()
        };
        let mut c = build_control(&p, ControlKind::WeightShuffle, 0).expect("builds");
        c.matrix.val[7] += 1.0;
        c.hash = c.matrix.hash();
        assert_eq!(failed(&c), ["weight_multiset"]);
        // Move one edge of a degree shuffle to another presynaptic neuron.
        let mut c = build_control(&p, ControlKind::DegreeShuffle, 0).expect("builds");
        let mut t = c.matrix.triplets();
        let k = t.iter().position(|e| e.0 != e.1).expect("an edge");
        let free =
            (0..60).find(|&pre| pre != t[k].0 && !t.iter().any(|e| (e.0, e.1) == (t[k].0, pre)));
        t[k].1 = free.expect("a free presynaptic neuron");
        c.matrix = Csr::from_triplets(60, t);
        c.hash = c.matrix.hash();
        assert_eq!(failed(&c), ["out_degree"]);
        // The connectome with its values permuted, a stale hash, a malformed matrix.
        let mut c = build_control(&p, ControlKind::Connectome, 0).expect("builds");
        c.matrix.val.reverse();
        assert_eq!(failed(&c), ["hash", "values"]);
        c.matrix.col[0] = 99;
        let checks = check_invariants(&p, &c);
        assert_eq!(failures(&checks).len(), 1);
        assert!(checks[1].detail.contains("row 0"), "{checks:?}");
        assert!(build_control(&c.matrix, ControlKind::Random, 0).is_err());
    }
}
