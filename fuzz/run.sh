#!/usr/bin/env bash
# Fuzzes the ONNX importer for SECONDS (default 60) and prints the exec count.
# Installs cargo-fuzz if missing. The machine has only a stable toolchain;
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z sanitizer flags to it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=$(mktemp -d)
cp seeds/* "$corpus"/
log=$(mktemp)
status=0
RUSTC_BOOTSTRAP=1 cargo fuzz run import_model "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1 || status=$?
execs=$(grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#')
if [ "$status" -ne 0 ]; then
  tail -40 "$log"
  echo "fuzz import_model: CRASH after ${execs:-?} execs (artifact: $(grep -oE 'artifacts/[^ ]+' "$log" | tail -1))"
  exit 1
fi
echo "fuzz import_model: ${execs:-0} execs in ${seconds} s, 0 crashes"
rm -rf "$corpus" "$log"
