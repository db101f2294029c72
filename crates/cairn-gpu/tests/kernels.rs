//! Each GPU kernel against Cairn's CPU engine on small graphs (1e-4 relative), with the
//! dispatch counts the fusions promise and the transfers a CPU fallback costs.

mod common;

use cairn_core::{Attr, DType, Tensor, TensorData};
use common::{compare, gpu, ints, tensor, G};
use std::collections::HashMap;

const TOL: f64 = 1e-4;

fn feed(pairs: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn conv_with_bias_and_relu_is_one_fused_dispatch() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13)
        .input("x", &[2, 3, 17, 19])
        .init("w", tensor(&[8, 3, 3, 3], 1))
        .init("b", tensor(&[8], 2))
        .node("Conv", &["x", "w", "b"], &["c"], &[("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))])
        .node("Relu", &["c"], &["y"], &[])
        .build(&["y"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[2, 3, 17, 19], 3))]), TOL);
    assert_eq!(stats.counters.dispatches, 1, "{stats:?}");
    assert!(stats.fallback.is_empty());
    assert_eq!(stats.counters.bytes_uploaded, 2 * 3 * 17 * 19 * 4, "the input, once");
    assert_eq!(stats.counters.bytes_read_back, 2 * 8 * 9 * 10 * 4, "the output, once");
    assert_eq!(stats.counters.read_backs, 1);
}

#[test]
fn grouped_dilated_conv_and_same_padding() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13)
        .input("x", &[1, 4, 13, 11])
        .init("w", tensor(&[6, 2, 3, 2], 4))
        .node(
            "Conv",
            &["x", "w"],
            &["c"],
            &[("group", Attr::Int(2)), ("dilations", ints(&[2, 1])), ("auto_pad", Attr::Str("SAME_UPPER".into()))],
        )
        .node("Conv", &["c", "w2"], &["y"], &[("strides", ints(&[1, 2]))])
        .init("w2", tensor(&[5, 6, 1, 1], 5))
        .build(&["y"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[1, 4, 13, 11], 6))]), TOL);
    assert_eq!(stats.counters.dispatches, 2);
    assert!(stats.fallback.is_empty());
}

#[test]
fn depthwise_with_batchnorm_and_relu6_folds_into_one_dispatch() {
    let Some(gpu) = gpu() else { return };
    let pos = |n, seed| Tensor::from_f32(vec![n], common::values(n, seed).iter().map(|v| v.abs() + 0.5).collect()).unwrap();
    let g = G::new(13)
        .input("x", &[1, 16, 14, 14])
        .init("w", tensor(&[16, 1, 3, 3], 7))
        .init("s", pos(16, 8))
        .init("b", tensor(&[16], 9))
        .init("m", tensor(&[16], 10))
        .init("v", pos(16, 11))
        .init("lo", Tensor::scalar_f32(0.0))
        .init("hi", Tensor::scalar_f32(6.0))
        .node("Conv", &["x", "w"], &["c"], &[("group", Attr::Int(16)), ("pads", ints(&[1, 1, 1, 1])), ("strides", ints(&[2, 2]))])
        .node("BatchNormalization", &["c", "s", "b", "m", "v"], &["bn"], &[("epsilon", Attr::Float(1e-3))])
        .node("Clip", &["bn", "lo", "hi"], &["y"], &[])
        .build(&["y"]);
    let x = Tensor::from_f32(vec![1, 16, 14, 14], common::values(16 * 196, 12).iter().map(|v| v * 8.0).collect()).unwrap();
    let (stats, _) = compare(gpu, g, feed(&[("x", x)]), TOL);
    assert_eq!(stats.counters.dispatches, 1, "Conv+BatchNormalization+Clip is one kernel");
    assert!(stats.fallback.is_empty());
}

#[test]
fn pointwise_conv_takes_the_residual_add() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13)
        .input("x", &[2, 24, 7, 9])
        .init("w", tensor(&[24, 24, 1, 1], 13))
        .init("b", tensor(&[24], 14))
        .node("Conv", &["x", "w", "b"], &["c"], &[])
        .node("Add", &["x", "c"], &["y"], &[])
        .build(&["y"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[2, 24, 7, 9], 15))]), TOL);
    assert_eq!(stats.counters.dispatches, 1, "Conv+Add is one GEMM with a residual epilogue");
}

