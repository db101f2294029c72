#!/usr/bin/env bash
# Load test of `cairn serve` on loopback (issue 7): 64 closed-loop clients for 30 s each.
#   infer, MobileNetV2-1.0 (image in, binary f32): batches of up to 8 (the default), no
#     batching (--max-batch 1), and the batch size calibrated at load (--calibrate);
#   infer, a 6-layer MiniLM-shaped encoder (2 int64 inputs [1, 32] as JSON): batches of 8 vs none;
#   above capacity (queue of 16 for 64 clients): 503 + Retry-After, no timeouts;
#   static: one bundle shard (2 MiB, immutable) over and over.
# Below capacity (queue 256 >= 64 clients) every request must succeed. The server's RSS is
# sampled every second. Models come from tools/build_mobilenetv2.py and
# tools/build_bench_models.py (random weights), packed by `cairn pack`.
# Results: one JSON line per run in target/load/results.jsonl.
#   bench/load/run.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-30}"
CLIENTS="${2:-64}"
PORT=18090
OUT=target/load
mkdir -p "$OUT"

cargo build --release --quiet -p cairn-cli
cargo build --release --quiet -p cairn-load
LOAD=target/release/cairn-load
mkdir -p target/models
[ -f target/models/mobilenetv2.onnx ] || python3 tools/build_mobilenetv2.py target/models/mobilenetv2.onnx
[ -f target/models/minilm.onnx ] || python3 tools/build_bench_models.py target/models
rm -rf "$OUT/app" && mkdir -p "$OUT/app/models"
target/release/cairn pack target/models/mobilenetv2.onnx -o "$OUT/app/models/mobilenetv2" --image-size 224 \
  --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 > /dev/null
target/release/cairn pack target/models/minilm.onnx -o "$OUT/app/models/minilm" > /dev/null
python3 -c "
import json, random
r = random.Random(0); ids = [r.randrange(8192) for _ in range(32)]
json.dump({'inputs': {'input_ids': {'shape': [1, 32], 'data': ids}, 'attention_mask': {'shape': [1, 32], 'data': [1] * 32}}}, open('$OUT/minilm-request.json', 'w'))"
SHARD=$(python3 -c "import json; print(json.load(open('$OUT/app/models/mobilenetv2/manifest.json'))['shards'][0]['path'])")
: > "$OUT/results.jsonl"

run() { # label, serve flags..., then -- load args
  local label=$1; shift
  local serve_args=()
  while [ "$1" != "--" ]; do serve_args+=("$1"); shift; done; shift
  target/release/cairn serve "$OUT/app" --addr 127.0.0.1:$PORT "${serve_args[@]}" > "$OUT/serve-$label.log" 2>&1 &
  local pid=$!
  python3 -c "
import time, urllib.request
for _ in range(300):
    try: urllib.request.urlopen('http://127.0.0.1:$PORT/healthz'); break
    except OSError: time.sleep(0.1)"
  "$LOAD" "$@" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" --server-pid $pid --label "$label"  > "$OUT/last.txt"
  head -1 "$OUT/last.txt"; tail -1 "$OUT/last.txt" >> "$OUT/results.jsonl"
  grep "batches of" "$OUT/serve-$label.log" || true
  python3 -c "
import urllib.request
m = urllib.request.urlopen('http://127.0.0.1:$PORT/metrics').read().decode()
v = {l.split(' ')[0]: float(l.split(' ')[1]) for l in m.splitlines() if l.startswith('cairn_infer_batch_size_') and not 'le=' in l}
for k, s in v.items():
    if k.startswith('cairn_infer_batch_size_sum'):
        c = v[k.replace('_sum', '_count')]
        print(f'  {k.split(\"{\")[1][:-1]}: {int(c)} batches, {s / max(c, 1):.2f} rows per batch')"
  kill $pid; wait $pid 2>/dev/null || true
}

INFER=http://127.0.0.1:$PORT/v1/models/mobilenetv2/infer
MINILM=http://127.0.0.1:$PORT/v1/models/minilm/infer
run mobilenetv2-batch8 --max-batch 8 --queue 256 -- "$INFER" --shape 1,3,224,224
run mobilenetv2-unbatched --max-batch 1 --queue 256 -- "$INFER" --shape 1,3,224,224
run mobilenetv2-calibrated --max-batch 8 --calibrate --queue 256 -- "$INFER" --shape 1,3,224,224
run minilm-batch8 --max-batch 8 --queue 256 -- "$MINILM" --json "$OUT/minilm-request.json"
run minilm-unbatched --max-batch 1 --queue 256 -- "$MINILM" --json "$OUT/minilm-request.json"
run mobilenetv2-overload --max-batch 8 --queue 16 -- "$INFER" --shape 1,3,224,224
run static-shard -- "http://127.0.0.1:$PORT/models/mobilenetv2/$SHARD"
rm -f "$OUT/last.txt"
echo "results: $OUT/results.jsonl"
