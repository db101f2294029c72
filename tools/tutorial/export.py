"""The tutorial's Keras side: one MobileNetV2 (weights=None, fixed seed) exported both ways.

    tools/tfjs/.venv/bin/python tools/tutorial/export.py OUT_DIR

Reads OUT_DIR/calibration.npy and evaluation.npy (images.py) and writes:
  tfjs_keras3/            tensorflowjs.converters.save_keras_model(model, dir): the TF.js layers
                          model the tutorials make today (a Keras 3 topology TF.js 4.22 cannot load)
  tfjs_keras2/            the same weights in a tf_keras (Keras 2) model, same converter call:
                          the layers model TF.js itself loads (the reference for Cairn)
  mobilenetv2_int8.tflite TFLiteConverter with optimizations=[DEFAULT],
                          supported_ops=[TFLITE_BUILTINS_INT8], uint8 input and output, and the
                          calibration images as representative dataset
  keras3.npy              Keras 3's own logits on the evaluation images
The model is tools/tflite/keras_mobilenetv2.py's: seed 14, logits out, BatchNorm statistics from
the first 16 calibration images (so random weights do not fade to a constant output).
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import tensorflowjs as tfjs  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tflite'))
from keras_mobilenetv2 import SEED, SIZE, normalize_batchnorms  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'target/tutorial'
    calibration = np.load(os.path.join(out, 'calibration.npy'))
    evaluation = np.load(os.path.join(out, 'evaluation.npy'))

    tf.keras.utils.set_random_seed(SEED)
    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3), classes=1000, classifier_activation=None)
    normalize_batchnorms(model, calibration[:16])
    np.save(os.path.join(out, 'keras3.npy'), model.predict(evaluation, verbose=0))
    tfjs.converters.save_keras_model(model, os.path.join(out, 'tfjs_keras3'))

    # TF.js 4.22 reads only the Keras 2 topology: the same weights in a tf_keras model.
    legacy = tf_keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3), classes=1000, classifier_activation=None)
    legacy.set_weights(model.get_weights())
    tfjs.converters.save_keras_model(legacy, os.path.join(out, 'tfjs_keras2'))

    def representative():
        for x in calibration:
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(legacy)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    with open(os.path.join(out, 'mobilenetv2_int8.tflite'), 'wb') as f:
        f.write(conv.convert())
    print(f'wrote tfjs_keras3/, tfjs_keras2/ and mobilenetv2_int8.tflite (representative dataset: {len(calibration)} images) to {out}')


if __name__ == '__main__':
    main()
