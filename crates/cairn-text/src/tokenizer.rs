//! A Hugging Face `tokenizer.json` (any model the `tokenizers` crate reads: WordPiece, BPE
//! incl. byte-level, Unigram, WordLevel; with its normalizer, pre-tokenizer, post-processor)
//! behind a small interface: single texts and padded batches with masks and offsets.

use crate::batch::Batch;
use crate::error::{Error, Result};
use tokenizers::{EncodeInput, PaddingParams, PaddingStrategy, PostProcessor, Tokenizer, TruncationParams};

/// One text may have at most this many bytes: tokenizing is linear but not free, and a
/// page that posts a whole book by mistake should get an error, not a frozen worker.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

pub struct TextTokenizer {
    inner: Tokenizer,
}

/// One tokenized text or pair. Offsets are `[start, end)` in Unicode characters of the text
/// the token came from (as Python's tokenizers reports them); special tokens have `(0, 0)`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
    pub tokens: Vec<String>,
    /// Which text each token came from: 0, 1 for the second text of a pair, `None` for the
    /// special tokens (Python's `Encoding.sequence_ids`). A pair's offsets are in its own text.
    pub sequence_ids: Vec<Option<usize>>,
    /// Whether the text was cut to the maximum length.
    pub truncated: bool,
}

/// One text (or pair) with its encoding: the form `cairn tokenize --json` prints and the edge
/// server's `/v1/models/{name}/tokenize` answers, one per text.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenizedText<'a> {
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pair: Option<&'a str>,
    #[serde(flatten)]
    pub encoding: Encoded,
}

