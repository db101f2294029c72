#!/usr/bin/env bash
# Fuzzes Cairn's parsers for SECONDS each (default 60) and prints the exec counts:
#   import_model  ONNX bytes -> import, inference preparation, a run
#   load_bundle   manifest JSON + a shard -> checks, loader, weight placement, graph
#   subgraph_sequence  Loop/If/Scan bodies and sequence/optional values -> import, eager run
#   import_tfjs   TF.js model.json, NUL, one weight shard -> import, inference preparation, a run
#   import_tflite .tflite bytes -> verified import, inference preparation, a run
#   load_tokenizer tokenizer.json, NUL, a text -> the text bundles' tokenizer, encode, batch
# Usage: fuzz/run.sh [SECONDS] [TARGET...]. Installs cargo-fuzz if missing. The machine
# has only a stable toolchain; RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(import_model load_bundle subgraph_sequence import_tfjs import_tflite load_tokenizer)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in "${targets[@]}"; do
  corpus=$(mktemp -d)
  cp seeds/"$target"/* "$corpus"/
  log=$(mktemp)
  status=0
  # A target's dictionary (dicts/TARGET.dict: the format's keywords) steers mutations to
  # other well-formed inputs.
  dict=()
  [ -f dicts/"$target".dict ] && dict=(-dict=dicts/"$target".dict)
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 "${dict[@]}" >"$log" 2>&1 || status=$?
  # (No "#N" lines when the target did not build: `|| true` keeps pipefail from ending the
  # script before the log is shown.)
  execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz $target: CRASH after ${execs:-?} execs (artifact: $(grep -oE 'artifacts/[^ ]+' "$log" | tail -1))"
    exit 1
  fi
  echo "fuzz $target: ${execs:-0} execs in ${seconds} s, 0 crashes"
  rm -rf "$corpus" "$log"
done
