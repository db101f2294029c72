"""Builds the benchmark's other models as ONNX with random weights, no torch:
ResNet-50 v1.5, SqueezeNet 1.1 and a 6-layer MiniLM-shaped BERT encoder, written
the way PyTorch's exporter writes them (Conv+BatchNormalization+Relu; MatMul+Add,
LayerNormalization, Erf-GELU, Softmax attention with an additive mask).

Usage: python3 tools/build_bench_models.py OUT_DIR   (writes resnet50.onnx, squeezenet11.onnx, minilm.onnx)
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from build_mobilenetv2 import Builder  # noqa: E402  (shared naming and initializer helpers)


def finish(b, name, inputs, outputs, opset):
    graph = helper.make_graph(b.nodes, name, inputs, outputs, b.inits)
    model = helper.make_model(graph, producer_name="cairn tools/build_bench_models.py", opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def node(b, op, inputs, prefix, **attrs):
    out = b.name(prefix)
    b.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
    return out


def conv_bn_relu(b, x, cin, cout, k, stride, relu=True):
    y = b.conv_bn(x, cin, cout, k, stride, relu6=False)
    return node(b, "Relu", [y], "relu") if relu else y


def resnet50(seed=1):
    b = Builder(seed)
    x = conv_bn_relu(b, "input", 3, 64, 7, 2)
    x = node(b, "MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            y = conv_bn_relu(b, x, cin, width, 1, 1)
            y = conv_bn_relu(b, y, width, width, 3, s)
            y = conv_bn_relu(b, y, width, width * 4, 1, 1, relu=False)
            short = conv_bn_relu(b, x, cin, width * 4, 1, s, relu=False) if i == 0 else x
            x = node(b, "Relu", [node(b, "Add", [y, short], "add")], "relu")
            cin = width * 4
    x = node(b, "GlobalAveragePool", [x], "pool")
    x = node(b, "Flatten", [x], "flatten", axis=1)
    w = b.init("fc_w", b.rng.normal(0, 0.01, (1000, 2048)))
    bias = b.init("fc_b", np.zeros(1000))
    b.nodes.append(helper.make_node("Gemm", [x, w, bias], ["logits"], name="fc", transB=1))
    return finish(b, "resnet50_v1.5", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])], 13)


def squeezenet11(seed=2):
    b = Builder(seed)

    def conv_relu(x, cin, cout, k, stride=1, pad=0):
        w = b.init("w", b.rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)))
        bias = b.init("b", b.rng.normal(0, 0.01, cout))
        y = node(b, "Conv", [x, w, bias], "conv", kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        return node(b, "Relu", [y], "relu")

    def fire(x, cin, squeeze, expand):
        s = conv_relu(x, cin, squeeze, 1)
        return node(b, "Concat", [conv_relu(s, squeeze, expand, 1), conv_relu(s, squeeze, expand, 3, pad=1)], "concat", axis=1)

    pool = lambda x: node(b, "MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)  # noqa: E731
    x = pool(conv_relu("input", 3, 64, 3, 2))
    x = pool(fire(fire(x, 64, 16, 64), 128, 16, 64))
    x = pool(fire(fire(x, 128, 32, 128), 256, 32, 128))
    x = fire(fire(fire(fire(x, 256, 48, 192), 384, 48, 192), 384, 64, 256), 512, 64, 256)
    x = conv_relu(x, 512, 1000, 1)
    x = node(b, "GlobalAveragePool", [x], "pool")
    b.nodes.append(helper.make_node("Flatten", [x], ["logits"], name="flatten", axis=1))
    return finish(b, "squeezenet1.1", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])], 13)


def minilm(seed=3, layers=6, hidden=384, heads=12, ffn=1536, vocab=8192, positions=512):
    """Vocabulary 8192 (not 30522) keeps the file small; the compute per token is the same."""
    b = Builder(seed)
    const = lambda v, dtype=np.float32: b.init("c", np.array(v)) if dtype == np.float32 else add_int(np.array(v, dtype))  # noqa: E731

    def add_int(arr):
        name = b.name("ci")
        b.inits.append(numpy_helper.from_array(arr, name))
        return name

    def dense(x, cin, cout):
        w = b.init("w", b.rng.normal(0, 0.02, (cin, cout)))
        return node(b, "Add", [node(b, "MatMul", [x, w], "matmul"), b.init("bias", np.zeros(cout))], "add")

    def layer_norm(x):
        return node(b, "LayerNormalization", [x, b.init("ln_g", np.ones(hidden)), b.init("ln_b", np.zeros(hidden))], "ln", axis=-1, epsilon=1e-12)

    word = node(b, "Gather", [b.init("word_emb", b.rng.normal(0, 0.02, (vocab, hidden))), "input_ids"], "gather")
    seq_len = node(b, "Gather", [node(b, "Shape", ["input_ids"], "shape"), add_int(np.array(1, np.int64))], "seqlen")
    pos_ids = node(b, "Range", [add_int(np.array(0, np.int64)), seq_len, add_int(np.array(1, np.int64))], "range")
    pos = node(b, "Gather", [b.init("pos_emb", b.rng.normal(0, 0.02, (positions, hidden))), pos_ids], "gather")
    tok = node(b, "Gather", [b.init("type_emb", b.rng.normal(0, 0.02, (2, hidden))), node(b, "Mul", ["input_ids", add_int(np.array(0, np.int64))], "zeros")], "gather")
    x = layer_norm(node(b, "Add", [node(b, "Add", [word, pos], "add"), tok], "add"))
    # Additive mask: (1 - mask) * -10000, shaped [batch, 1, 1, seq].
    mask = node(b, "Cast", [node(b, "Unsqueeze", ["attention_mask", add_int(np.array([1, 2], np.int64))], "unsq")], "cast", to=TensorProto.FLOAT)
    mask = node(b, "Mul", [node(b, "Sub", [const(1.0), mask], "sub"), const(-10000.0)], "mask")
    d = hidden // heads
    split_shape = add_int(np.array([0, 0, heads, d], np.int64))
    merge_shape = add_int(np.array([0, 0, hidden], np.int64))
    for _ in range(layers):
        def heads_of(t, perm):
            return node(b, "Transpose", [node(b, "Reshape", [t, split_shape], "reshape")], "transpose", perm=perm)
        q = heads_of(dense(x, hidden, hidden), [0, 2, 1, 3])
        k = heads_of(dense(x, hidden, hidden), [0, 2, 3, 1])
        v = heads_of(dense(x, hidden, hidden), [0, 2, 1, 3])
        scores = node(b, "Add", [node(b, "Div", [node(b, "MatMul", [q, k], "matmul"), const(np.sqrt(d))], "div"), mask], "add")
        ctx = node(b, "MatMul", [node(b, "Softmax", [scores], "softmax", axis=-1), v], "matmul")
        ctx = node(b, "Reshape", [node(b, "Transpose", [ctx], "transpose", perm=[0, 2, 1, 3]), merge_shape], "reshape")
        x = layer_norm(node(b, "Add", [dense(ctx, hidden, hidden), x], "add"))
        h = dense(x, hidden, ffn)
        erf = node(b, "Erf", [node(b, "Div", [h, const(np.sqrt(2.0))], "div")], "erf")
        h = node(b, "Mul", [node(b, "Mul", [h, node(b, "Add", [erf, const(1.0)], "add")], "mul"), const(0.5)], "gelu")
        x = layer_norm(node(b, "Add", [dense(h, ffn, hidden), x], "add"))
    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")]
    return finish(b, "minilm_l6_h384", ids, [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])], 17)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, build in [("resnet50", resnet50), ("squeezenet11", squeezenet11), ("minilm", minilm)]:
        path = os.path.join(args.out_dir, f"{name}.onnx")
        if os.path.exists(path):
            continue
        model = build()
        onnx.save(model, path)
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"wrote {path}: {len(model.graph.node)} nodes, {params / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
