//! The entry point for notebooks and the CLI: compose an experiment, then train it.
//!
//! ```no_run
//! use autoresearch::Experiment;
//! let exp = Experiment::compose("mnist_ffnn_adam", ["epochs=2", "optimizer.lr=3e-4"])?;
//! let run = exp.train()?;
//! println!("{}: val {:?} test {:?}", run.dir.path().display(), run.metrics.best_val_acc, run.metrics.test_acc);
//! # Ok::<(), autoresearch::Error>(())
//! ```

use crate::config::{ensure_single, expand, ConfigStore, ExperimentConfig, Override};
use crate::error::{Error, Result};
use crate::nn::Builder;
use crate::nn::Traces;
use crate::rundir::RunDir;
use crate::train::{load_trained, train, RunOutcome, TrainOptions, TrainedModel};

/// A resolved experiment, ready to train.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    config: ExperimentConfig,
}

fn parse_all<I, S>(overrides: I) -> Result<Vec<Override>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    overrides
        .into_iter()
        .map(|s| Override::parse(s.as_ref()))
        .collect()
}

impl Experiment {
    /// Composes `experiment` from the discovered `configs/` directory with `key=value` overrides.
    pub fn compose<I, S>(experiment: &str, overrides: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::compose_in(&ConfigStore::discover()?, experiment, overrides)
    }

    /// Like [`Experiment::compose`], from an explicit configs directory.
    pub fn compose_in<I, S>(store: &ConfigStore, experiment: &str, overrides: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let overrides = parse_all(overrides)?;
        ensure_single(&overrides)?;
        Ok(Experiment {
            config: store.compose(experiment, &overrides)?.config,
        })
    }

    /// Expands sweeps (`seed=0,1,2`, `optimizer.lr=1e-3,3e-4`, and the experiment's `sweep:`
    /// block for keys not given) into one experiment per point of the cartesian product.
    pub fn multirun<I, S>(experiment: &str, overrides: I) -> Result<Vec<Self>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::multirun_in(&ConfigStore::discover()?, experiment, overrides)
    }

    /// Like [`Experiment::multirun`], from an explicit configs directory.
    pub fn multirun_in<I, S>(
        store: &ConfigStore,
        experiment: &str,
        overrides: I,
    ) -> Result<Vec<Self>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::points_in(store, experiment, overrides)?
            .into_iter()
            .map(|(_, exp)| exp)
            .collect())
    }

    /// Like [`Experiment::multirun_in`], with the overrides of each point: what a command line
    /// must say to run that point alone (a cluster job's `autoresearch train` arguments).
    pub fn points_in<I, S>(
        store: &ConfigStore,
        experiment: &str,
        overrides: I,
    ) -> Result<Vec<(Vec<Override>, Self)>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let overrides = parse_all(overrides)?;
        let points = expand(&overrides, &store.sweep_block(experiment)?)?;
        points
            .into_iter()
            .map(|point| {
                let config = store.compose(experiment, &point)?.config;
                Ok((point, Experiment { config }))
            })
            .collect()
    }

    /// Wraps a config built in Rust.
    pub fn from_config(config: ExperimentConfig) -> Self {
        Experiment { config }
    }

    /// The resolved config.
    pub fn config(&self) -> &ExperimentConfig {
        &self.config
    }

    /// The resolved config as YAML (what `config.yaml` will hold).
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(&self.config)
            .map_err(|e| Error::invalid("<config>", e.to_string()))
    }

    /// Where this experiment's run is written.
    pub fn run_dir(&self) -> RunDir {
        RunDir::for_config(&self.config)
    }

    /// Trains with default options (resume if possible, skip if completed, progress shown).
    pub fn train(&self) -> Result<RunOutcome> {
        train(&self.config, &TrainOptions::default())
    }

    /// Trains with explicit options.
    pub fn train_with(&self, options: &TrainOptions) -> Result<RunOutcome> {
        train(&self.config, options)
    }

    /// Trains a network defined outside the crate (`model: {kind: custom, name: ...}`), built by
    /// `builder`, with the same loop, run directory, checkpoints and resume as every model.
    pub fn train_custom(&self, options: &TrainOptions, builder: Builder) -> Result<RunOutcome> {
        crate::train::train_with(&self.config, options, builder)
    }

    /// The trained model (weights of the run's best checkpoint) with its validation data.
    pub fn load_trained(&self) -> Result<TrainedModel> {
        load_trained(&self.config)
    }

    /// Membrane and spike traces of every spiking layer of the trained model on the first `n`
    /// validation images, for raster and membrane plots.
    pub fn record_traces(&self, n: usize) -> Result<Traces> {
        self.load_trained()?.record_traces(&self.config, n)
    }
}
