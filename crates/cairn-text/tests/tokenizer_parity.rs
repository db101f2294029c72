//! Token for token against the Python `tokenizers` package: ids, type ids, attention masks and
//! offsets of 233 varied texts (accents, CJK, emoji, numbers, markup, > 512 tokens) for the
//! real all-MiniLM-L6-v2 WordPiece tokenizer, a byte-level BPE and a Unigram, plus one padded
//! batch each. Fixtures: `tools/gen_tokenizer_cases.py`.

use cairn_text::TextTokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    mask: Vec<u32>,
    offsets: Vec<(usize, usize)>,
    overflowing: bool,
}

#[derive(Deserialize)]
struct BatchEncoding {
    ids: Vec<i64>,
    mask: Vec<i64>,
    offsets: Vec<(usize, usize)>,
}

#[derive(Deserialize)]
struct BatchCase {
    texts: Vec<String>,
    encodings: Vec<BatchEncoding>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    batch: BatchCase,
}

fn check(name: &str, tokenizer_json: &[u8], cases_json: &str) {
    let tok = TextTokenizer::from_json(tokenizer_json, None).unwrap();
    let fixture: Fixture = serde_json::from_str(cases_json).unwrap();
    assert!(fixture.cases.len() >= 200, "{name}: only {} cases", fixture.cases.len());
    assert!(fixture.cases.iter().any(|c| c.overflowing), "{name}: no case exercises truncation");
    for (i, case) in fixture.cases.iter().enumerate() {
        let got = tok.encode(&case.text).unwrap();
        let at = format!("{name} case {i} {:?}", case.text.chars().take(60).collect::<String>());
        assert_eq!(got.ids, case.ids, "ids of {at}");
        assert_eq!(got.type_ids, case.type_ids, "type ids of {at}");
        assert_eq!(got.attention_mask, case.mask, "mask of {at}");
        assert_eq!(got.offsets, case.offsets, "offsets of {at}");
        assert_eq!(got.truncated, case.overflowing, "truncation flag of {at}");
    }
    let texts: Vec<&str> = fixture.batch.texts.iter().map(String::as_str).collect();
    let batch = tok.encode_batch(&texts).unwrap();
    for (row, want) in fixture.batch.encodings.iter().enumerate() {
        let span = row * batch.seq_len..(row + 1) * batch.seq_len;
        assert_eq!(batch.ids[span.clone()], want.ids[..], "{name} batch row {row} ids");
        assert_eq!(batch.attention_mask[span], want.mask[..], "{name} batch row {row} mask");
        assert_eq!(batch.offsets[row], want.offsets, "{name} batch row {row} offsets");
    }
}

macro_rules! parity {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            check(
                $name,
                include_bytes!(concat!("fixtures/", $name, ".tokenizer.json")),
                include_str!(concat!("fixtures/", $name, ".cases.json")),
            );
        }
    };
}

parity!(minilm_wordpiece_matches_python_tokenizers, "minilm");
parity!(byte_level_bpe_matches_python_tokenizers, "bpe");
parity!(unigram_matches_python_tokenizers, "unigram");
