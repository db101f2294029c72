//! Convolutions and fully connected layers. Filters are transposed here from TFLite's
//! `[O, H, W, I]` (depthwise: `[1, H, W, C·M]`) to ONNX's `[O, I, H, W]`, once.

use super::{activation, at, auto_pad, emit, pair, Call, OpResult};
use crate::builder::{ints_attr, Builder};
use crate::layout::Layout;
use crate::schema_generated::tflite::{ActivationFunctionType as Act, Padding};
use cairn_core::{Attr, Attrs};

/// `[O, H, W, I]` to `[O, I, H, W]`.
const OHWI_TO_OIHW: [usize; 4] = [0, 3, 1, 2];
/// Depthwise `[1, H, W, C·M]` to `[C·M, 1, H, W]`.
const DEPTHWISE_TO_OIHW: [usize; 4] = [3, 0, 1, 2];

pub(super) fn conv2d(b: &mut Builder, c: &Call) -> OpResult {
    let o = c.options(c.op.builtin_options_as_conv_2_doptions())?;
    let (x, w, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let (cin, filter) = (b.tensors[x].shape.get(3).copied(), b.tensors[w].shape.clone());
    let group = match (cin, filter.get(3)) {
        (Some(cin), Some(&fi)) if fi > 0 && cin % fi == 0 => cin / fi,
        _ => return Err(c.invalid(format!("input {:?} and filter {filter:?} do not fit a 2-D convolution", b.tensors[x].shape))),
    };
    let attrs = at([
        ("strides", pair(o.stride_h(), o.stride_w())),
        ("dilations", pair(o.dilation_h_factor(), o.dilation_w_factor())),
        ("auto_pad", auto_pad(c, o.padding())?),
        ("group", Attr::Int(group as i64)),
    ]);
    conv_node(b, c, x, w, c.opt_input(2), out, attrs, OHWI_TO_OIHW, o.fused_activation_function())
}

pub(super) fn depthwise(b: &mut Builder, c: &Call) -> OpResult {
    let o = c.options(c.op.builtin_options_as_depthwise_conv_2_doptions())?;
    let (x, w, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let cin = b.tensors[x].shape.get(3).copied().filter(|&n| n > 0).ok_or_else(|| c.invalid("the input is not 4-D NHWC"))?;
    let attrs = at([
        ("strides", pair(o.stride_h(), o.stride_w())),
        ("dilations", pair(o.dilation_h_factor(), o.dilation_w_factor())),
        ("auto_pad", auto_pad(c, o.padding())?),
        ("group", Attr::Int(cin as i64)),
    ]);
    conv_node(b, c, x, w, c.opt_input(2), out, attrs, DEPTHWISE_TO_OIHW, o.fused_activation_function())
}

#[allow(clippy::too_many_arguments)]
fn conv_node(
    b: &mut Builder,
    c: &Call,
    x: usize,
    w: usize,
    bias: Option<usize>,
    out: usize,
    attrs: Attrs,
    perm: [usize; 4],
    act: Act,
) -> OpResult {
    if b.rank(x) != 4 || b.rank(w) != 4 {
        return Err(c.invalid(format!("expects 4-D input and filter, got {:?} and {:?}", b.tensors[x].shape, b.tensors[w].shape)));
    }
    let xf = b.real(x, Layout::Nchw)?;
    let wf = b.weight(w, &perm, "filter")?;
    let bf = bias.map(|i| b.weight(i, &[0], "bias")).transpose()?;
    emit(b, c, out, Layout::Nchw, "Conv", vec![Some(xf), Some(wf), bf], attrs, act)
}

pub(super) fn fully_connected(b: &mut Builder, c: &Call) -> OpResult {
    let o = c.options(c.op.builtin_options_as_fully_connected_options())?;
    if o.weights_format().0 != 0 {
        return Err(c.unsupported("shuffled weights"));
    }
    let (x, w, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let k = match b.tensors[w].shape.as_slice() {
        [_, k] if *k > 0 => *k as i64,
        s => return Err(c.invalid(format!("the weights must be [outputs, inputs], got {s:?}"))),
    };
    // The input is flattened to [-1, k] in the file's (NHWC) memory order.
    let mut xf = b.real(x, Layout::File)?;
    if b.rank(x) != 2 {
        let shape = b.ints("fc_shape", &[-1, k]);
        xf = b.apply("Reshape", &[&xf, &shape], Attrs::new());
    }
    let wf = b.weight(w, &[0, 1], "weights")?;
    let bf = c.opt_input(2).map(|i| b.weight(i, &[0], "bias")).transpose()?;
    let gemm_attrs = at([("transB", Attr::Int(1))]);
    if b.rank(out) == 2 {
        return emit(b, c, out, Layout::File, "Gemm", vec![Some(xf), Some(wf), bf], gemm_attrs, o.fused_activation_function());
    }
    // keep_num_dims: [..., k] -> [..., n], reshaped after the activation.
    let g = b.temp("fc");
    b.node("Gemm", vec![Some(xf), Some(wf), bf], vec![g.clone()], gemm_attrs);
    let g = if o.fused_activation_function() == Act::NONE { g } else { activation(b, c, o.fused_activation_function(), &g, None)? };
    let dims: Vec<i64> = b.tensors[out].shape.iter().map(|&d| d as i64).collect();
    let shape = b.ints("fc_out_shape", &dims);
    emit(b, c, out, Layout::File, "Reshape", vec![Some(g), Some(shape)], Attrs::new(), Act::NONE)
}

/// TRANSPOSE_CONV: inputs (output_shape, filter [O, H, W, I], x, [bias]).
pub(super) fn transpose_conv(b: &mut Builder, c: &Call) -> OpResult {
    let o = c.options(c.op.builtin_options_as_transpose_conv_options())?;
    let (x, w, out) = (c.input(2)?, c.input(1)?, c.output(0)?);
    let act = o.fused_activation_function();
    // The output_shape operand is authoritative; the declared shape may be stale.
    if b.tensors[c.input(0)?].constant.is_some() {
        let dims = super::const_ints(b, c, c.input(0)?, "output shape")?;
        let dims: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d <= crate::reader::MAX_DIM))
            .collect::<Option<_>>()
            .ok_or_else(|| c.invalid(format!("output shape {dims:?}")))?;
        b.tensors[out].shape = dims;
    }
    deconvolution(b, c, x, w, c.opt_input(3), out, o.padding(), (o.stride_h(), o.stride_w()), act)
}

/// MediaPipe's custom `Convolution2DTransposeBias`: inputs (x, filter [O, H, W, I], bias);
/// its custom options are TFLite's C struct `TfLiteTransposeConvParams`
/// (`padding`, `stride_width`, `stride_height` as little-endian i32).
pub(super) fn transpose_conv_bias(b: &mut Builder, c: &Call) -> OpResult {
    let raw = c.op.custom_options().map(|v| v.bytes().to_vec()).unwrap_or_default();
    let word = |k: usize| raw.get(4 * k..4 * k + 4).map(|s| i32::from_le_bytes(s.try_into().expect("4 bytes")));
    let (Some(padding), Some(sw), Some(sh)) = (word(0), word(1), word(2)) else {
        return Err(c.invalid(format!("custom options hold {} bytes; expected padding, stride_width, stride_height (12)", raw.len())));
    };
    // TfLitePadding: 1 = SAME, 2 = VALID.
    let padding = match padding {
        1 => Padding::SAME,
        2 => Padding::VALID,
        p => return Err(c.invalid(format!("padding {p} is not SAME (1) or VALID (2)"))),
    };
    let (x, w, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    deconvolution(b, c, x, w, c.opt_input(2), out, padding, (sh, sw), Act::NONE)
}

/// A transposed convolution as an ordinary one: the input is spread out with `stride - 1`
/// zeros between pixels (reshape to `[N, C, H, 1, W, 1]`, pad to `[N, C, H, s, W, s]`,
/// reshape back), padded or cropped so every output sees its window, then convolved with the
/// filter turned by 180°. Cairn has no ConvTranspose kernel; this costs `s²` times the MACs
/// (most of them on zeros) but runs on the fast convolution kernels.
#[allow(clippy::too_many_arguments)]
fn deconvolution(
    b: &mut Builder,
    c: &Call,
    x: usize,
    w: usize,
    bias: Option<usize>,
    out: usize,
    padding: Padding,
    (sh, sw): (i32, i32),
    act: Act,
) -> OpResult {
    let (xs, fs, ys) = (b.tensors[x].shape.clone(), b.tensors[w].shape.clone(), b.tensors[out].shape.clone());
    let [n, h, wd, ci] = dims4(c, &xs)?;
    let [co, kh, kw, fi] = dims4(c, &fs)?;
    let [_, oh, ow, oc] = dims4(c, &ys)?;
    if fi != ci || oc != co || sh < 1 || sw < 1 || h == 0 || wd == 0 {
        return Err(
            c.invalid(format!("input {xs:?}, filter {fs:?}, output {ys:?} and strides {sh}x{sw} do not fit a transposed convolution"))
        );
    }
    let (sh, sw) = (sh as usize, sw as usize);
    // The padding a forward convolution from the output back to the input would use.
    let before = |out_len: usize, in_len: usize, k: usize, s: usize| -> i64 {
        match padding {
            Padding::SAME => (((in_len as i64 - 1) * s as i64 + k as i64 - out_len as i64).max(0)) / 2,
            _ => 0,
        }
    };
    let (ph, pw) = (before(oh, h, kh, sh), before(ow, wd, kw, sw));
    let xf = b.real(x, Layout::Nchw)?;
    let mut v = xf;
    if sh > 1 || sw > 1 {
        let s6 = b.ints("deconv_shape6", &[n as i64, ci as i64, h as i64, 1, wd as i64, 1]);
        v = b.apply("Reshape", &[&v, &s6], Attrs::new());
        let pads = b.ints("deconv_spread", &[0, 0, 0, 0, 0, 0, 0, 0, 0, sh as i64 - 1, 0, sw as i64 - 1]);
        v = b.apply("Pad", &[&v, &pads], Attrs::new());
        let s4 = b.ints("deconv_shape4", &[n as i64, ci as i64, (h * sh) as i64, (wd * sw) as i64]);
        v = b.apply("Reshape", &[&v, &s4], Attrs::new());
    }
    // Spread length is L·s; the convolution needs out + k - 1 rows with k - 1 - pad before.
    let edge = |k: usize, p: i64, len: usize, s: usize, out_len: usize| -> (i64, i64) {
        let front = k as i64 - 1 - p;
        let back = (out_len + k - 1) as i64 - front - (len * s) as i64;
        (front, back)
    };
    let (fh, bh) = edge(kh, ph, h, sh, oh);
    let (fw, bw) = edge(kw, pw, wd, sw, ow);
    if fh < 0 || fw < 0 {
        return Err(c.unsupported("padding larger than the filter"));
    }
    let pads = b.ints("deconv_pads", &[0, 0, fh, fw, 0, 0, bh.max(0), bw.max(0)]);
    v = b.apply("Pad", &[&v, &pads], Attrs::new());
    if bh < 0 || bw < 0 {
        // Crop what the spread put beyond the last output's window.
        let ends = b.ints("deconv_crop", &[(fh + (h * sh) as i64 + bh.min(0)), (fw + (wd * sw) as i64 + bw.min(0))]);
        let (starts, axes) = (b.ints("deconv_crop0", &[0, 0]), b.ints("deconv_axes", &[2, 3]));
        v = b.apply("Slice", &[&v, &starts, &ends, &axes], Attrs::new());
    }
    // Filter [O, H, W, I] -> [O, I, H, W], turned by 180 degrees.
    let wf = b.weight(w, &[0, 3, 1, 2], "filter")?;
    let (st, en, ax, stp) = (
        b.ints("rot_start", &[-1, -1]),
        b.ints("rot_end", &[i64::MIN, i64::MIN]),
        b.ints("rot_axes", &[2, 3]),
        b.ints("rot_steps", &[-1, -1]),
    );
    let wf = b.apply("Slice", &[&wf, &st, &en, &ax, &stp], Attrs::new());
    let bf = bias.map(|i| b.weight(i, &[0], "bias")).transpose()?;
    let attrs = at([("strides", Attr::Ints(vec![1, 1])), ("pads", ints_attr(&[0, 0, 0, 0]))]);
    emit(b, c, out, Layout::Nchw, "Conv", vec![Some(v), Some(wf), bf], attrs, act)
}

fn dims4(c: &Call, s: &[usize]) -> OpResult<[usize; 4]> {
    s.try_into().map_err(|_| c.invalid(format!("expects 4-D tensors, got {s:?}")))
}
