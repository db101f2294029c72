#!/usr/bin/env python3
"""Activation-driven channel skipping on EfficientNet-Lite0, simulated in numpy (issue 17).

Question: can a per-input decision to skip channels of the MBConv project convolutions (the
1x1 convs after the depthwise + ReLU6) cut enough work while keeping the answers? Exact
skipping drops channels whose ReLU6 output is zero everywhere for this input; "nearly exact"
also drops the channels whose contribution energy ||a_c||^2 * ||W[:, c]||^2 adds up to at most
`eps` of the layer's total (per input). The model is folded (BatchNorm into conv) and run
here; the reference is the same run without skipping (checked against onnxruntime).

  python3 tools/sim_activation_skipping.py MODEL.onnx INPUTS_DIR [EPS ...]

Prints, per eps: project-conv MACs skipped (share of the model's MACs), top-1 agreement on all
inputs and on the decisive ones (softmax margin >= 0.1, as `cairn eval`), mean KL.
Measured 2026-12-07 on target/models/efficientnet_lite0.onnx and target/real-inputs (320): see
docs/adr/0018-run-time-widths.md, "Activation-driven skipping".
"""
import glob
import sys

import numpy as np
import onnx
from onnx import numpy_helper as nh


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def conv(x, w, b, stride, pads, group):
    n, _, h, wd = x.shape
    o, i, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho, wo = (h + pads[0] + pads[2] - kh) // stride + 1, (wd + pads[1] + pads[3] - kw) // stride + 1
    taps = [xp[:, :, a:a + stride * ho:stride, c:c + stride * wo:stride] for a in range(kh) for c in range(kw)]
    if group == 1:
        cols = np.stack(taps, axis=2).reshape(n, i, kh * kw, ho * wo)
        y = np.einsum('oct,nctp->nop', w.reshape(o, i, kh * kw), cols, optimize=True).reshape(n, o, ho, wo)
    else:  # depthwise
        y = sum(w[None, :, 0, t // kw, t % kw, None, None] * taps[t] for t in range(kh * kw))
    return y + b[None, :, None, None]


class Model:
    def __init__(self, path):
        m = onnx.load(path)
        self.g = m.graph
        self.init = {t.name: nh.to_array(t).astype(np.float32) for t in self.g.initializer}
        self.prod = {o: n for n in self.g.node for o in n.output}
        self.convs = {}
        for n in self.g.node:
            if n.op_type == 'Conv':
                w = self.init[n.input[1]]
                b = self.init[n.input[2]] if len(n.input) > 2 else np.zeros(w.shape[0], np.float32)
                self.convs[n.output[0]] = [w, b]
        for n in self.g.node:
            if n.op_type == 'BatchNormalization':
                s, sh, mu, var = (self.init[i] for i in n.input[1:5])
                c = self.convs[n.input[0]]
                k = s / np.sqrt(var + attr(n, 'epsilon', 1e-5))
                c[0], c[1] = c[0] * k[:, None, None, None], (c[1] - mu) * k + sh

    def is_project(self, n):
        """A 1x1 conv whose input is ReLU6(BN(depthwise conv))."""
        w = self.convs[n.output[0]][0]
        clip = self.prod.get(n.input[0])
        if attr(n, 'group', 1) != 1 or w.shape[2] != 1 or clip is None or clip.op_type != 'Clip':
            return False
        bn = self.prod.get(clip.input[0])
        dw = bn is not None and self.prod.get(bn.input[0])
        return bool(dw) and dw.op_type == 'Conv' and attr(dw, 'group', 1) > 1

    def forward(self, x, skip=None, stats=None):
        env = {self.g.input[0].name: x}
        for n in self.g.node:
            t, ins = n.op_type, n.input
            if t == 'Conv':
                w, b = self.convs[n.output[0]]
                xin = env[ins[0]]
                if skip is not None and self.is_project(n):
                    xin, kept = skip(xin, w)
                    stats.append((w.shape[0] * w.shape[1] * xin.shape[2] * xin.shape[3], kept))
                env[n.output[0]] = conv(xin, w, b, attr(n, 'strides', [1, 1])[0], attr(n, 'pads', [0, 0, 0, 0]), attr(n, 'group', 1))
            elif t == 'BatchNormalization':
                env[n.output[0]] = env[ins[0]]  # folded into the conv
            elif t == 'Clip':
                lo = self.init[ins[1]] if len(ins) > 1 and ins[1] else attr(n, 'min', -np.inf)
                hi = self.init[ins[2]] if len(ins) > 2 and ins[2] else attr(n, 'max', np.inf)
                env[n.output[0]] = np.clip(env[ins[0]], lo, hi)
            elif t == 'Add':
                env[n.output[0]] = env[ins[0]] + env[ins[1]]
            elif t == 'GlobalAveragePool':
                env[n.output[0]] = env[ins[0]].mean(axis=(2, 3), keepdims=True)
            elif t == 'Flatten':
                env[n.output[0]] = env[ins[0]].reshape(env[ins[0]].shape[0], -1)
            elif t == 'Gemm':
                w = self.init[ins[1]]
                env[n.output[0]] = env[ins[0]] @ (w.T if attr(n, 'transB', 0) else w) + self.init[ins[2]]
            else:
                raise SystemExit(f'unsupported op {t} (this prototype runs EfficientNet-Lite0-like models)')
        return env[self.g.output[0].name]


def skipper(eps):
    def skip(a, w):
        n, c = a.shape[:2]
        energy = (a.reshape(n, c, -1) ** 2).sum(2) * (w[:, :, 0, 0] ** 2).sum(0)[None, :]
        order = np.argsort(energy, axis=1)
        cum = np.cumsum(np.take_along_axis(energy, order, 1), 1)
        drop = np.zeros(energy.shape, bool)
        np.put_along_axis(drop, order, cum <= eps * (energy.sum(1, keepdims=True) + 1e-30), 1)
        drop |= energy == 0  # exact: the channel is zero everywhere
        return a * (~drop)[:, :, None, None], (~drop).mean()
    return skip


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    model = Model(sys.argv[1])
    x = np.concatenate([np.load(f) for f in sorted(glob.glob(f'{sys.argv[2]}/*.npy'))])
    epsilons = [float(e) for e in sys.argv[3:]] or [0.0, 0.001, 0.003, 0.01]
    full = np.concatenate([model.forward(x[i:i + 32]) for i in range(0, len(x), 32)])
    p = softmax(full)
    top2 = np.sort(p, 1)[:, -2:]
    decisive = top2[:, 1] - top2[:, 0] >= 0.1
    for eps in epsilons:
        outs, stats = [], []
        for i in range(0, len(x), 32):
            st = []
            outs.append(model.forward(x[i:i + 32], skipper(eps), st))
            stats.append(st)
        out = np.concatenate(outs)
        macs = np.array([s[0] for s in stats[0]])
        kept = np.array([[s[j][1] for j in range(len(macs))] for s in stats]).mean(0)
        agree = out.argmax(1) == full.argmax(1)
        kl = (p * (np.log(p + 1e-12) - np.log(softmax(out) + 1e-12))).sum(1).mean()
        print(f'eps {eps:g}: project-conv MACs {macs.sum() / 1e6:.1f} M, skipped {(macs * (1 - kept)).sum() / 1e6:.1f} M; '
              f'top-1 agreement {100 * agree.mean():.1f}% of {len(x)}, decisive {100 * agree[decisive].mean():.1f}% of {decisive.sum()}; '
              f'mean KL {kl:.4f}', flush=True)


if __name__ == '__main__':
    main()
