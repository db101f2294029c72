#!/usr/bin/env python3
"""Cairn's com.microsoft operators against onnxruntime's, on files onnxruntime itself writes.

1. onnxruntime's transformer optimizer (`optimize_model`, model_type bert) rewrites the repo's
   MiniLM-shaped encoder (tools/build_bench_models.py) with its fused operators
   (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu/FastGelu...); the
   optimized file is run by both engines on the same token ids (a 16-token sentence with a
   padded tail, so the attention mask matters).
2. Small single-op graphs for the ops the optimizer does not write for this encoder:
   FusedMatMul (transposes, broadcast batch), QuickGelu, FastGelu with bias,
   SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization, MultiHeadAttention
   (key padding mask, causal), Attention with a raw 2-D mask and unequal q/v sizes.
   (BiasAdd has no CPU kernel in onnxruntime; its unit test is in ms_activation.rs.)

Every case's first output must agree within 1e-4 of its range. Exit status 1 on any mismatch.

Usage: python3 tools/compare_ms_ops.py [--cairn target/release/cairn]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MS = "com.microsoft"


def ort_run(path, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    # Level 0: onnxruntime must run the contrib ops as written, not refuse or rewrite them.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def cairn_run(cairn, path, feeds, tmp):
    args = [cairn, "run", path, "--threads", "1", "--json", "--output-dir", os.path.join(tmp, "out")]
    for i, (name, v) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{name}={f}"]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    import json

    return np.load(json.loads(p.stdout)["outputs"][0]["file"])


def single_op(op, inputs, attrs, out_shape, inits=(), extra_outputs=()):
    """A one-node com.microsoft graph: inputs are (name, array) fed at run time, inits are constants."""
    vi = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs]
    init = [helper.make_tensor(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape, a.ravel()) for n, a in inits]
    names = [n for n, _ in inputs] + [n for n, _ in inits]
    order = attrs.pop("_order", names)
    outs = ["y"] + [f"y{i}" for i in range(1, 1 + len(extra_outputs))]
    node = helper.make_node(op, order, outs, domain=MS, **attrs)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)]
    outputs += [helper.make_tensor_value_info(o, t, shape) for o, (t, shape) in zip(outs[1:], extra_outputs)]
    graph = helper.make_graph([node], op, vi, outputs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])


def cases(rng):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x = f(2, 5, 8)
    yield "FusedMatMul transA/B, broadcast batch", single_op(
        "FusedMatMul", [("a", f(2, 3, 6, 4)), ("b", f(3, 5, 6))], dict(alpha=0.5, transA=1, transB=1), [2, 3, 4, 5])
    yield "FusedMatMul plain", single_op("FusedMatMul", [("a", f(4, 7)), ("b", f(7, 3))], dict(alpha=2.0), [4, 3])
    yield "QuickGelu alpha 1.702", single_op("QuickGelu", [("x", x)], dict(alpha=1.702), list(x.shape))
    yield "FastGelu with bias", single_op("FastGelu", [("x", x), ("bias", f(8))], {}, list(x.shape))
    yield "Gelu", single_op("Gelu", [("x", x)], {}, list(x.shape))
    yield "BiasGelu", single_op("BiasGelu", [("x", x), ("bias", f(8))], {}, list(x.shape))
    yield "SkipLayerNormalization beta+bias", single_op(
        "SkipLayerNormalization", [("x", x), ("skip", f(2, 5, 8)), ("gamma", f(8)), ("beta", f(8)), ("bias", f(8))],
        dict(epsilon=1e-5), [2, 5, 8])
    yield "SkipSimplifiedLayerNormalization", single_op(
        "SkipSimplifiedLayerNormalization", [("x", x), ("skip", f(2, 5, 8)), ("gamma", f(8))], dict(epsilon=1e-6), [2, 5, 8])
    yield "SimplifiedLayerNormalization", simplified_norm(x, f(8))
    mask = np.ones((2, 6), np.int32)
    mask[1, 4:] = 0
    yield "MultiHeadAttention key padding mask", single_op(
        "MultiHeadAttention", [("q", f(2, 5, 8)), ("k", f(2, 6, 8)), ("v", f(2, 6, 12)), ("bias", f(28)), ("mask", mask)],
        dict(num_heads=2), [2, 5, 12])
    yield "MultiHeadAttention causal", single_op(
        "MultiHeadAttention", [("q", f(1, 4, 8)), ("k", f(1, 4, 8)), ("v", f(1, 4, 8))], dict(num_heads=4, unidirectional=1), [1, 4, 8])
    ids = rng.integers(0, 20, (2, 6)).astype(np.int32)
    segs = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]], np.int32)
    emask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], np.int32)
    yield "EmbedLayerNormalization", single_op(
        "EmbedLayerNormalization", [("ids", ids), ("segs", segs), ("mask", emask)],
        dict(epsilon=1e-12, _order=["ids", "segs", "word", "pos", "seg", "gamma", "beta", "mask"]), [2, 6, 8],
        inits=[("word", f(20, 8)), ("pos", f(16, 8)), ("seg", f(2, 8)), ("gamma", f(8)), ("beta", f(8))], extra_outputs=[(TensorProto.INT32, [2])])
    raw = np.ones((2, 5), np.int32)
    raw[0, 3:] = 0
    yield "Attention raw mask, qkv_hidden_sizes", single_op(
        "Attention", [("x", x), ("mask", raw)], dict(num_heads=2, qkv_hidden_sizes=[8, 8, 6], _order=["x", "w", "b", "mask"]),
        [2, 5, 6], inits=[("w", f(8, 22)), ("b", f(22))])
    yield "Attention lengths mask, unidirectional", single_op(
        "Attention", [("x", x), ("mask", np.array([5, 3], np.int32))], dict(num_heads=4, unidirectional=1, _order=["x", "w", "b", "mask"]),
        [2, 5, 8], inits=[("w", f(8, 24)), ("b", f(24))])


def simplified_norm(x, scale):
    node = helper.make_node("SimplifiedLayerNormalization", ["x", "s"], ["y"], axis=-1, epsilon=1e-5)
    graph = helper.make_graph([node], "rms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor("s", TensorProto.FLOAT, scale.shape, scale)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])


def feeds_of(model, rng):
    init = {t.name for t in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name in init:
            continue
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        feeds[i.name] = rng.standard_normal(shape).astype(dtype) if dtype == np.float32 else np.ones(shape, dtype)
    return feeds


def optimized_encoder(tmp):
    """MiniLM-shaped encoder, rewritten by onnxruntime's transformer optimizer."""
    from onnxruntime.transformers.optimizer import optimize_model

    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_bench_models.py"), tmp], check=True, capture_output=True)
    out = os.path.join(tmp, "minilm.fused.onnx")
    optimized = optimize_model(os.path.join(tmp, "minilm.onnx"), model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    optimized.save_model_to_file(out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cairn", default=os.path.join(ROOT, "target", "release", "cairn"))
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    failures = 0
    print(f"{'case':<44} {'max|d|/range':>13}  result")
    with tempfile.TemporaryDirectory() as tmp:
        work = []
        for name, model in cases(rng):
            path = os.path.join(tmp, f"case{len(work)}.onnx")
            onnx.save(model, path)
            work.append((name, path, feeds_of(model, rng)))
        fused = optimized_encoder(tmp)
        ops = sorted({f"{n.domain}.{n.op_type}" for n in onnx.load(fused).graph.node if n.domain == MS})
        ids = rng.integers(0, 8192, (1, 16)).astype(np.int64)
        mask = np.ones((1, 16), np.int64)
        mask[0, 12:] = 0
        work.append((f"MiniLM optimized by onnxruntime ({', '.join(o.split('.')[-1] for o in ops)})", fused,
                     {"input_ids": ids, "attention_mask": mask}))
        for name, path, feeds in work:
            try:
                ref = ort_run(path, feeds)
                got = cairn_run(args.cairn, path, feeds, tmp)
                scale = float(ref.max() - ref.min())
                if not scale > 0:  # a constant output would make any comparison pass
                    raise RuntimeError(f"onnxruntime's output is constant ({ref.ravel()[:1]}): the case tests nothing")
                err = float(np.abs(got.astype(np.float64) - ref).max()) / scale if got.shape == ref.shape else float("inf")
                ok = err <= 1e-4
                print(f"{name:<44} {err:>13.2e}  {'ok' if ok else 'MISMATCH'}")
            except RuntimeError as e:
                ok = False
                print(f"{name:<44} {'-':>13}  cairn failed: {str(e).splitlines()[0][:160]}")
            failures += not ok
    print(f"{len(work) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
