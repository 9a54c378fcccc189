//! Reads a connectome from an edge table and a cell table into `W[post, pre]`: names
//! normalised, nodes filtered by the cell table, gap junctions symmetrised by policy (never
//! doubled), signs from a transmitter table under upstream's coverage rule.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::csr::{Csr, Triplet};
use crate::config::{ConnectomeConfig, GapPolicy, NameNormaliser, SignPolicy, Unlisted};
use crate::data::DataSearch;
use crate::error::{Error, Result};

/// Type given to nodes the cell table does not list (`nodes.unlisted: keep`).
pub const UNLISTED_TYPE: &str = "unlisted";

/// A loaded connectome: node names and types, and the unscaled primary matrix.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Node names (normalised), in matrix order (sorted).
    pub names: Vec<String>,
    /// Cell type of each node.
    pub types: Vec<String>,
    /// The unscaled primary matrix `W[post, pre]` (chemical + gap junctions, signed if chosen).
    pub matrix: Csr,
    /// How it was read and what it holds.
    pub meta: GraphMeta,
}

/// What loading did, for `graph.json` and the validation reports.
#[derive(Debug, Clone, Serialize)]
pub struct GraphMeta {
    /// The folder the tables were read from.
    pub folder: PathBuf,
    /// `W[post, pre]`.
    pub orientation: String,
    /// Nodes.
    pub n: usize,
    /// Nonzero entries of the primary matrix.
    pub edges: usize,
    /// Diagonal entries of the primary matrix.
    pub self_loops: usize,
    /// Sum of the primary matrix's absolute values.
    pub total_weight: f64,
    /// Chemical entries (directed pairs) among the kept nodes.
    pub chemical_edges: usize,
    /// Chemical synapses among the kept nodes.
    pub chemical_weight: f64,
    /// Gap-junction policy.
    pub gap_policy: GapPolicy,
    /// Directed gap-junction entries after symmetrising (0 with policy `none`).
    pub gap_entries: usize,
    /// Unordered gap pairs whose two directions differed or lacked a partner.
    pub gap_asymmetric_pairs: usize,
    /// Names changed by the normaliser (`AS01 -> AS1`).
    pub renamed: usize,
    /// Nodes dropped because the cell table does not list them.
    pub dropped_unlisted: Vec<String>,
    /// Nodes dropped by type, counted per type.
    pub dropped_by_type: BTreeMap<String, usize>,
    /// Whether the primary matrix is signed.
    pub signed: bool,
    /// Share of the weight whose presynaptic neuron has a sign label.
    pub sign_coverage: f64,
    /// The sign policy applied.
    pub sign_policy: SignPolicy,
}

/// Finds the folder holding the connectome's two tables; the error lists every place looked.
pub fn locate(cfg: &ConnectomeConfig) -> Result<PathBuf> {
    let files = [cfg.edges.file.as_str(), cfg.cells.file.as_str()];
    let holds = |dir: &Path| files.iter().all(|f| dir.join(f).is_file());
    if let Some(root) = &cfg.root {
        return if holds(root) {
            Ok(root.clone())
        } else {
            Err(Error::invalid(
                "model.connectome.root",
                format!(
                    "{} does not hold {} and {}",
                    root.display(),
                    files[0],
                    files[1]
                ),
            ))
        };
    }
    let search = DataSearch::local(None);
    let sub = Path::new("connectomes").join(&cfg.name);
    let mut looked = Vec::new();
    for (what, dir) in search.candidates(&sub) {
        if holds(&dir) {
            return Ok(dir);
        }
        looked.push(format!("{what} {}", dir.display()));
    }
    Err(Error::DataNotFound {
        dataset: format!("connectome `{}` ({}, {})", cfg.name, files[0], files[1]),
        looked: format!(
            "{}; set model.connectome.root to the folder holding them",
            looked.join("; ")
        ),
    })
}

/// Loads and builds the graph `cfg` describes.
pub fn load(cfg: &ConnectomeConfig) -> Result<Graph> {
    let folder = locate(cfg)?;
    let cells = read_cells(&folder, cfg)?;
    let edges = read_edges(&folder, cfg)?;
    build(cfg, folder, &cells, &edges)
}

