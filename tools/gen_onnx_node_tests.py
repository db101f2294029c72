"""Writes the ONNX backend node test cases shipped in the onnx wheel as files.

`onnx`'s own `cmd_tools generate-data` only writes the small real/simple sets, so this
walks `collect_testcases(None)` and writes, per case:
  OUT/<name>/model.onnx, OUT/<name>/ops.txt (domain:op per node),
  OUT/<name>/test_data_set_<k>/input_<i>.pb, output_<i>.pb (TensorProto).
Cases with sequence/optional values are listed in OUT/SKIPPED; tensors given as
TensorProtos (float8, int4, ... data) are written as they are. Idempotent: a stamp
file records the onnx version and the writer revision.
"""
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/onnx-node-tests"
    stamp = os.path.join(out, "STAMP")
    # The stamp names the onnx version and this writer's revision: either changing rewrites the cases.
    version = f"{onnx.__version__} writer-2"
    if os.path.exists(stamp) and open(stamp).read() == version:
        print(f"node tests already in {out} (onnx {onnx.__version__})")
        return
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    os.makedirs(out, exist_ok=True)
    skipped, written = [], 0
    for case in collect_testcases(None):
        d = os.path.join(out, case.name)
        try:
            sets = []
            for inputs, outputs in case.data_sets:
                # 0-d values come as numpy scalars; lists and None are sequences/optionals.
                # Cast/QuantizeLinear cases of float8/int4/... dtypes come as TensorProtos
                # (numpy has no such dtype): they are written as they are.
                fix = lambda vs: [np.asarray(v) if isinstance(v, np.generic) else v for v in vs]
                inputs, outputs = fix(inputs), fix(outputs)
                if any(not isinstance(v, (np.ndarray, onnx.TensorProto)) for v in inputs + outputs):
                    raise TypeError("sequence or optional value")
                sets.append((inputs, outputs))
        except TypeError as e:
            skipped.append(f"{case.name}: {e}")
            continue
        os.makedirs(d, exist_ok=True)
        onnx.save(case.model, os.path.join(d, "model.onnx"))
        with open(os.path.join(d, "ops.txt"), "w") as f:
            for n in case.model.graph.node:
                f.write(f"{n.domain}:{n.op_type}\n")
        graph = case.model.graph
        for k, (inputs, outputs) in enumerate(sets):
            sd = os.path.join(d, f"test_data_set_{k}")
            os.makedirs(sd, exist_ok=True)
            for i, v in enumerate(inputs):
                name = graph.input[i].name if i < len(graph.input) else f"input_{i}"
                write(os.path.join(sd, f"input_{i}.pb"), v, name)
            for i, v in enumerate(outputs):
                name = graph.output[i].name if i < len(graph.output) else f"output_{i}"
                write(os.path.join(sd, f"output_{i}.pb"), v, name)
        written += 1
    with open(os.path.join(out, "SKIPPED"), "w") as f:
        f.write("\n".join(skipped) + "\n")
    with open(stamp, "w") as f:
        f.write(version)
    print(f"wrote {written} node test cases to {out}; skipped {len(skipped)} (see SKIPPED)")


def write(path, array, name):
    if isinstance(array, onnx.TensorProto):
        t = onnx.TensorProto()
        t.CopyFrom(array)
        t.name = name
        with open(path, "wb") as f:
            f.write(t.SerializeToString())
        return
    try:
        t = numpy_helper.from_array(array, name)
    except Exception:  # dtypes numpy_helper cannot express (e.g. strings of objects)
        t = onnx.TensorProto(name=name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


if __name__ == "__main__":
    main()
