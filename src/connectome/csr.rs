//! A square sparse matrix in compressed sparse rows, oriented `W[post, pre]`: row `i` lists the
//! presynaptic partners of neuron `i`, so `(W h)[post] = Σ_pre W[post, pre] h[pre]`.

use sha2::{Digest, Sha256};

/// `n x n` matrix in CSR form; columns within a row are strictly increasing (no duplicates).
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// Rows (= columns).
    pub n: usize,
    /// `row_ptr[i]..row_ptr[i + 1]` indexes row `i`'s entries; length `n + 1`.
    pub row_ptr: Vec<usize>,
    /// Column (presynaptic) index of each entry.
    pub col: Vec<u32>,
    /// Value of each entry.
    pub val: Vec<f32>,
}

/// One entry `(row = post, col = pre, value)`.
pub type Triplet = (usize, usize, f32);

impl Csr {
    /// Builds from `(post, pre, value)` triplets; duplicates are summed, explicit zeros kept.
    pub fn from_triplets(n: usize, mut triplets: Vec<Triplet>) -> Self {
        triplets.sort_by_key(|t| (t.0, t.1));
        let mut row_ptr = vec![0usize; n + 1];
        let (mut col, mut val): (Vec<u32>, Vec<f32>) = (Vec::new(), Vec::new());
        let mut last: Option<(usize, usize)> = None;
        for (r, c, v) in triplets {
            if last == Some((r, c)) {
                if let Some(x) = val.last_mut() {
                    *x += v;
                }
                continue;
            }
            last = Some((r, c));
            row_ptr[r + 1] += 1;
            col.push(c as u32);
            val.push(v);
        }
        for i in 0..n {
            row_ptr[i + 1] += row_ptr[i];
        }
        Csr {
            n,
            row_ptr,
            col,
            val,
        }
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.col.len()
    }

    /// `(post, pre, value)` of every entry, row by row.
    pub fn triplets(&self) -> Vec<Triplet> {
        let mut out = Vec::with_capacity(self.nnz());
        for r in 0..self.n {
            for e in self.row_ptr[r]..self.row_ptr[r + 1] {
                out.push((r, self.col[e] as usize, self.val[e]));
            }
        }
        out
    }

    /// The transpose (`Wᵀ[pre, post]`), also CSR: the backward pass's matrix.
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.n + 1];
        for &c in &self.col {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut col = vec![0u32; self.nnz()];
        let mut val = vec![0f32; self.nnz()];
        for r in 0..self.n {
            for e in self.row_ptr[r]..self.row_ptr[r + 1] {
                let c = self.col[e] as usize;
                col[next[c]] = r as u32;
                val[next[c]] = self.val[e];
                next[c] += 1;
            }
        }
        Csr {
            n: self.n,
            row_ptr: counts,
            col,
            val,
        }
    }

    /// Row-major dense copy `[n * n]` (small graphs and tests).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0f32; self.n * self.n];
        for (r, c, v) in self.triplets() {
            d[r * self.n + c] = v;
        }
        d
    }

    /// `y = W x`.
    pub fn matvec(&self, x: &[f64], y: &mut [f64]) {
        for (r, out) in y.iter_mut().enumerate().take(self.n) {
            *out = (self.row_ptr[r]..self.row_ptr[r + 1])
                .map(|e| f64::from(self.val[e]) * x[self.col[e] as usize])
                .sum();
        }
    }

    /// In-degree of each neuron (entries in its row: presynaptic partners).
    pub fn in_degree(&self) -> Vec<usize> {
        (0..self.n)
            .map(|r| self.row_ptr[r + 1] - self.row_ptr[r])
            .collect()
    }

    /// Out-degree of each neuron (entries in its column: postsynaptic partners).
    pub fn out_degree(&self) -> Vec<usize> {
        let mut d = vec![0usize; self.n];
        for &c in &self.col {
            d[c as usize] += 1;
        }
        d
    }

    /// Entries on the diagonal (autapses).
    pub fn self_loops(&self) -> usize {
        self.triplets().iter().filter(|(r, c, _)| r == c).count()
    }

    /// Sum of all values.
    pub fn total_weight(&self) -> f64 {
        self.val.iter().map(|&v| f64::from(v)).sum()
    }

    /// Whether every value is >= 0.
    pub fn nonnegative(&self) -> bool {
        self.val.iter().all(|&v| v >= 0.0)
    }

    /// Every value multiplied by `s`.
    pub fn scaled(&self, s: f64) -> Csr {
        Csr {
            val: self
                .val
                .iter()
                .map(|&v| (f64::from(v) * s) as f32)
                .collect(),
            ..self.clone()
        }
    }

    /// Whether both matrices have the same entries at the same places (values aside).
    pub fn same_support(&self, other: &Csr) -> bool {
        self.n == other.n && self.row_ptr == other.row_ptr && self.col == other.col
    }

    /// The values sorted (the weight multiset).
    pub fn weight_multiset(&self) -> Vec<f32> {
        let mut v = self.val.clone();
        v.sort_by(f32::total_cmp);
        v
    }

    /// SHA-256 (hex) of `n`, the row pointers, columns and value bits, little-endian: equal
    /// hashes mean byte-identical matrices.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update((self.n as u64).to_le_bytes());
        for &p in &self.row_ptr {
            h.update((p as u64).to_le_bytes());
        }
        for &c in &self.col {
            h.update(c.to_le_bytes());
        }
        for &v in &self.val {
            h.update(v.to_bits().to_le_bytes());
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_round_trip_and_duplicates_sum() {
        let m = Csr::from_triplets(3, vec![(2, 0, 1.0), (0, 1, 2.0), (2, 0, 3.0), (1, 1, 5.0)]);
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.triplets(), vec![(0, 1, 2.0), (1, 1, 5.0), (2, 0, 4.0)]);
        assert_eq!(m.in_degree(), vec![1, 1, 1]);
        assert_eq!(m.out_degree(), vec![1, 2, 0]);
        assert_eq!(m.self_loops(), 1);
        let t = m.transpose();
        assert_eq!(t.triplets(), vec![(0, 2, 4.0), (1, 0, 2.0), (1, 1, 5.0)]);
        assert_eq!(t.transpose(), m);
        let mut y = vec![0.0; 3];
        m.matvec(&[1.0, 10.0, 100.0], &mut y);
        assert_eq!(y, vec![20.0, 50.0, 4.0]);
        assert_eq!(m.hash(), m.clone().hash());
        assert_ne!(m.hash(), m.scaled(2.0).hash());
    }
}
