//! Cairn's tokenizer in the browser: a Hugging Face tokenizer.json read by the maintained
//! `tokenizers` crate (through `cairn-text`), as its own wasm module. The worker loads it
//! only for text bundles and hands its batches to the engine module (`cairn-web`'s
//! `TokenBatchInput`), so an image app never downloads the ~2 MiB the tokenizer costs
//! (docs/adr/0026). One build serves every browser: tokenizing does not use SIMD.

use cairn_text::{TextInput, TextTokenizer};
use wasm_bindgen::prelude::*;

/// Most texts one call may carry: a batch is padded to its longest text, so a huge batch
/// is a huge tensor; the page should send a corpus in pieces.
const MAX_TEXTS: usize = 256;

/// Texts tokenized and padded to the longest: row-major `[batch, seqLen]` arrays, offsets
/// as `(start, end)` character pairs per token, and the indices of truncated texts.
#[wasm_bindgen(getter_with_clone)]
pub struct TokenBatch {
    pub batch: u32,
    #[wasm_bindgen(js_name = seqLen)]
    pub seq_len: u32,
    pub ids: Vec<u32>,
    #[wasm_bindgen(js_name = typeIds)]
    pub type_ids: Vec<u32>,
    #[wasm_bindgen(js_name = attentionMask)]
    pub attention_mask: Vec<u32>,
    pub offsets: Vec<u32>,
    pub truncated: Vec<u32>,
}

/// A tokenizer.json, ready to encode texts.
#[wasm_bindgen]
pub struct Tokenizer {
    inner: TextTokenizer,
}

#[wasm_bindgen]
impl Tokenizer {
    /// `max_length`: truncate to this many tokens, special tokens included (0: the file's
    /// own truncation, if any).
    #[wasm_bindgen(constructor)]
    pub fn new(json: &[u8], max_length: u32) -> Result<Tokenizer, JsError> {
        let max = (max_length > 0).then_some(max_length as usize);
        Ok(Tokenizer { inner: TextTokenizer::from_json(json, max).map_err(js_err)? })
    }

    /// Tokenizes texts (a JSON array of strings, or `{"text", "text_pair"}` for a pair) one
    /// by one, unpadded: JSON, one `{ids, type_ids, attention_mask, offsets, tokens,
    /// sequence_ids, truncated}` per text.
    pub fn encode(&self, texts_json: &str) -> Result<String, JsError> {
        let encoded = texts(texts_json)?
            .iter()
            .map(|t| self.inner.encode_input(t.text(), t.pair()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(js_err)?;
        serde_json::to_string(&encoded).map_err(js_err)
    }

    /// Tokenizes texts (a JSON array of strings, or `{"text", "text_pair"}` for a pair joined
    /// by the tokenizer's pair template) as one batch padded to the longest.
    #[wasm_bindgen(js_name = encodeBatch)]
    pub fn encode_batch(&self, texts_json: &str) -> Result<TokenBatch, JsError> {
        let texts = texts(texts_json)?;
        let refs: Vec<(&str, Option<&str>)> = texts.iter().map(TextInput::as_refs).collect();
        let b = self.inner.encode_batch_inputs(&refs).map_err(js_err)?;
        // Token ids, type ids and masks are u32 in the tokenizer; the batch widened them.
        let narrow = |v: &[i64]| v.iter().map(|&x| x as u32).collect::<Vec<_>>();
        Ok(TokenBatch {
            batch: b.batch as u32,
            seq_len: b.seq_len as u32,
            ids: narrow(&b.ids),
            type_ids: narrow(&b.type_ids),
            attention_mask: narrow(&b.attention_mask),
            offsets: b.offsets.iter().flatten().flat_map(|&(s, e)| [s as u32, e as u32]).collect(),
            truncated: b.truncated.iter().map(|&i| i as u32).collect(),
        })
    }
}

fn texts(texts_json: &str) -> Result<Vec<TextInput>, JsError> {
    let texts: Vec<TextInput> = serde_json::from_str(texts_json)
        .map_err(|e| JsError::new(&format!("texts must be a JSON array of strings (or {{\"text\", \"text_pair\"}} pairs): {e}")))?;
    if texts.is_empty() || texts.len() > MAX_TEXTS {
        return Err(JsError::new(&format!("{} texts; one call takes 1 to {MAX_TEXTS} (send a corpus in batches)", texts.len())));
    }
    Ok(texts)
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}
