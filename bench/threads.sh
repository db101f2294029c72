#!/usr/bin/env bash
# Threads side by side, one run (issue 16's "must show" 1): in Node and in headless Chromium
# (cross-origin isolated page), for MobileNetV2-1.0 f32, MobileNetV2 int8 and the MiniLM-shaped
# encoder: Cairn's single-threaded build, Cairn's threaded build on $THREADS threads, and
# onnxruntime-web and TF.js's wasm backend each on $THREADS threads. Prints the tables and
# the ratios against the goals. int8: Cairn and onnxruntime-web run the same file,
# onnxruntime's static QDQ quantization of the f32 model (Cairn maps it onto its int8
# kernels at load); TF.js has no int8 path, so it runs f32 MobileNetV2 there too.
# Needs what bench/run.sh builds.
# Timings on a shared machine: compare within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
M=target/models
RUNS=${RUNS:-20}
THREADS=${THREADS:-2}
[ -f $M/mobilenetv2.onnx ] || python3 tools/build_mobilenetv2.py $M/mobilenetv2.onnx
[ -f $M/minilm.onnx ] || python3 tools/build_bench_models.py $M
[ -d target/calib-inputs ] || python3 tools/make_calibration_inputs.py target/calib-inputs
[ -f $M/mobilenetv2_ort_qdq.onnx ] || python3 tools/quantize_with_ort.py $M/mobilenetv2.onnx target/calib-inputs $M/mobilenetv2_ort --formats qdq,qop
for b in simd relaxed threads threads-relaxed; do [ -f target/web-pkg/$b/cairn_web_bg.wasm ] || bench/web/build_wasm.sh $b; done
# Cairn runs its fastest builds, as the runtime's 'auto' does (docs/adr/0034): relaxed SIMD
# and its threaded twin where the engine validates relaxed SIMD. Node 20 needs a flag for it
# (Node >= 22 validates it by default; the peers' wasm does not change with it).
node_flags=()
relaxed_here() { node "$@" --input-type=module -e "import { relaxedSimd } from './web/src/backend.js'; process.exit(relaxedSimd() ? 0 : 1)" 2>/dev/null; }
relaxed_here || { relaxed_here --experimental-wasm-relaxed-simd && node_flags=(--experimental-wasm-relaxed-simd); }
(cd bench/web && { [ -d node_modules ] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --ignore-scripts; })  # (onnxruntime-node's install script needs nuget.org)
mkdir -p target/bench
# The engines take turns ROUNDS times (fresh process or page each turn, RUNS/ROUNDS runs):
# a burst from the machine's other tenants then lands on every engine, not on one.
ROUNDS=${ROUNDS:-3}
common=(--runs "$RUNS" --threads "$THREADS" --rounds "$ROUNDS")
for where in node chromium; do
  script=bench/web/node_bench.mjs
  [ $where = chromium ] && script=bench/web/browser_bench.mjs
  flags=("${node_flags[@]}")
  [ $where = chromium ] && flags=()
  node "${flags[@]}" $script --model $M/mobilenetv2.onnx --engines cairn,cairn-threads,ort-web,tfjs-wasm "${common[@]}" --out "threads-$where-f32"
  node "${flags[@]}" $script --model $M/mobilenetv2_ort_qdq.onnx --engines cairn,cairn-threads,ort-web,tfjs-wasm "${common[@]}" --out "threads-$where-int8"
  node "${flags[@]}" $script --model $M/minilm.onnx --engines cairn,cairn-threads,ort-web "${common[@]}" --out "threads-$where-minilm"
done
THREADS=$THREADS python3 - <<'PY'
import json, os
t = os.environ["THREADS"]
print(f"\nRatios (medians), Cairn's threaded build on {t} threads; goals: <= 0.6 of Cairn's 1 thread, <= 0.8 of each peer on {t} threads")
missed = 0
for where in ("node", "chromium"):
    for model in ("f32", "int8", "minilm"):
        r = json.load(open(f"target/bench/threads-{where}-{model}.json"))
        e = {x["engine"]: x for x in r["engines"]}
        c = e["cairn-threads"]["median_ms"]
        cells = [f"{where:8} {model:6} threads {c:7.2f} ms"]
        for peer, goal, label in (("cairn", 0.6, "/ cairn 1 thread"), ("ort-web", 0.8, "/ onnxruntime-web"), ("tfjs-wasm", 0.8, "/ TF.js")):
            if peer in e:
                ratio = c / e[peer]["median_ms"]
                ok = ratio <= goal
                missed += not ok
                cells.append(f"{label} {ratio:.2f}{'' if ok else ' (MISSED)'}")
        same = r.get("agreement_threads_vs_single")
        cells.append("outputs vs 1 thread: " + ("identical" if same == 0 else f"{same:.1e} rel"))
        print("  ".join(cells))
print("all goals met" if missed == 0 else f"{missed} goal(s) missed")
PY
