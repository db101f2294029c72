"""Writes the tiny models the CLI tests use (committed; rerun to regenerate)."""
import onnx
from onnx import TensorProto, helper
import numpy as np

def save(graph, name, opset=17):
    model = helper.make_model(graph, producer_name="cairn-tests", opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, name)

# y = relu(x) with a symbolic batch dim.
save(helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")],
    "relu",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
), "relu.onnx")

# An op Cairn does not implement.
save(helper.make_graph(
    [helper.make_node("NonZero", ["x"], ["y"], name="find_nonzero")],
    "nonzero",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
    [helper.make_tensor_value_info("y", TensorProto.INT64, [1, None])],
), "unsupported.onnx", opset=13)

np.save("x.npy", np.array([[-1, 2, -3, 4]], dtype=np.float32))
np.save("x_f64.npy", np.array([[-1, 2, -3, 4]], dtype=np.float64))

# The Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain exporters emit for flatten,
# over a symbolic batch: it must fold at plan time, leaving only the Reshape to run.
save(helper.make_graph(
    [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"], name="unsqueeze"),
        helper.make_node("Concat", ["b1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ],
    "shape_chain",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 12])],
    [
        helper.make_tensor("zero", TensorProto.INT64, [], [0]),
        helper.make_tensor("axes0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
    ],
), "shape_chain.onnx", opset=13)

# A small image classifier in two versions that differ only in the last layer's
# weights (bundle packing, levels and update tests).
def classifier(seed_fc):
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (256, 16, 1, 1)).astype(np.float32)
    wf = np.random.default_rng(seed_fc).normal(0, 0.1, (10, 256)).astype(np.float32)
    return helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
            helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
            helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
            helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "wf"], ["logits"], name="fc", transB=1),
        ],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [onnx.numpy_helper.from_array(w, n) for w, n in [(w1, "w1"), (w2, "w2"), (wf, "wf")]],
    )

save(classifier(1), "classifier_v1.onnx")
save(classifier(2), "classifier_v2.onnx")
with open("classifier_labels.txt", "w") as f:
    f.write("\n".join(f"class {i}" for i in range(10)) + "\n")

# Two inverted-residual blocks (expand 1x1 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> project
# 1x1), the first with a residual Add, then a classifier: pruning and sensitivity tests.
def blocks():
    rng = np.random.default_rng(3)
    def w(*shape, scale=0.3):
        # Output channels of uneven strength, so filter norms rank them.
        return (rng.normal(0, scale, shape) * rng.uniform(0.2, 1.5, (shape[0],) + (1,) * (len(shape) - 1))).astype(np.float32)
    def b(n):
        return rng.normal(0, 0.1, (n,)).astype(np.float32)
    inits = {"ws": w(8, 3, 3, 3), "bs": b(8), "we1": w(32, 8, 1, 1), "be1": b(32), "wd1": w(32, 1, 3, 3), "bd1": b(32),
             "wp1": w(8, 32, 1, 1, scale=0.15), "bp1": b(8), "we2": w(48, 8, 1, 1), "be2": b(48), "wd2": w(48, 1, 3, 3), "bd2": b(48),
             "wp2": w(16, 48, 1, 1, scale=0.15), "bp2": b(16), "wf": w(10, 16), "bf": b(10),
             "zero": np.array(0, np.float32), "six": np.array(6, np.float32)}
    def conv(x, wn, bn, y, **kw):
        return helper.make_node("Conv", [x, wn, bn], [y], name=y, **kw)
    def relu6(x, y):
        return helper.make_node("Clip", [x, "zero", "six"], [y], name=y)
    nodes = [
        conv("x", "ws", "bs", "s", pads=[1, 1, 1, 1]), relu6("s", "s6"),
        conv("s6", "we1", "be1", "e1"), relu6("e1", "e1r"),
        conv("e1r", "wd1", "bd1", "d1", group=32, pads=[1, 1, 1, 1]), relu6("d1", "d1r"),
        conv("d1r", "wp1", "bp1", "p1"),
        helper.make_node("Add", ["s6", "p1"], ["r1"], name="residual1"),
        conv("r1", "we2", "be2", "e2"), relu6("e2", "e2r"),
        conv("e2r", "wd2", "bd2", "d2", group=48, pads=[1, 1, 1, 1], strides=[2, 2]), relu6("d2", "d2r"),
        conv("d2r", "wp2", "bp2", "p2"),
        helper.make_node("GlobalAveragePool", ["p2"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    return helper.make_graph(nodes, "blocks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])

save(blocks(), "blocks.onnx", opset=13)

# Operators no lane implements, in three domains: `inspect` must list them all with counts.
def save_with(graph, name, opsets):
    model = helper.make_model(graph, producer_name="cairn-tests", opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    onnx.save(model, name)

save_with(helper.make_graph(
    [helper.make_node("Relu", ["x"], ["r"], name="relu"),
     helper.make_node("Frobnicate", ["r"], ["f1"], name="frob1", domain="com.example"),
     helper.make_node("Frobnicate", ["f1"], ["f2"], name="frob2", domain="com.example"),
     helper.make_node("Twiddle", ["f2"], ["t"], name="twiddle", domain="com.example"),
     helper.make_node("NoSuchFusion", ["t"], ["y"], name="fusion", domain="com.microsoft")],
    "missing",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
), "missing_ops.onnx", [("", 17), ("com.example", 3), ("com.microsoft", 1)])

# BERT-shaped inputs for `run --random`: token ids index a 30-row table, token type ids a
# 2-row table, and the attention mask multiplies; out-of-range ids would fail the Gathers.
rng = np.random.default_rng(5)
save(helper.make_graph(
    [helper.make_node("Gather", ["word", "input_ids"], ["w"], name="word_lookup"),
     helper.make_node("Gather", ["types", "token_type_ids"], ["t"], name="type_lookup"),
     helper.make_node("Add", ["w", "t"], ["e"], name="sum"),
     helper.make_node("Cast", ["attention_mask"], ["m"], name="mask_cast", to=TensorProto.FLOAT),
     helper.make_node("Unsqueeze", ["m", "axes"], ["m3"], name="mask_axes"),
     helper.make_node("Mul", ["e", "m3"], ["y"], name="masked")],
    "bert_like",
    [helper.make_tensor_value_info(n, TensorProto.INT64, [1, "sequence"]) for n in ("input_ids", "token_type_ids", "attention_mask")],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "sequence", 4])],
    [onnx.numpy_helper.from_array(rng.standard_normal((30, 4)).astype(np.float32), "word"),
     onnx.numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float32), "types"),
     onnx.numpy_helper.from_array(np.array([2], np.int64), "axes")],
), "bert_like.onnx")

