#!/usr/bin/env bash
# Slow checks, by named section: scripts/test-extra.sh [SECTION...] (default: all).
# Run scripts/test.sh first (it builds target/release/cairn and the models and inputs used here).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\033[1m== %s\033[0m\n' "$*"; }
want() { [ -z "$SECTIONS" ] || [[ " $SECTIONS " == *" $1 "* ]]; }
SECTIONS="${*:-}"

# --- section: adaptive (issue 17) -------------------------------------------------------
# The whole width curve of EfficientNet-Lite0 on all real-photo inputs, single-threaded
# latency (median of 20 runs per width): the table the README's "Run-time widths" reports.
if want adaptive; then
  step "adaptive: EfficientNet-Lite0 width curve 0.95..0.6 on real photos"
  mkdir -p target/adaptive
  target/release/cairn optimize target/models/efficientnet_lite0.onnx -o target/adaptive/effnet_curve.onnx \
    --widths 0.95,0.9,0.85,0.8,0.7,0.6 --calibrate target/calib-inputs --max-inputs 96
  target/release/cairn eval target/models/efficientnet_lite0.onnx target/adaptive/effnet_curve.onnx --inputs target/real-inputs \
    --widths --latency-runs 20
fi
