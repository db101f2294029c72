#!/usr/bin/env bash
# Slower checks that scripts/test.sh leaves out (they need large downloads from the package
# registries, ~1.5 GB, and minutes of CPU):
#   TF.js: installs tools/tfjs (pinned tensorflow + tensorflowjs venv, TF.js 4.22 from npm),
#   exports the seeded Keras MobileNetV2 to TF.js layers and graph models (float32, uint8, float16),
#   and compares Cairn with TensorFlow.js itself on them and on the graph models npm
#   @vladmandic/human ships (tools/tfjs/compare.py; exits non-zero on any miss).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\033[1m== %s\033[0m\n' "$*"; }
step "TF.js harness setup"
tools/tfjs/setup.sh
step "cargo build --release -p cairn-cli"
cargo build --release --quiet -p cairn-cli
if [ ! -f tools/tfjs/out/mobilenetv2/graph_float16/model.json ]; then
  step "Keras MobileNetV2 -> TF.js exports"
  tools/tfjs/.venv/bin/python tools/tfjs/keras_mobilenetv2.py
fi
step "Cairn vs TF.js"
python3 tools/tfjs/compare.py
