//! The microstep count K: breadth-first shortest paths from the sensory to the output pool on
//! the binary support (edges pre -> post), `K = clip(round_half_even(median d), 3, 8)` over
//! every reachable pair with `0 < d <= 32` (upstream's `estimate_k_from_support`).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::csr::Csr;
use crate::error::{Error, Result};

/// Smallest and largest K.
pub const K_RANGE: (usize, usize) = (3, 8);
/// Longest path counted (4 x the largest K).
pub const MAX_PATH: usize = 32;

/// K and the distances it came from.
#[derive(Debug, Clone, Serialize)]
pub struct KEstimate {
    /// The microstep count.
    pub k: usize,
    /// Median sensory -> output distance over reachable pairs.
    pub median: f64,
    /// Pairs by distance.
    pub histogram: BTreeMap<usize, usize>,
    /// Sensory nodes that reach at least one output node.
    pub reaching_sources: usize,
    /// Sensory nodes that reach none (their names).
    pub isolated_sources: Vec<String>,
    /// Output nodes no sensory node reaches (their names).
    pub unreached_outputs: Vec<String>,
}

/// Shortest-path distances (in edges) from `source` along pre -> post, up to [`MAX_PATH`]
/// (`usize::MAX`: unreachable). `forward` is `Wᵀ` (row = pre, listing posts).
fn bfs(forward: &Csr, source: usize) -> Vec<usize> {
    let mut dist = vec![usize::MAX; forward.n];
    let mut queue = VecDeque::from([source]);
    dist[source] = 0;
    while let Some(u) = queue.pop_front() {
        if dist[u] >= MAX_PATH {
            continue;
        }
        for e in forward.row_ptr[u]..forward.row_ptr[u + 1] {
            let v = forward.col[e] as usize;
            if dist[v] == usize::MAX {
                dist[v] = dist[u] + 1;
                queue.push_back(v);
            }
        }
    }
    dist
}

/// Estimates K for `w` (`W[post, pre]`) from `sensory` to `output`; an error when no output
/// node is reachable.
pub fn estimate_k(
    w: &Csr,
    sensory: &[usize],
    output: &[usize],
    names: &[String],
) -> Result<KEstimate> {
    let forward = w.transpose();
    let mut histogram = BTreeMap::new();
    let mut all = Vec::new();
    let mut reached = vec![false; w.n];
    let mut isolated = Vec::new();
    for &s in sensory {
        let dist = bfs(&forward, s);
        let mut any = false;
        for &o in output {
            let d = dist[o];
            if d > 0 && d <= MAX_PATH {
                *histogram.entry(d).or_insert(0) += 1;
                all.push(d);
                reached[o] = true;
                any = true;
            }
        }
        if !any {
            isolated.push(names.get(s).cloned().unwrap_or_else(|| s.to_string()));
        }
    }
    if all.is_empty() {
        return Err(Error::invalid(
            "model.microsteps",
            "no output neuron is reachable from the sensory pool along the connectome's edges; check the pools or set microsteps to a number",
        ));
    }
    all.sort_unstable();
    let mid = all.len() / 2;
    let median = if all.len() % 2 == 1 {
        all[mid] as f64
    } else {
        (all[mid - 1] + all[mid]) as f64 / 2.0
    };
    let k = (round_half_even(median) as usize).clamp(K_RANGE.0, K_RANGE.1);
    Ok(KEstimate {
        k,
        median,
        histogram,
        reaching_sources: sensory.len() - isolated.len(),
        isolated_sources: isolated,
        unreached_outputs: output
            .iter()
            .filter(|&&o| !reached[o])
            .map(|&o| names.get(o).cloned().unwrap_or_else(|| o.to_string()))
            .collect(),
    })
}

/// Python's `round`: halves go to the even neighbour.
pub fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Csr {
        // i -> i + 1 (pre i, post i + 1)
        Csr::from_triplets(n, (0..n - 1).map(|i| (i + 1, i, 1.0)).collect())
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn k_is_the_clipped_median_distance() -> Result<()> {
        let w = chain(12);
        // distances 5 -> clipped to... 5 stays
        assert_eq!(estimate_k(&w, &[0], &[5], &names(12))?.k, 5);
        // 1 -> clipped up to 3
        assert_eq!(estimate_k(&w, &[0], &[1], &names(12))?.k, 3);
        // 11 -> clipped down to 8
        assert_eq!(estimate_k(&w, &[0], &[11], &names(12))?.k, 8);
        // distances {4, 5}: median 4.5 rounds half to even = 4
        let e = estimate_k(&w, &[0], &[4, 5], &names(12))?;
        assert_eq!((e.median, e.k), (4.5, 4));
        assert_eq!(e.histogram, BTreeMap::from([(4, 1), (5, 1)]));
        Ok(())
    }

    #[test]
    fn no_path_is_an_error_and_unreached_nodes_are_named() -> Result<()> {
        let w = chain(6);
        // edges go forward only: 5 cannot reach 0
        let err = estimate_k(&w, &[5], &[0], &names(6)).unwrap_err();
        assert!(
            err.to_string().contains("no output neuron is reachable"),
            "{err}"
        );
        let e = estimate_k(&w, &[0, 5], &[3, 4], &names(6))?;
        assert_eq!(e.isolated_sources, vec!["n5"]);
        assert_eq!(e.reaching_sources, 1);
        let e = estimate_k(&w, &[2], &[0, 4], &names(6))?;
        assert_eq!(e.unreached_outputs, vec!["n0"]);
        Ok(())
    }

    #[test]
    fn rounding_is_half_to_even() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(3.4), 3.0);
    }
}
