#!/usr/bin/env bash
# The whole test suite. Installs what it needs (scripts/setup.sh), then:
#   1. unit and integration tests of every crate, including the ONNX backend
#      node conformance suite (fails if a case in tests/onnx-node-passing.txt regresses);
#   2. whole models: Cairn vs onnxruntime on real architectures;
#   3. a bounded fuzzing run of the ONNX importer;
#   4. generated files are up to date (SUPPORTED_OPS.md).
# Set CAIRN_FUZZ_SECONDS to change the fuzzing budget (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\033[1m== %s\033[0m\n' "$*"; }

step "generating ONNX backend node test cases"
python3 tools/gen_onnx_node_tests.py target/onnx-node-tests

step "cargo test --workspace"
cargo test --workspace

step "whole models vs onnxruntime"
cargo build --release --quiet -p cairn-cli
python3 tools/compare_with_ort.py --cairn target/release/cairn

step "SUPPORTED_OPS.md is up to date"
target/release/cairn ops --markdown > target/SUPPORTED_OPS.md
diff -u SUPPORTED_OPS.md target/SUPPORTED_OPS.md || { echo "SUPPORTED_OPS.md is stale: run 'target/release/cairn ops --markdown > SUPPORTED_OPS.md'"; exit 1; }

step "fuzzing the ONNX importer for ${CAIRN_FUZZ_SECONDS:-60} s"
fuzz/run.sh "${CAIRN_FUZZ_SECONDS:-60}"

step "all tests passed"
