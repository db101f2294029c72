//! Data movement: concat, pad, reshape, strided slice, transpose. Where input and output are
//! stored alike (same dtype and quantization, as TFLite requires of most of these), the stored
//! values move as they are, with no dequantize/quantize around them.

use super::{at, const_ints, emit, Call, OpResult};
use crate::builder::Builder;
use crate::layout::{file_axis, nchw_axis, Layout};
use crate::schema_generated::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};
use cairn_core::{Attr, Attrs, DType, Tensor, TensorData};

/// Emits `op_type(x, extra...)` producing `out` in `layout`, on stored values when it can.
#[allow(clippy::too_many_arguments)]
fn movement(
    b: &mut Builder,
    c: &Call,
    x: usize,
    out: usize,
    layout: Layout,
    op_type: &str,
    extra: Vec<Option<String>>,
    attrs: Attrs,
) -> OpResult {
    if b.stored_alike(x, out) {
        let xs = b.raw(x, layout)?;
        let y = b.define_raw(out, layout);
        let mut inputs = vec![Some(xs)];
        inputs.extend(extra);
        b.node(op_type, inputs, vec![y], attrs);
        return Ok(());
    }
    let xf = b.real(x, layout)?;
    let mut inputs = vec![Some(xf)];
    inputs.extend(extra);
    emit(b, c, out, layout, op_type, inputs, attrs, Act::NONE)
}

pub(super) fn concat(b: &mut Builder, c: &Call) -> OpResult {
    let o = c.options(c.op.builtin_options_as_concatenation_options())?;
    let out = c.output(0)?;
    let rank = b.rank(out);
    let axis = file_axis(o.axis() as i64, rank).ok_or_else(|| c.invalid(format!("axis {} is out of range for rank {rank}", o.axis())))?;
    let (layout, axis) = if rank == 4 { (Layout::Nchw, nchw_axis(axis)) } else { (Layout::File, axis) };
    let parts: Vec<usize> = c.inputs.iter().map(|i| i.ok_or_else(|| c.invalid("an input is missing"))).collect::<OpResult<_>>()?;
    let raw = o.fused_activation_function() == Act::NONE && parts.iter().all(|&p| b.stored_alike(p, out));
    let attrs = at([("axis", Attr::Int(axis as i64))]);
    if raw {
        let inputs = parts.iter().map(|&p| b.raw(p, layout).map(Some)).collect::<Result<Vec<_>, _>>()?;
        let y = b.define_raw(out, layout);
        b.node("Concat", inputs, vec![y], attrs);
        return Ok(());
    }
    let inputs = parts.iter().map(|&p| b.real(p, layout).map(Some)).collect::<Result<Vec<_>, _>>()?;
    emit(b, c, out, layout, "Concat", inputs, attrs, o.fused_activation_function())
}

