"""The tutorial's int8 TFLite model run by the native CLI (`cairn run`) against the interpreter's
saved outputs: a check of the requantization rule (docs/adr/0032) in seconds, without the
browser. Needs `python3 tools/tutorial/fidelity.py prepare OUT_DIR` (or tools/tutorial/run.sh) first.

    python3 tools/tutorial/native_check.py [--cairn target/release/cairn] [OUT_DIR]

Prints, per kernel set of the interpreter (AUTO = XNNPACK, its default), the share of the uint8
logits equal to Cairn's, the largest distance in uint8 steps and top-1 agreement, then each
image's top class on both sides. `CAIRN_ISA=avx2` or `generic` in the environment picks Cairn's
kernels (the default is the best this CPU has). Exit status 1 when top-1 differs from XNNPACK's
on an image (a tie in XNNPACK's output counts either class).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'tflite'))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from compare import KERNEL_SETS, interpreter, run_cairn  # noqa: E402  (tools/tflite/compare.py)

TFLITE = 'mobilenetv2_int8.tflite'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', nargs='?', default=os.path.join(ROOT, 'target', 'tutorial'))
    ap.add_argument('--cairn', default=os.path.join(ROOT, 'target', 'release', 'cairn'))
    args = ap.parse_args()
    path = os.path.join(args.out, TFLITE)
    inputs = os.path.join(args.out, 'refs', 'tflite_input.npy')
    if not os.path.exists(path) or not os.path.exists(inputs):
        sys.exit(f'{path} or {inputs} is missing: run tools/tutorial/run.sh {args.out} '
                 f'(or fidelity.py prepare) first')
    q = np.load(inputs)
    name = interpreter(path, 'AUTO').get_input_details()[0]['name']
    got = np.stack([run_cairn(args.cairn, path, [name], [x[None]], 1)[0].reshape(-1) for x in q]).astype(np.int64)
    print(f'cairn {args.cairn}, CAIRN_ISA={os.environ.get("CAIRN_ISA") or "(best available)"}, {len(q)} images')
    refs = {}
    for k in KERNEL_SETS:
        f = os.path.join(args.out, 'refs', f'tflite_{k}.npy')
        if not os.path.exists(f):
            print(f'vs {k}: no reference ({f})')
            continue
        ref = refs[k] = np.load(f).reshape(len(q), -1).astype(np.int64)
        per_image = ' '.join(f'{100 * np.mean(g == r):.0f}%' for g, r in zip(got, ref))
        print(f'vs {k}: equal {100 * np.mean(got == ref):.1f}%, max {int(np.max(np.abs(got - ref)))} steps, '
              f'top-1 {int(np.sum(np.argmax(got, 1) == np.argmax(ref, 1)))}/{len(q)} (per image equal: {per_image})')
    if 'AUTO' not in refs:
        sys.exit('the XNNPACK (AUTO) reference is missing')
    xnn, top = refs['AUTO'], np.argmax(got, 1)
    # A class tied with XNNPACK's top value is as good a top-1 as its first index.
    agree = xnn[np.arange(len(q)), top] == xnn.max(1)
    for i in range(len(q)):
        a = int(np.argmax(xnn[i]))
        print(f'  image {i}: cairn top {top[i]} ({got[i, top[i]]}; XNNPACK has {xnn[i, top[i]]}), '
              f'XNNPACK top {a} ({xnn[i, a]}; cairn has {got[i, a]})')
    print(f'top-1 as XNNPACK (ties count): {int(agree.sum())}/{len(q)}')
    sys.exit(0 if agree.all() else 1)


if __name__ == '__main__':
    main()
