#!/usr/bin/env bash
# Installs the TF.js reference harness, idempotently (each step checks before it installs):
#   tools/tfjs/.venv          tensorflow-cpu + tf_keras + tensorflowjs (the converters), pinned in
#                             requirements.lock and installed with --no-deps: tensorflowjs 4.22
#                             declares flax/jax ranges that pip cannot reconcile with TF 2.18
#   tools/tfjs/node_modules   TensorFlow.js 4.22 (core, layers, converter, cpu backend) and the
#                             npm packages whose TF.js models are tested (package-lock.json)
# About 1.5 GB on disk; only tools/tfjs/compare.py, keras_mobilenetv2.py and make_fixtures.py need it.
set -euo pipefail
cd "$(dirname "$0")"
if ! .venv/bin/python -c "import tensorflowjs, tf_keras" 2>/dev/null; then
  echo "== python venv for tensorflow + tensorflowjs (tools/tfjs/.venv)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
fi
if [ ! -f node_modules/@tensorflow/tfjs-converter/package.json ] || [ ! -f node_modules/@vladmandic/human/package.json ] \
   || [ ! -f node_modules/nsfwjs/package.json ]; then
  echo "== npm ci (tools/tfjs/node_modules)"
  npm ci --no-audit --no-fund --silent
fi
