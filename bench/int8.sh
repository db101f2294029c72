#!/usr/bin/env bash
# int8 side by side, one run (issue 4's "must show" 1): MobileNetV2-1.0 in Node (wasm, 1 thread):
# Cairn f32, Cairn int8 (`cairn optimize --quantize int8`), onnxruntime-web on onnxruntime's
# own int8 quantization of the same model (QOperator and QDQ); then natively: onnxruntime
# (PyPI, 1 thread) on its int8 models vs Cairn (1 thread) on the same files and on its own.
# Prints the ratios. Needs what bench/run.sh builds (wasm module, npm peers). Timings on a
# shared machine: compare within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
M=target/models
RUNS=${RUNS:-30}
[ -f $M/mobilenetv2.onnx ] || python3 tools/build_mobilenetv2.py $M/mobilenetv2.onnx
[ -d target/calib-inputs ] || python3 tools/make_calibration_inputs.py target/calib-inputs
[ -f $M/mobilenetv2_ort_qop.onnx ] || python3 tools/quantize_with_ort.py $M/mobilenetv2.onnx target/calib-inputs $M/mobilenetv2_ort --formats qdq,qop
[ -f target/release/cairn ] || cargo build --release -p cairn-cli
[ -f $M/mobilenetv2_int8.onnx ] || target/release/cairn optimize $M/mobilenetv2.onnx -o $M/mobilenetv2_int8.onnx --quantize int8 --calibrate target/calib-inputs
[ -f target/web-pkg/simd/cairn_web_bg.wasm ] || bench/web/build_wasm.sh
(cd bench/web && { [ -d node_modules ] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --ignore-scripts; })  # (onnxruntime-node's install script needs nuget.org)
mkdir -p target/bench
web() { # engine model -> "median min"
  node bench/web/node_bench.mjs --engines "$1" --model "$2" --runs "$RUNS" >/dev/null
  python3 -c "import json; r=[e for e in json.load(open('target/bench/web-node.json'))['engines'] if e['engine']=='$1'][0]; print(r['median_ms'], r['min_ms'])"
}
native_ort() { python3 bench/native/ort_bench.py "$1" --runs "$RUNS" | tail -1 | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['median_ms'], r['min_ms'])"; }
native_cairn() { target/release/cairn run "$1" --random --runs "$RUNS" --threads 1 --json | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['median_ms'], r['min_ms'])"; }
declare -A T
T[web_cairn_f32]=$(web cairn $M/mobilenetv2.onnx)
T[web_cairn_int8]=$(web cairn $M/mobilenetv2_int8.onnx)
T[web_ort_int8_qop]=$(web ort-web $M/mobilenetv2_ort_qop.onnx)
T[web_ort_int8_qdq]=$(web ort-web $M/mobilenetv2_ort_qdq.onnx)
T[web_ort_f32]=$(web ort-web $M/mobilenetv2.onnx)
T[native_cairn_f32]=$(native_cairn $M/mobilenetv2.onnx)
T[native_cairn_int8]=$(native_cairn $M/mobilenetv2_int8.onnx)
T[native_cairn_ort_qdq]=$(native_cairn $M/mobilenetv2_ort_qdq.onnx)
T[native_ort_int8_qop]=$(native_ort $M/mobilenetv2_ort_qop.onnx)
T[native_ort_int8_qdq]=$(native_ort $M/mobilenetv2_ort_qdq.onnx)
T[native_ort_f32]=$(native_ort $M/mobilenetv2.onnx)
for k in "${!T[@]}"; do echo "$k ${T[$k]}"; done | sort > target/bench/int8.txt
python3 - <<'PY'
rows = {l.split()[0]: (float(l.split()[1]), float(l.split()[2])) for l in open("target/bench/int8.txt")}
print(f"{'MobileNetV2-1.0, 1 thread':<34} {'median ms':>10} {'min ms':>8}")
for k, (med, mn) in sorted(rows.items()):
    print(f"{k:<34} {med:>10.2f} {mn:>8.2f}")
r = lambda a, b: rows[a][0] / rows[b][0]
best_ort = min(rows["web_ort_int8_qop"][0], rows["web_ort_int8_qdq"][0])
print(f"wasm: Cairn int8 / Cairn f32 = {r('web_cairn_int8', 'web_cairn_f32'):.2f} (goal <= 0.55)")
print(f"wasm: Cairn int8 / onnxruntime-web int8 (its faster format) = {rows['web_cairn_int8'][0] / best_ort:.2f} (goal <= 0.35)")
print(f"native: Cairn int8 / onnxruntime int8 (QOperator) = {r('native_cairn_int8', 'native_ort_int8_qop'):.2f} (goal <= 1.2)")
PY
