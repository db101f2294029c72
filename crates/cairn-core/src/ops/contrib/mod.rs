//! `com.microsoft` operators: what onnxruntime's transformer optimizer and quantizer write
//! into files people share (fused Gelu variants, Skip/Embed LayerNormalization, Attention,
//! FusedMatMul). Semantics follow onnxruntime's ContribOperators.md; each op reuses the
//! engine's kernels (the GEMM for projections and attention, f64-accumulated normalization).

mod ms_activation;
mod ms_attention;
mod ms_matmul;
mod ms_norm;

use crate::{bail_shape, Result, TensorRef};

use super::MS_DOMAIN;

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

#[cfg(test)]
mod tests {
    //! What onnxruntime's CPU provider cannot check (BiasAdd has only a CUDA kernel there)
    //! and hostile shapes; tools/compare_ms_ops.py compares the rest with onnxruntime.
    use crate::{Attr, Attrs, Registry, Tensor};
    use std::sync::Arc;

    fn run(op_type: &str, attrs: &[(&str, Attr)], inputs: Vec<Option<Tensor>>) -> crate::Result<Vec<Tensor>> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let op = Registry::global().build("n", super::MS_DOMAIN, op_type, 1, &attrs, inputs.len(), 1)?;
        let inputs: Vec<Option<Arc<Tensor>>> = inputs.into_iter().map(|t| t.map(Arc::new)).collect();
        crate::plan::run_owned(op.as_ref(), &inputs)
    }

    fn f32s(shape: &[usize], v: &[f32]) -> Option<Tensor> {
        Some(Tensor::from_f32(shape.to_vec(), v.to_vec()).unwrap())
    }

    #[test]
    fn bias_add_adds_bias_per_channel_and_skip() {
        let out = run("BiasAdd", &[], vec![f32s(&[1, 2, 2], &[1., 2., 3., 4.]), f32s(&[2], &[10., 20.]), f32s(&[1, 2, 2], &[0.5; 4])]);
        assert_eq!(out.unwrap()[0].f32s().unwrap(), &[11.5, 22.5, 13.5, 24.5]);
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let x = || f32s(&[1, 2, 4], &[0.1; 8]);
        // A bias of the wrong length.
        assert!(run("FastGelu", &[], vec![x(), f32s(&[3], &[0.; 3])]).is_err());
        // A mask that is neither [B], [B, L] nor [B, S, L].
        let heads = [("num_heads", Attr::Int(2))];
        let mask = Some(Tensor::from_i64(vec![3], vec![1, 1, 1]).unwrap());
        assert!(run("MultiHeadAttention", &heads, vec![x(), x(), x(), None, mask]).is_err());
        // Heads that do not divide the hidden size.
        assert!(run("MultiHeadAttention", &[("num_heads", Attr::Int(3))], vec![x(), x(), x()]).is_err());
        // Token ids outside the embedding table.
        let ids = Some(Tensor::from_i64(vec![1, 2], vec![0, 99]).unwrap());
        let table = || f32s(&[4, 2], &[0.5; 8]);
        let vec2 = || f32s(&[2], &[1., 0.]);
        let err = run("EmbedLayerNormalization", &[], vec![ids, None, table(), table(), None, vec2(), vec2()]).unwrap_err();
        assert!(err.to_string().contains("outside its table"), "{err}");
        // FusedMatMul with mismatched inner dims.
        assert!(run("FusedMatMul", &[], vec![f32s(&[2, 3], &[0.; 6]), f32s(&[2, 3], &[0.; 6])]).is_err());
    }
}
