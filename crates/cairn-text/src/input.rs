//! What a text pipeline takes: a text, or a pair of texts (a query and a passage, a premise and
//! a hypothesis: what cross-encoder rerankers and NLI classifiers are trained on; the
//! tokenizer joins them with its `pair` template and type ids 0 and 1).

/// One input as JSON: `"..."`, `{"text": "..."}` or `{"text": "...", "text_pair": "..."}`
/// (Hugging Face's names), in the CLI's JSON lines, the edge's bodies and the browser's
/// tokenizer module alike.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum TextInput {
    Text(String),
    Item {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text_pair: Option<String>,
    },
}

impl TextInput {
    pub fn text(&self) -> &str {
        match self {
            TextInput::Text(text) | TextInput::Item { text, .. } => text,
        }
    }

    pub fn pair(&self) -> Option<&str> {
        match self {
            TextInput::Text(_) => None,
            TextInput::Item { text_pair, .. } => text_pair.as_deref(),
        }
    }

    /// `(text, pair)`, the form the tokenizer and the pipelines take.
    pub fn as_refs(&self) -> (&str, Option<&str>) {
        (self.text(), self.pair())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_objects_and_pairs() {
        let inputs: Vec<TextInput> = serde_json::from_str(r#"["a", {"text": "b"}, {"text": "q", "text_pair": "p"}]"#).unwrap();
        let refs: Vec<_> = inputs.iter().map(TextInput::as_refs).collect();
        assert_eq!(refs, [("a", None), ("b", None), ("q", Some("p"))]);
        assert!(serde_json::from_str::<TextInput>(r#"{"text_pair": "p"}"#).is_err());
        assert!(serde_json::from_str::<TextInput>("3").is_err());
    }
}