#[test]
fn gemm_transposes_bias_and_scales() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13)
        .input("a", &[70, 33])
        .init("b", tensor(&[65, 70], 16))
        .init("c", tensor(&[65], 17))
        .node(
            "Gemm",
            &["a", "b", "c"],
            &["y"],
            &[("transA", Attr::Int(1)), ("transB", Attr::Int(1)), ("alpha", Attr::Float(0.5)), ("beta", Attr::Float(2.0))],
        )
        .build(&["y"]);
    let (stats, _) = compare(gpu, g, feed(&[("a", tensor(&[70, 33], 18))]), TOL);
    assert_eq!(stats.counters.dispatches, 1);
}

#[test]
fn batched_matmul_with_bias_and_gelu() {
    let Some(gpu) = gpu() else { return };
    // MiniLM's shapes in small: [batch, heads, seq, dim] x [batch, heads, dim, seq], and the
    // feed-forward [batch, seq, hidden] x [hidden, 4 hidden] + bias, then Gelu (opset 20).
    let g = G::new(20)
        .input("q", &[2, 3, 9, 16])
        .input("k", &[2, 3, 16, 9])
        .input("h", &[2, 9, 32])
        .init("w", tensor(&[32, 67], 19))
        .init("bias", tensor(&[67], 20))
        .node("MatMul", &["q", "k"], &["s"], &[])
        .node("MatMul", &["h", "w"], &["f"], &[])
        .node("Add", &["f", "bias"], &["fb"], &[])
        .node("Gelu", &["fb"], &["y"], &[])
        .build(&["s", "y"]);
    let inputs = feed(&[("q", tensor(&[2, 3, 9, 16], 21)), ("k", tensor(&[2, 3, 16, 9], 22)), ("h", tensor(&[2, 9, 32], 23))]);
    let (stats, _) = compare(gpu, g, inputs, TOL);
    assert_eq!(stats.counters.dispatches, 2, "MatMul+Add+Gelu is one GEMM");
    assert!(stats.fallback.is_empty());
}

#[test]
fn pools() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13)
        .input("x", &[2, 5, 15, 12])
        .node("GlobalAveragePool", &["x"], &["ga"], &[])
        .node("GlobalMaxPool", &["x"], &["gm"], &[])
        .node("AveragePool", &["x"], &["ap"], &[("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))])
        .node(
            "AveragePool",
            &["x"],
            &["api"],
            &[
                ("kernel_shape", ints(&[3, 2])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 0, 1, 1])),
                ("count_include_pad", Attr::Int(1)),
            ],
        )
        .node("MaxPool", &["x"], &["mp"], &[("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2])), ("ceil_mode", Attr::Int(1))])
        .build(&["ga", "gm", "ap", "api", "mp"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[2, 5, 15, 12], 24))]), TOL);
    assert_eq!(stats.counters.dispatches, 5);
    assert!(stats.fallback.is_empty());
}

#[test]
fn elementwise_broadcast_and_activations() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13)
        .input("x", &[2, 3, 4, 5])
        .init("c", tensor(&[3, 1, 1], 25))
        .init("r", tensor(&[5], 26))
        .init("lo", Tensor::scalar_f32(-0.3))
        .init("hi", Tensor::scalar_f32(0.4))
        .node("Add", &["x", "c"], &["a"], &[])
        .node("Mul", &["a", "r"], &["m"], &[])
        .node("Sub", &["c", "m"], &["s"], &[])
        .node("Sigmoid", &["s"], &["sg"], &[])
        .node("Div", &["x", "sg"], &["d"], &[])
        .node("HardSwish", &["d"], &["hs"], &[])
        .node("Clip", &["hs", "lo", "hi"], &["cl"], &[])
        .node("Relu", &["s"], &["re"], &[])
        .node("Add", &["cl", "re"], &["y"], &[])
        .build(&["y", "d"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[2, 3, 4, 5], 27))]), TOL);
    assert!(stats.fallback.is_empty());
    // One dispatch per node: activations fuse only into the binary op or matrix product that
    // alone feeds them, and here Sub's and Div's outputs have two readers each (HardSwish and
    // Clip are unary after unary, which stays unfused).
    assert_eq!(stats.counters.dispatches, 9, "{stats:?}");
}

