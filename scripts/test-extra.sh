#!/usr/bin/env bash
# Slow checks, not part of scripts/test.sh (each lane appends its own delimited section).
# Assumes scripts/test.sh ran (models, target/release/cairn and the wasm builds exist).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\033[1m== %s\033[0m\n' "$*"; }

# ---- issue 16: threads in the browser (docs/adr/0019) ----
# The runtime and PWA suites again with every test server sending COOP + COEP, so every
# page is cross-origin isolated and auto-selects the threaded build; then the threads
# benchmark (Node and headless Chromium, Cairn vs onnxruntime-web and TF.js on 2 threads).
step "runtime and PWA tests on the threaded build (cross-origin isolated pages)"
(cd web && CAIRN_TEST_ISOLATED=1 npm run test:runtime && CAIRN_TEST_ISOLATED=1 npm run test:pwa)
step "threads benchmark (bench/threads.sh)"
bench/threads.sh
# ---- end issue 16 ----
