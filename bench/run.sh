#!/usr/bin/env bash
# The side-by-side benchmark, one command: builds the models, Cairn's wasm module and
# the native harness, then runs
#   - web: Cairn wasm vs onnxruntime-web vs TF.js wasm, in Node and headless Chromium;
#   - native: Cairn (1 thread, all cores) vs onnxruntime (PyPI, 1 thread) vs tract.
# Results print as tables and land in target/bench/*.json. Not part of the test suite:
# timings on shared machines are for ratios within one run, not pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
step() { printf '\033[1m== %s\033[0m\n' "$*"; }
mkdir -p target/models
[ -f target/models/mobilenetv2.onnx ] || python3 tools/build_mobilenetv2.py target/models/mobilenetv2.onnx
python3 tools/build_bench_models.py target/models
step "building Cairn for wasm (simd128, relaxed SIMD, scalar, threads)"
bench/web/build_wasm.sh
(cd bench/web && { [ -d node_modules ] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --ignore-scripts; })  # (onnxruntime-node's install script needs nuget.org)
command -v chromium >/dev/null || { step "apt-get install chromium"; apt-get install -y chromium chromium-driver >/dev/null; }
step "web: Node $(node --version)"
node bench/web/node_bench.mjs "$@"
step "web: headless Chromium"
node bench/web/browser_bench.mjs "$@"
step "int8: MobileNetV2, Cairn vs onnxruntime(-web) on their own int8 quantizations"
bench/int8.sh
step "native: building the harness (tract from crates.io)"
(cd bench/native && cargo build --release --quiet)
step "native: $(nproc) cores"
python3 bench/native/run.py
