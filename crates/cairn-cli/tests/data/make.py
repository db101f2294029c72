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
