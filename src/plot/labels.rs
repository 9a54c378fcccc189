//! Labels that fit: group names shortened to what tells them apart, axis labels with units.

/// Splits `a=1,b=[2,3],c=x` at the commas that separate overrides (not those inside brackets).
fn overrides(variant: &str) -> Vec<String> {
    let (mut parts, mut depth, mut current) = (Vec::new(), 0i32, String::new());
    for ch in variant.chars() {
        match ch {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    parts.push(current);
    parts
}

/// `model.hidden=[100]` -> `hidden=[100]` (the last segment of a dotted key).
fn short_override(part: &str) -> String {
    match part.split_once('=') {
        Some((key, value)) => {
            let last = key.rsplit('.').next().unwrap_or(key);
            format!("{last}={value}")
        }
        None => part.to_string(),
    }
}

/// Group labels (`experiment` or `experiment/variant`) shortened to what tells them apart:
/// the experiment when all groups share it is returned separately (for the title), overrides
/// every group shares are dropped, and dotted keys keep their last segment unless that would
/// make two labels equal.
pub fn short_labels(labels: &[String]) -> ShortLabels {
    let split: Vec<(&str, &str)> = labels
        .iter()
        .map(|l| l.split_once('/').unwrap_or((l.as_str(), "")))
        .collect();
    let shared_experiment = split
        .first()
        .map(|(e, _)| *e)
        .filter(|e| labels.len() > 1 && split.iter().all(|(x, _)| x == e));
    let Some(experiment) = shared_experiment else {
        return ShortLabels::unchanged(labels);
    };
    let parts: Vec<Vec<String>> = split.iter().map(|(_, v)| overrides(v)).collect();
    let common = |p: &String| parts.iter().all(|ps| ps.contains(p));
    let kept: Vec<Vec<String>> = parts
        .iter()
        .map(|ps| ps.iter().filter(|p| !common(p)).cloned().collect())
        .collect();
    let join = |short: bool| -> Vec<String> {
        kept.iter()
            .map(|ps| {
                let ps: Vec<String> = if short {
                    ps.iter().map(|p| short_override(p)).collect()
                } else {
                    ps.clone()
                };
                if ps.is_empty() {
                    "default".to_string()
                } else {
                    ps.join(", ")
                }
            })
            .collect()
    };
    let short = join(true);
    let distinct = short
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == short.len();
    let long = join(false);
    let long_distinct = long.iter().collect::<std::collections::BTreeSet<_>>().len() == long.len();
    let shared = |labels| ShortLabels {
        experiment: Some(experiment.to_string()),
        labels,
    };
    match (distinct, long_distinct) {
        (true, _) => shared(short),
        (false, true) => shared(long),
        _ => ShortLabels::unchanged(labels),
    }
}

/// What [`short_labels`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortLabels {
    /// The experiment every group shares (for the title), if they share one.
    pub experiment: Option<String>,
    /// One label per group, in the input order.
    pub labels: Vec<String>,
}

impl ShortLabels {
    fn unchanged(labels: &[String]) -> ShortLabels {
        ShortLabels {
            experiment: None,
            labels: labels.to_vec(),
        }
    }
}

/// An axis label: the metric's name with its unit, `val_acc (fraction)`, or the name alone.
pub fn axis_label(metric: &str, unit: &str) -> String {
    if unit.is_empty() {
        metric.to_string()
    } else {
        format!("{metric} ({unit})")
    }
}

/// A tick label for an integer-valued axis: the integer at integer positions, nothing between.
pub fn integer_tick(x: &f64) -> String {
    let r = x.round();
    if (x - r).abs() < 1e-6 {
        format!("{r:.0}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_what_differs() {
        let labels = vec![
            "mnist_ffnn_adam/epochs=2,model.hidden=[64,32],optimizer.lr=0.001".to_string(),
            "mnist_ffnn_adam/epochs=2,model.hidden=[64,32],optimizer.lr=0.003".to_string(),
        ];
        let short = short_labels(&labels);
        assert_eq!(short.experiment.as_deref(), Some("mnist_ffnn_adam"));
        assert_eq!(short.labels, ["lr=0.001", "lr=0.003"]);
        // different experiments keep their full labels
        let mixed = vec!["a/default".to_string(), "b/default".to_string()];
        assert_eq!(short_labels(&mixed), ShortLabels::unchanged(&mixed));
        // a last segment that would collide keeps the whole key
        let clash = vec!["e/model.lr=1".to_string(), "e/optimizer.lr=1".to_string()];
        assert_eq!(
            short_labels(&clash).labels,
            ["model.lr=1", "optimizer.lr=1"]
        );
        assert_eq!(integer_tick(&2.0), "2");
        assert_eq!(integer_tick(&2.5), "");
        assert_eq!(axis_label("val_acc", "fraction"), "val_acc (fraction)");
    }
}