# A tiny text encoder (tests/text.rs): an embedding table over the byte-level BPE fixture of
# cairn-text (vocabulary < 800), token states masked by the attention mask, like a real
# encoder's last_hidden_state.
save(helper.make_graph(
    [
        helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "ax"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["last_hidden_state"]),
    ],
    "tiny_text_encoder",
    [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
     helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
    [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 8])],
    [onnx.numpy_helper.from_array(np.random.default_rng(15).standard_normal((800, 8)).astype(np.float32), "emb"),
     onnx.numpy_helper.from_array(np.array([2], np.int64), "ax")],
), "tiny_text_encoder.onnx")

# A text-processing graph on strings (Cairn computes on numbers): the load error's hint says
# to keep string processing outside the model.
save(helper.make_graph(
    [helper.make_node("StringNormalizer", ["text"], ["normalized"], case_change_action="LOWER")],
    "strings",
    [helper.make_tensor_value_info("text", TensorProto.STRING, [2])],
    [helper.make_tensor_value_info("normalized", TensorProto.STRING, [2])],
), "string_io.onnx")

# A tiny text MLP for `cairn optimize --quantize int8-dynamic --keep-sensitive` (tests/text.rs):
# an embedding table over the BPE fixture's vocabulary (large enough to be quantized by row),
# then MatMul -> Relu -> a per-channel gain with one channel 40x the others -> MatMul. One
# run-time scale per tensor resolves the second MatMul's input worst, so it ranks most sensitive.
rng = np.random.default_rng(21)
gain = np.ones(32, np.float32)
gain[5] = 40.0
save(helper.make_graph(
    [
        helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
        helper.make_node("MatMul", ["h", "w_in"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Mul", ["r", "gain"], ["b"]),
        helper.make_node("MatMul", ["b", "w_out"], ["last_hidden_state"]),
    ],
    "tiny_text_mlp",
    [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
    [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 16])],
    [onnx.numpy_helper.from_array(rng.standard_normal((800, 96)).astype(np.float32), "emb"),
     onnx.numpy_helper.from_array((rng.standard_normal((96, 32)) / 10).astype(np.float32), "w_in"),
     onnx.numpy_helper.from_array(gain, "gain"),
     onnx.numpy_helper.from_array((rng.standard_normal((32, 16)) / 6).astype(np.float32), "w_out")],
), "tiny_text_mlp.onnx")

# Tiny text classifiers over the BPE fixture's vocabulary (tests/text.rs, web/test/text.test.mjs):
# `tiny_text_classifier` pools the token embeddings under the attention mask (padding does not
# change a text's answer) and maps them to 3 logits; `tiny_token_classifier` gives every token 3
# logits. Labels: text_labels.txt and token_labels.txt.
rng = np.random.default_rng(33)
save(helper.make_graph(
    [
        helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "ax2"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "ax1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "ax1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["count1"]),
        helper.make_node("Div", ["total", "count1"], ["pooled"]),
        helper.make_node("Gemm", ["pooled", "w", "b"], ["logits"]),
    ],
    "tiny_text_classifier",
    [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
     helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
    [onnx.numpy_helper.from_array(rng.standard_normal((800, 8)).astype(np.float32), "emb"),
     onnx.numpy_helper.from_array(np.array([1], np.int64), "ax1"),
     onnx.numpy_helper.from_array(np.array([2], np.int64), "ax2"),
     onnx.numpy_helper.from_array(np.array([1.0], np.float32), "one"),
     onnx.numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w"),
     onnx.numpy_helper.from_array(np.array([0.1, -0.2, 0.05], np.float32), "b")],
), "tiny_text_classifier.onnx")
save(helper.make_graph(
    [
        helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
        helper.make_node("MatMul", ["h", "w"], ["logits"]),
    ],
    "tiny_token_classifier",
    [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", 3])],
    [onnx.numpy_helper.from_array(rng.standard_normal((800, 8)).astype(np.float32), "emb"),
     onnx.numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w")],
), "tiny_token_classifier.onnx")
with open("text_labels.txt", "w") as f:
    f.write("negative\nneutral\npositive\n")
with open("token_labels.txt", "w") as f:
    f.write("O\nB-PLACE\nI-PLACE\n")
