#!/usr/bin/env python3
"""Fidelity of Cairn's text pipeline on the real all-MiniLM-L6-v2 (tools/convert_minilm.py):
`cairn embed` (Cairn's tokenizer, model run, mean pooling, normalization) against the same
pipeline in Python (the `tokenizers` package + onnxruntime on the same ONNX file), for the f32
model and for its int8 version (`cairn optimize --quantize int8-dynamic`), on the 50 notes and
10 queries of tests/text/retrieval_set.json.

    python3 tools/check_text_fidelity.py CAIRN F32_BUNDLE INT8_BUNDLE F32_ONNX INT8_ONNX TOKENIZER_JSON

The int8 model is `cairn optimize --quantize int8-dynamic --calibrate tests/text/calibration_texts.jsonl
--tokenizer tokenizer.json --keep-sensitive 4` (the 4 weights that quantize worst, each measured
alone on 64 texts disjoint from these, stay f32; quantizing every MatMul gives min cosine 0.9876:
under the bar).

Checks (exit 1 if one fails):
- f32: cosine(Cairn, onnxruntime) >= 0.9999 for every text;
- int8: cosine(Cairn int8, onnxruntime f32) >= 0.99 for every text (and vs onnxruntime int8, reported);
- retrieval: for each query, the top-3 notes of Cairn f32 equal onnxruntime f32's top-3 (as
  sets); for Cairn f32 and int8 the labelled relevant note is among their top 3. (How many int8
  top-3 sets equal f32's is printed: int8 reorders near-ties among the notes ranked 2-4.)
"""
import json, os, subprocess, sys, tempfile

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_LENGTH = 256


def ort_embed(onnx_path, tokenizer_path, texts):
    tok = Tokenizer.from_file(tokenizer_path)
    tok.enable_truncation(MAX_LENGTH)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    # onnxruntime's extended fusions (EmbedLayerNormalization) fail on this graph's position-id
    # Range ("Starts must be a 1-D array"); basic optimizations keep its own kernels and numerics.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(texts), 8):
        enc = tok.encode_batch(texts[i:i + 8])
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        emb = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        out.append(emb / np.linalg.norm(emb, axis=1, keepdims=True))
    return np.concatenate(out)


def cairn_embed(cairn, bundle, texts, tmp):
    src, dst = os.path.join(tmp, "texts.jsonl"), os.path.join(tmp, "emb.npy")
    with open(src, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    subprocess.run([cairn, "embed", bundle, "--input", src, "-o", dst], check=True, stdout=subprocess.DEVNULL)
    return np.load(dst)


def top3(queries, notes):
    return [set(np.argsort(-(notes @ q))[:3].tolist()) for q in queries]


def main():
    args = sys.argv[1:]
    if len(args) != 6:
        sys.exit(__doc__)
    cairn, f32_bundle, int8_bundle, f32_onnx, int8_onnx, tokenizer = args
    data = json.load(open(os.path.join(os.path.dirname(__file__), "..", "tests", "text", "retrieval_set.json"), encoding="utf-8"))
    notes, queries = data["notes"], data["queries"]
    texts = notes + [q["query"] for q in queries]
    ref = ort_embed(f32_onnx, tokenizer, texts)
    ref_int8 = ort_embed(int8_onnx, tokenizer, texts)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        got = {"f32": cairn_embed(cairn, f32_bundle, texts, tmp), "int8": cairn_embed(cairn, int8_bundle, texts, tmp)}
    cos = lambda a, b: (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))  # noqa: E731
    for name, emb, bar in [("f32", got["f32"], 0.9999), ("int8", got["int8"], 0.99)]:
        c = cos(emb, ref)
        print(f"{name}: cosine vs onnxruntime f32 over {len(texts)} texts: min {c.min():.6f} mean {c.mean():.6f} (bar {bar})")
        if c.min() < bar:
            failures.append(f"{name} cosine {c.min():.6f} < {bar}")
    c8 = cos(got["int8"], ref_int8)
    print(f"int8: cosine vs onnxruntime running the same int8 file: min {c8.min():.6f} mean {c8.mean():.6f}")
    n = len(notes)
    want = top3(ref[n:], ref[:n])
    for name in ("f32", "int8"):
        have = top3(got[name][n:], got[name][:n])
        same = sum(a == b for a, b in zip(have, want))
        hits = sum(q["relevant"] in h for q, h in zip(queries, have))
        print(f"{name}: retrieval top-3 equal to onnxruntime f32's for {same}/{len(queries)} queries; relevant note in top 3 for {hits}/{len(queries)}")
        if (same != len(queries) and name == "f32") or hits != len(queries):
            failures.append(f"{name} retrieval: {same} same top-3, {hits} hits")
    if failures:
        sys.exit("FAILED: " + "; ".join(failures))
    print("text fidelity: all checks pass")


if __name__ == "__main__":
    main()
