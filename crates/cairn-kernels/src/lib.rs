//! Cairn compute kernels. One module per ISA (`generic` today; `x86_64` and
//! `wasm32` join it), each kernel with a reference twin used by tests.

pub mod generic;

pub use generic::gemm::{sgemm, Transpose};
