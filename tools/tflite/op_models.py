"""Small Keras models that exercise the operators whose axes move between NHWC and NCHW
(concat, pad, mean, softmax, resize, strided slice, transposed convolution, depth-to-space,
hard-swish, sigmoid, multiply), converted to TFLite float32 and full-integer int8 (int8 I/O).

    python3 tools/tflite/op_models.py OUT_DIR     # writes OUT_DIR/ops_float.tflite, ops_int8.tflite
"""
import os
import sys

import numpy as np


def build():
    import tensorflow as tf
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(7)
    x = L.Input((16, 16, 3))
    a = L.Conv2D(8, 3, padding='same', activation='relu6')(x)
    b = L.ZeroPadding2D(((1, 0), (0, 1)))(a)
    b = L.DepthwiseConv2D(3, strides=2, padding='valid')(b)
    c = L.AveragePooling2D(2)(a)
    m = L.Concatenate(axis=-1)([b, c])                       # 16 channels at 8x8
    m = L.Activation('hard_swish')(m)
    u = L.UpSampling2D(2, interpolation='bilinear')(m)        # RESIZE_BILINEAR
    n = L.Resizing(16, 16, interpolation='nearest')(m)        # RESIZE_NEAREST_NEIGHBOR
    t = L.Conv2DTranspose(4, 3, strides=2, padding='same')(m)  # TRANSPOSE_CONV
    s = L.Concatenate()([u, n, t])
    g = L.Multiply()([s, L.Activation('sigmoid')(s)])
    d2s = L.Lambda(lambda v: tf.nn.depth_to_space(v, 2))(L.Conv2D(16, 1)(g))
    sl = L.Lambda(lambda v: v[:, 1:13:2, ::3, 2:10])(d2s)     # STRIDED_SLICE
    mean = L.Lambda(lambda v: tf.reduce_mean(v, axis=[1, 2]))(g)  # MEAN, no keep_dims
    out = L.Softmax()(L.Dense(10)(mean))
    return tf.keras.Model(x, [out, sl])


def main(out_dir):
    import tensorflow as tf
    os.makedirs(out_dir, exist_ok=True)
    model = build()
    with open(os.path.join(out_dir, 'ops_float.tflite'), 'wb') as f:
        f.write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rng = np.random.default_rng(3)

    def representative():
        for _ in range(24):
            yield [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with open(os.path.join(out_dir, 'ops_int8.tflite'), 'wb') as f:
        f.write(conv.convert())
    print(f'wrote ops_float.tflite and ops_int8.tflite to {out_dir}')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'target/tflite')