/// One row of the edge table, names normalised.
#[derive(Debug, Clone)]
pub struct EdgeRow {
    /// Presynaptic name.
    pub pre: String,
    /// Postsynaptic name.
    pub post: String,
    /// Weight (synapse count).
    pub weight: f64,
    /// Whether it is a gap junction.
    pub electrical: bool,
}

/// Builds the graph from rows already read (the loader's logic, testable without files).
pub fn build(
    cfg: &ConnectomeConfig,
    folder: PathBuf,
    cells: &HashMap<String, String>,
    edges: &[EdgeRow],
) -> Result<Graph> {
    let renamed = edges
        .iter()
        .flat_map(|e| [&e.pre, &e.post])
        .filter(|n| normalise(cfg.normalise, n) != **n)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    let mut dropped_unlisted = std::collections::BTreeSet::new();
    let mut dropped_by_type: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for e in edges {
        for raw in [&e.pre, &e.post] {
            let name = normalise(cfg.normalise, raw);
            let ty = match cells.get(&name) {
                Some(t) => t.clone(),
                None => match cfg.nodes.unlisted {
                    Unlisted::Error | Unlisted::Drop => {
                        dropped_unlisted.insert(name);
                        continue;
                    }
                    Unlisted::Keep => UNLISTED_TYPE.to_string(),
                },
            };
            if cfg.nodes.exclude_types.contains(&ty) {
                dropped_by_type.entry(ty).or_default().insert(name);
            } else {
                kept.insert(name, ty);
            }
        }
    }
    if cfg.nodes.unlisted == Unlisted::Error && !dropped_unlisted.is_empty() {
        let first: Vec<&str> = dropped_unlisted
            .iter()
            .take(12)
            .map(String::as_str)
            .collect();
        return Err(Error::invalid(
            "model.connectome.nodes.unlisted",
            format!(
                "{} nodes of {} are not in {}: {}{} (set unlisted: drop or keep, or a name normaliser)",
                dropped_unlisted.len(),
                cfg.edges.file,
                cfg.cells.file,
                first.join(", "),
                if dropped_unlisted.len() > first.len() { ", ..." } else { "" }
            ),
        ));
    }
    let names: Vec<String> = kept.keys().cloned().collect();
    let types: Vec<String> = kept.values().cloned().collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let n = names.len();
    if n == 0 {
        return Err(Error::invalid(
            "model.connectome.nodes",
            "no node is left after the filter",
        ));
    }
    let mut chem: Vec<Triplet> = Vec::new();
    let mut gap: HashMap<(usize, usize), f64> = HashMap::new();
    for e in edges {
        let (pre, post) = (
            normalise(cfg.normalise, &e.pre),
            normalise(cfg.normalise, &e.post),
        );
        let (Some(&i), Some(&j)) = (index.get(pre.as_str()), index.get(post.as_str())) else {
            continue;
        };
        if e.electrical {
            *gap.entry((j, i)).or_default() += e.weight;
        } else {
            chem.push((j, i, e.weight as f32));
        }
    }
    let chemical = Csr::from_triplets(n, chem);
    let (gap_triplets, asymmetric) = symmetrise(&gap, cfg.gap_junctions.policy);
    let gap_entries = gap_triplets.len();
    let factor = cfg.gap_junctions.factor;
    let mut all = chemical.triplets();
    all.extend(
        gap_triplets
            .into_iter()
            .map(|(r, c, v)| (r, c, (f64::from(v) * factor) as f32)),
    );
    let unsigned = Csr::from_triplets(n, all);
    let (matrix, signed, coverage) = apply_signs(cfg, &folder, &names, unsigned)?;
    let meta = GraphMeta {
        folder,
        orientation: "W[post, pre]".into(),
        n,
        edges: matrix.nnz(),
        self_loops: matrix.self_loops(),
        total_weight: matrix.val.iter().map(|v| f64::from(v.abs())).sum(),
        chemical_edges: chemical.nnz(),
        chemical_weight: chemical.total_weight(),
        gap_policy: cfg.gap_junctions.policy,
        gap_entries,
        gap_asymmetric_pairs: asymmetric,
        renamed,
        dropped_unlisted: dropped_unlisted.into_iter().collect(),
        dropped_by_type: dropped_by_type
            .into_iter()
            .map(|(t, s)| (t, s.len()))
            .collect(),
        signed,
        sign_coverage: coverage,
        sign_policy: cfg.signs.policy,
    };
    Ok(Graph {
        names,
        types,
        matrix,
        meta,
    })
}