#[test]
fn softmax_layernorm_transpose_concat_reshape() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(17)
        .input("x", &[2, 6, 100])
        .init("gamma", tensor(&[100], 28))
        .init("beta", tensor(&[100], 29))
        .init("shape", Tensor::from_i64(vec![2], vec![12, 100]).unwrap())
        .node("Softmax", &["x"], &["sm"], &[])
        .node("Softmax", &["x"], &["sm1"], &[("axis", Attr::Int(1))])
        .node("LogSoftmax", &["x"], &["lsm"], &[])
        .node("LayerNormalization", &["x", "gamma", "beta"], &["ln"], &[("epsilon", Attr::Float(1e-5))])
        .node("Transpose", &["ln"], &["t"], &[("perm", ints(&[2, 0, 1]))])
        .node("Concat", &["sm", "sm1", "lsm"], &["cat"], &[("axis", Attr::Int(1))])
        .node("Reshape", &["cat", "shape2"], &["r"], &[])
        .init("shape2", Tensor::from_i64(vec![2], vec![36, 100]).unwrap())
        .node("Reshape", &["x", "shape"], &["xr"], &[])
        .node("Flatten", &["t"], &["fl"], &[("axis", Attr::Int(2))])
        .build(&["r", "fl", "xr"]);
    let x = Tensor::from_f32(vec![2, 6, 100], common::values(1200, 30).iter().map(|v| v * 5.0).collect()).unwrap();
    let (stats, _) = compare(gpu, g, feed(&[("x", x)]), TOL);
    assert!(stats.fallback.is_empty(), "{:?}", stats.fallback);
    // 3 softmaxes + layer norm + transpose + 3 concat copies; the reshapes are views.
    assert_eq!(stats.counters.dispatches, 8);
}

#[test]
fn an_op_without_a_kernel_falls_back_with_the_fewest_transfers() {
    let Some(gpu) = gpu() else { return };
    // Cos has no GPU kernel: Relu's output is read back once, Cos runs on the CPU, its output
    // is uploaded once for Sigmoid, and the result is read back at the end.
    let g = G::new(13)
        .input("x", &[1000])
        .node("Relu", &["x"], &["r"], &[])
        .node("Cos", &["r"], &["c"], &[])
        .node("Sigmoid", &["c"], &["y"], &[])
        .build(&["y"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[1000], 31))]), TOL);
    assert_eq!(stats.fallback, vec!["n1_Cos (Cos)".to_string()]);
    assert_eq!(stats.counters.dispatches, 2);
    assert_eq!(stats.counters.read_backs, 2);
    assert_eq!(stats.counters.bytes_uploaded, 2 * 4000, "the input and Cos's output");
    assert_eq!(stats.counters.bytes_read_back, 2 * 4000, "Relu's output and the result");
}

#[test]
fn weights_upload_once_and_a_lost_device_fails_the_run_cleanly() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13).input("x", &[4, 8]).init("w", tensor(&[8, 3], 32)).node("MatMul", &["x", "w"], &["y"], &[]).build(&["y"]);
    let x = feed(&[("x", tensor(&[4, 8], 33))]);
    let (first, mut session) = compare(gpu, g, x.clone(), TOL);
    assert!(first.bytes_uploaded_at_build >= 8 * 3 * 4, "the weights, at the first run");
    let (_, second) = pollster::block_on(session.run(x.clone())).unwrap();
    assert_eq!(second.bytes_uploaded_at_build, 0, "nothing more on the next run");
    assert_eq!(second.counters.bytes_uploaded, 4 * 8 * 4, "only the input");
    session.gpu().destroy();
    match pollster::block_on(session.run(x)) {
        Err(cairn_gpu::GpuError::DeviceLost(msg)) => eprintln!("after destroy: {msg}"),
        other => panic!("expected DeviceLost, got {other:?}"),
    }
}

