//! Everything a notebook needs in one import: `use autoresearch::prelude::*;`.
//!
//! Experiments and training, networks and tasks, run frames, statistics, figures, reports, the
//! executors, and the display trait that shows figures, frames and reports inline. The crate's
//! `Result` and `Error` are left out so they do not shadow the standard ones in a notebook.
//! With the `lazy` feature it also brings polars' expression API (`col`, `lit`, `len`,
//! `IntoLazy`) for queries of the runs frame.

pub use crate::cluster::{
    Cluster, ClusterProfile, Executor, JobScript, LocalExecutor, MonitorOptions, Sweep, Walltime,
    Workspace,
};
pub use crate::config::{
    from_yaml_str, ConfigStore, DataConfig, EncoderConfig, ExperimentConfig, Kernels, LeakyConfig,
    ModelConfig, Reset, Surrogate,
};
pub use crate::data::{load as load_data, Batch, Dataset, InputShape, MetricSums, Split, Task};
pub use crate::display::{Markdown, NotebookDisplay, Png};
pub use crate::hpo::functions::TestFunction;
pub use crate::hpo::{
    AskTell, CmaEsSampler, GpSampler, RandomSampler, Sampler, Space, Study, StudyConfig,
    TpeSampler, Trial,
};
pub use crate::metric::{MetricSpec, Mode, Objective};
pub use crate::nn::neuron::{
    leaky_step, surrogate_grad, Leaky, LeakyParams, LeakyState, NeuronDynamics, Scan,
};
pub use crate::nn::{BuildCtx, Network, NoProbe, Ops, Probe, SeededVarMap, Step, Traces};
pub use crate::plot::{
    CellMap, Figure, FinalMetric, LearningCurves, Lines, MembraneTrace, SpikeRaster,
};
pub use crate::report::{replace_section, Annotations, EvidenceReport, Leaderboard, ReportOptions};
pub use crate::runs::{scan, RunScan};
pub use crate::state::ProjectStore;
pub use crate::stats::{paired_comparisons, summarize, Group, Pair};
pub use crate::train::{build_run, evaluate, load_trained, train, train_with, TrainOptions};
pub use crate::{Experiment, Metrics, RunDir, RunOutcome, RunStatus};
pub use candle_core::{DType, Device, Tensor};
pub use candle_nn;
pub use polars::prelude::DataFrame;
/// Polars' expression API for ad-hoc queries of frames (with the `lazy` feature).
#[cfg(feature = "lazy")]
pub use polars::prelude::{col, len, lit, IntoLazy, LazyFrame, SortMultipleOptions};
