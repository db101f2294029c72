"""Operator check beyond the node tests: small ONNX graphs of one heavy operator (LSTM, GRU,
RNN, ConvTranspose, ...), built with onnx.helper over attribute combinations the node tests
do not reach and shapes larger than theirs, run by onnxruntime and by Cairn's CLI on the
same random inputs. Error per output: max |cairn - ort| / max(1, max |ort|). Exits non-zero
if any case exceeds 1e-4 or fails in Cairn while onnxruntime runs it.

Usage: python3 tools/compare_ops_with_ort.py [--cairn target/release/cairn] [--only SUBSTR]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

TOLERANCE = 1e-4
FLOAT = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16}


def graph(op, inputs, outputs, attrs, opset, constants=()):
    """One-node model; `inputs` are (name, array or None for omitted); arrays become graph
    inputs, or initializers for the names in `constants`."""
    names = [n if v is not None else "" for n, v in inputs]
    node = helper.make_node(op, names, [o for o, _ in outputs], **attrs)
    given = [(n, v) for n, v in inputs if v is not None and n not in constants]
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in given]
    inits = [numpy_helper.from_array(v, n) for n, v in inputs if v is not None and n in constants]
    outs = [helper.make_tensor_value_info(o, dt, None) for o, dt in outputs]
    model = helper.make_model(helper.make_graph([node], op.lower(), ins, outs, initializer=inits), opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model, dict(given)


def recurrent_cases(rng):
    cases = []
    def rnd(*s, dt=np.float32, scale=0.5):
        return (rng.standard_normal(s) * scale).astype(dt)
    for op, gates, n_out in (("LSTM", 4, 3), ("GRU", 3, 2), ("RNN", 1, 2)):
        for direction in ("forward", "reverse", "bidirectional"):
            for layout in (0, 1):
                for batch in (1, 3):
                    seq, inp, hid = 7, 19, 24
                    dirs = 2 if direction == "bidirectional" else 1
                    x = rnd(batch, seq, inp) if layout else rnd(seq, batch, inp)
                    state = (batch, dirs, hid) if layout else (dirs, batch, hid)
                    lens = rng.integers(1, seq + 1, batch).astype(np.int32)
                    ins = [("X", x), ("W", rnd(dirs, gates * hid, inp)), ("R", rnd(dirs, gates * hid, hid)),
                           ("B", rnd(dirs, 2 * gates * hid)), ("sequence_lens", lens), ("initial_h", rnd(*state))]
                    attrs = {"hidden_size": hid, "direction": direction, "layout": layout}
                    if op == "LSTM":
                        ins += [("initial_c", rnd(*state)), ("P", rnd(dirs, 3 * hid))]
                    if op == "GRU":
                        attrs["linear_before_reset"] = batch % 2
                    cases.append((f"{op}_{direction}_layout{layout}_batch{batch}", op, ins, attrs, n_out))
        # Activations with alpha/beta, and clip.
        acts = {"LSTM": ["HardSigmoid", "ScaledTanh", "Softsign"], "GRU": ["LeakyRelu", "Affine"], "RNN": ["ThresholdedRelu"]}[op]
        alphas = {"LSTM": [0.3, 0.9], "GRU": [0.05, 0.8], "RNN": [0.2]}[op]
        betas = {"LSTM": [0.4, 1.2], "GRU": [0.1], "RNN": []}[op]
        seq, batch, inp, hid = 5, 2, 8, 16
        ins = [("X", rnd(seq, batch, inp)), ("W", rnd(1, gates * hid, inp)), ("R", rnd(1, gates * hid, hid))]
        attrs = {"hidden_size": hid, "activations": acts, "activation_alpha": alphas, "clip": 1.5}
        if betas:
            attrs["activation_beta"] = betas
        cases.append((f"{op}_activations_clip", op, ins, attrs, n_out))
    # The real recognizer's shape class: bidirectional, batch 1, hidden 128, a long sequence; and f16.
    hid, inp, seq = 128, 96, 40
    ins = [("X", rnd(seq, 1, inp)), ("W", rnd(2, 4 * hid, inp, scale=0.1)), ("R", rnd(2, 4 * hid, hid, scale=0.1)), ("B", rnd(2, 8 * hid))]
    cases.append(("LSTM_bidirectional_long", "LSTM", ins, {"hidden_size": hid, "direction": "bidirectional"}, 3))
    cases.append(("LSTM_input_forget", "LSTM", ins[:3], {"hidden_size": hid, "direction": "bidirectional", "input_forget": 1}, 3))
    ins16 = [(n, v.astype(np.float16)) for n, v in ins]
    cases.append(("LSTM_f16", "LSTM", ins16, {"hidden_size": hid, "direction": "bidirectional"}, 3))
    return cases


def conv_transpose_cases(rng):
    cases = []
    def rnd(*s):
        return rng.standard_normal(s).astype(np.float32)
    combos = [
        # (spatial, kernel, attrs, c, m_per_group, group)
        ((33, 31), (2, 2), {"strides": [2, 2]}, 48, 24, 1),
        ((17, 20), (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, 16, 8, 2),
        ((9, 11), (4, 3), {"strides": [3, 2], "dilations": [2, 1], "pads": [1, 2, 0, 1]}, 6, 5, 3),
        ((12, 10), (3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, 4, 4, 1),
        ((12, 10), (3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, 4, 4, 1),
        ((12, 10), (3, 3), {"strides": [2, 2], "output_shape": [25, 21]}, 4, 3, 1),
        ((40,), (5,), {"strides": [4], "pads": [2, 1]}, 8, 6, 2),
        ((6, 7, 5), (3, 2, 3), {"strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 1]}, 4, 3, 2),
        ((16, 16), (4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, 32, 16, 16),
    ]
    for k, (sp, ker, attrs, c, mg, group) in enumerate(combos):
        ins = [("X", rnd(2, c, *sp)), ("W", rnd(c, mg, *ker) * 0.2), ("B", rnd(mg * group))]
        attrs = dict(attrs, group=group, kernel_shape=list(ker))
        cases.append((f"ConvTranspose_{k}_{len(sp)}d", "ConvTranspose", ins, attrs, 1))
    return cases


def max_roi_pool_cases(rng):
    """Random regions over random feature maps: corners that fall outside the image, regions
    smaller than the bins (empty bins), reversed corners, fractional scales."""
    cases = []
    for k, (n, c, h, w, r, pooled, scale) in enumerate([
        (2, 8, 24, 31, 12, [7, 7], 0.25),
        (1, 3, 9, 9, 20, [3, 2], 1.0),
        (3, 16, 14, 10, 9, [5, 4], 0.5),
        (1, 2, 5, 6, 10, [6, 6], 1.0),
    ]):
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        b = rng.integers(0, n, (r, 1)).astype(np.float32)
        xy = rng.uniform(-3, max(h, w) / scale + 3, (r, 4)).astype(np.float32)
        ins = [("X", x), ("rois", np.concatenate([b, xy], axis=1))]
        cases.append((f"MaxRoiPool_{k}", "MaxRoiPool", ins, {"pooled_shape": pooled, "spatial_scale": scale}, 1))
    return cases


def run_cairn(cairn, path, feeds, n_out, tmp):
    outs = [os.path.join(tmp, f"out{i}.npy") for i in range(n_out)]
    args = [cairn, "run", path] + [x for o in outs for x in ("--output", o)]
    for k, (name, value) in enumerate(feeds.items()):
        p = os.path.join(tmp, f"in{k}.npy")
        np.save(p, value)
        args += ["--input", f"{name}={p}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1])
    return [np.load(o) for o in outs]


def reference(path, op, ins, outs, attrs, constants, feeds, tmp):
    """onnxruntime's outputs. It rejects batch-major recurrent nodes (layout 1, since 1.2x):
    those run as the same node in layout 0 on transposed inputs, outputs transposed back."""
    if not attrs.get("layout"):
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    to_seq = {"X": (1, 0, 2), "initial_h": (1, 0, 2), "initial_c": (1, 0, 2)}
    ins0 = [(n, v if v is None or n not in to_seq else np.ascontiguousarray(v.transpose(to_seq[n]))) for n, v in ins]
    model0, feeds0 = graph(op, ins0, outs, dict(attrs, layout=0), 14, constants)
    path0 = os.path.join(tmp, "layout0.onnx")
    onnx.save(model0, path0)
    got = ort.InferenceSession(path0, providers=["CPUExecutionProvider"]).run(None, feeds0)
    # Y: [seq, dirs, batch, hidden] -> [batch, seq, dirs, hidden]; Y_h, Y_c: [dirs, batch, hidden] -> [batch, dirs, hidden].
    return [np.ascontiguousarray(y.transpose((2, 0, 1, 3) if y.ndim == 4 else (1, 0, 2))) for y in got]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "cairn"))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    rng = np.random.default_rng(13)
    bad = 0
    cases = [case + ((),) for case in recurrent_cases(rng) + conv_transpose_cases(rng) + max_roi_pool_cases(rng)]
    # Constant weights take another path in Cairn (packed once at load): every f32 recurrent
    # case again with W, R, B and initial_h as initializers.
    cases += [(name + "_const", op, ins, attrs, n_out, ("W", "R", "B", "initial_h")) for name, op, ins, attrs, n_out, _ in cases
              if op in ("LSTM", "GRU", "RNN") and ins[0][1].dtype == np.float32]
    for name, op, ins, attrs, n_out, constants in cases:
        if a.only and a.only not in name:
            continue
        dt = next(v for _, v in ins if v is not None).dtype
        outs = [(f"y{i}", FLOAT[dt.type]) for i in range(n_out)]
        model, feeds = graph(op, ins, outs, attrs, 14 if "layout" in attrs else 13, constants)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            onnx.save(model, path)
            want = reference(path, op, ins, outs, attrs, constants, feeds, tmp)
            try:
                got = run_cairn(a.cairn, path, feeds, n_out, tmp)
            except RuntimeError as e:
                print(f"FAIL  {name}: {e}")
                bad += 1
                continue
        tol = 5e-3 if dt == np.float16 else TOLERANCE
        errs = [float(np.abs(g.astype(np.float64) - w).max() / max(1.0, np.abs(w).max())) if w.size else 0.0 for g, w in zip(got, want)]
        shapes_ok = all(g.shape == w.shape and g.dtype == w.dtype for g, w in zip(got, want))
        ok = shapes_ok and max(errs) <= tol
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'}  {name}: max err {max(errs):.2e}{'' if shapes_ok else ' (shape/dtype differ)'}")
    print(f"{len([c for c in cases if a.only in c[0]]) - bad} passed, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
