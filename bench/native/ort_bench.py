"""onnxruntime (PyPI), 1 thread, on the benchmark's shared input; prints one JSON line
in native-bench's format. Usage: ort_bench.py MODEL [--runs R] [--warmup W] [--seq S]"""
import argparse
import json
import resource
import time

import numpy as np
import onnxruntime as ort


def lcg_f32(n):
    """The 32-bit LCG every engine of the benchmark uses: uniform [0, 1)."""
    out = np.empty(n, np.float32)
    s = 1
    for i in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = (s >> 8) / float(1 << 24)
    return out


def make_input(inp, seq):
    if inp.type == "tensor(int64)":
        if "mask" in inp.name:
            return np.ones((1, seq), np.int64)
        return (1 + (np.arange(seq, dtype=np.int64) * 37) % 999).reshape(1, seq)
    return lcg_f32(3 * 224 * 224).reshape(1, 3, 224, 224)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seq", type=int, default=128)
    a = ap.parse_args()
    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    feeds = {i.name: make_input(i, a.seq) for i in sess.get_inputs()}
    load_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(a.warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        out = sess.run(None, feeds)[0]
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({"engine": "onnxruntime", "threads": 1, "model": a.model, "runs": a.runs, "median_ms": times[len(times) // 2], "min_ms": times[0],
                      "load_ms": load_ms, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "output_head": out.reshape(-1)[:4096].tolist(), "version": ort.__version__}))


if __name__ == "__main__":
    main()
