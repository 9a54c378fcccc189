//! Fused CPU kernels of autoresearch: plain Rust over slices (no tensor types), so each kernel
//! can be tested against a naive reference loop and reused by any tensor front end.
//!
//! Conventions:
//! * row-major `f32` slices with explicit dimensions; time-first `[T, M]` for neuron scans;
//! * results never depend on the number of threads: work is split over independent outputs,
//!   never over a reduction, so sums are always taken in the same order;
//! * hot loops are compiled twice, for the baseline target and for AVX2+FMA, and chosen at run
//!   time ([`dispatch!`]); Rust never fuses a multiply and an add on its own, so both give
//!   bit-identical results.

#[macro_use]
pub mod dispatch;
pub mod batch_norm;
pub mod conv;
pub mod conv_pool;
pub mod csr;
pub mod encode;
pub mod fastmath;
pub mod gemm;
pub mod grid;
pub mod lif;
pub mod linear;
pub mod optim;
pub mod par;
pub mod pc;
pub mod pool;
pub mod rnn;
pub mod sgemm;
pub mod sgemm_nt;
pub mod sgemm_packed;
pub mod softmax;
pub mod spike;
pub mod spike_conv;
pub mod surrogate;
pub mod tanh_rnn;
