//! `mnist_grid_upstream` trained from upstream's own initialisation (grid-neurons' PRNGKey(0)
//! draw, read from the JSON `benches/grid_twin.py` writes), to separate the initialisation from
//! the implementation when comparing with upstream's single-seed numbers:
//! `cargo run --example grid_upstream_init -- grid_twin.json <runs_dir> <seed>...` (the seed
//! sets the data order; the runs are variant `upstream_init` of `mnist_grid_upstream`).

use autoresearch::config::{CustomModelConfig, ModelConfig};
use autoresearch::nn::{BuildCtx, Grid, Network};
use autoresearch::prelude::*;
use autoresearch::Error;

fn main() -> autoresearch::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [json, runs, seeds @ ..] = args.as_slice() else {
        return Err(Error::Analysis(
            "usage: grid_upstream_init <grid_twin.json> <runs_dir> <seed>...".into(),
        ));
    };
    let text =
        std::fs::read_to_string(json).map_err(|e| Error::Analysis(format!("{json}: {e}")))?;
    let init: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Analysis(format!("{json}: {e}")))?;
    for seed in seeds {
        let exp = Experiment::compose(
            "mnist_grid_upstream",
            [format!("seed={seed}"), format!("runs_dir={runs}")],
        )?;
        let ModelConfig::Grid(grid) = exp.config().model.clone() else {
            return Err(Error::Analysis("mnist_grid_upstream is not a grid".into()));
        };
        let mut cfg = exp.config().clone();
        cfg.variant = "upstream_init".into();
        cfg.description = Some(
            "grid neurons 28x10 (SnAP-1, Adam 3e-3) from upstream's PRNGKey(0) initialisation"
                .into(),
        );
        cfg.model = ModelConfig::Custom(CustomModelConfig {
            name: "grid".into(),
            params: Default::default(),
        });
        let init = init.clone();
        let build =
            move |_: &ModelConfig, ctx: &BuildCtx| -> autoresearch::Result<Box<dyn Network>> {
                let net = Grid::new(&grid, ctx)?;
                for name in ["log_tau", "w_left", "w_top", "bias"] {
                    let values: Vec<f32> = init[name]
                        .as_array()
                        .ok_or_else(|| Error::Analysis(format!("`{name}` missing from the JSON")))?
                        .iter()
                        .filter_map(|v| v.as_f64().map(|x| x as f32))
                        .collect();
                    let shape = (net.shape().rows, net.shape().cols);
                    ctx.vars
                        .var(name)?
                        .set(&Tensor::from_vec(values, shape, &Device::Cpu)?)?;
                }
                Ok(Box::new(net))
            };
        let out = autoresearch::train::train_with(&cfg, &TrainOptions::default(), &build)?;
        println!(
            "{}: final val_acc {:?}, test_acc {:?}",
            out.dir.path().display(),
            out.metrics.final_val_acc,
            out.metrics.test_acc
        );
    }
    Ok(())
}
