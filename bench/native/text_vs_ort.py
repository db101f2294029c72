#!/usr/bin/env python3
"""Cairn vs onnxruntime on one text encoder file, 1 thread, in one run (issue 15, must-show 3:
natively <= 1.1x onnxruntime).

    python3 bench/native/text_vs_ort.py MODEL.onnx [MODEL2.onnx ...] [--cairn target/release/cairn]
        [--seq 128] [--batch 1] [--rounds 6] [--runs 5]

The machine is shared and noisy, so the engines alternate: each round runs `cairn run MODEL
--random --dim batch=B --dim sequence=S --threads 1 --runs RUNS+1 --json` (its first run plans
the shapes and is left out of its median/min) and then RUNS timed onnxruntime runs (basic graph
optimization, as tools/check_text_fidelity.py uses: the extended fusions fail on this graph;
intra-op 1 thread, sequential, 3 warm-ups once per session). A burst of load then falls on both.
Printed per model: Cairn's median of its round medians and its minimum, onnxruntime's median over
all its runs and its minimum (and its median of round medians, comparable to Cairn's), and the
ratios Cairn/onnxruntime of medians and of minimums.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ort_session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_feeds(sess, batch, seq):
    """Token ids spread over the vocabulary, a full attention mask, token types 0."""
    feeds = {}
    for i in sess.get_inputs():
        if i.type != "tensor(int64)":
            sys.exit(f"{i.name}: expected an int64 text input, got {i.type}")
        if "mask" in i.name:
            feeds[i.name] = np.ones((batch, seq), np.int64)
        elif "type" in i.name:
            feeds[i.name] = np.zeros((batch, seq), np.int64)
        else:
            feeds[i.name] = (1 + (np.arange(batch * seq, dtype=np.int64) * 37) % 999).reshape(batch, seq)
    return feeds


def cairn_round(cairn, model, batch, seq, runs):
    cmd = [cairn, "run", model, "--random", "--dim", f"batch={batch}", "--dim", f"sequence={seq}", "--threads", "1", "--runs", str(runs + 1), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    s = json.loads(r.stdout)
    return s["median_ms"], s["min_ms"]


def ort_round(sess, feeds, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return times


def bench(model, a):
    sess = ort_session(model)
    feeds = ort_feeds(sess, a.batch, a.seq)
    for _ in range(3):
        sess.run(None, feeds)
    c_med, c_min, o_all, o_med = [], [], [], []
    for _ in range(a.rounds):
        med, mn = cairn_round(a.cairn, model, a.batch, a.seq, a.runs)
        c_med.append(med)
        c_min.append(mn)
        t = ort_round(sess, feeds, a.runs)
        o_all += t
        o_med.append(statistics.median(t))
    c = (statistics.median(c_med), min(c_min))
    o = (statistics.median(o_all), min(o_all), statistics.median(o_med))
    return c, o


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--cairn", default=os.path.join(ROOT, "target/release/cairn"))
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per engine per round")
    a = ap.parse_args()
    if a.rounds < 1 or a.runs < 1:
        sys.exit("--rounds and --runs must be at least 1")
    print(f"onnxruntime {ort.__version__}, batch {a.batch}, {a.seq} tokens, 1 thread, {a.rounds} rounds x {a.runs} runs, load {os.getloadavg()[0]:.2f}")
    print(f"{'model':<28} {'cairn med/min ms':>18} {'ort med/min ms':>16} {'ort med of rounds':>18} {'ratio med':>10} {'ratio min':>10}")
    for m in a.models:
        (cm, cn), (om, on, orm) = bench(m, a)
        print(f"{os.path.basename(m):<28} {cm:>8.2f} / {cn:>7.2f} {om:>7.2f} / {on:>6.2f} {orm:>18.2f} {cm / orm:>10.2f} {cn / on:>10.2f}")
    print(f"(ratio med = Cairn's median of round medians / onnxruntime's; load now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
