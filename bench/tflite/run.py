"""Cairn vs the official TFLite interpreter (ai-edge-litert, XNNPACK, 1 thread) on the same
.tflite files, natively, in one run: both timed here, interleaved, ratio printed.

    python3 bench/tflite/run.py [--cairn target/release/cairn] [--runs 50] [MODEL.tflite ...]

Default models: the tutorial MobileNetV2 int8 (uint8 in/out) and float
(tools/tflite/keras_mobilenetv2.py). Cairn's time is `cairn run --runs N --threads 1 --json`'s
minimum; the interpreter's is the minimum of N `invoke()` calls after a warm-up. Minimums,
because the machine is shared: the fastest run is the least disturbed. Goal (issue 14): int8
MobileNetV2 at <= 1.2x the interpreter's time.
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np


def interpreter_ms(path, runs):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    for d in it.get_input_details():
        info = np.iinfo(d['dtype']) if d['dtype'] != np.float32 else None
        x = np.random.default_rng(0).uniform(-1, 1, d['shape']).astype(np.float32) if info is None else \
            np.random.default_rng(0).integers(info.min, info.max, d['shape']).astype(d['dtype'])
        it.set_tensor(d['index'], x)
    it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t) * 1e3)
    return min(times), float(np.median(times))


def cairn_ms(cairn, path, runs):
    out = subprocess.run([cairn, 'run', path, '--random', '--runs', str(runs + 1), '--threads', '1', '--json'],
                         capture_output=True, text=True, check=True).stdout
    s = json.loads(out)
    return s['min_ms'], s['median_ms']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cairn', default='target/release/cairn')
    ap.add_argument('--runs', type=int, default=50)
    ap.add_argument('models', nargs='*', default=['target/tflite/mobilenetv2_int8.tflite', 'target/tflite/mobilenetv2_float.tflite'])
    args = ap.parse_args()
    print(f'{"model":<48} {"cairn min/median ms":>20} {"litert min/median ms":>21} {"ratio (min)":>11}')
    for m in args.models:
        # Interleaved halves, so a burst of load from other processes hits both.
        c1, t1 = cairn_ms(args.cairn, m, args.runs // 2), interpreter_ms(m, args.runs // 2)
        t2, c2 = interpreter_ms(m, args.runs // 2), cairn_ms(args.cairn, m, args.runs // 2)
        c, t = min(c1[0], c2[0]), min(t1[0], t2[0])
        cm, tm = (c1[1] + c2[1]) / 2, (t1[1] + t2[1]) / 2
        print(f'{m:<48} {c:>9.2f} / {cm:>8.2f} {t:>10.2f} / {tm:>8.2f} {c / t:>10.2f}x')


if __name__ == '__main__':
    sys.exit(main())