/// Indices in [-dim, dim): negative ones count from the end.
fn indices(n: usize, dim: usize, seed: u64) -> Vec<i64> {
    common::values(n, seed).iter().map(|v| ((v + 1.0) * dim as f32).floor() as i64 - dim as i64).collect()
}

#[test]
fn gather_by_int64_and_int32_indices_on_any_axis() {
    let Some(gpu) = gpu() else { return };
    let cases: [(i64, &[usize], &[usize]); 5] =
        [(0, &[50, 7], &[2, 3]), (1, &[3, 9, 4], &[5]), (-1, &[2, 3, 6], &[2, 2]), (2, &[2, 3, 5, 4], &[7]), (0, &[6], &[])];
    for (k, (axis, dshape, ishape)) in cases.into_iter().enumerate() {
        let rank = dshape.len() as i64;
        let dim = dshape[if axis < 0 { axis + rank } else { axis } as usize];
        let n: usize = ishape.iter().product();
        let idx = indices(n, dim, 20 + k as u64);
        for dtype in [DType::I64, DType::I32] {
            let idx_t = match dtype {
                DType::I64 => Tensor::from_i64(ishape.to_vec(), idx.clone()).unwrap(),
                _ => Tensor::new(ishape.to_vec(), TensorData::I32(idx.iter().map(|&i| i as i32).collect())).unwrap(),
            };
            // Data computed on the GPU (x * 2) and data that is a weight, gathered by the same ids.
            let g = G::new(13)
                .input("x", dshape)
                .input_of("i", dtype, ishape)
                .init("two", Tensor::scalar_f32(2.0))
                .init("w", tensor(dshape, 30 + k as u64))
                .node("Mul", &["x", "two"], &["x2"], &[])
                .node("Gather", &["x2", "i"], &["y"], &[("axis", Attr::Int(axis))])
                .node("Gather", &["w", "i"], &["z"], &[("axis", Attr::Int(axis))])
                .build(&["y", "z"]);
            let (stats, _) = compare(gpu.clone(), g, feed(&[("x", tensor(dshape, 40 + k as u64)), ("i", idx_t)]), TOL);
            assert!(stats.fallback.is_empty(), "case {k} {dtype}: {:?}", stats.fallback);
            assert_eq!(stats.counters.dispatches, 3);
        }
    }
}

#[test]
fn an_int64_mask_is_unsqueezed_and_cast_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    // BERT's additive attention mask: (1 - float(mask[:, None, None, :])) * -10000.
    let g = G::new(13)
        .input_of("mask", DType::I64, &[2, 5])
        .init("axes", Tensor::from_i64(vec![2], vec![1, 2]).unwrap())
        .init("one", Tensor::scalar_f32(1.0))
        .init("big", Tensor::scalar_f32(-10000.0))
        .node("Unsqueeze", &["mask", "axes"], &["m4"], &[])
        .node("Cast", &["m4"], &["mf"], &[("to", Attr::Int(1))])
        .node("Sub", &["one", "mf"], &["inv"], &[])
        .node("Mul", &["inv", "big"], &["y"], &[])
        .build(&["y"]);
    let mask = Tensor::from_i64(vec![2, 5], vec![1, 1, 1, 0, 0, 1, 1, 1, 1, 1]).unwrap();
    let (stats, _) = compare(gpu, g, feed(&[("mask", mask)]), TOL);
    assert!(stats.fallback.is_empty(), "{:?}", stats.fallback);
    // Cast, then Sub and Mul (the Unsqueeze is a view); the mask goes up as 10 i32s.
    assert_eq!(stats.counters.dispatches, 3);
    assert_eq!(stats.counters.bytes_uploaded, 10 * 4);
}

