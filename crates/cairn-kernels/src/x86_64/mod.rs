//! x86_64 kernels using AVX2 + FMA, selected at run time by `Isa::current()`.

pub(crate) mod gemm;
pub(crate) mod qgemm;
