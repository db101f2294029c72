#!/usr/bin/env bash
# Slower checks that are not part of scripts/test.sh (each documented in README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# TFLite vs the official interpreter (ai-edge-litert): the tutorial MobileNetV2 (Keras ->
# TFLiteConverter, float and int8 with uint8 I/O) and the pinned third-party .tflite files.
bash scripts/setup-tflite.sh
[ -f target/tflite/mobilenetv2_int8.tflite ] || python3 tools/tflite/keras_mobilenetv2.py target/tflite
[ -f target/tflite/ops_int8.tflite ] || python3 tools/tflite/op_models.py target/tflite
python3 tools/tflite/thirdparty.py target/tflite
cargo build --release -p cairn-cli
python3 tools/tflite/compare.py --images 8 --json target/tflite/compare.json
