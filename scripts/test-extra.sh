#!/usr/bin/env bash
# Checks too slow or not yet green for scripts/test.sh; run by hand, documented in README.
#   - text fidelity with the strict int8 bar: all-MiniLM-L6-v2 int8-dynamic must reach cosine
#     >= 0.99 against onnxruntime f32 and the same top-3 retrieval (Cairn misses it today).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p cairn-cli
[ -f target/text-model/minilm_l6.onnx ] || python3 tools/convert_minilm.py target/text-model
target/release/cairn optimize target/text-model/minilm_l6.onnx -o target/text-model/minilm_l6_int8.onnx --quantize int8-dynamic
for v in f32:minilm_l6 int8:minilm_l6_int8; do
  target/release/cairn pack "target/text-model/${v#*:}.onnx" -o "target/text-model/bundle_${v%%:*}" --no-progressive \
    --tokenizer target/text-model/tokenizer.json --task feature-extraction --max-length 256 --json >/dev/null
done
python3 tools/check_text_fidelity.py target/release/cairn target/text-model/bundle_f32 target/text-model/bundle_int8 \
  target/text-model/minilm_l6.onnx target/text-model/minilm_l6_int8.onnx target/text-model/tokenizer.json
