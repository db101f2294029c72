//! A tokenized, padded batch: what a text model runs on. Kept apart from the tokenizer so
//! that a build without the `tokenizers` crate (the browser engine, whose tokenizer is a
//! separate wasm module: docs/adr/0026) can still run text models on batches made elsewhere.

/// Texts tokenized and padded to the longest: row-major `[batch, seq_len]` arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub batch: usize,
    pub seq_len: usize,
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub offsets: Vec<Vec<(usize, usize)>>,
    /// Indices of the texts cut to the maximum length.
    pub truncated: Vec<usize>,
}

impl Batch {
    /// Checks that the arrays have the sizes `batch` and `seq_len` promise: a batch from
    /// another module (the browser's tokenizer build) is input like any other.
    pub fn check(&self) -> Result<(), String> {
        let cells = self.batch.checked_mul(self.seq_len).ok_or("batch x seq_len overflows")?;
        for (name, len) in [("ids", self.ids.len()), ("type_ids", self.type_ids.len()), ("attention_mask", self.attention_mask.len())] {
            if len != cells {
                return Err(format!("{name} has {len} values; a batch of {} x {} tokens needs {cells}", self.batch, self.seq_len));
            }
        }
        if self.offsets.len() != self.batch || self.offsets.iter().any(|o| o.len() != self.seq_len) {
            return Err(format!("offsets must be {} rows of {} (start, end) pairs", self.batch, self.seq_len));
        }
        if let Some(&i) = self.truncated.iter().find(|&&i| i >= self.batch) {
            return Err(format!("truncated text index {i} is outside the batch of {}", self.batch));
        }
        Ok(())
    }
}
