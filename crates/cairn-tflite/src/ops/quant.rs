//! QUANTIZE and DEQUANTIZE. A QUANTIZE between tensors stored alike is a copy. A DEQUANTIZE of stored weights (float16, or int8 of older
//! dynamic-range files) is done here, once: the weights become a float32 constant.

use super::{Call, OpResult};
use crate::builder::{to_f32, Builder};
use cairn_core::{DType, Tensor};

pub(super) fn convert(b: &mut Builder, c: &Call, dequantize: bool) -> OpResult {
    let (x, out) = (c.input(0)?, c.output(0)?);
    if dequantize {
        if let Some(t) = b.tensors[x].constant.clone() {
            let real = if b.is_quantized(x) { dequantized(b, x, &t).map_err(|e| c.invalid(e))? } else { to_f32(&t)? };
            b.set_constant(out, real);
            return Ok(());
        }
    }
    let layout = b.layout_of(x);
    if b.stored_alike(x, out) {
        // A requantization to the same scale and zero point (e.g. uint8 to int8 once int8
        // activations are carried as uint8): the bytes are the answer.
        let xs = b.raw(x, layout)?;
        let y = b.define_raw(out, layout);
        b.node("Identity", vec![Some(xs)], vec![y], cairn_core::Attrs::new());
        return Ok(());
    }
    let xf = b.real(x, layout)?;
    b.finish(out, layout, xf)?;
    Ok(())
}

/// `(q - zero) * scale`, per channel along the tensor's quantized axis.
fn dequantized(b: &Builder, i: usize, t: &Tensor) -> Result<Tensor, String> {
    let q = b.tensors[i].quant.as_ref().ok_or("no quantization parameters")?;
    let shape = t.shape();
    let inner: usize = shape.get(q.axis + 1..).map_or(1, |s| s.iter().product());
    let channels = if q.scale.len() > 1 { q.scale.len() } else { 1 };
    let values = t.view().to_f32_vec();
    let real = values
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let ch = if channels == 1 { 0 } else { (k / inner.max(1)) % channels };
            (v - q.zero.get(ch).copied().unwrap_or(0) as f32) * q.scale[ch]
        })
        .collect();
    debug_assert!(matches!(t.dtype(), DType::I8 | DType::U8 | DType::I32));
    Tensor::from_f32(shape.to_vec(), real).map_err(|e| e.to_string())
}
