//! The text task a bundle serves (`manifest.text`): which tokenizer file it carries and how the
//! model's output becomes an embedding or labels. Pure data here; `cairn-text` runs it.

use serde::{Deserialize, Serialize};

/// The bundle path of the tokenizer file (`DIR/tokenizer.json`).
pub const TOKENIZER_PATH: &str = "tokenizer.json";

/// Largest tokenizer.json a bundle may carry (the biggest public ones are ~20 MiB).
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Sentence embeddings: token states pooled to one vector per text.
    FeatureExtraction,
    /// One label per text (logits of shape `[batch, labels]`).
    TextClassification,
    /// One label per token (logits of shape `[batch, tokens, labels]`).
    TokenClassification,
}

impl TaskKind {
    pub const NAMES: [&'static str; 3] = ["feature-extraction", "text-classification", "token-classification"];

    pub fn parse(name: &str) -> Option<TaskKind> {
        match name {
            "feature-extraction" => Some(TaskKind::FeatureExtraction),
            "text-classification" => Some(TaskKind::TextClassification),
            "token-classification" => Some(TaskKind::TokenClassification),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The mean of the token states under the attention mask (sentence-transformers' default).
    #[default]
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
    /// The element-wise maximum over unmasked tokens.
    Max,
}

impl Pooling {
    pub const NAMES: [&'static str; 3] = ["mean", "cls", "max"];

    pub fn parse(name: &str) -> Option<Pooling> {
        match name {
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "max" => Some(Pooling::Max),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TextTask {
    pub task: TaskKind,
    /// The tokenizer file in the bundle, checked like a shard before use.
    pub tokenizer: TokenizerFile,
    /// Texts longer than this many tokens (special tokens included) are truncated.
    pub max_length: usize,
    #[serde(default)]
    pub pooling: Pooling,
    /// L2-normalize embeddings (cosine similarity becomes a dot product).
    #[serde(default)]
    pub normalize: bool,
    /// The model output the task reads (its first output when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Class names for the classification tasks, in logit order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenizerFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

impl TextTask {
    /// The checks `Manifest::check` runs on a bundle's text task.
    pub fn check(&self) -> Result<(), String> {
        if self.tokenizer.path != TOKENIZER_PATH {
            return Err(format!("text.tokenizer.path must be '{TOKENIZER_PATH}', got '{}'", self.tokenizer.path));
        }
        if self.tokenizer.sha256.len() != 64 || !self.tokenizer.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("text.tokenizer.sha256 must be 64 hex digits".into());
        }
        if self.tokenizer.bytes > MAX_TOKENIZER_BYTES {
            return Err(format!("text.tokenizer is {} bytes, more than the {MAX_TOKENIZER_BYTES} allowed", self.tokenizer.bytes));
        }
        if self.max_length < 2 {
            return Err(format!("text.max_length is {}, it must leave room for at least one token besides specials", self.max_length));
        }
        let classifies = matches!(self.task, TaskKind::TextClassification | TaskKind::TokenClassification);
        if classifies && self.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Err("a classification task needs its labels (pack with --labels FILE)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TextTask {
        TextTask {
            task: TaskKind::FeatureExtraction,
            tokenizer: TokenizerFile { path: TOKENIZER_PATH.into(), sha256: "a".repeat(64), bytes: 10 },
            max_length: 128,
            pooling: Pooling::Mean,
            normalize: true,
            output: None,
            labels: None,
        }
    }

    #[test]
    fn round_trips_through_json_with_kebab_names() {
        let json = serde_json::to_string(&task()).unwrap();
        assert!(json.contains("\"feature-extraction\"") && json.contains("\"mean\""), "{json}");
        assert_eq!(serde_json::from_str::<TextTask>(&json).unwrap(), task());
    }

    #[test]
    fn rejects_bad_paths_hashes_lengths_and_missing_labels() {
        let mut t = task();
        t.tokenizer.path = "../etc/passwd".into();
        assert!(t.check().unwrap_err().contains("tokenizer.path"));
        let mut t = task();
        t.tokenizer.sha256 = "xyz".into();
        assert!(t.check().unwrap_err().contains("sha256"));
        let mut t = task();
        t.max_length = 1;
        assert!(t.check().unwrap_err().contains("max_length"));
        let mut t = task();
        t.task = TaskKind::TextClassification;
        assert!(t.check().unwrap_err().contains("labels"));
        t.labels = Some(vec!["neg".into(), "pos".into()]);
        assert!(t.check().is_ok());
    }
}
