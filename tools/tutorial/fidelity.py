"""The tutorial's reference side (system python: ai-edge-litert, numpy; TF.js through node).

    python3 tools/tutorial/fidelity.py prepare OUT_DIR   # inputs and reference outputs
    python3 tools/tutorial/fidelity.py check OUT_DIR     # Cairn's browser outputs vs the references

prepare: OUT_DIR/inputs/<model>.npy for the browser (the evaluation images; for the uint8 TFLite
model quantized with its input's scale and zero point, as integers in float32), and
OUT_DIR/refs/: TF.js 4.22 (cpu backend, tools/tfjs/reference.mjs) on the Keras 2 layers export;
the official interpreter (ai-edge-litert, 1 thread) on the int8 .tflite with each kernel set:
AUTO (its default, XNNPACK), BUILTIN_REF (reference kernels), BUILTIN_WITHOUT_DEFAULT_DELEGATES
(optimized builtin kernels, no XNNPACK). Each kernel set runs in a child process, so one that
aborts is reported instead of ending the run.

check: pass/fail, exit status 1 on any miss:
- TF.js layers exports: max |Cairn - reference| <= 1e-4 (absolute), the Keras 2 export against
  TF.js itself, the Keras 3 one (which TF.js cannot load) against Keras;
- int8 TFLite: Cairn's largest distance to XNNPACK, in uint8 steps, must not exceed the largest
  distance between two of the interpreter's own kernel sets (its spread), and top-1 must be
  identical to XNNPACK's on every image. Also reported: the share of outputs equal to each
  kernel set's. A top-1 tie in XNNPACK's uint8 output (two classes with its top value) counts
  either class; strict first-index agreement is printed too. Cairn requantizes as XNNPACK does (fp32 scale, round half to even: ADR 0012),
  not as the reference kernels (gemmlowp fixed point, round half away from zero).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'tflite'))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from compare import KERNEL_SETS, interpreter, run_interpreter  # noqa: E402  (tools/tflite/compare.py, first on the path)

TFJS_TOLERANCE = 1e-4
TFLITE = 'mobilenetv2_int8.tflite'


def prepare(out):
    evaluation = np.load(os.path.join(out, 'evaluation.npy'))
    inputs, refs = os.path.join(out, 'inputs'), os.path.join(out, 'refs')
    os.makedirs(inputs, exist_ok=True)
    os.makedirs(refs, exist_ok=True)
    for name in ('tfjs_keras2', 'tfjs_keras3'):
        np.save(os.path.join(inputs, f'{name}.npy'), evaluation)

    path = os.path.join(out, TFLITE)
    detail = interpreter(path, 'AUTO').get_input_details()[0]
    scale, zero = detail['quantization']
    q = np.clip(np.round(evaluation / scale) + zero, 0, 255).astype(np.uint8)
    np.save(os.path.join(refs, 'tflite_input.npy'), q)
    np.save(os.path.join(inputs, 'tflite_int8.npy'), q.astype(np.float32))
    for kernels in KERNEL_SETS:
        rows = [run_interpreter(path, kernels, [x[None]]) for x in q]
        if any(r is None for r in rows):
            print(f'the interpreter failed with {kernels} on this model (reported, not compared)')
            continue
        np.save(os.path.join(refs, f'tflite_{kernels}.npy'), np.concatenate([r[0] for r in rows]))

    with tempfile.TemporaryDirectory() as tmp:
        x = os.path.join(tmp, 'x.npy')
        np.save(x, evaluation)
        r = subprocess.run(['node', os.path.join(ROOT, 'tools', 'tfjs', 'reference.mjs'), os.path.join(out, 'tfjs_keras2', 'model.json'), x, tmp],
                           capture_output=True, text=True, check=True)
        first = json.loads(r.stdout.strip().splitlines()[-1])['outputs'][0]
        np.save(os.path.join(refs, 'tfjs_keras2.npy'), np.load(os.path.join(tmp, first['file'])))
    print(f'inputs and references for {len(evaluation)} images in {out}')


def check(out):
    browser, refs = os.path.join(out, 'browser'), os.path.join(out, 'refs')
    ok = True
    for name, ref_file, ref_name in [('tfjs_keras2', os.path.join(refs, 'tfjs_keras2.npy'), 'TF.js 4.22'),
                                     ('tfjs_keras3', os.path.join(out, 'keras3.npy'), 'Keras 3 (TF.js cannot load this topology)')]:
        got, ref = np.load(os.path.join(browser, f'{name}.npy')), np.load(ref_file).reshape(-1, 1000)
        diff = float(np.max(np.abs(got - ref)))
        top1 = int(np.sum(np.argmax(got, 1) == np.argmax(ref, 1)))
        passed = diff <= TFJS_TOLERANCE and top1 == len(ref)
        ok &= passed
        print(f'{"ok  " if passed else "FAIL"} TF.js layers {name}: max |Cairn - {ref_name}| = {diff:.2e} (limit {TFJS_TOLERANCE:g}; '
              f'max |reference| {float(np.max(np.abs(ref))):.3g}); top-1 identical on {top1}/{len(ref)} images')

    got = np.load(os.path.join(browser, 'tflite_int8.npy')).astype(np.int64)
    sets = {k: np.load(os.path.join(refs, f'tflite_{k}.npy')).astype(np.int64) for k in KERNEL_SETS if os.path.exists(os.path.join(refs, f'tflite_{k}.npy'))}
    if 'AUTO' not in sets or len(sets) < 2:
        print(f'FAIL int8 TFLite: the interpreter ran with only {sorted(sets)}: no spread to compare against')
        return False
    steps = lambda a, b: int(np.max(np.abs(a - b)))  # noqa: E731
    names = sorted(sets)
    spread = {f'{a} vs {b}': steps(sets[a], sets[b]) for i, a in enumerate(names) for b in names[i + 1:]}
    widest = max(spread.values())
    to = {k: steps(got, v) for k, v in sets.items()}
    equal = {k: float(np.mean(got == v)) for k, v in sets.items()}
    auto = sets['AUTO']
    top1 = int(np.sum(np.argmax(got, 1) == np.argmax(auto, 1)))
    # uint8 logits tie: a class that shares XNNPACK's top value is its top-1 as much as the first one.
    top1_tied = int(np.sum(auto[np.arange(len(got)), np.argmax(got, 1)] == auto.max(1)))
    ties = int(np.sum((auto == auto.max(1, keepdims=True)).sum(1) > 1))
    passed = to['AUTO'] <= widest and top1_tied == len(got)
    ok &= passed
    print(f'{"ok  " if passed else "FAIL"} int8 TFLite (uint8 in/out), {len(got)} images, in uint8 steps:')
    print('     the interpreter\'s own spread: ' + ', '.join(f'{k} {v}' for k, v in spread.items()) + f' (widest {widest})')
    print('     Cairn to each kernel set: ' + ', '.join(f'{k} {v}' for k, v in to.items()) + f' (limit: Cairn to AUTO <= {widest})')
    print('     outputs equal to each kernel set\'s: ' + ', '.join(f'{k} {100 * v:.1f}%' for k, v in equal.items()))
    print(f'     top-1 identical to XNNPACK\'s on {top1}/{len(got)} images by first index, on {top1_tied}/{len(got)} counting '
          f'ties ({ties} image(s) where XNNPACK\'s own top value is shared by two classes); own kernel sets vs AUTO: '
          + ', '.join(f'{k} {int(np.sum(np.argmax(v, 1) == np.argmax(auto, 1)))}/{len(got)}' for k, v in sets.items() if k != 'AUTO'))
    print('     Cairn requantizes as XNNPACK does (fp32 scale, round half to even), not as the reference kernels')
    missing = [k for k in KERNEL_SETS if k not in sets]
    if missing:
        print(f'     (the interpreter failed with {", ".join(missing)} on this model)')
    return ok


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ('prepare', 'check'):
        sys.exit(__doc__)
    if sys.argv[1] == 'prepare':
        prepare(sys.argv[2])
    else:
        sys.exit(0 if check(sys.argv[2]) else 1)


if __name__ == '__main__':
    main()
