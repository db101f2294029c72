"""The tutorial pipeline's Keras side: a MobileNetV2 (weights=None, fixed seed) exported to TF.js.

Writes into OUT (default tools/tfjs/out/mobilenetv2):
  keras3/        save_keras_model on the Keras 3 model (the topology TF.js 4.22 cannot load)
  keras2/        the same weights in a tf_keras (Keras 2) model, exported the legacy way (TF.js loads it)
  graph/         tensorflowjs_converter --input_format=tf_saved_model of the same model
  graph_uint8/   ... with --quantize_uint8
  graph_float16/ ... with --quantize_float16
  input.npy      one 1x224x224x3 float32 input in [-1, 1] (seeded)
  keras3.npy     Keras 3's own output on it (the reference for the Keras 3 export)
Run with tools/tfjs/.venv/bin/python (tools/tfjs/setup.sh makes it).
"""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import tensorflowjs as tfjs  # noqa: E402

SEED = 1234
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out", "mobilenetv2")
os.makedirs(out, exist_ok=True)

keras.utils.set_random_seed(SEED)
model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
# weights=None leaves BatchNorm at mean 0 / variance 1: give the statistics seeded random values
# so that the BatchNorm folding is exercised, not a no-op.
rng = np.random.default_rng(SEED)
for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        g, b, m, v = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape), rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 1.5, v.shape)])

x = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
np.save(os.path.join(out, "input.npy"), x)
np.save(os.path.join(out, "keras3.npy"), model(x, training=False).numpy())

tfjs.converters.save_keras_model(model, os.path.join(out, "keras3"))

legacy = tf_keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
legacy.set_weights(model.get_weights())
np.save(os.path.join(out, "keras2.npy"), legacy(x, training=False).numpy())
tfjs.converters.save_keras_model(legacy, os.path.join(out, "keras2"))

saved = os.path.join(out, "saved_model")
model.export(saved)
converter = os.path.join(os.path.dirname(sys.executable), "tensorflowjs_converter")
for name, extra in [("graph", []), ("graph_uint8", ["--quantize_uint8"]), ("graph_float16", ["--quantize_float16"])]:
    # The quantize flags take an optional value: they go last so they do not swallow a path.
    subprocess.run([converter, "--input_format=tf_saved_model", saved, os.path.join(out, name), *extra], check=True)
print("wrote", out)
