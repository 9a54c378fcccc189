//! A connectome as a frozen recurrent core between trained adapters (pathintegrationBPU's
//! "BPU"): per time step the input enters the sensory pool at the first of K microsteps,
//! `h <- relu(W h + [k = 1] P_S (W_in u_t + b_in))` K times, and the output pool is read,
//! `y_t = W_out h[O] + b_out`. `W` is the connectome (or a matched control) scaled to the
//! target spectral radius; only the adapters train, or also the observed edge values.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::Init;

use super::fused::{csr_relu, CsrPlan};
use super::network::{BuildCtx, Network};
use super::probe::Probe;
use super::Ops;
use crate::config::{BpuConfig, Microsteps, Pool, RecurrentTraining};
use crate::connectome::{prepare, Core};
use crate::error::Result;

/// Largest core the plain (dense) path builds: `N²` entries must index in `u32` and fit in
/// memory (20,000 neurons is 1.6 GB of f32, upstream's dense limit).
pub const DENSE_MAX_NODES: usize = 20_000;

/// What a core is made of: the scaled matrix, the pools, K and the recurrence mode.
pub struct Parts<'a> {
    /// `W[post, pre]`, already scaled.
    pub matrix: &'a crate::connectome::Csr,
    /// Sensory node indices (the input's targets).
    pub sensory: &'a [usize],
    /// Output node indices (read out).
    pub output: &'a [usize],
    /// Microsteps per time step.
    pub microsteps: usize,
    /// Reset the state to 0 at every time step.
    pub reset_each_step: bool,
    /// Frozen or observed values.
    pub recurrent: RecurrentTraining,
    /// Parameter type (`F32`; `F64` for gradient checks on the plain path).
    pub dtype: DType,
}

/// The core's matrix values (a constant, or a parameter in `observed` mode), its structure,
/// the pools and the adapters.
pub struct Bpu {
    plan: Arc<CsrPlan>,
    values: Tensor,
    /// Flat `post * N + pre` index of each entry (the plain path's dense matrix; `None` when
    /// `N²` exceeds [`DENSE_MAX_NODES`]²).
    flat: Option<Tensor>,
    sensory: Tensor,
    output: Tensor,
    w_in: Tensor,
    b_in: Tensor,
    w_out: Tensor,
    b_out: Tensor,
    n: usize,
    microsteps: usize,
    reset_each_step: bool,
    ops: Ops,
    files: Vec<(String, Vec<u8>)>,
}

impl Bpu {
    /// Prepares the core for the run seed and creates the adapters (`W_in ~ U(±1/√d_in)`,
    /// `W_out ~ U(±1/√|O|)`, biases 0, as upstream).
    pub fn new(cfg: &BpuConfig, ctx: &BuildCtx) -> Result<Self> {
        let (d_in, _) = ctx.sequence_shape("bpu")?;
        let core = prepare(cfg, ctx.vars.seed())?;
        let files = run_files(&core, cfg)?;
        Self::from_core(&core, cfg.recurrent, d_in, ctx, files)
    }

