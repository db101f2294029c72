//! Images to input tensors, as a manifest's [`Preprocess`] says.

use crate::error::{Error, Result};
use crate::manifest::Preprocess;

/// Converts RGBA pixels (`width x height`, already resized to `pre.size`) into the
/// model's f32 input `[1, 3, H, W]` or `[1, H, W, 3]`: channels in `pre.color`
/// order, each `(value / 255 - mean) / std`. Alpha is ignored.
pub fn rgba_to_input(rgba: &[u8], width: u32, height: u32, pre: &Preprocess) -> Result<Vec<f32>> {
    let [h, w] = pre.size;
    if width != w || height != h {
        return Err(Error::Manifest(format!("the image is {width}x{height}, the model takes {w}x{h}: resize it first")));
    }
    let pixels = (w as usize) * (h as usize);
    if rgba.len() != pixels * 4 {
        return Err(Error::Manifest(format!("{} bytes are not {width}x{height} RGBA pixels", rgba.len())));
    }
    let order: [usize; 3] = if pre.color == "bgr" { [2, 1, 0] } else { [0, 1, 2] };
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * pre.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| pre.mean[c] / pre.std[c]);
    let mut out = vec![0f32; pixels * 3];
    let nchw = pre.layout == "nchw";
    for (p, px) in rgba.chunks_exact(4).enumerate() {
        for c in 0..3 {
            let v = px[order[c]] as f32 * scale[c] - shift[c];
            out[if nchw { c * pixels + p } else { p * 3 + c }] = v;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(layout: &str, color: &str) -> Preprocess {
        Preprocess { size: [1, 2], layout: layout.into(), color: color.into(), mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 0.5] }
    }

    #[test]
    fn normalizes_and_lays_out_channels() {
        let rgba = [255, 0, 51, 9, 0, 255, 0, 9];
        let nchw = rgba_to_input(&rgba, 2, 1, &pre("nchw", "rgb")).unwrap();
        let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&nchw, &[1.0, -1.0, -2.0, 2.0, -0.6, -1.0]), "{nchw:?}");
        let nhwc = rgba_to_input(&rgba, 2, 1, &pre("nhwc", "bgr")).unwrap();
        assert!(close(&nhwc[..3], &[-0.6, -2.0, 1.0]), "{nhwc:?}");
        assert!(rgba_to_input(&rgba, 1, 2, &pre("nchw", "rgb")).is_err());
        assert!(rgba_to_input(&rgba[..7], 2, 1, &pre("nchw", "rgb")).is_err());
    }
}
