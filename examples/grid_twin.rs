//! Our grid gradients on the numbers `benches/grid_twin.py` took from upstream's JAX code:
//! `cargo run --example grid_twin -- grid_twin.json` prints the loss and, per parameter type,
//! `max |ours - upstream| / max |upstream|` for SnAP-1 and BPTT.

use autoresearch_kernels::grid::{
    gradient, GradientOptions, GridParams, GridShape, Method, PARAMS,
};

fn floats(json: &serde_json::Value, key: &str) -> Result<Vec<f32>, String> {
    json[key]
        .as_array()
        .ok_or(format!("`{key}` is not a list"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .map(|v| v as f32)
                .ok_or(format!("`{key}` holds a non-number"))
        })
        .collect()
}

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "grid_twin.json".into());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let shape = GridShape {
        rows: 28,
        cols: 10,
        dt_s: 1e-3,
    };
    let params = GridParams {
        log_tau: floats(&json, "log_tau")?,
        w_left: floats(&json, "w_left")?,
        w_top: floats(&json, "w_top")?,
        bias: floats(&json, "bias")?,
    };
    let x = floats(&json, "x")?;
    let labels: Vec<u32> = floats(&json, "labels")?.iter().map(|l| *l as u32).collect();
    let batch = labels.len() as f64;
    for (name, method) in [("snap1", Method::Snap1), ("bptt", Method::Bptt)] {
        let opts = GradientOptions {
            method,
            ..Default::default()
        };
        let ours = gradient(&shape, &params, &x, &labels, &opts)?;
        let upstream_loss = json[name]["loss"].as_f64().unwrap_or(f64::NAN);
        print!(
            "{name}: loss ours {:.6}, upstream {upstream_loss:.6};",
            ours.loss_sum / batch
        );
        for (p, field) in PARAMS.iter().enumerate() {
            let theirs = floats(&json[name], field)?;
            let diff = ours.grads[p]
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a / batch - f64::from(*b)).abs())
                .fold(0.0, f64::max);
            let scale = theirs
                .iter()
                .map(|b| f64::from(b.abs()))
                .fold(0.0, f64::max);
            print!(" {field} {:.1e}", diff / scale);
        }
        println!();
    }
    Ok(())
}
