"""Native side-by-side benchmark driver: for each model, runs every engine in its own
process (so peak RSS is its own) on the same file and input, checks the outputs agree,
prints the table and writes target/bench/native.json.

Usage: python3 bench/native/run.py [--models mobilenetv2,resnet50,squeezenet11,minilm,mobilenetv2_int8,mobilenetv2_ort_qop] [--runs N] [--rounds R]

Every engine is measured in R rounds (engines in alternating order); the table shows each
engine's best round, by median. On a shared machine other people's jobs hit whole runs of
one engine, which a single round turns into a false ratio; all rounds go to the JSON.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "bench/native/target/release/cairn-native-bench")
RUNS = {"mobilenetv2": 30, "resnet50": 8, "squeezenet11": 30, "minilm": 10, "mobilenetv2_int8": 30, "mobilenetv2_ort_qop": 30}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        lines = (r.stderr + r.stdout).splitlines()
        # The engine's own message, not the tail of a backtrace.
        msg = next((l for l in lines if l.startswith("Error")), lines[-1] if lines else f"exit {r.returncode}")
        return {"error": msg}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    # int8 rows: Cairn's own quantization (`cairn optimize --quantize int8`) and onnxruntime's
    # (QOperator), both made by bench/int8.sh.
    ap.add_argument("--models", default="mobilenetv2,resnet50,squeezenet11,minilm,mobilenetv2_int8,mobilenetv2_ort_qop")
    ap.add_argument("--runs", type=int, default=0, help="runs per engine (default: per model)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per engine; the best round (by median) is shown")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    print(f"{'model':<13} {'engine':<22} {'median ms':>10} {'min ms':>8} {'peak RSS MiB':>13} {'cairn-1t/engine':>16}  agreement")
    for model in a.models.split(","):
        path = os.path.join(ROOT, "target/models", f"{model}.onnx")
        runs = str(a.runs or RUNS.get(model, 10))
        configs = [
            ("cairn", 1, [BIN, "--engine", "cairn", "--model", path, "--threads", "1", "--runs", runs]),
            ("cairn", cores, [BIN, "--engine", "cairn", "--model", path, "--threads", str(cores), "--runs", runs]),
            ("onnxruntime", 1, [sys.executable, os.path.join(ROOT, "bench/native/ort_bench.py"), path, "--runs", runs]),
            ("tract", 1, [BIN, "--engine", "tract", "--model", path, "--threads", "1", "--runs", runs]),
        ]
        rounds = [[] for _ in configs]
        for r in range(a.rounds):
            order = list(range(len(configs))) if r % 2 == 0 else list(reversed(range(len(configs))))
            for i in order:
                rounds[i].append(run(configs[i][2]))
        best = lambda rs: min((x for x in rs if "error" not in x), key=lambda x: x["median_ms"], default=rs[0])
        results = [(name, threads, dict(best(rs), rounds=[x.get("median_ms") for x in rs])) for (name, threads, _), rs in zip(configs, rounds)]
        base = results[0][2]
        ref = next((r for n, _, r in results if n == "onnxruntime" and "error" not in r), None)
        for name, threads, r in results:
            label = f"{name} ({threads} thread{'s' if threads > 1 else ''})"
            if "error" in r:
                print(f"{model:<13} {label:<22} failed: {r['error'][:90]}")
                rows.append({"model": model, "engine": name, "threads": threads, "error": r["error"]})
                continue
            agree = ""
            if ref is not None and name != "onnxruntime":
                x, y = np.array(r["output_head"]), np.array(ref["output_head"])
                agree = f"max|d|/max|ref| {np.abs(x - y).max() / max(np.abs(y).max(), 1e-12):.1e}"
            ratio = base["median_ms"] / r["median_ms"] if "median_ms" in base else float("nan")
            each = "/".join(f"{m:.1f}" if m is not None else "-" for m in r["rounds"])
            print(f"{model:<13} {label:<22} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f} {r['peak_rss_bytes'] / 2**20:>13.1f} {ratio:>16.2f}  {agree}  (round medians {each})")
            rows.append({"model": model, "engine": name, "threads": threads, **{k: v for k, v in r.items() if k != "output_head"}})
    os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench/native.json"), "w") as f:
        json.dump({"cpu_count": cores, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