/// Applies a name normaliser.
pub fn normalise(how: NameNormaliser, name: &str) -> String {
    let name = name.trim();
    match how {
        NameNormaliser::None => name.to_string(),
        NameNormaliser::StripZeroPadding => {
            let b = name.as_bytes();
            let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
            let padded = letters > 0
                && b.len() == letters + 2
                && b[letters] == b'0'
                && b[letters + 1].is_ascii_digit();
            if padded {
                format!("{}{}", &name[..letters], &name[letters + 1..])
            } else {
                name.to_string()
            }
        }
    }
}

/// Symmetric gap entries `(post, pre, w)` from directed sums, and the count of unordered pairs
/// whose directions disagreed.
fn symmetrise(gap: &HashMap<(usize, usize), f64>, policy: GapPolicy) -> (Vec<Triplet>, usize) {
    if policy == GapPolicy::None {
        return (Vec::new(), 0);
    }
    let mut pairs: BTreeMap<(usize, usize), (f64, f64)> = BTreeMap::new();
    for (&(a, b), &w) in gap {
        let key = (a.min(b), a.max(b));
        let slot = pairs.entry(key).or_insert((0.0, 0.0));
        if a <= b {
            slot.0 += w;
        } else {
            slot.1 += w;
        }
    }
    let mut out = Vec::new();
    let mut asymmetric = 0;
    for (&(a, b), &(ab, ba)) in &pairs {
        if a == b {
            out.push((a, a, (ab + ba) as f32));
            continue;
        }
        if ab != ba {
            asymmetric += 1;
        }
        let w = match policy {
            GapPolicy::SymmetricMax => ab.max(ba),
            _ => (ab + ba) / 2.0,
        };
        out.push((a, b, w as f32));
        out.push((b, a, w as f32));
    }
    (out, asymmetric)
}

/// Signs the matrix per presynaptic column when the policy says so; returns it, whether it
/// is signed, and the labelled share of the weight.
fn apply_signs(
    cfg: &ConnectomeConfig,
    folder: &Path,
    names: &[String],
    unsigned: Csr,
) -> Result<(Csr, bool, f64)> {
    let signs = match &cfg.signs.table {
        Some(file) => read_signs(&folder.join(file), cfg, names)?,
        None => vec![0i8; names.len()],
    };
    // folds from +0.0 (an empty float `sum` is -0.0)
    let total = unsigned
        .val
        .iter()
        .fold(0.0, |a, &v| a + f64::from(v.abs()));
    let labelled = unsigned
        .triplets()
        .iter()
        .filter(|(_, pre, _)| signs[*pre] != 0)
        .fold(0.0, |a, (_, _, v)| a + f64::from(v.abs()));
    let coverage = if total > 0.0 { labelled / total } else { 0.0 };
    let signed = match cfg.signs.policy {
        SignPolicy::ForceUnsigned => false,
        SignPolicy::Auto => coverage >= cfg.signs.coverage,
        SignPolicy::ForceSigned => {
            if labelled == 0.0 {
                return Err(Error::invalid(
                    "model.connectome.signs.policy",
                    format!(
                        "force_signed, but no presynaptic neuron has a sign label ({}); give signs.table (a CSV cell,nt) or use auto / force_unsigned",
                        cfg.signs.table.as_deref().unwrap_or("no table")
                    ),
                ));
            }
            true
        }
    };
    if !signed {
        return Ok((unsigned, false, coverage));
    }
    let mut m = unsigned;
    for (e, c) in m.col.iter().enumerate() {
        if signs[*c as usize] < 0 {
            m.val[e] = -m.val[e];
        }
    }
    Ok((m, true, coverage))
}

