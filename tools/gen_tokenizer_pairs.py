#!/usr/bin/env python3
"""Writes the text-pair fixtures of crates/cairn-text (`{name}.pairs.json`): pairs of the
fixtures' own texts (tools/gen_tokenizer_cases.py) encoded by the Python `tokenizers` package
with each tokenizer.json as saved, so Cairn's pair encoding (cross-encoders, NLI) must equal
it: ids, type ids, attention mask, offsets, sequence ids (which text a token came from),
tokens and truncation, including pairs longer than the
maximum length (cut longest first) and one padded batch mixing pairs and single texts.

    python3 tools/gen_tokenizer_pairs.py
"""
import json, os

from tokenizers import Tokenizer

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "crates", "cairn-text", "tests", "fixtures")


def main():
    for name in ["minilm", "bpe", "unigram"]:
        with open(os.path.join(FIXTURES, f"{name}.cases.json"), encoding="utf-8") as f:
            texts = [c["text"] for c in json.load(f)["cases"]]
        tok = Tokenizer.from_file(os.path.join(FIXTURES, f"{name}.tokenizer.json"))
        if tok.truncation is None:
            tok.enable_truncation(64)  # pairs over it, so truncation of pairs is exercised
        single = Tokenizer.from_str(tok.to_str())
        single.no_padding()
        # Neighbours, a text with itself, a short text with the longest, an empty side.
        longest = max(texts, key=len)
        pairs = [(texts[i], texts[i + 1]) for i in range(0, 100, 2)]
        pairs += [(texts[3], texts[3]), ("is it?", longest), (longest, "is it?"), ("", texts[5]), (texts[5], "")]
        cases = []
        for a, b in pairs:
            e = single.encode(a, b)
            cases.append({"text": a, "text_pair": b, "ids": e.ids, "type_ids": e.type_ids, "mask": e.attention_mask,
                          "offsets": [list(o) for o in e.offsets], "sequence_ids": e.sequence_ids, "tokens": e.tokens,
                          "overflowing": len(e.overflowing) > 0})
        mixed = [(texts[0], texts[1]), texts[2], (texts[4], texts[6]), texts[7]]
        encoded = tok.encode_batch([m if isinstance(m, tuple) else m for m in mixed])
        batch = {"inputs": [{"text": m[0], "text_pair": m[1]} if isinstance(m, tuple) else {"text": m} for m in mixed],
                 "max_length": tok.truncation["max_length"],
                 "encodings": [{"ids": e.ids, "type_ids": e.type_ids, "mask": e.attention_mask} for e in encoded]}
        with open(os.path.join(FIXTURES, f"{name}.pairs.json"), "w", encoding="utf-8") as f:
            json.dump({"max_length": tok.truncation["max_length"], "cases": cases, "batch": batch}, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{name}: {len(cases)} pairs ({sum(c['overflowing'] for c in cases)} truncated)")


if __name__ == "__main__":
    main()
