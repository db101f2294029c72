"""Checks a model pruned by `cairn optimize --prune` against its original, independently of
Cairn's own shape inference:

- residual groups: every tensor an Add reads keeps its shape (the channels of tensors that
  are added together are never pruned apart), and every Add's operands agree in shape
  (onnx's shape inference on the pruned file, strict mode);
- the graph's inputs and outputs keep their shapes;
- channels were removed: the parameter count drops by at least MIN_DROP of what the hidden
  channels hold;
- onnxruntime runs the pruned file and agrees with Cairn on a real-photo input (a
  file onnxruntime runs is a consistently shaped ONNX model; agreement: max |d| / max |ort|
  of the logits <= 1e-4).

    python3 tools/check_pruned.py ORIGINAL.onnx PRUNED.onnx INPUT.npy [--cairn target/release/cairn]
"""
import argparse, os, subprocess, sys, tempfile
import numpy as np
import onnx
from onnx import shape_inference
import onnxruntime as ort

MIN_DROP = 0.10


def shapes(model):
    m = shape_inference.infer_shapes(model, strict_mode=True)
    out = {}
    for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
        out[v.name] = dims
    return m, out


def params(model):
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("original")
    ap.add_argument("pruned")
    ap.add_argument("input")
    ap.add_argument("--cairn", default="target/release/cairn")
    args = ap.parse_args()
    name = os.path.basename(args.pruned)
    orig, pruned = onnx.load(args.original), onnx.load(args.pruned)
    _, s0 = shapes(orig)
    m1, s1 = shapes(pruned)
    errors = []
    adds = [n for n in m1.graph.node if n.op_type == "Add"]
    residual = 0
    for n in adds:
        operands = [s1.get(i) for i in n.input]
        if any(o is None for o in operands):
            continue  # a constant operand (bias-like), not a residual stream
        residual += 1
        if operands[0] != operands[1]:
            errors.append(f"Add '{n.name}': operand shapes {operands} differ")
        for i in n.input:
            if i in s0 and s0[i] != s1[i]:
                errors.append(f"Add '{n.name}' reads '{i}', whose shape changed {s0[i]} -> {s1[i]}")
    for v in list(orig.graph.input) + list(orig.graph.output):
        if s0.get(v.name) != s1.get(v.name):
            errors.append(f"graph input/output '{v.name}' changed shape {s0.get(v.name)} -> {s1.get(v.name)}")
    p0, p1 = params(orig), params(pruned)
    drop = 1 - p1 / p0
    if drop < MIN_DROP:
        errors.append(f"parameters {p0} -> {p1}: only {drop:.1%} removed")
    x = np.load(args.input)
    sess = ort.InferenceSession(args.pruned, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    ref = sess.run(None, feed)[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "y.npy")
        subprocess.run([args.cairn, "run", args.pruned, "--input", f"{sess.get_inputs()[0].name}={args.input}", "--output", out], check=True, capture_output=True, text=True)
        got = np.load(out)
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
    if err > 1e-4:
        errors.append(f"Cairn and onnxruntime disagree on the pruned model: max |d| / max |ort| = {err:.2e}")
    print(f"{name}: {residual} residual Adds with operands of equal, unchanged shapes; parameters {p0:,} -> {p1:,} "
          f"({drop:.1%} removed); onnxruntime runs it, Cairn agrees within {err:.1e}")
    for e in errors:
        print(f"  error: {e}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
