//! A recurrent network seen as a discrete-time dynamical system `h_t = F(h_{t-1}, u_t)` on a
//! flat state, with its exact one-step Jacobian applied to tangent vectors.
//!
//! A model family opts in by returning a [`Dynamics`] from `Network::dynamics`. Everything is
//! written with candle ops in the requested dtype (f64 for spectra), so autograd reaches the
//! network's parameters through the trajectory and the Jacobians: that is the flossing gradient.

use candle_core::{DType, Result, Tensor};

/// How a network is viewed as a dynamical system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamicsOptions {
    /// The dtype the system computes in (f64 for spectra; parameters are cast, and gradients
    /// flow back to them).
    pub dtype: DType,
    /// Whether spiking Jacobians include the reset's surrogate derivative.
    pub reset_in_jacobian: bool,
}

impl DynamicsOptions {
    /// f64 without the reset term.
    pub fn f64() -> Self {
        DynamicsOptions {
            dtype: DType::F64,
            reset_in_jacobian: false,
        }
    }
}

/// A recurrent network as `h_t = F(h_{t-1}, u_t)` with state `h` `[B, N]`.
pub trait Dynamics {
    /// The state size `N`.
    fn state_size(&self) -> usize;

    /// The state the network starts from, `[1, N]` (tracked when it is a trained parameter).
    fn initial_state(&self) -> Result<Tensor>;

    /// The per-step drive of an encoded input batch.
    ///
    /// # Shapes
    /// `input`: the network's encoded input `[T, B, ...]` -> `[T, B, D]`.
    fn drive(&self, input: &Tensor) -> Result<Tensor>;

    /// One step of the state.
    ///
    /// # Shapes
    /// `state`: `[B, N]`, `drive`: `[B, D]` -> `[B, N]`.
    fn step(&self, state: &Tensor, drive: &Tensor) -> Result<Tensor>;

    /// The exact one-step Jacobian (spike non-linearities through their surrogate derivative)
    /// applied to tangent vectors, along a single trajectory: `∂h_t/∂h_{t-1}` of the state,
    /// or of an equivalent set of coordinates with the same exponents (the rate nets use
    /// upstream's `D_t = diag(φ'(x_t))·J` of `φ(x)`, similar to the state's `J·diag(φ'(x_{t-1}))`).
    ///
    /// # Shapes
    /// `prev` = `h_{t-1}`, `next` = `h_t`: `[1, N]`; `drive`: `[1, D]`; `tangents`: `[N, K]`
    /// -> `[N, K]`.
    fn tangent(
        &self,
        prev: &Tensor,
        next: &Tensor,
        drive: &Tensor,
        tangents: &Tensor,
    ) -> Result<Tensor>;

    /// The network's outputs from a state trajectory (what `Network::forward` returns for the
    /// same input).
    ///
    /// # Shapes
    /// `states`: `h_1 .. h_T` `[T, B, N]` -> outputs.
    fn readout(&self, states: &Tensor) -> Result<Tensor>;

    /// The recurrent weight matrix as the network's own parameter tensor (the one whose
    /// gradient `dL/dJ` is logged); none when the recurrence has no matrix.
    fn recurrent_weight(&self) -> Option<Tensor>;
}

/// The trajectory `h_1 .. h_T` from `h0` under `drive`.
///
/// # Shapes
/// `h0`: `[B, N]` (or `[1, N]`, broadcast), `drive`: `[T, B, D]` -> `[T, B, N]`.
pub fn trajectory(system: &dyn Dynamics, h0: &Tensor, drive: &Tensor) -> Result<Tensor> {
    let (t_len, batch) = (drive.dim(0)?, drive.dim(1)?);
    let mut h = h0
        .broadcast_as((batch, system.state_size()))?
        .contiguous()?;
    let mut states = Vec::with_capacity(t_len);
    for t in 0..t_len {
        h = system.step(&h, &drive.get(t)?)?;
        states.push(h.clone());
    }
    Tensor::stack(&states, 0)
}
