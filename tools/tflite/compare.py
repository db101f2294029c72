"""Cairn vs the official TFLite interpreter (PyPI ai-edge-litert) on the same .tflite files.

    python3 tools/tflite/compare.py [--cairn target/release/cairn] [--models DIR] [--images N] [--json FILE]

For every model: real-photo inputs (scikit-image's photos, resized to the model's input; uint8
models get the pixels quantized with the input's own parameters), outputs of the interpreter
with each of its kernel sets (AUTO = XNNPACK, the default; BUILTIN_REF = reference kernels;
BUILTIN_WITHOUT_DEFAULT_DELEGATES = optimized builtin kernels without XNNPACK), and Cairn's
(`cairn run`). Quantized outputs are compared in quantization steps, float ones by the largest
difference relative to the largest reference value.

Pass/fail:
- quantized models: Cairn's distance to XNNPACK must not exceed the interpreter's own spread
  (the largest distance between two of its kernel sets) plus one step, with identical top-1;
- float models: max |cairn - xnnpack| / max |xnnpack| <= 1e-4 (FLOAT_TOLERANCE) per output.

Models: the tutorial MobileNetV2 (tools/tflite/keras_mobilenetv2.py, float and int8), the
operator-coverage models (tools/tflite/op_models.py) and the
third-party files listed in tools/tflite/thirdparty.py (pinned packages).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
sys.path.insert(0, HERE)
from make_image_inputs import PHOTOS, variants  # noqa: E402

FLOAT_TOLERANCE = 1e-4
KERNEL_SETS = ['AUTO', 'BUILTIN_REF', 'BUILTIN_WITHOUT_DEFAULT_DELEGATES']


def interpreter(path, kernels):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=getattr(OpResolverType, kernels))
    it.allocate_tensors()
    return it


def photo(detail, k):
    """Evaluation crop k (odd crops: never the calibration ones) shaped and typed for `detail`."""
    from PIL import Image
    import skimage
    shape, dtype = detail['shape'], detail['dtype']
    if len(shape) != 4 or shape[3] not in (1, 3):
        rng = np.random.default_rng(k)
        return rng.uniform(-1, 1, shape).astype(np.float32) if dtype == np.float32 else rng.integers(0, 255, shape).astype(dtype)
    data = os.path.join(os.path.dirname(skimage.__file__), 'data')
    name = PHOTOS[k % len(PHOTOS)]
    im = Image.open(os.path.join(data, name)).convert('RGB' if shape[3] == 3 else 'L')
    crop = variants(im, 2 * (k // len(PHOTOS)) + 2)[2 * (k // len(PHOTOS)) + 1]
    x = np.asarray(crop.resize((shape[2], shape[1]), Image.BILINEAR), np.float32).reshape(shape) / 127.5 - 1.0
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero = detail['quantization']
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def run_interpreter(path, kernels, inputs):
    """One interpreter run in a child process: a kernel set that aborts (ai-edge-litert 2.3.0's
    reference kernels do on the int8 MobileNetV2) is reported, not fatal. None when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, 'in.npz'), os.path.join(tmp, 'out.npz')
        np.savez(src, *inputs)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), '--worker', path, kernels, src, dst], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        with np.load(dst) as z:
            return [z[f'arr_{k}'] for k in range(len(z.files))]


def worker(path, kernels, src, dst):
    it = interpreter(path, kernels)
    with np.load(src) as z:
        for k, d in enumerate(it.get_input_details()):
            it.set_tensor(d['index'], z[f'arr_{k}'])
    it.invoke()
    np.savez(dst, *[it.get_tensor(d['index']) for d in it.get_output_details()])


def run_cairn(cairn, path, names, inputs, n_outputs):
    with tempfile.TemporaryDirectory() as tmp:
        args = [cairn, 'run', path, '--threads', '1']
        for k, (name, x) in enumerate(zip(names, inputs)):
            f = os.path.join(tmp, f'in{k}.npy')
            np.save(f, x)
            args += ['--input', f'{name}={f}']
        outs = [os.path.join(tmp, f'out{k}.npy') for k in range(n_outputs)]
        for o in outs:
            args += ['--output', o]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f'cairn run failed: {r.stderr.strip()}')
        return [np.load(o) for o in outs]


def distance(a, b, quantized):
    """Quantized: the largest difference in steps. Float: largest difference / largest |b|."""
    if a.shape != b.shape:
        return float('inf')
    if quantized:
        return float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) if a.size else 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(float(np.max(np.abs(b))), 1e-30))


