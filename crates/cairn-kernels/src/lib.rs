//! Cairn compute kernels. One module per ISA (`generic`, `x86_64`, `wasm32`)
//! holds the register-level code; the drivers here (blocking, packing, threads,
//! epilogues) are shared. The ISA is chosen once per process: see [`Isa`].
//! Every fast kernel has a reference twin that the tests compare it against.

// Register-level kernels take pointers, strides and tile sizes as plain arguments: bundling
// them into structs would only move the same eight values through one more indirection.
#![allow(clippy::too_many_arguments)]
// The threaded wasm build is compiled with RUSTC_BOOTSTRAP=1 already (it rebuilds std with
// atomics), and `memory.atomic.wait32` is still unstable in core::arch (docs/adr/0019).
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod activation;
pub mod depthwise;
pub mod gemm;
pub mod gemv;
pub mod isa;
pub mod math;
pub mod norm;
pub mod parallel;
pub mod qconvert;
pub mod qdepthwise;
pub mod qgemm;
mod simd;
pub mod vmath;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub mod wasm_pool;

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
