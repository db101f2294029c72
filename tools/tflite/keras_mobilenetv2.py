"""The tutorial model: a Keras MobileNetV2 (weights=None, fixed seed), converted to TFLite the
way every PWA tutorial does it.

    python3 tools/tflite/keras_mobilenetv2.py OUT_DIR

writes OUT_DIR/mobilenetv2_float.tflite (float32) and OUT_DIR/mobilenetv2_int8.tflite
(`optimizations=[tf.lite.Optimize.DEFAULT]`, `supported_ops=[TFLITE_BUILTINS_INT8]`, uint8 input
and output, representative dataset: 24 crops of scikit-image's photos, disjoint from the
evaluation crops of `photo_inputs(..., evaluation=True)`).

`build_keras_mobilenetv2()` is the one Keras model both exports use (TF.js: tools/tfjs/).
Needs PyPI tensorflow-cpu (installed by scripts/setup-tflite.sh).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from make_image_inputs import PHOTOS, variants  # noqa: E402

SEED = 14
SIZE = 224


def build_keras_mobilenetv2():
    """Keras MobileNetV2 1.0/224 with random weights from a fixed seed, input in [-1, 1].

    The output is the logits (`classifier_activation=None`): with random weights a softmax over
    1000 classes is ~0.001 everywhere, which quantizes to 0 in uint8 and would make every
    comparison in uint8 steps vacuous."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(SEED)
    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3), classes=1000, classifier_activation=None)
    normalize_batchnorms(model, np.concatenate(photo_inputs(16)))
    return model


def normalize_batchnorms(model, images):
    """Sets every BatchNormalization's moving mean and variance to the statistics of its input
    on `images`, in order (each layer sees the already normalized layers before it).

    Freshly initialized BatchNorms (mean 0, variance 1) let the signal of random weights fade
    layer after layer: the logits end near 1e-6, the uint8 output is one constant value, and
    every comparison passes vacuously. With data statistics the activations keep unit scale,
    as in a trained network. The images are calibration crops, never evaluation ones."""
    import tensorflow as tf
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            probe = tf.keras.Model(model.input, layer.input)
            x = probe.predict(images, verbose=0)
            axes = tuple(range(x.ndim - 1))
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, x.mean(axis=axes), x.var(axis=axes)])


def photo_inputs(count, evaluation=False):
    """NHWC float32 [1, 224, 224, 3] in [-1, 1] (MobileNetV2's preprocessing) from real photos.
    Calibration takes the even crops, evaluation the odd ones: the two sets never share an image."""
    from PIL import Image
    import skimage
    data = os.path.join(os.path.dirname(skimage.__file__), 'data')
    out = []
    per_photo = (count + len(PHOTOS) - 1) // len(PHOTOS)
    for photo in PHOTOS:
        im = Image.open(os.path.join(data, photo)).convert('RGB')
        crops = variants(im, 2 * per_photo)[1 if evaluation else 0::2]
        for v in crops[:per_photo]:
            x = np.asarray(v.resize((SIZE, SIZE), Image.BILINEAR), np.float32) / 127.5 - 1.0
            out.append(x[None].astype(np.float32))
    return out[:count]


def convert(out_dir):
    import tensorflow as tf
    os.makedirs(out_dir, exist_ok=True)
    model = build_keras_mobilenetv2()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    with open(os.path.join(out_dir, 'mobilenetv2_float.tflite'), 'wb') as f:
        f.write(conv.convert())
    calibration = photo_inputs(24)

    def representative():
        for x in calibration:
            yield [x]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    with open(os.path.join(out_dir, 'mobilenetv2_int8.tflite'), 'wb') as f:
        f.write(conv.convert())
    print(f'wrote mobilenetv2_float.tflite and mobilenetv2_int8.tflite to {out_dir} '
          f'(calibrated on {len(calibration)} photo crops)')


if __name__ == '__main__':
    convert(sys.argv[1] if len(sys.argv) > 1 else 'target/tflite')
