//! Token for token against the Python `tokenizers` package: ids, type ids, attention masks and
//! offsets of 233 varied texts (accents, CJK, emoji, numbers, markup, > 512 tokens) for the
//! real all-MiniLM-L6-v2 WordPiece tokenizer, a byte-level BPE and a Unigram, plus one padded
//! batch each; and 55 text pairs per tokenizer (cross-encoders, NLI), with a batch mixing pairs
//! and single texts. Fixtures: `tools/gen_tokenizer_cases.py`, `tools/gen_tokenizer_pairs.py`.

use cairn_text::TextTokenizer;
use serde::Deserialize;

/// What Python's tokenizers gave for one text or pair.
#[derive(Deserialize)]
struct Want {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    mask: Vec<u32>,
    offsets: Vec<(usize, usize)>,
    overflowing: bool,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    #[serde(flatten)]
    want: Want,
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
    assert!(fixture.cases.iter().any(|c| c.want.overflowing), "{name}: no case exercises truncation");
    for (i, Case { text, want: case }) in fixture.cases.iter().enumerate() {
        let got = tok.encode(text).unwrap();
        let at = format!("{name} case {i} {:?}", text.chars().take(60).collect::<String>());
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

#[derive(Deserialize)]
struct PairCase {
    text: String,
    text_pair: String,
    sequence_ids: Vec<Option<usize>>,
    tokens: Vec<String>,
    #[serde(flatten)]
    want: Want,
}

#[derive(Deserialize)]
struct PairBatchEncoding {
    ids: Vec<i64>,
    type_ids: Vec<i64>,
    mask: Vec<i64>,
}

#[derive(Deserialize)]
struct PairBatch {
    inputs: Vec<cairn_text::TextInput>,
    encodings: Vec<PairBatchEncoding>,
}

#[derive(Deserialize)]
struct PairFixture {
    max_length: usize,
    cases: Vec<PairCase>,
    batch: PairBatch,
}

/// Text pairs (`tools/gen_tokenizer_pairs.py`): each alone (with its tokens and which text
/// each came from), in a batch of one, and a padded batch mixing pairs and single texts.
fn check_pairs(name: &str, tokenizer_json: &[u8], pairs_json: &str) {
    let fixture: PairFixture = serde_json::from_str(pairs_json).unwrap();
    let tok = TextTokenizer::from_json(tokenizer_json, Some(fixture.max_length)).unwrap();
    assert!(fixture.cases.iter().any(|c| c.want.overflowing), "{name}: no pair exercises truncation");
    for (i, PairCase { text, text_pair, sequence_ids, tokens, want: case }) in fixture.cases.iter().enumerate() {
        let at = format!(
            "{name} pair {i} {:?} / {:?}",
            text.chars().take(30).collect::<String>(),
            text_pair.chars().take(30).collect::<String>()
        );
        let alone = tok.encode_input(text, Some(text_pair)).unwrap();
        assert_eq!(alone.ids, case.ids, "ids of {at} alone");
        assert_eq!(alone.type_ids, case.type_ids, "type ids of {at} alone");
        assert_eq!(alone.attention_mask, case.mask, "mask of {at} alone");
        assert_eq!(alone.offsets, case.offsets, "offsets of {at} alone");
        assert_eq!(&alone.sequence_ids, sequence_ids, "sequence ids of {at} alone");
        assert_eq!(&alone.tokens, tokens, "tokens of {at} alone");
        assert_eq!(alone.truncated, case.overflowing, "truncation flag of {at} alone");
        let b = tok.encode_batch_inputs(&[(text, Some(text_pair))]).unwrap();
        let widen = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
        assert_eq!(b.ids, widen(&case.ids), "ids of {at}");
        assert_eq!(b.type_ids, widen(&case.type_ids), "type ids of {at}");
        assert_eq!(b.attention_mask, widen(&case.mask), "mask of {at}");
        assert_eq!(b.offsets[0], case.offsets, "offsets of {at}");
        assert_eq!(b.truncated == [0], case.overflowing, "truncation flag of {at}");
    }
    let inputs: Vec<(&str, Option<&str>)> = fixture.batch.inputs.iter().map(cairn_text::TextInput::as_refs).collect();
    let batch = tok.encode_batch_inputs(&inputs).unwrap();
    for (row, want) in fixture.batch.encodings.iter().enumerate() {
        let span = row * batch.seq_len..(row + 1) * batch.seq_len;
        assert_eq!(batch.ids[span.clone()], want.ids[..], "{name} mixed batch row {row} ids");
        assert_eq!(batch.type_ids[span.clone()], want.type_ids[..], "{name} mixed batch row {row} type ids");
        assert_eq!(batch.attention_mask[span], want.mask[..], "{name} mixed batch row {row} mask");
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
            check_pairs(
                $name,
                include_bytes!(concat!("fixtures/", $name, ".tokenizer.json")),
                include_str!(concat!("fixtures/", $name, ".pairs.json")),
            );
        }
    };
}

parity!(minilm_wordpiece_matches_python_tokenizers, "minilm");
parity!(byte_level_bpe_matches_python_tokenizers, "bpe");
parity!(unigram_matches_python_tokenizers, "unigram");