/// PAD / PADV2: paddings `[rank, 2]`; PADV2's third input is the constant value.
pub(super) fn pad(b: &mut Builder, c: &Call) -> OpResult {
    let (x, p, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let rank = b.rank(x);
    let pads = const_ints(b, c, p, "paddings")?;
    if pads.len() != 2 * rank || pads.iter().any(|&v| v < 0) {
        return Err(c.invalid(format!("paddings {pads:?} are not [rank {rank}, 2] non-negative values")));
    }
    let layout = if rank == 4 { Layout::Nchw } else { Layout::File };
    let mut onnx = vec![0i64; 2 * rank];
    for a in 0..rank {
        let to = if layout == Layout::Nchw { nchw_axis(a) } else { a };
        onnx[to] = pads[2 * a];
        onnx[rank + to] = pads[2 * a + 1];
    }
    let pads = b.ints("pads", &onnx);
    match c.opt_input(2) {
        // A constant value: pad real values (a quantized zero point pads real zero).
        Some(v) => {
            let xf = b.real(x, layout)?;
            let v = b.real(v, Layout::File)?;
            emit(b, c, out, layout, "Pad", vec![Some(xf), Some(pads), Some(v)], Attrs::new(), Act::NONE)
        }
        // Quantized PAD pads with the zero point, i.e. real zero: on stored values, with the
        // zero point as the constant (int8 activations are carried as uint8, zero point + 128).
        None if b.is_quantized(x) && b.tensors[x].quant.as_ref().is_some_and(|q| q.zero.iter().any(|&z| z != 0)) => {
            let zero = b.tensors[x].quant.as_ref().and_then(|q| q.zero.first().copied()).unwrap_or(0);
            let value = match b.tensors[x].dtype {
                DType::U8 => Some(TensorData::U8(vec![zero as u8])),
                DType::I8 => Some(TensorData::I8(vec![zero as i8])),
                _ => None,
            };
            match value.filter(|_| b.stored_alike(x, out) && b.tensors[x].quant.as_ref().is_some_and(|q| q.zero.len() == 1)) {
                Some(v) => {
                    let v = b.init("pad_zero", Tensor::new(vec![], v)?);
                    movement(b, c, x, out, layout, "Pad", vec![Some(pads), Some(v)], Attrs::new())
                }
                None => {
                    let xf = b.real(x, layout)?;
                    emit(b, c, out, layout, "Pad", vec![Some(xf), Some(pads)], Attrs::new(), Act::NONE)
                }
            }
        }
        None => movement(b, c, x, out, layout, "Pad", vec![Some(pads)], Attrs::new()),
    }
}

/// RESHAPE, SQUEEZE, EXPAND_DIMS, in the file's memory order. RESHAPE's target comes from its
/// shape operand (or options) with -1 resolved, since converters may leave the output
/// tensor's declared shape stale; the others take the output's declared shape.
pub(super) fn reshape(b: &mut Builder, c: &Call) -> OpResult {
    let (x, out) = (c.input(0)?, c.output(0)?);
    let from = b.tensors[x].shape.iter().product::<usize>();
    let requested: Option<Vec<i64>> = match c.code {
        super::OpCode::Builtin(B::RESHAPE) => match c.opt_input(1).filter(|&i| b.tensors[i].constant.is_some()) {
            Some(i) => Some(const_ints(b, c, i, "shape")?),
            None => c.op.builtin_options_as_reshape_options().and_then(|o| o.new_shape()).map(|v| v.iter().map(i64::from).collect()),
        },
        _ => None,
    };
    let dims: Vec<i64> = match requested {
        Some(r) => resolve_shape(&r, from).ok_or_else(|| c.invalid(format!("cannot reshape {:?} to {r:?}", b.tensors[x].shape)))?,
        None => b.tensors[out].shape.iter().map(|&d| d as i64).collect(),
    };
    if dims.iter().product::<i64>() != from as i64 {
        return Err(c.invalid(format!("cannot reshape {:?} to {dims:?}", b.tensors[x].shape)));
    }
    b.tensors[out].shape = dims.iter().map(|&d| d as usize).collect();
    let shape = b.ints("shape", &dims);
    movement(b, c, x, out, Layout::File, "Reshape", vec![Some(shape)], Attrs::new())
}

/// A target shape with at most one -1, given the element count.
fn resolve_shape(r: &[i64], numel: usize) -> Option<Vec<i64>> {
    let known: i64 = r.iter().filter(|&&d| d != -1).try_fold(1i64, |a, &d| if d < 0 { None } else { a.checked_mul(d) })?;
    match r.iter().filter(|&&d| d == -1).count() {
        0 => Some(r.to_vec()),
        1 if known > 0 && numel as i64 % known == 0 => Some(r.iter().map(|&d| if d == -1 { numel as i64 / known } else { d }).collect()),
        _ => None,
    }
}

pub(super) fn transpose(b: &mut Builder, c: &Call) -> OpResult {
    let (x, p, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let perm = const_ints(b, c, p, "permutation")?;
    let rank = b.rank(x);
    let mut seen = vec![false; rank];
    for &a in &perm {
        match usize::try_from(a).ok().filter(|&a| a < rank) {
            Some(a) if !seen[a] => seen[a] = true,
            _ => return Err(c.invalid(format!("{perm:?} is not a permutation of {rank} axes"))),
        }
    }
    movement(b, c, x, out, Layout::File, "Transpose", vec![], at([("perm", Attr::Ints(perm))]))
}

/// STRIDED_SLICE as ONNX Slice (+ Squeeze for `shrink_axis_mask`).
pub(super) fn strided_slice(b: &mut Builder, c: &Call) -> OpResult {
    let o = c.options(c.op.builtin_options_as_strided_slice_options())?;
    if o.ellipsis_mask() != 0 || o.new_axis_mask() != 0 {
        return Err(c.unsupported("ellipsis or new-axis masks"));
    }
    let x = c.input(0)?;
    let out = c.output(0)?;
    let rank = b.rank(x);
    let (begin, end, strides) =
        (const_ints(b, c, c.input(1)?, "begin")?, const_ints(b, c, c.input(2)?, "end")?, const_ints(b, c, c.input(3)?, "strides")?);
    let n = begin.len();
    if n > rank || end.len() != n || strides.len() != n || strides.contains(&0) {
        return Err(c.invalid(format!("begin {begin:?}, end {end:?}, strides {strides:?} do not fit rank {rank}")));
    }
    let bit = |mask: i32, a: usize| mask >> a & 1 == 1;
    let (mut starts, mut ends, mut shrink) = (Vec::new(), Vec::new(), Vec::new());
    for a in 0..n {
        let forward = strides[a] > 0;
        let mut s = if bit(o.begin_mask(), a) {
            if forward {
                0
            } else {
                i64::MAX
            }
        } else {
            begin[a]
        };
        let mut e = if bit(o.end_mask(), a) {
            if forward {
                i64::MAX
            } else {
                i64::MIN
            }
        } else {
            end[a]
        };
        if bit(o.shrink_axis_mask(), a) {
            s = begin[a];
            e = if s == -1 { i64::MAX } else { s + 1 };
            shrink.push(a as i64);
        }
        starts.push(s);
        ends.push(e);
    }
    let strides = if shrink.is_empty() {
        strides
    } else {
        strides.iter().enumerate().map(|(a, &s)| if shrink.contains(&(a as i64)) { 1 } else { s }).collect()
    };
    let layout = if rank == 4 && shrink.is_empty() { Layout::Nchw } else { Layout::File };
    let axes: Vec<i64> = (0..n).map(|a| if layout == Layout::Nchw { nchw_axis(a) } else { a } as i64).collect();
    let (st, en, ax, sp) = (b.ints("starts", &starts), b.ints("ends", &ends), b.ints("axes", &axes), b.ints("steps", &strides));
    let extra = vec![Some(st), Some(en), Some(ax), Some(sp)];
    if shrink.is_empty() {
        return movement(b, c, x, out, layout, "Slice", extra, Attrs::new());
    }
    // Slice on the stored values, then drop the shrunk axes.
    let xs = if b.stored_alike(x, out) { b.raw(x, layout)? } else { b.real(x, layout)? };
    let mut inputs = vec![xs.as_str()];
    let names: Vec<String> = extra.into_iter().flatten().collect();
    inputs.extend(names.iter().map(String::as_str));
    let sliced = b.apply("Slice", &inputs, Attrs::new());
    let sq = b.ints("squeeze_axes", &shrink);
    if b.stored_alike(x, out) {
        let y = b.define_raw(out, Layout::File);
        b.node("Squeeze", vec![Some(sliced), Some(sq)], vec![y], Attrs::new());
        return Ok(());
    }
    emit(b, c, out, Layout::File, "Squeeze", vec![Some(sliced), Some(sq)], Attrs::new(), Act::NONE)
}

/// DEPTH_TO_SPACE (TensorFlow's DCR order) in the file's NHWC: `[N, H, W, C]` ->
/// `[N, H, W, b, b, C/b²]` -> transpose to `[N, H, b, W, b, C/b²]` -> `[N, H·b, W·b, C/b²]`.
pub(super) fn depth_to_space(b: &mut Builder, c: &Call) -> OpResult {
    let block = c.options(c.op.builtin_options_as_depth_to_space_options())?.block_size();
    let (x, out) = (c.input(0)?, c.output(0)?);
    let s = b.tensors[x].shape.clone();
    let bs = usize::try_from(block).ok().filter(|&v| v > 0).ok_or_else(|| c.invalid(format!("block size {block}")))?;
    let [n, h, w, ch] = <[usize; 4]>::try_from(s.clone()).map_err(|_| c.invalid(format!("expects a 4-D input, got {s:?}")))?;
    if ch % (bs * bs) != 0 {
        return Err(c.invalid(format!("{ch} channels are not a multiple of block size {bs} squared")));
    }
    let d = (ch / (bs * bs)) as i64;
    let (n, h, w, bs) = (n as i64, h as i64, w as i64, bs as i64);
    let raw = b.stored_alike(x, out);
    let v = if raw { b.raw(x, Layout::File)? } else { b.real(x, Layout::File)? };
    let s6 = b.ints("d2s_shape6", &[n, h, w, bs, bs, d]);
    let v = b.apply("Reshape", &[&v, &s6], Attrs::new());
    let v = b.apply("Transpose", &[&v], at([("perm", Attr::Ints(vec![0, 1, 3, 2, 4, 5]))]));
    let s4 = b.ints("d2s_shape4", &[n, h * bs, w * bs, d]);
    if raw {
        let y = b.define_raw(out, Layout::File);
        b.node("Reshape", vec![Some(v), Some(s4)], vec![y], Attrs::new());
        return Ok(());
    }
    emit(b, c, out, Layout::File, "Reshape", vec![Some(v), Some(s4)], Attrs::new(), Act::NONE)
}
