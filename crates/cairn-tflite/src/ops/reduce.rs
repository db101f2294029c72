//! Pools, reductions, softmax and resizing: the operators whose axes move with the layout.

use super::{at, auto_pad, const_ints, emit, pair, Call, OpResult};
use crate::builder::Builder;
use crate::layout::{file_axis, nchw_axis, Layout};
use crate::schema_generated::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};
use cairn_core::{Attr, Attrs};

pub(super) fn pool(b: &mut Builder, c: &Call, max: bool) -> OpResult {
    let o = c.options(c.op.builtin_options_as_pool_2_doptions())?;
    let (x, out) = (c.input(0)?, c.output(0)?);
    if b.rank(x) != 4 {
        return Err(c.invalid(format!("expects a 4-D input, got {:?}", b.tensors[x].shape)));
    }
    let xf = b.real(x, Layout::Nchw)?;
    let attrs = at([
        ("kernel_shape", pair(o.filter_height(), o.filter_width())),
        ("strides", pair(o.stride_h(), o.stride_w())),
        ("auto_pad", auto_pad(c, o.padding())?),
    ]);
    // TensorFlow's SAME average pooling divides by the pixels inside the image: ONNX's
    // default count_include_pad = 0.
    let op = if max { "MaxPool" } else { "AveragePool" };
    emit(b, c, out, Layout::Nchw, op, vec![Some(xf)], attrs, o.fused_activation_function())
}

pub(super) fn reduce(b: &mut Builder, c: &Call, code: B) -> OpResult {
    let (x, axes_t, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let keep = c.op.builtin_options_as_reducer_options().is_some_and(|o| o.keep_dims());
    let rank = b.rank(x);
    let mut axes: Vec<usize> = const_ints(b, c, axes_t, "axes")?
        .into_iter()
        .map(|a| file_axis(a, rank).ok_or_else(|| c.invalid(format!("axis {a} is out of range for rank {rank}"))))
        .collect::<OpResult<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    if code == B::MEAN && rank == 4 && axes == [1, 2] && b.is_quantized(x) && b.is_quantized(out) {
        return spatial_mean(b, c, x, out, keep);
    }
    // NCHW keeps the result's axis order when the dims kept are in the same order either way.
    let same_order = keep || axes.contains(&3) || (axes.contains(&1) && axes.contains(&2));
    let layout = if rank == 4 && same_order { Layout::Nchw } else { Layout::File };
    let mapped: Vec<i64> = axes.iter().map(|&a| if layout == Layout::Nchw { nchw_axis(a) } else { a } as i64).collect();
    let xf = b.real(x, layout)?;
    let op = match code {
        B::MEAN => "ReduceMean",
        B::SUM => "ReduceSum",
        B::REDUCE_MAX => "ReduceMax",
        B::REDUCE_MIN => "ReduceMin",
        _ => "ReduceProd",
    };
    let out_layout = if keep { layout } else { Layout::File };
    let keepdims = Attr::Int(keep as i64);
    if op == "ReduceSum" {
        // ReduceSum takes its axes as an input from opset 13 on.
        let axes = b.ints("axes", &mapped);
        return emit(b, c, out, out_layout, op, vec![Some(xf), Some(axes)], at([("keepdims", keepdims)]), Act::NONE);
    }
    emit(b, c, out, out_layout, op, vec![Some(xf)], at([("axes", Attr::Ints(mapped)), ("keepdims", keepdims)]), Act::NONE)
}

pub(super) fn softmax(b: &mut Builder, c: &Call) -> OpResult {
    let beta = c.op.builtin_options_as_softmax_options().map_or(1.0, |o| o.beta());
    let (x, out) = (c.input(0)?, c.output(0)?);
    let layout = b.layout_of(x);
    let mut xf = b.real(x, layout)?;
    let axis = if layout == Layout::Nchw && b.rank(x) == 4 { 1 } else { b.rank(x) as i64 - 1 };
    if beta != 1.0 {
        let s = b.scalar("beta", beta);
        xf = b.apply("Mul", &[&xf, &s], Attrs::new());
    }
    emit(b, c, out, layout, "Softmax", vec![Some(xf)], at([("axis", Attr::Int(axis))]), Act::NONE)
}

/// RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR with TensorFlow's coordinate conventions
/// mapped to ONNX Resize's `coordinate_transformation_mode` and `nearest_mode`.
pub(super) fn resize(b: &mut Builder, c: &Call, bilinear: bool) -> OpResult {
    let (x, size, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let (align, half) = if bilinear {
        let o = c.options(c.op.builtin_options_as_resize_bilinear_options())?;
        (o.align_corners(), o.half_pixel_centers())
    } else {
        let o = c.options(c.op.builtin_options_as_resize_nearest_neighbor_options())?;
        (o.align_corners(), o.half_pixel_centers())
    };
    let hw = const_ints(b, c, size, "size")?;
    let xs = b.tensors[x].shape.clone();
    let ([nh, nw], [n, _, _, ch]) = (
        <[i64; 2]>::try_from(hw.clone()).map_err(|_| c.invalid(format!("size {hw:?} is not [height, width]")))?,
        <[usize; 4]>::try_from(xs.clone()).map_err(|_| c.invalid(format!("expects a 4-D input, got {xs:?}")))?,
    );
    let sizes = b.ints("sizes", &[n as i64, ch as i64, nh, nw]);
    let xf = b.real(x, Layout::Nchw)?;
    let (mode, coord, nearest) = match (bilinear, align, half) {
        (true, true, _) => ("linear", "align_corners", "floor"),
        (true, false, true) => ("linear", "half_pixel", "floor"),
        (true, false, false) => ("linear", "asymmetric", "floor"),
        // TensorFlow rounds half away from zero on the aligned grid.
        (false, true, _) => ("nearest", "align_corners", "round_prefer_ceil"),
        (false, false, true) => ("nearest", "tf_half_pixel_for_nn", "floor"),
        (false, false, false) => ("nearest", "asymmetric", "floor"),
    };
    let attrs = at([
        ("mode", Attr::Str(mode.into())),
        ("coordinate_transformation_mode", Attr::Str(coord.into())),
        ("nearest_mode", Attr::Str(nearest.into())),
    ]);
    emit(b, c, out, Layout::Nchw, "Resize", vec![Some(xf), None, None, Some(sizes)], attrs, Act::NONE)
}

/// A quantized MEAN over H and W (global average pooling, as Keras writes it): ONNX's
/// `GlobalAveragePool` between `DequantizeLinear` and `QuantizeLinear`, which
/// `passes::qdq` runs on the stored bytes (`QLinearGlobalAveragePool`); without `keep_dims`
/// the quantized `[N, C, 1, 1]` is then reshaped to `[N, C]` as stored bytes.
fn spatial_mean(b: &mut Builder, c: &Call, x: usize, out: usize, keep: bool) -> OpResult {
    let xf = b.real(x, Layout::Nchw)?;
    if keep {
        return emit(b, c, out, Layout::Nchw, "GlobalAveragePool", vec![Some(xf)], Attrs::new(), Act::NONE);
    }
    let pooled = b.apply("GlobalAveragePool", &[&xf], Attrs::new());
    let q = b.quantized(out, &pooled)?;
    let dims: Vec<i64> = b.tensors[out].shape.iter().map(|&d| d as i64).collect();
    let shape = b.ints("mean_shape", &dims);
    let y = b.define_raw(out, Layout::File);
    b.node("Reshape", vec![Some(q), Some(shape)], vec![y], Attrs::new());
    Ok(())
}
