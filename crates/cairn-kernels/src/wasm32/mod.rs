//! wasm32 kernels using the fixed-width SIMD proposal (`simd128`). Compiled only
//! into the SIMD build of the module; browsers without SIMD load the scalar build.

pub(crate) mod gemm;
pub(crate) mod qgemm;
