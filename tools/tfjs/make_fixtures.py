"""Small TF.js models covering the layers and ops Cairn imports, with Keras's outputs, for
crates/cairn-tfjs/tests/fixtures (committed: the Rust tests need no Python).

    tools/tfjs/.venv/bin/python tools/tfjs/make_fixtures.py

Fixtures: zoo_keras3 / zoo_keras2 (a functional model over most mapped layers), sequential_keras2,
normalization_keras3, embedding_keras3, graph_uint8. Each fixture directory holds model.json, its shards and expected.json ({input, output: [...]}),
from Keras (layers models) or TF (graph models) on a seeded input.
"""

import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import tensorflowjs as tfjs  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "cairn-tfjs", "tests", "fixtures")
rng = np.random.default_rng(5)


def zoo(L, hard_swish, gelu):
    """A functional model using most of the layers the importer maps, on 16x16x3."""
    inp = L.Input((16, 16, 3))
    x = L.Rescaling(2.0, offset=-1.0)(inp)
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = L.Conv2D(8, 3, strides=2, padding="valid", activation="relu")(x)
    x = L.BatchNormalization()(x)
    a = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation=hard_swish)(x)
    b = L.SeparableConv2D(16, 3, padding="same", activation="swish")(x)
    x = L.Add()([a, b])
    x = L.ReLU(6.0)(x)
    m = L.MaxPooling2D(2)(x)
    p = L.AveragePooling2D(3, strides=2, padding="same")(x)
    x = L.Concatenate()([m, p])
    x = L.Conv2D(12, 1, activation=gelu)(x)
    u = L.UpSampling2D(2, interpolation="bilinear")(x)
    n = L.UpSampling2D(2)(x)
    x = L.Multiply()([u, n])
    x = L.LeakyReLU()(x)
    g = L.GlobalMaxPooling2D()(x)
    f = L.Flatten()(L.MaxPooling2D(4)(x))
    x = L.Concatenate()([g, f])
    x = L.Dropout(0.5)(x)
    x = L.Dense(10, activation="tanh")(x)
    x = L.Reshape((2, 5))(x)
    x = L.Dense(3)(x)
    x = L.Flatten()(x)
    out = L.Dense(4, activation="softmax")(x)
    return inp, out


def randomize_bn(model, bn_class):
    for layer in model.layers:
        if isinstance(layer, bn_class):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.2, b.shape), rng.normal(0, 0.2, m.shape), rng.uniform(0.5, 1.5, v.shape)])


def save(name, x, ys, writer):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    writer(d)
    ys = ys if isinstance(ys, list) else [ys]
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"input": x.ravel().tolist(), "input_shape": list(x.shape), "outputs": [y.ravel().tolist() for y in ys]}, f)
    print("wrote", d)


x = rng.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)

keras.utils.set_random_seed(5)
inp, out = zoo(keras.layers, "hard_swish", "gelu")
k3 = keras.Model(inp, out)
randomize_bn(k3, keras.layers.BatchNormalization)
save("zoo_keras3", x, k3(x).numpy(), lambda d: tfjs.converters.save_keras_model(k3, d))

inp, out = zoo(tf_keras.layers, tf_keras.activations.hard_sigmoid, "gelu")
k2 = tf_keras.Model(inp, out)
k2.set_weights(k3.get_weights())
save("zoo_keras2", x, k2(x).numpy(), lambda d: tfjs.converters.save_keras_model(k2, d))

seq = tf_keras.Sequential([tf_keras.layers.Conv2D(4, 3, input_shape=(16, 16, 3), activation="elu"), tf_keras.layers.Flatten(), tf_keras.layers.Dense(3, activation="sigmoid")])
save("sequential_keras2", x, seq(x).numpy(), lambda d: tfjs.converters.save_keras_model(seq, d))

# Tabular and text heads: Normalization (adapted statistics) and Embedding (indices fed as floats,
# as TF.js layers models take them).
keras.utils.set_random_seed(7)
features = rng.normal(3.0, 2.0, (64, 6)).astype(np.float32)
norm = keras.layers.Normalization()
norm.adapt(features)
inp = keras.layers.Input((6,))
tab = keras.Model(inp, keras.layers.Dense(2, activation="relu")(norm(inp)))
save("normalization_keras3", features[:1], tab(features[:1]).numpy(), lambda d: tfjs.converters.save_keras_model(tab, d))

tokens = rng.integers(0, 20, (1, 5)).astype(np.float32)
inp = keras.layers.Input((5,))
emb = keras.layers.Embedding(20, 4)(inp)
txt = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(emb)))
save("embedding_keras3", tokens, txt(tokens).numpy(), lambda d: tfjs.converters.save_keras_model(txt, d))

# A graph model with uint8-quantized weights; its reference is TF.js itself (reference.mjs), since
# the quantized weights differ from Keras's. (The zoo above as a graph model needs Shape, StridedSlice,
# Pack, Tile and GatherV2 for Keras 3's UpSampling2D, which the importer does not map yet.)
keras.utils.set_random_seed(6)
L = keras.layers
inp = L.Input((16, 16, 3))
y = L.Conv2D(8, 3, strides=2, padding="same")(inp)
y = L.BatchNormalization()(y)
y = L.ReLU(6.0)(y)
y = L.DepthwiseConv2D(3, padding="same", activation="gelu")(y)
y = L.Concatenate()([L.MaxPooling2D(2)(y), L.AveragePooling2D(2)(y)])
y = L.ZeroPadding2D(1)(y)
y = L.Conv2D(6, 3, activation="sigmoid")(y)
y = L.GlobalAveragePooling2D()(y)
small = keras.Model(inp, L.Dense(5, activation="softmax")(y))
randomize_bn(small, keras.layers.BatchNormalization)
saved = os.path.join(OUT, "..", "small_saved_model")
small.export(saved)
conv = os.path.join(os.path.dirname(sys.executable), "tensorflowjs_converter")
d = os.path.join(OUT, "graph_uint8")
shutil.rmtree(d, ignore_errors=True)
subprocess.run([conv, "--input_format=tf_saved_model", saved, d, "--quantize_uint8"], check=True)
shutil.rmtree(saved)
np.save("/tmp/fixture_input.npy", x)
res = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "reference.mjs"), os.path.join(d, "model.json"), "/tmp/fixture_input.npy", "/tmp/fixture_tfjs"], check=True, capture_output=True, text=True)
outs = json.loads(res.stdout.strip().splitlines()[-1])["outputs"]
with open(os.path.join(d, "expected.json"), "w") as f:
    json.dump({"input": x.ravel().tolist(), "input_shape": list(x.shape), "outputs": [np.load(o["file"]).ravel().tolist() for o in outs], "reference": "TF.js 4.22 cpu"}, f)
print("wrote", d)
