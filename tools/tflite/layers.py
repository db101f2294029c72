"""Where a quantized .tflite first differs between Cairn and the TFLite interpreter's XNNPACK
(AUTO) kernels, tensor by tensor: finds the layer behind a difference in the final outputs.

    python3 tools/tflite/layers.py MODEL.tflite [--cairn target/release/cairn] [--images 1]

Writes a copy of the model in which every 8-bit tensor an operator writes is also a subgraph
output (`cairn run` writes graph outputs only; the interpreter then keeps them too), runs both
on the same inputs as tools/tflite/compare.py and prints each tensor in operator order: the
operator that wrote it (DELEGATE: XNNPACK ran it), the share of equal values and the largest
difference in steps. The first tensor that is not equal is marked: the tensors after it inherit
its differences. Exposing a tensor can change what the interpreter fuses, so the final outputs
may differ slightly from the unmodified model's.
"""
import argparse
import os
import sys
import tempfile

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..'))
from compare import interpreter, photo, run_cairn  # noqa: E402  (tools/tflite/compare.py)


def expose(src, dst):
    """Copies `src` with every 8-bit operator output added to the subgraph's outputs; returns
    those tensor indices in operator order."""
    with open(src, 'rb') as f:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(f.read(), 0))
    g = model.subgraphs[0]
    eight_bit = (schema.TensorType.INT8, schema.TensorType.UINT8)
    written = [int(t) for op in g.operators for t in op.outputs if g.tensors[t].type in eight_bit]
    g.outputs = list(dict.fromkeys([int(t) for t in g.outputs] + written))
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b'TFL3')
    with open(dst, 'wb') as f:
        f.write(b.Output())
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('model')
    ap.add_argument('--cairn', default='target/release/cairn')
    ap.add_argument('--images', type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'exposed.tflite')
        order = expose(args.model, path)
        it = interpreter(path, 'AUTO')
        ins, outs = it.get_input_details(), it.get_output_details()
        by_index = {d['index']: k for k, d in enumerate(outs)}
        writer = {t: d['op_name'] for d in it._get_ops_details() for t in d['outputs']}
        for image in range(args.images):
            xs = [photo(d, image + 7 * j) for j, d in enumerate(ins)]
            for d, x in zip(ins, xs):
                it.set_tensor(d['index'], x)
            it.invoke()
            got = run_cairn(args.cairn, path, [d['name'] for d in ins], xs, len(outs))
            print(f'image {image}: {len(order)} tensors, in operator order')
            first = None
            for t in order:
                d = outs[by_index[t]]
                ref = it.get_tensor(t).astype(np.int64)
                mine = got[by_index[t]].astype(np.int64)
                if mine.size != ref.size:
                    print(f'  t{t:<4d} {writer.get(t, "?"):24s} {d["name"][:48]:48s} size {mine.size} vs {ref.size}')
                    continue
                mine = mine.reshape(ref.shape)
                equal = float(np.mean(mine == ref))
                mark = ''
                if equal < 1.0 and first is None:
                    first, mark = t, '  <- first difference'
                print(f'  t{t:<4d} {writer.get(t, "?"):24s} {d["name"][:48]:48s} equal {100 * equal:6.2f}%, '
                      f'max {int(np.max(np.abs(mine - ref))) if ref.size else 0} steps{mark}')


if __name__ == '__main__':
    main()
