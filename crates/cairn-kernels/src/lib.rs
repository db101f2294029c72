//! Cairn compute kernels.