    /// The network on a prepared core.
    pub fn from_core(
        core: &Core,
        recurrent: RecurrentTraining,
        d_in: usize,
        ctx: &BuildCtx,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Self> {
        let parts = Parts {
            matrix: &core.scaled.matrix,
            sensory: &core.pools.indices(Pool::Sensory),
            output: &core.pools.indices(Pool::Output),
            microsteps: core.microsteps,
            reset_each_step: core.no_recurrence(),
            recurrent,
            dtype: DType::F32,
        };
        let mut net = Self::from_parts(&parts, d_in, ctx)?;
        net.files = files;
        Ok(net)
    }

    /// The network on a matrix and pools given directly (benchmarks, tests).
    pub fn from_parts(p: &Parts, d_in: usize, ctx: &BuildCtx) -> Result<Self> {
        let m = p.matrix;
        let dev = &ctx.device;
        let vb = ctx.vars.var_builder(p.dtype, dev);
        let values = match p.recurrent {
            RecurrentTraining::Frozen => {
                Tensor::from_slice(&m.val, m.nnz(), dev)?.to_dtype(p.dtype)?
            }
            RecurrentTraining::Observed => {
                // created through the store (so it trains and is checkpointed), then set to
                // the scaled matrix's values
                let t = vb.get_with_hints(m.nnz(), "core_values", Init::Const(0.0))?;
                ctx.vars
                    .var("core_values")?
                    .set(&Tensor::from_slice(&m.val, m.nnz(), dev)?.to_dtype(p.dtype)?)?;
                t
            }
        };
        let flat = (m.n <= DENSE_MAX_NODES)
            .then(|| {
                let idx: Vec<u32> = m
                    .triplets()
                    .iter()
                    .map(|(r, c, _)| (r * m.n + c) as u32)
                    .collect();
                Tensor::from_vec(idx, m.nnz(), dev)
            })
            .transpose()?;
        let bound = |fan: usize| 1.0 / (fan.max(1) as f64).sqrt();
        let uniform = |b: f64| Init::Uniform { lo: -b, up: b };
        let idx = |v: &[usize]| {
            Tensor::from_vec(
                v.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                v.len(),
                dev,
            )
        };
        let (sensory, output) = (p.sensory, p.output);
        Ok(Bpu {
            plan: Arc::new(CsrPlan::new(m, sensory)),
            flat,
            w_in: vb.get_with_hints((sensory.len(), d_in), "w_in", uniform(bound(d_in)))?,
            b_in: vb.get_with_hints(sensory.len(), "b_in", Init::Const(0.0))?,
            w_out: vb.get_with_hints(
                (ctx.outputs, output.len()),
                "w_out",
                uniform(bound(output.len())),
            )?,
            b_out: vb.get_with_hints(ctx.outputs, "b_out", Init::Const(0.0))?,
            sensory: idx(sensory)?,
            output: idx(output)?,
            values,
            n: m.n,
            microsteps: p.microsteps,
            reset_each_step: p.reset_each_step,
            ops: ctx.ops,
            files: Vec::new(),
        })
    }

    /// Microsteps per time step.
    pub fn microsteps(&self) -> usize {
        self.microsteps
    }

    /// One microstep `relu(W h + P_S drive)` (no drive after the first).
    ///
    /// # Shapes
    /// `h`: `[B, N]`, `drive`: `[B, |S|]` -> `[B, N]`.
    fn microstep(
        &self,
        h: &Tensor,
        dense: Option<&Tensor>,
        drive: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        match dense {
            None => csr_relu(&self.plan, h, &self.values, drive),
            Some(w) => {
                let z = h.matmul(&w.t()?)?;
                let z = match drive {
                    Some(d) => z.index_add(&self.sensory, &d.to_dtype(z.dtype())?, 1)?,
                    None => z,
                };
                z.relu()
            }
        }
    }

    /// The dense `W [N, N]` of the plain path (a function of the values, so `observed` mode
    /// gets its gradient through it).
    fn dense(&self, dtype: DType) -> candle_core::Result<Tensor> {
        let n = self.n;
        let Some(flat) = &self.flat else {
            candle_core::bail!(
                "a {n}-neuron core runs on the fused CSR kernel only (CPU f32, kernels: fused); the dense path stops at {DENSE_MAX_NODES} neurons"
            )
        };
        Tensor::zeros(n * n, dtype, self.values.device())?
            .index_add(flat, &self.values.to_dtype(dtype)?, 0)?
            .reshape((n, n))
    }
}

impl Network for Bpu {
    /// # Shapes
    /// `input`: `[T, B, d_in]` -> `[T, B, R]`.
    fn forward_probed(
        &self,
        input: &Tensor,
        _probe: &mut dyn Probe,
    ) -> candle_core::Result<Tensor> {
        let (t_len, batch, d_in) = input.dims3()?;
        let drive = input
            .reshape((t_len * batch, d_in))?
            .matmul(&self.w_in.t()?)?
            .broadcast_add(&self.b_in)?
            .reshape((t_len, batch, ()))?;
        let dense = if self.ops.fuses(input) {
            None
        } else {
            Some(self.dense(input.dtype())?)
        };
        let zeros = Tensor::zeros((batch, self.n), input.dtype(), input.device())?;
        let mut h = zeros.clone();
        let mut read = Vec::with_capacity(t_len);
        for t in 0..t_len {
            if self.reset_each_step {
                h = zeros.clone();
            }
            let e = drive.get(t)?;
            h = self.microstep(&h, dense.as_ref(), Some(&e))?;
            for _ in 1..self.microsteps {
                h = self.microstep(&h, dense.as_ref(), None)?;
            }
            read.push(h.index_select(&self.output, 1)?);
        }
        let read = Tensor::stack(&read, 0)?;
        let o = read.dim(2)?;
        read.reshape((t_len * batch, o))?
            .matmul(&self.w_out.t()?)?
            .broadcast_add(&self.b_out)?
            .reshape((t_len, batch, ()))
    }

    fn run_files(&self) -> Vec<(String, Vec<u8>)> {
        self.files.clone()
    }
}

/// `graph.json` (loading, pools, K, control, invariants, radii, hashes) and
/// `pool_assignments.csv` for the run directory.
pub fn run_files(core: &Core, cfg: &BpuConfig) -> Result<Vec<(String, Vec<u8>)>> {
    let source = match cfg.microsteps {
        Microsteps::Auto(_) => "auto",
        Microsteps::Fixed(_) => "override",
    };
    let json = serde_json::to_vec_pretty(&core.meta(source))
        .map_err(|e| crate::Error::invalid("graph.json", e.to_string()))?;
    Ok(vec![
        ("graph.json".to_string(), json),
        (
            "pool_assignments.csv".to_string(),
            core.pools.to_csv(&core.graph)?.into_bytes(),
        ),
    ])
}
