//! Portable kernels: the fallback on every target, and what the ISA-specific
//! modules are tested against (together with `gemm::reference`).

pub(crate) mod gemm;
pub(crate) mod qgemm;