#[test]
fn integers_cross_between_the_gpu_and_a_cpu_fallback() {
    let Some(gpu) = gpu() else { return };
    // Neg of an int64 has no GPU kernel: the Unsqueezed ids come down (widened back to int64),
    // the CPU negates them and the result goes up (narrowed) for the Gather and the Cast.
    let g = G::new(13)
        .input_of("ids", DType::I64, &[3, 4])
        .init("axes", Tensor::from_i64(vec![1], vec![0]).unwrap())
        .init("w", tensor(&[9, 6], 50))
        .node("Unsqueeze", &["ids", "axes"], &["u"], &[])
        .node("Neg", &["u"], &["n"], &[])
        .node("Gather", &["w", "n"], &["y"], &[])
        .node("Cast", &["n"], &["z"], &[("to", Attr::Int(1))])
        .build(&["y", "z"]);
    let ids = Tensor::from_i64(vec![3, 4], vec![0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -8, 3]).unwrap();
    let (stats, _) = compare(gpu, g, feed(&[("ids", ids)]), TOL);
    assert_eq!(stats.fallback, vec!["n1_Neg (Neg)".to_string()]);
    assert_eq!(stats.counters.dispatches, 2);
    assert_eq!(stats.counters.read_backs, 2, "the ids for the CPU step, then the outputs");
    assert_eq!(stats.counters.bytes_uploaded, 2 * 12 * 4, "the ids, then the negated ids, as i32");
}

#[test]
fn int64_values_that_do_not_fit_32_bits_are_a_clear_error() {
    let Some(gpu) = gpu() else { return };
    let g = G::new(13).input_of("m", DType::I64, &[4]).node("Cast", &["m"], &["y"], &[("to", Attr::Int(1))]).build(&["y"]);
    let mut session = cairn_gpu::GpuSession::new(gpu, g).unwrap();
    let big = Tensor::from_i64(vec![4], vec![0, 1, 3_000_000_000, 2]).unwrap();
    let Err(err) = pollster::block_on(session.run(feed(&[("m", big)]))) else { panic!("the run fails") };
    let msg = err.to_string();
    assert!(matches!(err, cairn_gpu::GpuError::Input(_)), "{msg}");
    assert!(msg.contains("3000000000") && msg.contains("32-bit"), "{msg}");
}

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_i64(vec![v.len()], v.to_vec()).unwrap()
}

/// One single-input f32 op on the GPU against the CPU: no fallback, one dispatch.
fn one_op(gpu: &cairn_gpu::Gpu, opset: i64, shape: &[usize], op: &str, consts: &[(&str, Tensor)], attrs: &[(&str, Attr)], seed: u64) {
    let mut g = G::new(opset);
    g.input("x", shape);
    let mut ins = vec!["x"];
    for (name, t) in consts {
        g.init(name, t.clone());
        ins.push(name);
    }
    let g = g.node(op, &ins, &["y"], attrs).build(&["y"]);
    let (stats, _) = compare(gpu.clone(), g, feed(&[("x", tensor(shape, seed))]), TOL);
    assert!(stats.fallback.is_empty(), "{op} {shape:?} {attrs:?}: fell back {:?}", stats.fallback);
    assert_eq!(stats.counters.dispatches, 1, "{op} {shape:?}");
}

#[test]
fn slice_with_steps_negative_indices_and_axes() {
    let Some(gpu) = gpu() else { return };
    let cases: [(&[usize], &[i64], &[i64], &[i64], &[i64]); 4] = [
        (&[4, 10], &[1, 2], &[3, 9], &[0, 1], &[1, 3]),
        (&[2, 6, 7], &[-1, 5], &[-100, 0], &[2, 1], &[-2, -1]),
        (&[3, 5, 8], &[1], &[i64::MAX], &[-1], &[1]),
        (&[1, 3, 16, 16], &[0, 0], &[8, 16], &[2, 3], &[1, 2]),
    ];
    for (k, (shape, starts, ends, axes, steps)) in cases.into_iter().enumerate() {
        let consts = [("s", i64s(starts)), ("e", i64s(ends)), ("a", i64s(axes)), ("k", i64s(steps))];
        one_op(&gpu, 13, shape, "Slice", &consts, &[], 60 + k as u64);
    }
    // Opset 9: starts, ends and axes as attributes.
    one_op(&gpu, 9, &[5, 6], "Slice", &[], &[("starts", ints(&[1, -4])), ("ends", ints(&[4, 100])), ("axes", ints(&[0, 1]))], 64);
}

