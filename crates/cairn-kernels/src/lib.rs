//! Cairn compute kernels. One module per ISA (`generic`, `x86_64`, `wasm32`)
//! holds the register-level code; the drivers here (blocking, packing, threads,
//! epilogues) are shared. The ISA is chosen once per process: see [`Isa`].
//! Every fast kernel has a reference twin that the tests compare it against.

// Register-level kernels take pointers, strides and tile sizes as plain arguments: bundling
// them into structs would only move the same eight values through one more indirection.
#![allow(clippy::too_many_arguments)]

pub mod activation;
pub mod depthwise;
pub mod gemm;
pub mod gemv;
pub mod isa;
pub mod math;
pub mod parallel;
pub mod qconvert;
pub mod qdepthwise;
pub mod qgemm;
mod simd;
pub mod vmath;

mod generic;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm32;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use activation::Activation;
pub use gemm::{gemm, sgemm, Bias, Epilogue, LhsOperand, MatRef, PackedA, PackedB, RhsOperand, TapsRef, Transpose};
pub use isa::Isa;

#[cfg(test)]
mod testutil;
