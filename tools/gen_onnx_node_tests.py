"""Writes the ONNX backend node test cases shipped in the onnx wheel as files.

`onnx`'s own `cmd_tools generate-data` only writes the small real/simple sets, so this
walks `collect_testcases(None)` and writes, per case:
  OUT/<name>/model.onnx, OUT/<name>/ops.txt (domain:op per node),
  OUT/<name>/test_data_set_<k>/input_<i>.pb, output_<i>.pb: a TensorProto, or a
  SequenceProto / OptionalProto where the model declares a sequence or optional value (the
  format onnx's own backend test runner reads). Tensors given as TensorProtos (float8, int4,
  ... data) are written as they are.
Cases whose values cannot be written are listed in OUT/SKIPPED. Idempotent: a stamp file
records the onnx version and the writer revision.
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
    version = f"{onnx.__version__}; format 2; writer-3"
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
            graph = case.model.graph
            for inputs, outputs in case.data_sets:
                # 0-d values come as numpy scalars; lists and None are sequences/optionals.
                # Cast/QuantizeLinear cases of float8/int4/... dtypes come as TensorProtos
                # (numpy has no such dtype): they are written as they are.
                fix = lambda vs: [np.asarray(v) if isinstance(v, np.generic) else v for v in vs]
                inputs, outputs = fix(inputs), fix(outputs)
                for vs, infos in ((inputs, graph.input), (outputs, graph.output)):
                    for i, v in enumerate(vs):
                        kind = value_kind(infos[i] if i < len(infos) else None)
                        if kind == "tensor_type" and not isinstance(v, (np.ndarray, onnx.TensorProto)):
                            raise TypeError(f"a tensor value that is a {type(v).__name__}, not an array")
                sets.append((inputs, outputs))
        except TypeError as e:
            skipped.append(f"{case.name}: {e}")
            continue
        os.makedirs(d, exist_ok=True)
        onnx.save(case.model, os.path.join(d, "model.onnx"))
        with open(os.path.join(d, "ops.txt"), "w") as f:
            for n in case.model.graph.node:
                f.write(f"{n.domain}:{n.op_type}\n")
        for k, (inputs, outputs) in enumerate(sets):
            sd = os.path.join(d, f"test_data_set_{k}")
            os.makedirs(sd, exist_ok=True)
            for prefix, vs, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
                for i, v in enumerate(vs):
                    info = infos[i] if i < len(infos) else None
                    write(os.path.join(sd, f"{prefix}_{i}.pb"), v, info.name if info else f"{prefix}_{i}", info)
        written += 1
    with open(os.path.join(out, "SKIPPED"), "w") as f:
        f.write("\n".join(skipped) + "\n")
    with open(stamp, "w") as f:
        f.write(version)
    print(f"wrote {written} node test cases to {out}; skipped {len(skipped)} (see SKIPPED)")


def value_kind(info):
    """'tensor_type', 'sequence_type' or 'optional_type', as the model declares the value."""
    kind = info.type.WhichOneof("value") if info is not None else None
    return kind or "tensor_type"


def write(path, value, name, info):
    kind = value_kind(info)
    if isinstance(value, onnx.TensorProto):
        t = onnx.TensorProto()
        t.CopyFrom(value)
        t.name = name
        with open(path, "wb") as f:
            f.write(t.SerializeToString())
        return
    try:
        if kind == "sequence_type":
            p = numpy_helper.from_list([np.asarray(v) for v in value], name, onnx.SequenceProto.TENSOR)
        elif kind == "optional_type":
            inner = info.type.optional_type.elem_type
            if value is None:
                p = onnx.OptionalProto(name=name, elem_type=onnx.OptionalProto.UNDEFINED)
            elif inner.WhichOneof("value") == "sequence_type":
                seq = numpy_helper.from_list([np.asarray(v) for v in value], name, onnx.SequenceProto.TENSOR)
                p = onnx.OptionalProto(name=name, elem_type=onnx.OptionalProto.SEQUENCE, sequence_value=seq)
            else:
                t = numpy_helper.from_array(np.asarray(value), name)
                p = onnx.OptionalProto(name=name, elem_type=onnx.OptionalProto.TENSOR, tensor_value=t)
        else:
            p = numpy_helper.from_array(value, name)
    except Exception:  # dtypes numpy_helper cannot express (e.g. strings of objects)
        p = onnx.TensorProto(name=name)
    with open(path, "wb") as f:
        f.write(p.SerializeToString())


if __name__ == "__main__":
    main()