def compare_model(cairn, name, path, images):
    it = interpreter(path, 'AUTO')
    ins, outs = it.get_input_details(), it.get_output_details()
    quantized = [o['dtype'] != np.float32 for o in outs]
    spread, to_cairn, top1_same, top1_total, failed = 0.0, {k: 0.0 for k in KERNEL_SETS}, 0, 0, set()
    for k in range(images):
        inputs = [photo(d, k + 7 * j) for j, d in enumerate(ins)]
        ref = {ks: run_interpreter(path, ks, inputs) for ks in KERNEL_SETS}
        if ref['AUTO'] is None:
            raise RuntimeError('the interpreter (XNNPACK) failed on this model')
        failed.update(ks for ks in KERNEL_SETS if ref[ks] is None)
        ran = [ks for ks in KERNEL_SETS if ref[ks] is not None]
        got = run_cairn(cairn, path, [d['name'] for d in ins], inputs, len(outs))
        for o in range(len(outs)):
            for a in range(len(ran)):
                for b in range(a + 1, len(ran)):
                    spread = max(spread, distance(ref[ran[a]][o], ref[ran[b]][o], quantized[o]))
                for ks in ran:
                    to_cairn[ks] = max(to_cairn[ks], distance(got[o], ref[ks][o], quantized[o]))
        main = ref['AUTO'][0]
        if main.size >= 2 and main.ndim == 2:
            top1_total += 1
            top1_same += int(np.argmax(main) == np.argmax(got[0]))
    if any(quantized):
        ok = to_cairn['AUTO'] <= spread + 1 and top1_same == top1_total
        limit = f'<= spread + 1 = {spread + 1:.0f} steps'
    else:
        ok = to_cairn['AUTO'] <= FLOAT_TOLERANCE
        limit = f'<= {FLOAT_TOLERANCE:g} relative'
    return {
        'model': name, 'file': path, 'quantized': any(quantized), 'images': images,
        'interpreter_spread': spread, 'cairn_to': to_cairn, 'top1_same': f'{top1_same}/{top1_total}',
        'limit': limit, 'ok': ok, 'kernel_sets_that_failed': sorted(failed),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cairn', default='target/release/cairn')
    ap.add_argument('--models', default='target/tflite', help='where keras_mobilenetv2.py and thirdparty.py wrote the files')
    ap.add_argument('--images', type=int, default=8)
    ap.add_argument('--only', default='', help='comma-separated model names')
    ap.add_argument('--json')
    if len(sys.argv) == 6 and sys.argv[1] == '--worker':
        return worker(*sys.argv[2:])
    args = ap.parse_args()
    from thirdparty import MODELS
    models = [('mobilenetv2_int8 (tutorial)', 'mobilenetv2_int8.tflite'), ('mobilenetv2_float (tutorial)', 'mobilenetv2_float.tflite'),
              ('ops_int8 (layout rewrites)', 'ops_int8.tflite'), ('ops_float (layout rewrites)', 'ops_float.tflite')]
    models += [(f'{m["package"]} {m["file"]}', os.path.join('thirdparty', os.path.basename(m['file']))) for m in MODELS]
    only = [s for s in args.only.split(',') if s]
    results = []
    for name, rel in models:
        if only and not any(o in name for o in only):
            continue
        path = os.path.join(args.models, rel)
        if not os.path.exists(path):
            print(f'{name}: {path} is missing (run keras_mobilenetv2.py / thirdparty.py first)')
            results.append({'model': name, 'ok': False, 'error': 'missing'})
            continue
        try:
            r = compare_model(args.cairn, name, path, args.images)
        except Exception as e:  # one failing model must not hide the others' results
            r = {'model': name, 'file': path, 'ok': False, 'error': str(e)[:400]}
        results.append(r)
        if 'error' in r:
            print(f'FAIL {name}: {r["error"]}')
            continue
        unit = 'steps' if r['quantized'] else 'rel'
        print(f'{"ok  " if r["ok"] else "FAIL"} {name}: interpreter spread {r["interpreter_spread"]:.3g} {unit}; Cairn to '
              + ', '.join(f'{k} {v:.3g}' for k, v in r['cairn_to'].items())
              + f'; top-1 {r["top1_same"]}; limit {r["limit"]}'
              + (f'; interpreter failed with {", ".join(r["kernel_sets_that_failed"])}' if r['kernel_sets_that_failed'] else ''))
    passed = sum(r['ok'] for r in results)
    print(f'{passed} passed, {len(results) - passed} failed')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    sys.exit(0 if passed == len(results) else 1)


if __name__ == '__main__':
    main()
