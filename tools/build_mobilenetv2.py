"""Builds MobileNetV2-1.0 (224x224, 1000 classes) as ONNX with random weights, no torch.

Conv + BatchNormalization + Clip(0, 6) as PyTorch exports it (opset 13, Clip bounds as
inputs); inverted residual blocks (t, c, n, s) from Sandler et al. 2018, table 2.
Usage: python3 tools/build_mobilenetv2.py OUT.onnx [--seed N]
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def init(self, prefix, array):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv_bn(self, x, cin, cout, k, stride, groups=1, relu6=True):
        fan_in = cin // groups * k * k
        w = self.init("w", self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // groups, k, k)))
        y = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, w], [y], name=y, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        scale = self.init("bn_scale", self.rng.uniform(0.5, 1.5, cout))
        bias = self.init("bn_bias", self.rng.normal(0, 0.1, cout))
        mean = self.init("bn_mean", self.rng.normal(0, 0.1, cout))
        var = self.init("bn_var", self.rng.uniform(0.5, 1.5, cout))
        z = self.name("bn")
        self.nodes.append(helper.make_node("BatchNormalization", [y, scale, bias, mean, var], [z], name=z, epsilon=1e-5))
        if not relu6:
            return z
        out = self.name("relu6")
        self.nodes.append(helper.make_node("Clip", [z, "clip_min", "clip_max"], [out], name=out))
        return out


def build(seed):
    b = Builder(seed)
    b.inits += [numpy_helper.from_array(np.array(0, np.float32), "clip_min"), numpy_helper.from_array(np.array(6, np.float32), "clip_max")]
    x = b.conv_bn("input", 3, 32, 3, 2)
    cin = 32
    for t, c, n, s in BLOCKS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x if t == 1 else b.conv_bn(x, cin, hidden, 1, 1)
            y = b.conv_bn(y, hidden, hidden, 3, stride, groups=hidden)
            y = b.conv_bn(y, hidden, c, 1, 1, relu6=False)
            if stride == 1 and cin == c:
                out = b.name("add")
                b.nodes.append(helper.make_node("Add", [x, y], [out], name=out))
                y = out
            x, cin = y, c
    x = b.conv_bn(x, cin, 1280, 1, 1)
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    b.nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1))
    w = b.init("fc_w", b.rng.normal(0, 0.01, (1000, 1280)))
    bias = b.init("fc_b", np.zeros(1000))
    b.nodes.append(helper.make_node("Gemm", ["flat", w, bias], ["logits"], name="classifier", transB=1))
    graph = helper.make_graph(
        b.nodes, "mobilenetv2_1.0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
        b.inits,
    )
    model = helper.make_model(graph, producer_name="cairn tools/build_mobilenetv2.py", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = build(args.seed)
    onnx.save(model, args.out)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {args.out}: {len(model.graph.node)} nodes, {params / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
