#!/usr/bin/env bash
# The whole test suite. Installs what it needs (scripts/setup.sh), then:
#   1. unit and integration tests of every crate, including the ONNX backend
#      node conformance suite (fails if a case in tests/onnx-node-passing.txt regresses);
#   2. the kernel property tests again as wasm (simd128 and scalar builds) in Node's V8;
#   3. whole models: Cairn vs onnxruntime on real architectures;
#   3a. the coarse level of a real pretrained EfficientNet-Lite0 bundle agrees with the full
#       model on >= 99% of decisive real-photo inputs (320 crops/flips of scikit-image photos);
#   3a'. int8: onnxruntime-quantized MobileNetV2 and EfficientNet-Lite0 (QDQ, QOperator,
#       dynamic) on Cairn's int8 kernels vs onnxruntime; `cairn optimize --quantize int8` of the
#       pretrained EfficientNet-Lite0 agrees with f32 on >= 99% of decisive real-photo inputs;
#   3b. browser tests in real headless Chromium (web/test): a packed bundle streamed
#       into the worker, verified, run coarse then full, matching native Cairn;
#   4. bounded fuzzing runs of the ONNX importer and the bundle loader;
#   5. generated files are up to date (SUPPORTED_OPS.md).
# Set CAIRN_FUZZ_SECONDS to change the fuzzing budget per target (default 45).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\033[1m== %s\033[0m\n' "$*"; }

step "generating ONNX backend node test cases"
python3 tools/gen_onnx_node_tests.py target/onnx-node-tests

step "cargo test --workspace"
cargo test --workspace

for variant in simd128 scalar; do
  step "kernel tests as wasm32 ($variant) in Node"
  flags=""; [ "$variant" = simd128 ] && flags="-C target-feature=+simd128"
  CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $PWD/tools/wasi-run.mjs" RUSTFLAGS="$flags" \
    cargo test --release --quiet -p cairn-kernels --target wasm32-wasip1 --target-dir "target/wasi-$variant"
done

step "whole models vs onnxruntime"
cargo build --release --quiet -p cairn-cli
python3 tools/compare_with_ort.py --cairn target/release/cairn

step "coarse-level fidelity on real photos (EfficientNet-Lite0, pretrained)"
python3 tools/make_image_inputs.py target/real-inputs --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
target/release/cairn pack target/models/efficientnet_lite0.onnx -o target/bundles/efficientnet_lite0 --image-size 224 \
  --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --labels target/models/imagenet_labels.txt --fidelity-inputs target/real-inputs
python3 - <<'PY'
import json
f = json.load(open("target/bundles/efficientnet_lite0/manifest.json"))["levels"][0]["fidelity"]
assert f["inputs"] >= 300 and f["decisive_top1_agreement"] >= 0.99, f
print(f"coarse level: top-1 agreement {f['top1_agreement']:.1%} on {f['inputs']} real-photo inputs, {f['decisive_top1_agreement']:.1%} on the {f['decisive_inputs']} decisive ones")
PY

step "int8: quantized models on the int8 kernels vs onnxruntime; optimize + eval on real photos"
python3 tools/make_calibration_inputs.py target/calib-inputs
python3 tools/compare_int8_with_ort.py --cairn target/release/cairn
target/release/cairn optimize target/models/efficientnet_lite0.onnx -o target/models/efficientnet_lite0_int8.onnx \
  --quantize int8 --calibrate target/calib-inputs
target/release/cairn eval target/models/efficientnet_lite0.onnx target/models/efficientnet_lite0_int8.onnx \
  --inputs target/real-inputs --json > target/int8-eval.json
python3 - <<'PY'
import json
r = json.load(open("target/int8-eval.json"))
assert r["inputs"] >= 300 and r["decisive_top1_agreement"] >= 0.99, {k: v for k, v in r.items() if k != "layers"}
print(f"int8 EfficientNet-Lite0: top-1 agreement {r['top1_agreement']:.1%} on {r['inputs']} real-photo inputs, "
      f"{r['decisive_top1_agreement']:.1%} on the {r['decisive_inputs']} decisive ones, mean KL {r['mean_kl']:.4f}")
PY

step "browser tests in headless Chromium (bundles, worker, client API)"
bench/web/build_wasm.sh
(cd web && npm test)

step "SUPPORTED_OPS.md is up to date"
target/release/cairn ops --markdown > target/SUPPORTED_OPS.md
diff -u SUPPORTED_OPS.md target/SUPPORTED_OPS.md || { echo "SUPPORTED_OPS.md is stale: run 'target/release/cairn ops --markdown > SUPPORTED_OPS.md'"; exit 1; }

step "fuzzing the ONNX importer and the bundle loader, ${CAIRN_FUZZ_SECONDS:-45} s each"
fuzz/run.sh "${CAIRN_FUZZ_SECONDS:-45}"

step "all tests passed"
