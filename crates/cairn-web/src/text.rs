//! Text models in the worker: the bundle's tokenizer.json (checked against the manifest)
//! and the same embedding/classification pipelines the CLI and the edge server run
//! (`cairn-text`). Texts cross the boundary as a JSON array of strings; the worker has
//! already replaced lone UTF-16 surrogates (which have no UTF-8 form) and says which.

use crate::{js_err, Model};
use cairn_text::{EmbedOptions, Pooling, TextPipeline, TextTokenizer};
use wasm_bindgen::prelude::*;

/// Most texts one call may carry: a batch is padded to its longest text, so a huge batch
/// is a huge tensor; the page should send a corpus in pieces.
const MAX_TEXTS: usize = 256;

/// One embedding per text, row-major `[texts, dim]`.
#[wasm_bindgen(getter_with_clone)]
pub struct EmbedOutput {
    pub data: Vec<f32>,
    pub dim: u32,
    /// Indices of the texts longer than the bundle's max length, which were truncated.
    pub truncated: Vec<u32>,
    /// Tokens per row of the padded batch the model ran on.
    #[wasm_bindgen(js_name = seqLen)]
    pub seq_len: u32,
}

fn texts(texts_json: &str) -> Result<Vec<String>, JsError> {
    let texts: Vec<String> =
        serde_json::from_str(texts_json).map_err(|e| JsError::new(&format!("texts must be a JSON array of strings: {e}")))?;
    if texts.is_empty() || texts.len() > MAX_TEXTS {
        return Err(JsError::new(&format!("{} texts; one call takes 1 to {MAX_TEXTS} (send a corpus in batches)", texts.len())));
    }
    Ok(texts)
}

#[wasm_bindgen]
impl Model {
    /// Gives a bundle's model its tokenizer.json (fetched beside manifest.json): checked
    /// against the manifest's size and sha256, parsed, and wired to the model's inputs.
    #[wasm_bindgen(js_name = setTokenizer)]
    pub fn set_tokenizer(&mut self, bytes: &[u8]) -> Result<(), JsError> {
        let manifest = self.manifest.as_ref().ok_or_else(|| JsError::new("only a bundle's model has a text task"))?;
        let task = manifest.text.clone().ok_or_else(|| {
            JsError::new("this bundle has no text task (hint: pack it with --tokenizer tokenizer.json --task feature-extraction)")
        })?;
        cairn_bundle::verify_tokenizer(manifest, bytes).map_err(js_err)?;
        let tokenizer = TextTokenizer::from_json(bytes, Some(task.max_length)).map_err(js_err)?;
        self.text = Some(TextPipeline::new(self.session.graph(), tokenizer, task).map_err(js_err)?);
        Ok(())
    }

    /// Embeds texts (a JSON array of strings) as one padded batch. `pooling` ("mean", "cls",
    /// "max") and `normalize` override the bundle's task config.
    pub fn embed(&self, texts_json: &str, pooling: Option<String>, normalize: Option<bool>) -> Result<EmbedOutput, JsError> {
        let pipeline = self.pipeline()?;
        let mut opts = EmbedOptions { pooling: pipeline.task().pooling, normalize: pipeline.task().normalize };
        if let Some(p) = pooling {
            opts.pooling =
                Pooling::parse(&p).ok_or_else(|| JsError::new(&format!("pooling '{p}' is not one of {}", Pooling::NAMES.join(", "))))?;
        }
        opts.normalize = normalize.unwrap_or(opts.normalize);
        let texts = texts(texts_json)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let e = pipeline.embed(&self.session, &refs, opts).map_err(js_err)?;
        Ok(EmbedOutput {
            data: e.data,
            dim: e.dim as u32,
            truncated: e.truncated.iter().map(|&i| i as u32).collect(),
            seq_len: e.seq_len as u32,
        })
    }

    /// Classifies texts (a JSON array of strings); the answer is the JSON of
    /// `cairn_text::Classification` per text.
    pub fn classify(&self, texts_json: &str) -> Result<String, JsError> {
        let texts = texts(texts_json)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let c = self.pipeline()?.classify(&self.session, &refs).map_err(js_err)?;
        serde_json::to_string(&c).map_err(js_err)
    }

    /// Tokenizes texts as the model sees them (its max length applies): JSON, one
    /// `{ids, type_ids, attention_mask, offsets, tokens, truncated}` per text.
    pub fn tokenize(&self, texts_json: &str) -> Result<String, JsError> {
        encode_all(self.pipeline()?.tokenizer(), texts_json)
    }

    /// The bundle's max length in tokens (0 for a model without a text task).
    #[wasm_bindgen(js_name = maxLength)]
    pub fn max_length(&self) -> u32 {
        self.text.as_ref().map_or(0, |p| p.task().max_length as u32)
    }
}

impl Model {
    fn pipeline(&self) -> Result<&TextPipeline, JsError> {
        self.text
            .as_ref()
            .ok_or_else(|| JsError::new("this model has no tokenizer: it is not a text bundle, or its tokenizer.json was not loaded"))
    }
}

/// A tokenizer.json on its own (no model): for tokenizing in the page's worker, and for
/// checking Cairn's wasm tokenization against Python's.
#[wasm_bindgen]
pub struct Tokenizer {
    inner: TextTokenizer,
}

#[wasm_bindgen]
impl Tokenizer {
    /// `max_length`: truncate to this many tokens (0: the file's own truncation, if any).
    #[wasm_bindgen(constructor)]
    pub fn new(json: &[u8], max_length: u32) -> Result<Tokenizer, JsError> {
        let max = (max_length > 0).then_some(max_length as usize);
        Ok(Tokenizer { inner: TextTokenizer::from_json(json, max).map_err(js_err)? })
    }

    /// Like `Model.tokenize`.
    pub fn encode(&self, texts_json: &str) -> Result<String, JsError> {
        encode_all(&self.inner, texts_json)
    }
}

fn encode_all(tokenizer: &TextTokenizer, texts_json: &str) -> Result<String, JsError> {
    let texts: Vec<String> =
        serde_json::from_str(texts_json).map_err(|e| JsError::new(&format!("texts must be a JSON array of strings: {e}")))?;
    let encoded = texts.iter().map(|t| tokenizer.encode(t)).collect::<Result<Vec<_>, _>>().map_err(js_err)?;
    serde_json::to_string(&encoded).map_err(js_err)
}
