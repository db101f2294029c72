"""Writes the fuzz seeds of the heavy operator families (lane 13c) into
fuzz/seeds/import_model/: one small model per family, weights as initializers so that the
fuzzer's mutations reach attribute values, weight shapes and constant inputs alike.
Deterministic; rerun after changing a family. Usage: python3 tools/make_op_fuzz_seeds.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "fuzz", "seeds", "import_model")


def save(name, nodes, inputs, outputs, inits, opset):
    g = helper.make_graph(nodes, name, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(m, os.path.join(OUT, name + ".onnx"))


def vi(name, shape, dt=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dt, shape)


def main():
    rng = np.random.default_rng(13)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    # Recurrent cells: 3 steps, batch 1, input 2, hidden 2, bidirectional for LSTM.
    save("lstm", [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y", "yh", "yc"], hidden_size=2, direction="bidirectional")],
         [vi("x", [3, 1, 2])], [vi("y", None), vi("yh", None), vi("yc", None)], {"w": f(2, 8, 2), "r": f(2, 8, 2), "b": f(2, 16)}, 14)
    save("gru", [helper.make_node("GRU", ["x", "w", "r", "", "lens"], ["y"], hidden_size=2, linear_before_reset=1)],
         [vi("x", [3, 1, 2])], [vi("y", None)], {"w": f(1, 6, 2), "r": f(1, 6, 2), "lens": np.array([2], np.int32)}, 14)
    save("rnn", [helper.make_node("RNN", ["x", "w", "r"], ["y"], hidden_size=2, activations=["Relu"], clip=3.0)],
         [vi("x", [3, 1, 2])], [vi("y", None)], {"w": f(1, 2, 2), "r": f(1, 2, 2)}, 14)
    save("conv_transpose", [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0], group=2)],
         [vi("x", [1, 2, 3, 3])], [vi("y", None)], {"w": f(2, 1, 3, 2)}, 17)
    save("dft", [helper.make_node("DFT", ["x", "n", ""], ["y"], onesided=1)],
         [vi("x", [1, 6, 1])], [vi("y", None)], {"n": np.array(8, np.int64)}, 20)
    save("stft", [helper.make_node("STFT", ["x", "step", "win"], ["y"])],
         [vi("x", [1, 16, 1])], [vi("y", None)], {"step": np.array(4, np.int64), "win": np.hanning(8).astype(np.float32)}, 17)
    save("mel_weight_matrix", [helper.make_node("MelWeightMatrix", ["m", "n", "sr", "lo", "hi"], ["y"])], [], [vi("y", None)],
         {"m": np.array(4, np.int64), "n": np.array(16, np.int64), "sr": np.array(8000, np.int64),
          "lo": np.array(0, np.float32), "hi": np.array(4000, np.float32)}, 17)
    save("hann_window", [helper.make_node("HannWindow", ["n"], ["y"], periodic=0)], [], [vi("y", None)], {"n": np.array(6, np.int64)}, 17)
    save("grid_sample", [helper.make_node("GridSample", ["x", "grid"], ["y"], mode="cubic", padding_mode="reflection")],
         [vi("x", [1, 1, 3, 4])], [vi("y", None)], {"grid": rng.uniform(-1.3, 1.3, (1, 2, 2, 2)).astype(np.float32)}, 20)
    save("resize_cubic", [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="cubic", coordinate_transformation_mode="tf_crop_and_resize",
                                           exclude_outside=1, antialias=1)],
         [vi("x", [1, 1, 4, 4])], [vi("y", None)],
         {"roi": np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 1.2], np.float32), "scales": np.array([1, 1, 0.6, 1.5], np.float32)}, 19)
    # Issue 13's last default-domain ops: MaxRoiPool, the random generators, string tensors.
    save("max_roi_pool", [helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[2, 2], spatial_scale=0.5)],
         [vi("x", [1, 2, 4, 4])], [vi("y", None)], {"rois": np.array([[0, 0, 0, 6, 5], [0, -2, 1, 9, 9]], np.float32)}, 17)
    save("random_uniform", [helper.make_node("RandomUniform", [], ["y"], shape=[2, 3], low=-1.0, high=2.0, seed=3.0, dtype=TensorProto.DOUBLE)],
         [], [vi("y", None, TensorProto.DOUBLE)], {}, 17)
    save("random_normal_like", [helper.make_node("RandomNormalLike", ["x"], ["y"], mean=1.0, scale=2.0, dtype=TensorProto.FLOAT)],
         [vi("x", [2, 2], TensorProto.INT64)], [vi("y", None)], {}, 17)
    save("bernoulli", [helper.make_node("Bernoulli", ["p"], ["y"], seed=1.0, dtype=TensorProto.BOOL)],
         [], [vi("y", None, TensorProto.BOOL)], {"p": np.array([0.0, 0.5, 1.0], np.float32)}, 22)
    save("multinomial", [helper.make_node("Multinomial", ["x"], ["y"], sample_size=5, seed=2.0, dtype=TensorProto.INT64)],
         [], [vi("y", None, TensorProto.INT64)], {"x": np.log(np.array([[0.2, 0.8], [0.5, 0.5]], np.float32))}, 17)
    strings = lambda *v: np.array(v, dtype=object)
    save("string_normalizer", [helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="UPPER", stopwords=["the"])],
         [], [vi("y", None, TensorProto.STRING)], {"x": strings("The", "quick", "fox")}, 17)
    save("string_concat", [helper.make_node("StringConcat", ["x", "s"], ["y"])],
         [vi("x", [2], TensorProto.STRING)], [vi("y", None, TensorProto.STRING)], {"s": strings("!")}, 20)
    save("string_split", [helper.make_node("StringSplit", ["x"], ["y", "n"], delimiter=",", maxsplit=2)],
         [], [vi("y", None, TensorProto.STRING), vi("n", None, TensorProto.INT64)], {"x": strings("a,b,,c", "")}, 20)
    save("regex_full_match", [helper.make_node("RegexFullMatch", ["x"], ["y"], pattern=r"[a-z]+@(yahoo|gmail)\.com")],
         [vi("x", [2], TensorProto.STRING)], [vi("y", None, TensorProto.BOOL)], {}, 20)
    save("string_gather_equal", [helper.make_node("Gather", ["x", "i"], ["g"]), helper.make_node("Equal", ["g", "x"], ["y"])],
         [], [vi("y", None, TensorProto.BOOL)], {"x": strings("a", "b"), "i": np.array([1, 1], np.int64)}, 17)


if __name__ == "__main__":
    main()
