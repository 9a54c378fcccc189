//! The worm's connectome read through the generic loader (the acceptance numbers), the
//! loader's policies on small tables, and the pool rules.

use std::collections::HashMap;
use std::path::PathBuf;

use super::load::{build, normalise, EdgeRow};
use super::*;
use crate::config::{BpuConfig, ConnectomeConfig, GapPolicy, NameNormaliser, Pool, SignPolicy};
use crate::error::Result;

/// The shipped worm model config (`configs/model/bpu_celegans.yaml`).
fn worm() -> Result<BpuConfig> {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/model/bpu_celegans.yaml"),
    )
    .map_err(crate::Error::io(
        "reading",
        "configs/model/bpu_celegans.yaml",
    ))?;
    let mut tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| crate::Error::invalid("bpu_celegans.yaml", e.to_string()))?;
    if let Some(m) = tree.as_mapping_mut() {
        m.remove("kind");
    }
    serde_yaml_ng::from_value(tree)
        .map_err(|e| crate::Error::invalid("bpu_celegans.yaml", e.to_string()))
}

#[test]
fn the_worm_loads_as_300_neurons_and_3638_chemical_edges() -> Result<()> {
    let cfg = worm()?;
    let g = load(&cfg.connectome)?;
    let m = &g.matrix;
    assert_eq!((m.n, m.nnz(), m.self_loops()), (300, 3638, 34));
    assert_eq!(m.total_weight(), 20_589.0);
    assert!(
        !g.meta.signed && g.meta.sign_coverage == 0.0,
        "no transmitter table: unsigned"
    );
    // what was dropped is listed, and none of it is a neuron lost to padding
    assert_eq!(g.meta.dropped_unlisted.len(), 146);
    assert!(
        g.meta
            .dropped_unlisted
            .iter()
            .all(|n| !n.chars().next().is_some_and(|c| c.is_ascii_uppercase())),
        "{:?}",
        g.meta.dropped_unlisted
    );
    assert_eq!(
        g.meta.dropped_by_type.values().sum::<usize>(),
        2,
        "pm8 and hyp"
    );
    assert!(g.names.contains(&"AS1".to_string()) && !g.names.iter().any(|n| n == "AS01"));
    assert!(g.meta.renamed > 0);
    // without the normaliser, the padded ventral-cord names are not in the cell table
    let mut raw = cfg.connectome.clone();
    raw.normalise = NameNormaliser::None;
    let g2 = load(&raw)?;
    assert!(g2.meta.dropped_unlisted.iter().any(|n| n == "AS01"));
    assert!(g2.matrix.n < 300);
    Ok(())
}

#[test]
fn the_worm_pools_are_83_94_123_and_k_is_3() -> Result<()> {
    let cfg = worm()?;
    let g = load(&cfg.connectome)?;
    let pools = assign(&g, &cfg.pools)?;
    assert_eq!(pools.counts(), [83, 94, 123]);
    let k = estimate_k(
        &g.matrix,
        &pools.indices(Pool::Sensory),
        &pools.indices(Pool::Output),
        &g.names,
    )?;
    assert_eq!(k.k, 3);
    assert_eq!(k.median, 3.0);
    assert_eq!(k.reaching_sources, 81);
    assert_eq!(k.isolated_sources, vec!["PLML", "PLMR"]);
    // the whole-brain heuristic inverts the annotations on the worm
    let h = pools::degree_heuristic(&g.matrix);
    let a = pools::agreement(&pools, &h);
    assert_eq!(h.counts()[0], 100);
    assert!(a.inverted > 60, "{a:?}");
    let csv = pools.to_csv(&g)?;
    assert_eq!(csv.lines().count(), 301);
    assert!(csv.contains("type `Amphid` listed under sensory"));
    Ok(())
}

#[test]
fn gap_junctions_are_symmetrised_once() -> Result<()> {
    let mut cfg = worm()?;
    cfg.connectome.gap_junctions.policy = GapPolicy::SymmetricMax;
    let g = load(&cfg.connectome)?;
    assert_eq!(g.meta.gap_entries, 2173);
    // chemical + gap: the union of the supports (pairs with both add their weights)
    assert_eq!(g.matrix.nnz(), 5089);
    let gap_only = super::load::load(&{
        let mut c = cfg.connectome.clone();
        c.edges.chemical = vec![];
        c
    })?;
    let (gd, n) = (gap_only.matrix.to_dense(), gap_only.matrix.n);
    assert!(
        (0..n).all(|i| (0..n).all(|j| gd[i * n + j] == gd[j * n + i])),
        "symmetric"
    );
    Ok(())
}

fn toy_cfg() -> Result<ConnectomeConfig> {
    Ok(crate::config::from_yaml_str(
        "{name: toy, edges: {file: e.csv}, cells: {file: c.csv}, nodes: {unlisted: error}}",
    )?)
}

fn row(pre: &str, post: &str, w: f64, electrical: bool) -> EdgeRow {
    EdgeRow {
        pre: pre.into(),
        post: post.into(),
        weight: w,
        electrical,
    }
}

