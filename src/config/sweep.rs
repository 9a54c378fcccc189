//! Multirun expansion: the cartesian product of swept overrides and the experiment's `sweep:` block.

use super::overrides::{sweep_values_from_yaml, Override};
use super::schema::SweepBlock;
use crate::error::{Error, Result};

/// Expands overrides (some with several values) and the sweep block into one override list per
/// run. Keys given on the command line take precedence over the experiment's sweep block.
pub fn expand(overrides: &[Override], sweep: &SweepBlock) -> Result<Vec<Vec<Override>>> {
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for o in overrides {
        axes.push((o.key.clone(), o.sweep_values()?));
    }
    for (key, value) in sweep {
        if overrides.iter().any(|o| &o.key == key) {
            continue;
        }
        let values =
            sweep_values_from_yaml(value).map_err(|m| Error::invalid(format!("sweep.{key}"), m))?;
        axes.push((key.clone(), values));
    }
    let mut points: Vec<Vec<Override>> = vec![Vec::new()];
    for (key, values) in &axes {
        if values.is_empty() {
            return Err(Error::invalid(key, "sweep has no values"));
        }
        let mut next = Vec::with_capacity(points.len() * values.len());
        for point in &points {
            for value in values {
                let mut p = point.clone();
                p.push(Override {
                    key: key.clone(),
                    value: value.clone(),
                });
                next.push(p);
            }
        }
        points = next;
    }
    Ok(points)
}

/// Rejects overrides with several values outside `--multirun`.
pub fn ensure_single(overrides: &[Override]) -> Result<()> {
    for o in overrides {
        let values = o.sweep_values()?;
        if values.len() > 1 {
            return Err(Error::Override {
                text: format!("{}={}", o.key, o.value),
                message: format!(
                    "has {} values; add --multirun (CLI) or use Experiment::multirun (Rust) to sweep them",
                    values.len()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cartesian_product_with_sweep_block() -> Result<()> {
        let overrides = vec![
            Override::parse("seed=0,1,2")?,
            Override::parse("optimizer.lr=1e-3,3e-4")?,
        ];
        let points = expand(&overrides, &SweepBlock::new())?;
        assert_eq!(points.len(), 6);
        let mut block = SweepBlock::new();
        block.insert(
            "seed".into(),
            serde_yaml_ng::Value::String("range(0,5)".into()),
        );
        block.insert(
            "model.hidden".into(),
            serde_yaml_ng::from_str("[[64],[32,32]]")
                .map_err(|e| Error::invalid("t", e.to_string()))?,
        );
        let points = expand(&[Override::parse("optimizer.lr=1e-3")?], &block)?;
        assert_eq!(points.len(), 10);
        assert_eq!(points[9][1].value, "[32,32]");
        // the command line wins over the block
        let points = expand(&[Override::parse("seed=7")?], &block)?;
        assert_eq!(points.len(), 2);
        assert!(ensure_single(&[Override::parse("seed=0,1")?]).is_err());
        Ok(())
    }
}
