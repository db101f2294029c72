"""Quantized models, Cairn's int8 kernels vs onnxruntime (CPU, 1 thread), on real photos.

Models: MobileNetV2-1.0 (tools/build_mobilenetv2.py) and the pretrained EfficientNet-Lite0
(tools/convert_efficientnet_lite0.py), each quantized by onnxruntime's own tools
(tools/quantize_with_ort.py: static QDQ, static QOperator, dynamic), calibrated on
tools/make_calibration_inputs.py's photos, evaluated on tools/make_image_inputs.py's
(disjoint) photos. Both engines compute in int8 with their own rounding of the
requantization (a few elements of a layer round a tie the other way: on MobileNetV2 the first
difference is 1 element of 75,264 by one step, in its 7th conv), and such differences propagate
through the following layers, more so with random weights: the check is max |cairn - ort| /
max |ort| of the logits within TOLERANCE and the same top-1 class. Dynamic quantization
(DynamicQuantizeLinear + ConvInteger/MatMulInteger) is integer arithmetic up to the f32
dequantization (Cairn fuses it into the GEMM epilogue, onnxruntime into its own
MatMulIntegerToFloat): within DYNAMIC_TOLERANCE. The MiniLM-shaped encoder
(tools/build_bench_models.py), dynamically quantized, is checked on token ids within
ENCODER_TOLERANCE: each layer re-quantizes its activations at run time, so an f32 difference
in the last bit (erf, softmax, LayerNorm) can move a value across a rounding tie and one int8
step propagates; onnxruntime's own optimized and unoptimized sessions differ by 4e-3 there.

Where onnxruntime's static int8 is not exact: on an x86-64 CPU without VNNI its u8 x s8
kernels (QLinearConv, and the QDQ graphs it fuses into them) multiply with `vpmaddubsw`, whose
i16 sums of two products saturate (255 * 127 * 2 > 32767): onnxruntime's documented caveat,
which its quantizer's `reduce_range` (7-bit weights) exists for. There its fused outputs are
0.1-0.4 of the logits' range away from its own unfused run of the same QDQ file (measured on an
AMD EPYC, Zen 3), while Cairn's kernels are exact everywhere. On such CPUs the reference for
the static files is onnxruntime's unfused run of the QDQ file (`session.disable_quant_qdq`:
dequantize, float conv, quantize, which cannot saturate); the QOperator file carries the same
quantization parameters (one calibration), so it is held to the same reference. The script
says which reference it used.

    python3 tools/compare_int8_with_ort.py [--cairn target/release/cairn] [--inputs N]
"""
import argparse, glob, os, platform, subprocess, sys, tempfile
import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 0.08
DYNAMIC_TOLERANCE = 1e-4
ENCODER_TOLERANCE = 1e-2
MIN_TOP1 = 0.9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cairn', default='target/release/cairn')
    ap.add_argument('--inputs', type=int, default=8)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    models = os.path.join(root, 'target', 'models')
    calib = os.path.join(root, 'target', 'calib-inputs')
    evals = os.path.join(root, 'target', 'real-inputs')
    tools = os.path.join(root, 'tools')
    if not os.path.isdir(calib):
        subprocess.run([sys.executable, os.path.join(tools, 'make_calibration_inputs.py'), calib], check=True)
    if not os.path.isdir(evals):
        subprocess.run([sys.executable, os.path.join(tools, 'make_image_inputs.py'), evals], check=True)
    files = sorted(glob.glob(os.path.join(evals, '*.npy')))
    files = files[:: max(1, len(files) // args.inputs)][: args.inputs]
    opts = one_thread_options()
    failed = []
    print(f"{'model':<34} {'max|d|/max|ref|':>16} {'top-1 same':>11}")
    for base in ('mobilenetv2', 'efficientnet_lite0'):
        src = os.path.join(models, base + '.onnx')
        if not os.path.exists(os.path.join(models, f'{base}_ort_dynamic.onnx')):
            subprocess.run([sys.executable, os.path.join(tools, 'quantize_with_ort.py'), src, calib, os.path.join(models, base + '_ort')], check=True)
        for fmt in ('qdq', 'qop', 'dynamic'):
            path = os.path.join(models, f'{base}_ort_{fmt}.onnx')
            sess, reference = reference_session(models, base, fmt, opts)
            name = sess.get_inputs()[0].name
            errs, same = [], 0
            with tempfile.TemporaryDirectory() as tmp:
                for f in files:
                    x = np.load(f)
                    want = sess.run(None, {name: x})[0]
                    out = os.path.join(tmp, 'y.npy')
                    r = subprocess.run([args.cairn, 'run', path, '--input', f'{name}={f}', '--output', out], capture_output=True, text=True)
                    if r.returncode != 0:
                        print(f'{base}_{fmt}: cairn failed: {r.stderr.strip()}')
                        failed.append(f'{base}_{fmt}')
                        break
                    got = np.load(out)
                    errs.append(float(np.max(np.abs(got.astype(np.float64) - want))) / (float(np.max(np.abs(want))) or 1.0))
                    same += int(np.argmax(got) == np.argmax(want))
            if not errs:
                continue
            err, top1 = max(errs), same / len(errs)
            ok = err <= (DYNAMIC_TOLERANCE if fmt == 'dynamic' else TOLERANCE) and top1 >= MIN_TOP1
            if not ok:
                failed.append(f'{base}_{fmt}')
            against = '' if reference == 'onnxruntime' else f'  (vs {reference}: no VNNI, onnxruntime u8 x s8 saturates)'
            print(f"{base + '_ort_' + fmt:<34} {err:>16.2e} {top1:>10.0%}{'' if ok else '  FAIL'}{against}")
    err = check_minilm_dynamic(models, args.cairn, opts)
    ok = err is not None and err <= ENCODER_TOLERANCE
    if not ok:
        failed.append('minilm_ort_dynamic')
    print(f"{'minilm_ort_dynamic (seq 128)':<34} {err if err is not None else float('nan'):>16.2e} {'-':>10}{'' if ok else '  FAIL'}")
    print(f"{7 - len(failed)} of 7 onnxruntime-quantized models match onnxruntime")
    sys.exit(1 if failed else 0)


def one_thread_options():
    """onnxruntime on one thread, quiet."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def ort_static_int8_is_exact():
    """Whether onnxruntime's u8 x s8 kernels are exact on this CPU: not on x86-64 without VNNI
    (see the module's docstring)."""
    if platform.machine().lower() not in ('x86_64', 'amd64'):
        return True
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return True
    return 'avx512_vnni' in flags or 'avx_vnni' in flags


def reference_session(models, base, fmt, opts):
    """The session whose outputs Cairn's must match for `{base}_ort_{fmt}.onnx`, and its name."""
    path = os.path.join(models, f'{base}_ort_{fmt}.onnx')
    if fmt == 'dynamic' or ort_static_int8_is_exact():
        return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider']), 'onnxruntime'
    unfused = one_thread_options()
    unfused.add_session_config_entry('session.disable_quant_qdq', '1')
    qdq = os.path.join(models, f'{base}_ort_qdq.onnx')
    return ort.InferenceSession(qdq, unfused, providers=['CPUExecutionProvider']), 'onnxruntime, QDQ unfused'


def check_minilm_dynamic(models, cairn, opts):
    """The encoder quantized by onnxruntime's quantize_dynamic (MatMulInteger), on random
    token ids of length 128: max |cairn - ort| / max |ort| of the hidden states, or None."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, path = os.path.join(models, 'minilm.onnx'), os.path.join(models, 'minilm_ort_dynamic.onnx')
    if not os.path.exists(path):
        quantize_dynamic(src, path, weight_type=QuantType.QInt8)
    sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(7)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(3):
            feeds, cmd = {}, [cairn, 'run', path, '--output', os.path.join(tmp, 'y.npy')]
            for i in sess.get_inputs():
                v = np.ones((1, 128), np.int64) if 'mask' in i.name else rng.integers(1, 1000, (1, 128)).astype(np.int64)
                feeds[i.name] = v
                np.save(os.path.join(tmp, f'{i.name}.npy'), v)
                cmd += ['--input', f"{i.name}={os.path.join(tmp, i.name + '.npy')}"]
            want = sess.run(None, feeds)[0]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f'minilm_ort_dynamic: cairn failed: {r.stderr.strip()}')
                return None
            got = np.load(os.path.join(tmp, 'y.npy'))
            worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))) / (float(np.max(np.abs(want))) or 1.0))
    return worst


if __name__ == '__main__':
    main()
