"""Quantizes an f32 ONNX model with onnxruntime's own tools, the way an onnxruntime user
would: `quant_pre_process` (shape inference, BatchNorm folding), then static int8
quantization calibrated on a directory of .npy inputs (QDQ and QOperator formats,
per-channel weights) and dynamic quantization (MatMulInteger/ConvInteger).

    python3 tools/quantize_with_ort.py MODEL.onnx CALIB_DIR OUT_PREFIX [--formats qdq,qop,dynamic] [--max-inputs 64]

Writes OUT_PREFIX_qdq.onnx, OUT_PREFIX_qop.onnx, OUT_PREFIX_dynamic.onnx.
"""
import argparse, glob, os, tempfile
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class NpyReader(CalibrationDataReader):
    def __init__(self, model, files):
        m = onnx.load(model, load_external_data=False)
        inits = {t.name for t in m.graph.initializer}
        self.name = [i.name for i in m.graph.input if i.name not in inits][0]
        self.files = iter(files)

    def get_next(self):
        f = next(self.files, None)
        return None if f is None else {self.name: np.load(f)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('model')
    ap.add_argument('calib')
    ap.add_argument('out_prefix')
    ap.add_argument('--formats', default='qdq,qop,dynamic')
    ap.add_argument('--max-inputs', type=int, default=64)
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.calib, '*.npy')))[: args.max_inputs]
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, 'pre.onnx')
        quant_pre_process(args.model, pre, skip_symbolic_shape=True)
        for fmt in args.formats.split(','):
            out = f'{args.out_prefix}_{fmt}.onnx'
            if fmt == 'dynamic':
                quantize_dynamic(pre, out, weight_type=QuantType.QInt8)
            else:
                quantize_static(pre, out, NpyReader(pre, files), quant_format=QuantFormat.QDQ if fmt == 'qdq' else QuantFormat.QOperator,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            ops = sorted({n.op_type for n in onnx.load(out).graph.node})
            print(f'wrote {out}: {", ".join(ops)}')


if __name__ == '__main__':
    main()
