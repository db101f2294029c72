//! Portable kernels, written so that LLVM auto-vectorizes their inner loops.

pub mod gemm;