#[test]
fn expand_broadcasts_to_a_larger_shape() {
    let Some(gpu) = gpu() else { return };
    one_op(&gpu, 13, &[3, 1], "Expand", &[("s", i64s(&[2, 3, 4]))], &[], 70);
    one_op(&gpu, 13, &[1, 4, 1, 5], "Expand", &[("s", i64s(&[2, 1, 3, 1]))], &[], 71);
    one_op(&gpu, 13, &[6], "Expand", &[("s", i64s(&[6]))], &[], 72);
}

#[test]
fn reduce_mean_sum_max_min_over_any_axes() {
    let Some(gpu) = gpu() else { return };
    let cases: [(&[usize], &[i64], i64); 5] =
        [(&[2, 3, 4, 5], &[2, 3], 1), (&[2, 3, 4, 5], &[1], 0), (&[7, 9], &[-1], 1), (&[4, 6, 3], &[0, 2], 0), (&[3, 4], &[], 1)];
    for (k, (shape, axes, keep)) in cases.into_iter().enumerate() {
        let seed = 80 + k as u64;
        let keepdims = ("keepdims", Attr::Int(keep));
        // Opset 13: axes an attribute except for ReduceSum; opset 18: an input for all.
        for op in ["ReduceMean", "ReduceMax", "ReduceMin"] {
            let attrs = if axes.is_empty() { vec![keepdims.clone()] } else { vec![keepdims.clone(), ("axes", ints(axes))] };
            one_op(&gpu, 13, shape, op, &[], &attrs, seed);
            let consts = if axes.is_empty() { vec![] } else { vec![("axes", i64s(axes))] };
            one_op(&gpu, 18, shape, op, &consts, std::slice::from_ref(&keepdims), seed);
        }
        let consts = if axes.is_empty() { vec![] } else { vec![("axes", i64s(axes))] };
        one_op(&gpu, 13, shape, "ReduceSum", &consts, std::slice::from_ref(&keepdims), seed);
    }
}

#[test]
fn pad_constant_reflect_edge_and_wrap() {
    let Some(gpu) = gpu() else { return };
    let cases: [(&[usize], &[i64]); 3] =
        [(&[1, 3, 5, 6], &[0, 0, 1, 2, 0, 0, 2, 1]), (&[4, 7], &[2, 0, 3, 5]), (&[2, 3, 4], &[0, 1, 3, 1, 2, 0])];
    for (k, (shape, pads)) in cases.into_iter().enumerate() {
        for mode in ["constant", "reflect", "edge", "wrap"] {
            let mut consts = vec![("p", i64s(pads))];
            if mode == "constant" {
                consts.push(("v", Tensor::scalar_f32(-1.5)));
            }
            one_op(&gpu, 19, shape, "Pad", &consts, &[("mode", Attr::Str(mode.into()))], 90 + k as u64);
        }
    }
    // Pads on chosen axes (opset 18) and the opset-2 attribute form.
    one_op(&gpu, 18, &[2, 5, 6], "Pad", &[("p", i64s(&[1, 2, 3, 0])), ("v", Tensor::scalar_f32(0.0)), ("a", i64s(&[-1, 1]))], &[], 95);
    one_op(&gpu, 2, &[3, 4], "Pad", &[], &[("pads", ints(&[1, 0, 0, 2])), ("value", Attr::Float(2.0))], 96);
}