impl TextTokenizer {
    /// Reads a tokenizer.json. `max_length` (special tokens included) replaces the file's
    /// truncation length; without it the file's truncation, if any, applies.
    pub fn from_json(json: &[u8], max_length: Option<usize>) -> Result<TextTokenizer> {
        // Parsed to a JSON value first: the tokenizers crate deserializes a decoder through
        // `.expect()` on buffered input, so a file cut off inside its decoder (a truncated
        // download) panicked, which in the browser's wasm ends the worker (fuzz target
        // load_tokenizer). From a value that step cannot fail.
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| Error::InvalidTokenizer(e.to_string()))?;
        crate::tokenizer_checks::check(&value).map_err(Error::InvalidTokenizer)?;
        let mut inner: Tokenizer = serde_json::from_value(value).map_err(|e| Error::InvalidTokenizer(e.to_string()))?;
        // `max_length` replaces the file's length. The crate subtracts the special tokens from
        // it unchecked: a shorter length wrapped around (release: no truncation at all, so a
        // long text overran the model's positions; debug: a panic). And only the first window
        // of a long text is ever used (it is flagged `truncated`, not split), so the stride
        // between the overflowing windows is 0: a file's stride at or above the room the
        // special tokens leave made the crate assert. Both found by the fuzz target load_tokenizer.
        let file_truncation = inner.get_truncation().cloned();
        if let Some(truncation) =
            max_length.map(|max_length| TruncationParams { max_length, ..file_truncation.clone().unwrap_or_default() }).or(file_truncation)
        {
            let special = inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
            if truncation.max_length < special {
                return Err(Error::MaxLengthTooShort { max_length: truncation.max_length, special });
            }
            inner
                .with_truncation(Some(TruncationParams { stride: 0, ..truncation }))
                .map_err(|e| Error::InvalidTokenizer(e.to_string()))?;
        }
        // Single texts are never padded; batches pad to their longest text (see `encode_batch`).
        let padding = inner.get_padding().cloned().map(|p| PaddingParams { strategy: PaddingStrategy::BatchLongest, ..p });
        let pad = padding.unwrap_or_else(|| {
            let (pad_token, pad_id) = ["[PAD]", "<pad>", "<|endoftext|>"]
                .iter()
                .find_map(|t| inner.token_to_id(t).map(|id| (t.to_string(), id)))
                .unwrap_or(("[PAD]".into(), 0));
            PaddingParams { pad_id, pad_token, ..PaddingParams::default() }
        });
        inner.with_padding(Some(pad));
        Ok(TextTokenizer { inner })
    }

    /// The truncation length in force, if any.
    pub fn max_length(&self) -> Option<usize> {
        self.inner.get_truncation().map(|t| t.max_length)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn encode(&self, text: &str) -> Result<Encoded> {
        self.encode_input(text, None)
    }

    /// A text, or with `pair` a pair joined by the file's `pair` template (as
    /// [`TextTokenizer::encode_batch_inputs`] joins it), unpadded.
    pub fn encode_input(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        check_size(text)?;
        pair.map_or(Ok(()), check_size)?;
        let mut single = self.inner.clone();
        single.with_padding(None);
        let e = single.encode_char_offsets(encode_input(text, pair), true).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(Encoded {
            ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
            attention_mask: e.get_attention_mask().to_vec(),
            offsets: e.get_offsets().to_vec(),
            tokens: e.get_tokens().to_vec(),
            sequence_ids: e.get_sequence_ids(),
            truncated: !e.get_overflowing().is_empty(),
        })
    }

    pub fn encode_batch(&self, texts: &[&str]) -> Result<Batch> {
        let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|&t| (t, None)).collect();
        self.encode_batch_inputs(&inputs)
    }

    /// Texts and text pairs (`(text, Some(pair))`: joined by the file's `pair` template, the
    /// pair's tokens with type id 1) as one padded batch. A long pair is cut as the file says
    /// (Hugging Face's default: the longer of the two first). A pair's offsets are in its own
    /// text's characters.
    pub fn encode_batch_inputs(&self, inputs: &[(&str, Option<&str>)]) -> Result<Batch> {
        inputs.iter().try_for_each(|(t, p)| check_size(t).and_then(|()| p.map_or(Ok(()), check_size)))?;
        let inputs: Vec<EncodeInput> = inputs.iter().map(|&(text, pair)| encode_input(text, pair)).collect();
        let encodings = self.inner.encode_batch_char_offsets(inputs, true).map_err(|e| Error::Encode(e.to_string()))?;
        let seq_len = encodings.first().map_or(0, |e| e.len());
        let widen = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
        Ok(Batch {
            batch: encodings.len(),
            seq_len,
            ids: encodings.iter().flat_map(|e| widen(e.get_ids())).collect(),
            type_ids: encodings.iter().flat_map(|e| widen(e.get_type_ids())).collect(),
            attention_mask: encodings.iter().flat_map(|e| widen(e.get_attention_mask())).collect(),
            offsets: encodings.iter().map(|e| e.get_offsets().to_vec()).collect(),
            truncated: encodings.iter().enumerate().filter(|(_, e)| !e.get_overflowing().is_empty()).map(|(i, _)| i).collect(),
        })
    }
}

/// A text, or a pair for the file's `pair` template, as the tokenizers crate takes it.
fn encode_input<'s>(text: &'s str, pair: Option<&'s str>) -> EncodeInput<'s> {
    match pair {
        Some(pair) => EncodeInput::Dual(text.into(), pair.into()),
        None => EncodeInput::Single(text.into()),
    }
}

