//! `com.microsoft` operators: what onnxruntime's transformer optimizer and quantizer write
//! into files people share (fused Gelu variants, Skip/Embed LayerNormalization, Attention,
//! FusedMatMul). Semantics follow onnxruntime's ContribOperators.md; each op reuses the
//! engine's kernels (the GEMM for projections and attention, f64-accumulated normalization).

mod ms_activation;
mod ms_attention;
mod ms_matmul;
mod ms_norm;

use crate::{bail_shape, Result, TensorRef};

pub const MS_DOMAIN: &str = "com.microsoft";

pub fn register(r: &mut crate::Registry) {
    ms_activation::register(r);
    ms_attention::register(r);
    ms_matmul::register(r);
    ms_norm::register(r);
}

/// A per-channel vector over the last axis (`bias`, `gamma`, `beta`): its f32 values,
/// checked to hold exactly `channels` of them.
fn last_axis_vector<'a>(t: TensorRef<'a>, channels: usize, op: &str, what: &str) -> Result<&'a [f32]> {
    let v = t.f32s()?;
    if v.len() != channels {
        bail_shape!(op, "{what} has {} values but the last axis has {channels}", v.len());
    }
    Ok(v)
}