#[test]
fn resize_nearest_and_linear_in_the_modes_models_use() {
    let Some(gpu) = gpu() else { return };
    let empty = || Tensor::from_f32(vec![0], vec![]).unwrap();
    let scales = |s: &[f32]| Tensor::from_f32(vec![s.len()], s.to_vec()).unwrap();
    let cases: [(&str, &str, &str); 8] = [
        ("nearest", "asymmetric", "floor"),
        ("nearest", "half_pixel", "round_prefer_floor"),
        ("nearest", "tf_half_pixel_for_nn", "round_prefer_floor"),
        ("nearest", "align_corners", "round_prefer_ceil"),
        ("linear", "half_pixel", "round_prefer_floor"),
        ("linear", "pytorch_half_pixel", "round_prefer_floor"),
        ("linear", "align_corners", "round_prefer_floor"),
        ("linear", "asymmetric", "round_prefer_floor"),
    ];
    for (k, (mode, coord, nearest)) in cases.into_iter().enumerate() {
        let attrs = [
            ("mode", Attr::Str(mode.into())),
            ("coordinate_transformation_mode", Attr::Str(coord.into())),
            ("nearest_mode", Attr::Str(nearest.into())),
        ];
        let seed = 100 + k as u64;
        // Upsampling by scales (2x, and a non-integer 1.5x by 3x), downsampling by sizes.
        one_op(&gpu, 13, &[1, 3, 5, 7], "Resize", &[("roi", empty()), ("sc", scales(&[1.0, 1.0, 2.0, 2.0]))], &attrs, seed);
        one_op(&gpu, 13, &[2, 2, 6, 4], "Resize", &[("roi", empty()), ("sc", scales(&[1.0, 1.0, 1.5, 3.0]))], &attrs, seed);
        let sizes = [("roi", empty()), ("sc", empty()), ("sz", i64s(&[1, 4, 5, 3]))];
        one_op(&gpu, 13, &[1, 4, 11, 8], "Resize", &sizes, &attrs, seed);
    }
    // tf_half_pixel_for_nn rounding up moves even the unscaled channel axis: the CPU runs it.
    let g = G::new(13)
        .input("x", &[1, 3, 4, 4])
        .init("roi", empty())
        .init("sc", scales(&[1.0, 1.0, 2.0, 2.0]))
        .node(
            "Resize",
            &["x", "roi", "sc"],
            &["y"],
            &[
                ("coordinate_transformation_mode", Attr::Str("tf_half_pixel_for_nn".into())),
                ("nearest_mode", Attr::Str("round_prefer_ceil".into())),
            ],
        )
        .build(&["y"]);
    let (stats, _) = compare(gpu, g, feed(&[("x", tensor(&[1, 3, 4, 4], 110))]), TOL);
    assert_eq!(stats.fallback, vec!["n0_Resize (Resize)".to_string()]);
}

#[test]
fn gather_by_constant_indices_narrows_them_once_and_leaves_bad_ones_to_the_cpu() {
    let Some(gpu) = gpu() else { return };
    // In range (negative too): the indices go up with the weights, as i32.
    let g = G::new(13)
        .input("x", &[4, 6])
        .init("i", Tensor::from_i64(vec![2, 2], vec![3, -1, 0, -4]).unwrap())
        .node("Relu", &["x"], &["r"], &[])
        .node("Gather", &["r", "i"], &["y"], &[("axis", Attr::Int(1))])
        .build(&["y"]);
    let (stats, _) = compare(gpu.clone(), g, feed(&[("x", tensor(&[4, 6], 120))]), TOL);
    assert!(stats.fallback.is_empty(), "{:?}", stats.fallback);
    assert_eq!(stats.counters.dispatches, 2);
    // Out of range: the CPU kernel runs it and reports the index, as without a GPU.
    let g = G::new(13)
        .input("x", &[4, 6])
        .init("i", Tensor::from_i64(vec![1], vec![6]).unwrap())
        .node("Gather", &["x", "i"], &["y"], &[("axis", Attr::Int(1))])
        .build(&["y"]);
    let mut session = cairn_gpu::GpuSession::new(gpu, g).unwrap();
    let Err(err) = pollster::block_on(session.run(feed(&[("x", tensor(&[4, 6], 121))]))) else { panic!("index 6 of 6 fails") };
    let msg = err.to_string();
    assert!(msg.contains("index 6 is out of range"), "{msg}");
}