fn check_size(text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::TextTooLarge { bytes: text.len(), max: MAX_TEXT_BYTES });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &[u8] = include_bytes!("../tests/fixtures/minilm.tokenizer.json");

    #[test]
    fn malformed_and_foreign_files_are_clear_errors() {
        for bad in [&b""[..], b"{", b"not json", b"{\"version\":\"1.0\"}", b"[1,2,3]", b"[CLS]\n[SEP]\nhello\n"] {
            let err = TextTokenizer::from_json(bad, None).err().expect("must fail");
            assert!(err.to_string().contains("tokenizer.json"), "{err}");
        }
    }

    #[test]
    fn a_file_cut_off_anywhere_is_a_clear_error() {
        // A truncated download: every cut, the decoder's object included, is an error.
        let bpe = include_bytes!("../tests/fixtures/bpe.tokenizer.json");
        for cut in (0..bpe.len() - 1).step_by(37).chain(bpe.len() - 200..bpe.len() - 1) {
            let err = TextTokenizer::from_json(&bpe[..cut], None).err().unwrap_or_else(|| panic!("cut at {cut} must fail"));
            assert!(err.to_string().contains("tokenizer.json"), "{err}");
        }
    }

    #[test]
    fn files_the_tokenizers_crate_would_panic_on_are_clear_errors() {
        // Each of these passed the crate's reader and panicked on the first text (fuzz target
        // load_tokenizer; the inputs are in fuzz/regressions/load_tokenizer/).
        let unigram: serde_json::Value = serde_json::from_slice(include_bytes!("../tests/fixtures/unigram.tokenizer.json")).unwrap();
        let with = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut file = unigram.clone();
            edit(&mut file["post_processor"]);
            TextTokenizer::from_json(&serde_json::to_vec(&file).unwrap(), Some(16)).err().map(|e| e.to_string())
        };
        assert_eq!(with(&|_| {}), None, "the fixture itself loads");
        let undefined = with(&|p| p["single"][1]["SpecialToken"]["id"] = "</S>".into()).expect("an undefined special token");
        assert!(undefined.contains("\"</S>\"") && undefined.contains("tokenizer.json"), "{undefined}");
        // The crate reads post-processors by their fields, so a misspelt type is no way out.
        let misspelt = with(&|p| {
            p["type"] = "TemplatePrkcessing".into();
            p["pair"][0] = serde_json::json!({ "SpecialToken": { "id": "<cls>", "type_id": 0 } });
        });
        assert!(misspelt.expect("an undefined special token in pair").contains("\"<cls>\""));
        let in_sequence = with(&|p| {
            *p = serde_json::json!({ "type": "Sequence", "processors": [p.clone(), { "type": "TemplateProcessing",
            "single": [{ "Sequence": { "id": "B", "type_id": 0 } }], "pair": [], "special_tokens": {} }] })
        });
        assert!(in_sequence.expect("sequence B in single").contains("sequence B"));
        let mut file = unigram.clone();
        file["normalizer"] =
            serde_json::json!({ "type": "Sequence", "normalizers": [{ "type": "Precompiled", "precompiled_charsmap": "AAAA" }] });
        let charsmap =
            TextTokenizer::from_json(&serde_json::to_vec(&file).unwrap(), None).err().expect("a damaged character map").to_string();
        assert!(charsmap.contains("Precompiled character map"), "{charsmap}");
        file["normalizer"] = serde_json::Value::Null;
        file["pre_tokenizer"] = serde_json::json!({ "type": "Sequence", "pretokenizers": [{ "type": "FixedLength", "length": 0 }] });
        let fixed = TextTokenizer::from_json(&serde_json::to_vec(&file).unwrap(), None).err().expect("pieces of 0 characters").to_string();
        assert!(fixed.contains("FixedLength length of 0"), "{fixed}");
        file["pre_tokenizer"] = serde_json::Value::Null;
        for (pattern, refused) in
            [(r#"{"String": ""}"#, true), (r#"{"Regex": "x*"}"#, true), (r#"{"Regex": "(?=l)"}"#, true), (r#"{"Regex": "x+"}"#, false)]
        {
            let pattern: serde_json::Value = serde_json::from_str(pattern).unwrap();
            file["normalizer"] =
                serde_json::json!({ "type": "Sequence", "normalizers": [{ "type": "Replace", "pattern": pattern, "content": "y" }] });
            let got = TextTokenizer::from_json(&serde_json::to_vec(&file).unwrap(), None).err().map(|e| e.to_string());
            assert_eq!(got.as_ref().is_some_and(|e| e.contains("can match the empty string")), refused, "{pattern}: {got:?}");
        }
        file["normalizer"] = serde_json::json!({ "type": "Prepend", "prepend": "" });
        let prepend = TextTokenizer::from_json(&serde_json::to_vec(&file).unwrap(), None).err().expect("an empty Prepend").to_string();
        assert!(prepend.contains("Prepend of the empty string"), "{prepend}");
    }

    #[test]
    fn truncates_to_the_given_length_keeping_the_final_sep_and_says_so() {
        let tok = TextTokenizer::from_json(MINILM, Some(16)).unwrap();
        let e = tok.encode(&"word ".repeat(100)).unwrap();
        assert_eq!(e.ids.len(), 16);
        assert_eq!(e.tokens.last().map(String::as_str), Some("[SEP]"));
        assert!(e.truncated);
        assert!(!tok.encode("short").unwrap().truncated);
    }

    #[test]
    fn a_length_shorter_than_the_special_tokens_is_refused() {
        for max_length in [0, 1] {
            let err = TextTokenizer::from_json(MINILM, Some(max_length)).err().expect("no room for [CLS] and [SEP]").to_string();
            assert!(err.contains("no room for the 2 special tokens") && err.contains("--max-length"), "{err}");
        }
        let just_specials = TextTokenizer::from_json(MINILM, Some(2)).unwrap().encode("some words").unwrap();
        assert_eq!((just_specials.tokens.as_slice(), just_specials.truncated), (&["[CLS]".to_string(), "[SEP]".to_string()][..], true));
    }

    #[test]
    fn a_file_stride_is_no_way_to_an_assertion() {
        // The file's own truncation with a stride beyond its length: the crate asserted.
        let mut file: serde_json::Value = serde_json::from_slice(MINILM).unwrap();
        file["truncation"]["max_length"] = 12.into();
        file["truncation"]["stride"] = 100.into();
        let tok = TextTokenizer::from_json(&serde_json::to_vec(&file).unwrap(), None).unwrap();
        let e = tok.encode(&"word ".repeat(40)).unwrap();
        assert_eq!((e.ids.len(), e.truncated), (12, true));
        assert_eq!(tok.max_length(), Some(12));
    }

    #[test]
    fn pairs_join_by_the_pair_template_with_type_ids() {
        let tok = TextTokenizer::from_json(MINILM, Some(128)).unwrap();
        let b = tok.encode_batch_inputs(&[("is it raining", Some("the sun shines")), ("alone", None)]).unwrap();
        // [CLS] is it raining [SEP] (type 0) the sun shines [SEP] (type 1); Python's exact ids are
        // in tests/tokenizer_parity.rs.
        let (ids, types) = (&b.ids[..b.seq_len], &b.type_ids[..b.seq_len]);
        assert_eq!((ids[0], ids[4], ids[b.seq_len - 1]), (101, 102, 102));
        assert!(types[..5].iter().all(|&t| t == 0) && types[5..].iter().all(|&t| t == 1), "{types:?}");
        assert_eq!(b.attention_mask[b.seq_len..].iter().filter(|&&m| m == 1).count(), 3, "the single text, padded");
    }

    #[test]
    fn empty_text_is_just_the_special_tokens() {
        let tok = TextTokenizer::from_json(MINILM, Some(128)).unwrap();
        let e = tok.encode("").unwrap();
        assert_eq!(e.tokens, ["[CLS]", "[SEP]"]);
        assert_eq!(e.attention_mask, [1, 1]);
    }

    #[test]
    fn batches_pad_to_the_longest_with_a_zero_mask() {
        let tok = TextTokenizer::from_json(MINILM, Some(128)).unwrap();
        let b = tok.encode_batch(&["a", "a much longer sentence here"]).unwrap();
        assert_eq!(b.batch, 2);
        assert_eq!(b.ids.len(), 2 * b.seq_len);
        let first_mask = &b.attention_mask[..b.seq_len];
        assert_eq!(first_mask.iter().filter(|&&m| m == 1).count(), 3);
        assert!(b.attention_mask[b.seq_len..].iter().all(|&m| m == 1));
    }

    #[test]
    fn oversized_text_is_refused_before_tokenizing() {
        let tok = TextTokenizer::from_json(MINILM, None).unwrap();
        let err = tok.encode(&"x".repeat(MAX_TEXT_BYTES + 1)).unwrap_err();
        assert!(matches!(err, Error::TextTooLarge { .. }), "{err}");
    }
}
