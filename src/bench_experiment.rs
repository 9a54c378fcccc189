//! Rows named by an experiment (`bench --experiment NAME`): the training step of the
//! experiment's own network, exactly as `train` takes it (its data and encoder, batch size,
//! dropout, loss, gradient clipping and optimizer), in the bench's timed loop. `train`'s
//! end-to-end samples/s over this is what the loop around the step costs: batching,
//! validation, probes, metrics and checkpoints.

use crate::config::ExperimentConfig;
use crate::data::encode::batch_seed;
use crate::error::Result;
use crate::train::{build_run, on_pool};

use super::{time_rates, BenchOptions, IndexStream, Rates};

/// Training samples/s of `cfg`'s network: `opts.warmup` untimed steps, then `opts.repeats`
/// timings of `opts.iters` steps at the experiment's batch size, on shuffled full batches of
/// its training split (reshuffled every pass, as `train` orders an epoch).
pub fn train(cfg: &ExperimentConfig, opts: &BenchOptions) -> Result<Rates> {
    let run = build_run(cfg, None)?;
    let mut optimizer = run.optimizer(cfg)?;
    let train = &*run.data.train;
    let batch = cfg.batch_size.clamp(1, train.len().max(1));
    let timing = BenchOptions {
        batch,
        ..opts.clone()
    };
    let mut stream = IndexStream::new(train.len(), batch, cfg.seed);
    on_pool(|| {
        time_rates(&timing, |call| {
            let b = train.train_batch(stream.next_indices(), &run.device, call as u64)?;
            let seed = batch_seed(cfg.seed, 0, call);
            run.train_step(cfg, &mut optimizer, (&b.input, &b.target), seed)?;
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Experiment;

    #[test]
    fn times_the_experiments_own_step_at_its_batch_size() -> Result<()> {
        let exp = Experiment::compose(
            "mnist_ffnn_adam",
            ["data.limit=300", "data.test_limit=10", "batch_size=64"],
        )?;
        let opts = BenchOptions {
            warmup: 1,
            iters: 5,
            repeats: 2,
            ..BenchOptions::default()
        };
        // 270 training images: 4 full batches a pass, so the timing reshuffles mid-way
        let rates = train(exp.config(), &opts)?;
        assert_eq!(rates.runs.len(), 2);
        assert!(rates.median > 0.0 && rates.min <= rates.median && rates.median <= rates.max);
        let expected_ms = 1000.0 * 64.0 / rates.median;
        assert!((rates.ms_per_batch - expected_ms).abs() < 1e-9 * expected_ms);
        Ok(())
    }
}