/// Sign per node from a `cell,nt` table (0: unlabelled or ambiguous).
fn read_signs(path: &Path, cfg: &ConnectomeConfig, names: &[String]) -> Result<Vec<i8>> {
    let rows = read_csv(path, &["cell", "nt"])?;
    let map: HashMap<String, i8> = cfg
        .signs
        .map
        .iter()
        .map(|(k, v)| (k.to_lowercase(), *v))
        .collect();
    let mut by_name: HashMap<String, i8> = HashMap::new();
    for row in rows {
        let parts: Vec<Option<i8>> = row[1]
            .split([',', ';', '|', '/', '+'])
            .map(|p| map.get(&p.trim().to_lowercase()).copied())
            .collect();
        let first = parts.first().copied().flatten();
        let sign = match first {
            Some(s) if parts.iter().all(|p| *p == Some(s)) => s.signum(),
            _ => 0,
        };
        by_name.insert(normalise(cfg.normalise, &row[0]), sign);
    }
    Ok(names
        .iter()
        .map(|n| by_name.get(n).copied().unwrap_or(0))
        .collect())
}

/// The cell table as name -> type.
fn read_cells(folder: &Path, cfg: &ConnectomeConfig) -> Result<HashMap<String, String>> {
    let path = folder.join(&cfg.cells.file);
    let rows = read_csv(&path, &[&cfg.cells.name, &cfg.cells.r#type])?;
    Ok(rows
        .into_iter()
        .map(|r| (normalise(cfg.normalise, &r[0]), r[1].trim().to_string()))
        .collect())
}

/// The edge table of `cfg` as rows with normalised names (what the direction check samples).
pub fn read_edge_rows(cfg: &ConnectomeConfig) -> Result<Vec<EdgeRow>> {
    let folder = locate(cfg)?;
    let mut rows = read_edges(&folder, cfg)?;
    for r in &mut rows {
        r.pre = normalise(cfg.normalise, &r.pre);
        r.post = normalise(cfg.normalise, &r.post);
    }
    Ok(rows)
}

/// The edge table's rows of chemical and electrical types.
fn read_edges(folder: &Path, cfg: &ConnectomeConfig) -> Result<Vec<EdgeRow>> {
    let t = &cfg.edges;
    let path = folder.join(&t.file);
    let mut cols = vec![t.pre.as_str(), t.post.as_str(), t.weight.as_str()];
    if let Some(ty) = &t.r#type {
        cols.push(ty);
    }
    let mut out = Vec::new();
    for (line, row) in read_csv(&path, &cols)?.into_iter().enumerate() {
        let weight: f64 = row[2].trim().parse().map_err(|_| {
            Error::invalid(
                "model.connectome.edges.weight",
                format!(
                    "{} row {}: weight `{}` is not a number",
                    path.display(),
                    line + 2,
                    row[2]
                ),
            )
        })?;
        let electrical = match row.get(3) {
            None => false,
            Some(ty) if t.chemical.iter().any(|c| c == ty) => false,
            Some(ty) if t.electrical.iter().any(|c| c == ty) => true,
            Some(_) => continue,
        };
        out.push(EdgeRow {
            pre: row[0].clone(),
            post: row[1].clone(),
            weight,
            electrical,
        });
    }
    Ok(out)
}

/// The named columns of every row of a CSV with a header; errors name the file and column.
fn read_csv(path: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>> {
    let table = crate::frame::read_csv(path)
        .map_err(|e| Error::invalid("model.connectome", e.to_string()))?;
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            table.index(c).ok_or_else(|| {
                Error::invalid(
                    "model.connectome",
                    format!(
                        "{} has no column `{c}` (columns: {})",
                        path.display(),
                        table.header.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    Ok(table
        .rows
        .into_iter()
        .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
        .collect())
}
