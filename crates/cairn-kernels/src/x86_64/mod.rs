//! x86_64 kernels using AVX2 + FMA or AVX-512F, selected at run time by `Isa::current()`.

pub(crate) mod gemm;
pub(crate) mod gemm_avx512;
pub(crate) mod qgemm;