#[test]
fn orientation_is_post_by_pre_and_gap_policies_differ() -> Result<()> {
    let cells: HashMap<String, String> = ["A", "B", "C"]
        .iter()
        .map(|n| (n.to_string(), "x".to_string()))
        .collect();
    let edges = vec![
        row("A", "B", 3.0, false),
        row("B", "C", 1.0, false),
        row("A", "C", 4.0, true),
        row("C", "A", 2.0, true),
    ];
    let mut cfg = toy_cfg()?;
    let g = build(&cfg, PathBuf::new(), &cells, &edges)?;
    // A -> B with weight 3 is W[B, A]
    assert_eq!(g.matrix.triplets(), vec![(1, 0, 3.0), (2, 1, 1.0)]);
    cfg.gap_junctions.policy = GapPolicy::SymmetricMax;
    let g = build(&cfg, PathBuf::new(), &cells, &edges)?;
    let d = g.matrix.to_dense();
    assert_eq!((d[2 * 3], d[2]), (4.0, 4.0));
    assert_eq!(g.meta.gap_asymmetric_pairs, 1);
    cfg.gap_junctions.policy = GapPolicy::SymmetricMean;
    let d = build(&cfg, PathBuf::new(), &cells, &edges)?
        .matrix
        .to_dense();
    assert_eq!((d[2 * 3], d[2]), (3.0, 3.0));
    // an unlisted node is an error naming it, unless dropped
    let err = build(&cfg, PathBuf::new(), &cells, &[row("A", "Z", 1.0, false)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("1 nodes of e.csv are not in c.csv: Z"),
        "{err}"
    );
    Ok(())
}

#[test]
fn signs_need_a_table_and_follow_the_coverage_rule() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ar_signs_{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(crate::Error::io("mkdir", &dir))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(crate::Error::io("write", dir.join(name)))
    };
    write("e.csv", "pre,post,weight\nA,B,10\nB,C,10\nC,A,1\n")?;
    write("c.csv", "cell,type\nA,x\nB,x\nC,x\n")?;
    write("nt.csv", "cell,nt\nA,ACh\nB,GABA\n")?;
    let mut cfg = toy_cfg()?;
    cfg.root = Some(dir.clone());
    cfg.signs.policy = SignPolicy::ForceSigned;
    let err = load(&cfg).unwrap_err();
    assert!(
        err.to_string()
            .contains("no presynaptic neuron has a sign label"),
        "{err}"
    );
    cfg.signs.table = Some("nt.csv".into());
    let g = load(&cfg)?;
    assert!(g.meta.signed);
    assert!((g.meta.sign_coverage - 20.0 / 21.0).abs() < 1e-12);
    // B's outgoing edge (B -> C = W[C, B]) is inhibitory
    assert!(g.matrix.triplets().contains(&(2, 1, -10.0)));
    cfg.signs.policy = SignPolicy::Auto;
    assert!(load(&cfg)?.meta.signed, "20/21 = 0.952 >= 0.95");
    cfg.signs.coverage = 0.96;
    assert!(!load(&cfg)?.meta.signed);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn pools_must_be_exclusive_and_exhaustive() -> Result<()> {
    let types: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let mut cfg: crate::config::PoolsConfig =
        crate::config::from_yaml_str("{sensory: [a], output: [b]}")?;
    let err = pools::from_annotations(&types, &cfg).unwrap_err();
    assert!(err.to_string().contains("types in no pool: c"), "{err}");
    cfg.default = Some(Pool::Internal);
    let p = pools::from_annotations(&types, &cfg)?;
    assert_eq!(p.pool, vec![Pool::Sensory, Pool::Output, Pool::Internal]);
    assert!(p.reason[2].contains("not listed: default internal"));
    cfg.output.push("a".into());
    let err = pools::from_annotations(&types, &cfg).unwrap_err();
    assert!(err.to_string().contains("both sensory and output"), "{err}");
    Ok(())
}

#[test]
fn names_lose_their_zero_padding_only_where_asked() {
    assert_eq!(normalise(NameNormaliser::StripZeroPadding, "AS01"), "AS1");
    assert_eq!(normalise(NameNormaliser::StripZeroPadding, "VD10"), "VD10");
    assert_eq!(normalise(NameNormaliser::StripZeroPadding, "pm01"), "pm01");
    assert_eq!(normalise(NameNormaliser::None, "AS01"), "AS01");
}

#[test]
fn the_worm_core_is_scaled_for_the_connectome_and_every_control() -> Result<()> {
    let mut cfg = worm()?;
    for kind in ControlKind::all() {
        cfg.control = kind;
        for seed in 0..2 {
            let core = prepare(&cfg, seed)?;
            assert!(
                (core.scaled.measured.value - 0.95).abs() <= 1e-4,
                "{kind:?} {seed}: {:?}",
                core.scaled.measured
            );
            assert!(core.invariants.iter().all(|c| c.passed));
            assert_eq!(core.microsteps, 3);
        }
    }
    let core = prepare(&worm()?, 0)?;
    assert!(
        (core.primary_radius.value - 107.43).abs() < 0.01,
        "{:?}",
        core.primary_radius
    );
    Ok(())
}
