"""Cairn vs TensorFlow.js (cpu backend, Node) on TF.js models: the same input, outputs compared by name.

    python3 tools/tfjs/compare.py [--cairn target/release/cairn] [--only NAME ...]

Models: the tutorial's Keras MobileNetV2 exports (made by keras_mobilenetv2.py; skipped with a
note when absent) and the third-party models that npm @vladmandic/human (graph models) and nsfwjs (layers and graph
models, inside JS modules: extract_nsfwjs.mjs writes them out) ship, installed by setup.sh into
tools/tfjs/node_modules. Keras 3 exports, which TF.js 4.22 cannot load, are compared
against Keras's own output instead. Prints one line per model and exits non-zero on any miss.
Tolerance: max |cairn - reference| <= 1e-4 * max(1, max |reference|).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MOBILENET = os.path.join(HERE, "out", "mobilenetv2")
HUMAN = os.path.join(HERE, "node_modules", "@vladmandic", "human", "models")
NSFWJS = os.path.join(HERE, "out", "nsfwjs")  # extracted from npm nsfwjs by extract_nsfwjs.mjs
# (name, model.json, reference: "tfjs" or a Keras output .npy, fixed input or None for a seeded one)
MODELS = [
    ("mobilenetv2-keras2-layers", os.path.join(MOBILENET, "keras2", "model.json"), "tfjs", os.path.join(MOBILENET, "input.npy")),
    ("mobilenetv2-keras3-layers", os.path.join(MOBILENET, "keras3", "model.json"), os.path.join(MOBILENET, "keras3.npy"), os.path.join(MOBILENET, "input.npy")),
    ("mobilenetv2-graph", os.path.join(MOBILENET, "graph", "model.json"), "tfjs", os.path.join(MOBILENET, "input.npy")),
    ("mobilenetv2-graph-uint8", os.path.join(MOBILENET, "graph_uint8", "model.json"), "tfjs", os.path.join(MOBILENET, "input.npy")),
    ("mobilenetv2-graph-float16", os.path.join(MOBILENET, "graph_float16", "model.json"), "tfjs", os.path.join(MOBILENET, "input.npy")),
] + [
    (f"human-{m}", os.path.join(HUMAN, f"{m}.json"), "tfjs", None)
    for m in ["antispoof", "blazeface", "emotion", "liveness", "facemesh", "iris", "faceres", "handlandmark-lite"]
] + [(f"nsfwjs-{m}", os.path.join(NSFWJS, m, "model.json"), "tfjs", None) for m in ["mobilenet_v2", "mobilenet_v2_mid", "inception_v3"]]


def input_shape(model_json):
    m = json.load(open(model_json))
    topo = m["modelTopology"]
    if m.get("format") == "graph-model":
        for n in topo["node"]:
            if n["op"] == "Placeholder":
                dims = [int(d.get("size", 1)) for d in n["attr"]["shape"]["shape"]["dim"]]
                return [1 if d < 0 else d for d in dims]
    layers = topo.get("model_config", topo)["config"]["layers"]
    cfg = layers[0]["config"]
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
    return [1 if d is None else d for d in shape]


def sanitize(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def op_count(model_json):
    m = json.load(open(model_json))
    topo = m["modelTopology"]
    if m.get("format") == "graph-model":
        return len([n for n in topo["node"] if n["op"] not in ("Const", "Placeholder", "NoOp")])
    return len(topo.get("model_config", topo)["config"]["layers"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default=os.path.join(ROOT, "target", "release", "cairn"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    failures = 0
    if not os.path.exists(NSFWJS) and os.path.exists(os.path.join(HERE, "node_modules", "nsfwjs")):
        subprocess.run(["node", os.path.join(HERE, "extract_nsfwjs.mjs"), NSFWJS], check=True, capture_output=True)
    for name, path, ref, fixed_input in MODELS:
        if args.only and name not in args.only:
            continue
        if not os.path.exists(path):
            print(f"{name:28s} SKIPPED: {path} is missing (run tools/tfjs/setup.sh / keras_mobilenetv2.py)")
            continue
        work = tempfile.mkdtemp(prefix="cairn-tfjs-")
        if fixed_input:
            x_path = fixed_input
        else:
            x = np.random.default_rng(7).uniform(0, 1, input_shape(path)).astype(np.float32)
            x_path = os.path.join(work, "input.npy")
            np.save(x_path, x)
        cairn_dir = os.path.join(work, "cairn")
        subprocess.run([args.cairn, "run", path, "--input", x_path, "--output-dir", cairn_dir], check=True, capture_output=True)
        if ref == "tfjs":
            res = subprocess.run(["node", os.path.join(HERE, "reference.mjs"), path, x_path, os.path.join(work, "tfjs")], check=True, capture_output=True, text=True)
            refs = {o["name"]: np.load(o["file"]) for o in json.loads(res.stdout.strip().splitlines()[-1])["outputs"]}
            who = "TF.js"
        else:
            outs = os.listdir(cairn_dir)
            refs = {outs[0][:-4]: np.load(ref)}
            who = "Keras 3"
        worst = 0.0
        report = []
        for out_name, r in refs.items():
            c = np.load(os.path.join(cairn_dir, sanitize(out_name) + ".npy")).reshape(r.shape)
            diff = float(np.abs(c.astype(np.float64) - r).max())
            scale = max(1.0, float(np.abs(r).max()))
            worst = max(worst, diff / scale)
            report.append(f"{out_name}{list(r.shape)} max|diff| {diff:.3g} (max|ref| {np.abs(r).max():.3g})")
        ok = worst <= 1e-4
        failures += not ok
        print(f"{name:28s} {'OK  ' if ok else 'MISS'} vs {who}, {op_count(path)} ops/layers: " + "; ".join(report))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
