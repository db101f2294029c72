//! Text models in the worker: the embedding and classification pipelines the CLI and the
//! edge server run (`cairn-text`), after tokenization. The tokenizer itself is a separate
//! wasm module (crates/cairn-web-text) that the worker loads only for text bundles, so apps
//! without a text model do not download the `tokenizers` crate (docs/adr/0026). Its
//! batches cross into this module as flat typed arrays and are checked like any input.

use crate::{js_err, Model};
use cairn_text::{Aggregation, Batch, Pooling, TextModel};
use wasm_bindgen::prelude::*;

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

/// A tokenized batch as the tokenizer module hands it over: `[batch, seq_len]` row-major
/// arrays, `offsets` as `(start, end)` pairs per token, `truncated` as text indices.
#[wasm_bindgen]
pub struct TokenBatchInput {
    batch: Batch,
}

#[wasm_bindgen]
impl TokenBatchInput {
    #[wasm_bindgen(constructor)]
    pub fn new(
        batch: u32,
        seq_len: u32,
        ids: &[u32],
        type_ids: &[u32],
        attention_mask: &[u32],
        offsets: &[u32],
        truncated: &[u32],
    ) -> Result<TokenBatchInput, JsError> {
        let (b, n) = (batch as usize, seq_len as usize);
        let widen = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
        if offsets.len() != 2 * b * n {
            return Err(JsError::new(&format!("offsets has {} values; {b} x {n} tokens need {}", offsets.len(), 2 * b * n)));
        }
        let pairs: Vec<(usize, usize)> = offsets.chunks_exact(2).map(|p| (p[0] as usize, p[1] as usize)).collect();
        let batch = Batch {
            batch: b,
            seq_len: n,
            ids: widen(ids),
            type_ids: widen(type_ids),
            attention_mask: widen(attention_mask),
            offsets: if n == 0 { vec![Vec::new(); b] } else { pairs.chunks_exact(n).map(<[_]>::to_vec).collect() },
            truncated: truncated.iter().map(|&i| i as usize).collect(),
        };
        batch.check().map_err(|e| JsError::new(&format!("token batch: {e}")))?;
        if b == 0 {
            return Err(JsError::new("token batch: no texts"));
        }
        Ok(TokenBatchInput { batch })
    }
}

#[wasm_bindgen]
impl Model {
    /// Makes a text bundle's model ready for `embed`/`classify`: its task config (from the
    /// manifest) wired to the model's inputs. The worker calls it once the bundle's
    /// tokenizer.json has been fetched and checked against the manifest.
    #[wasm_bindgen(js_name = enableText)]
    pub fn enable_text(&mut self) -> Result<(), JsError> {
        let manifest = self.manifest.as_ref().ok_or_else(|| JsError::new("only a bundle's model has a text task"))?;
        let task = manifest.text.clone().ok_or_else(|| {
            JsError::new("this bundle has no text task (hint: pack it with --tokenizer tokenizer.json --task feature-extraction)")
        })?;
        self.text = Some(TextModel::new(self.session.graph(), task).map_err(js_err)?);
        Ok(())
    }

    /// Embeds a tokenized batch. `pooling` ("mean", "cls", "max") and `normalize` override
    /// the bundle's task config.
    pub fn embed(&self, batch: &TokenBatchInput, pooling: Option<String>, normalize: Option<bool>) -> Result<EmbedOutput, JsError> {
        let text = self.text_model()?;
        let mut opts = text.default_embed_options();
        if let Some(p) = pooling {
            opts.pooling =
                Pooling::parse(&p).ok_or_else(|| JsError::new(&format!("pooling '{p}' is not one of {}", Pooling::NAMES.join(", "))))?;
        }
        opts.normalize = normalize.unwrap_or(opts.normalize);
        let e = text.embed_batch(&self.session, &batch.batch, opts).map_err(js_err)?;
        Ok(EmbedOutput {
            data: e.data,
            dim: e.dim as u32,
            truncated: e.truncated.iter().map(|&i| i as u32).collect(),
            seq_len: e.seq_len as u32,
        })
    }

    /// Classifies a tokenized batch; the answer is the JSON of `cairn_text::Classification`
    /// per text. `aggregate` "simple" merges a token classifier's labels into entities, whose
    /// text comes from `texts_json` (the batch's texts, a JSON array of strings).
    pub fn classify(&self, batch: &TokenBatchInput, aggregate: Option<String>, texts_json: Option<String>) -> Result<String, JsError> {
        let aggregation = match aggregate.as_deref() {
            None => Aggregation::None,
            Some(a) => Aggregation::parse(a)
                .ok_or_else(|| JsError::new(&format!("aggregate '{a}' is not one of {}", Aggregation::NAMES.join(", "))))?,
        };
        let mut c = self.text_model()?.classify_batch(&self.session, &batch.batch).map_err(js_err)?;
        if aggregation == Aggregation::Simple {
            let texts: Vec<String> = serde_json::from_str(texts_json.as_deref().unwrap_or("[]")).map_err(js_err)?;
            if texts.len() != c.len() {
                return Err(JsError::new(&format!("{} texts for a batch of {}: aggregation needs each text", texts.len(), c.len())));
            }
            aggregation.apply(&mut c, &texts);
        }
        serde_json::to_string(&c).map_err(js_err)
    }

    /// The bundle's max length in tokens (0 for a model without a text task).
    #[wasm_bindgen(js_name = maxLength)]
    pub fn max_length(&self) -> u32 {
        self.text.as_ref().map_or(0, |m| m.task().max_length as u32)
    }
}

impl Model {
    fn text_model(&self) -> Result<&TextModel, JsError> {
        self.text.as_ref().ok_or_else(|| {
            JsError::new("this model has no text task enabled: it is not a text bundle, or its tokenizer.json was not loaded")
        })
    }
}
