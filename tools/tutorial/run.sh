#!/usr/bin/env bash
# The TF.js / TFLite tutorial pipeline, end to end (issue 14):
#   Keras MobileNetV2 (weights=None, seed 14) -> TF.js layers model (save_keras_model) and int8
#   TFLite with uint8 input/output (24-image representative dataset) -> cairn pack -> run in
#   headless Chromium by Cairn's demo runtime -> compared with TF.js and with the official TFLite
#   interpreter's kernel sets; then Cairn's wasm vs TF.js's wasm backend on the same page.
#
#   tools/tutorial/run.sh [OUT_DIR]        (default target/tutorial; TUTORIAL_BENCH_RUNS=20)
#
# Exits non-zero when an output misses its bound (tools/tutorial/fidelity.py says which).
# Installs what it needs idempotently: tools/tfjs/setup.sh (converters venv, TF.js in Node),
# ai-edge-litert, web/ and bench/web/ node_modules, the release CLI and the wasm build.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/tutorial}
step() { printf '\033[1m== %s\033[0m\n' "$*"; }

step "setup"
tools/tfjs/setup.sh
python3 -c "import ai_edge_litert" 2>/dev/null || bash scripts/setup-tflite.sh
[ -d web/node_modules ] || (cd web && npm ci --no-audit --no-fund --silent)
# --ignore-scripts: onnxruntime-node's install script fetches extra binaries from nuget.org,
# which a machine limited to the package registries cannot reach; its CPU binary ships in the package.
[ -d bench/web/node_modules ] || (cd bench/web && npm ci --no-audit --no-fund --silent --ignore-scripts)
cargo build --release -p cairn-cli
bash bench/web/build_wasm.sh simd
cairn=target/release/cairn

step "images: calibration and evaluation crops of real photos"
[ -f "$out/evaluation.npy" ] || python3 tools/tutorial/images.py "$out"

step "Keras -> TF.js layers model and int8 TFLite (uint8 I/O)"
# (deterministic: skipped when its files are there; delete OUT_DIR to start over)
[ -f "$out/mobilenetv2_int8.tflite" ] || tools/tfjs/.venv/bin/python tools/tutorial/export.py "$out"

step "cairn pack (the same command as for ONNX)"
rm -rf "$out/models"
$cairn pack "$out/tfjs_keras2" -o "$out/models/tfjs_keras2"
$cairn pack "$out/tfjs_keras3/model.json" -o "$out/models/tfjs_keras3"
$cairn pack "$out/mobilenetv2_int8.tflite" -o "$out/models/tflite_int8"

step "references: TF.js 4.22, the TFLite interpreter's three kernel sets"
python3 tools/tutorial/fidelity.py prepare "$out"

step "headless Chromium: the demo runtime runs the three bundles"
node tools/tutorial/browser.mjs "$out" --bench "${TUTORIAL_BENCH_RUNS:-20}"

step "check"
python3 tools/tutorial/fidelity.py check "$out"
