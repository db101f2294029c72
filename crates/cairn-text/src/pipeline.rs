//! The text pipelines over a Cairn session: texts -> tokenizer -> the model's integer inputs
//! (in the dtypes the model declares) -> run -> pooled embeddings or labels.
//!
//! [`TextModel`] is the part after the tokenizer (a [`Batch`] in, embeddings or labels out);
//! [`TextPipeline`] puts the tokenizer in front of it. The browser engine uses `TextModel`
//! alone: its tokenizer is a separate wasm module that only text apps download.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::pooling::{normalize_rows, pool, Pooling};
#[cfg(feature = "tokenizer")]
use crate::tokenizer::TextTokenizer;
use cairn_bundle::text_task::{TaskKind, TextTask};
use cairn_core::{DType, Graph, Session, Tensor, TensorData};
use std::collections::HashMap;

/// How `embed` pools and whether it normalizes (defaults: the bundle's task config).
#[derive(Clone, Copy, Debug)]
pub struct EmbedOptions {
    pub pooling: Pooling,
    pub normalize: bool,
}

/// Embeddings of a batch of texts: `data` is `[texts, dim]`, row-major.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Embeddings {
    pub data: Vec<f32>,
    pub dim: usize,
    /// Indices of texts cut to the maximum length.
    pub truncated: Vec<usize>,
    /// Tokens per row of the padded batch the model ran on.
    pub seq_len: usize,
}

/// One text's (or token's) predicted label.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Label {
    pub label: String,
    pub index: usize,
    pub score: f32,
}

/// The classification of one text: its best label and every label's probability.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Classification {
    #[serde(flatten)]
    pub best: Label,
    pub scores: Vec<f32>,
    /// Token classification only: one label per non-special token with its character span
    /// (empty for a text without tokens, absent for text classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<(Label, (usize, usize))>>,
    /// Token classification with [`Aggregation::Simple`]: the tokens merged into entities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<Entity>>,
    pub truncated: bool,
}

/// Adjacent tokens of one entity type, merged: a name split into word pieces is one entity.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Entity {
    /// The entity type: the tokens' label without its `B-` / `I-` prefix.
    pub label: String,
    /// The mean of the tokens' scores.
    pub score: f32,
    /// `[start, end)` in Unicode characters of the text, first token's start to last token's end.
    pub start: usize,
    pub end: usize,
    /// The text's characters in that span.
    pub text: String,
}

/// What `classify` returns per token of a token classifier: its label (`None`), or the
/// labels merged into entities (`Simple`, Hugging Face's "simple" aggregation: a token
/// starts a new entity when its type differs from the previous token's or its label is
/// `B-...`; entities of type `O` are dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Aggregation {
    #[default]
    None,
    Simple,
}

impl Aggregation {
    pub const NAMES: [&'static str; 2] = ["none", "simple"];

    pub fn parse(name: &str) -> Option<Aggregation> {
        match name {
            "none" => Some(Aggregation::None),
            "simple" => Some(Aggregation::Simple),
            _ => None,
        }
    }

    /// Applies this aggregation to `results`, each the classification of the text at its
    /// index in `texts` (the spans of its tokens index that text's characters).
    pub fn apply(self, results: &mut [Classification], texts: &[impl AsRef<str>]) {
        if self == Aggregation::Simple {
            results.iter_mut().zip(texts).for_each(|(r, text)| r.group_entities(text.as_ref()));
        }
    }
}

impl Classification {
    /// Merges a token classification's tokens into entities (see [`Aggregation::Simple`]);
    /// `text` is the classified text (the spans index its characters). Nothing for text
    /// classification.
    pub fn group_entities(&mut self, text: &str) {
        let Some(tokens) = &self.tokens else { return };
        let chars: Vec<char> = text.chars().collect();
        let mut entities: Vec<(Entity, usize)> = Vec::new(); // with its token count
        for (label, (start, end)) in tokens {
            let (begins, kind) = match label.label.split_once('-') {
                Some(("B", kind)) => (true, kind),
                Some(("I", kind)) => (false, kind),
                _ => (false, label.label.as_str()),
            };
            match entities.last_mut() {
                Some((e, n)) if !begins && e.label == kind => {
                    e.end = *end;
                    e.score += label.score;
                    *n += 1;
                }
                _ => entities
                    .push((Entity { label: kind.to_string(), score: label.score, start: *start, end: *end, text: String::new() }, 1)),
            }
        }
        self.entities = Some(
            entities
                .into_iter()
                .filter(|(e, _)| e.label != "O")
                .map(|(mut e, n)| {
                    e.score /= n as f32;
                    e.text = chars.get(e.start..e.end.min(chars.len())).map(|c| c.iter().collect()).unwrap_or_default();
                    e
                })
                .collect(),
        );
    }
}

/// Which tokenizer array feeds a model input.
#[derive(Clone, Copy, Debug)]
enum Feed {
    Ids,
    Mask,
    TypeIds,
    Positions,
}

/// A text task over a model, after tokenization: built once per model from its graph's
/// inputs; each call runs on a session of that graph (the caller owns it, so a server can
/// share it between tasks).
pub struct TextModel {
    task: TextTask,
    feeds: Vec<(String, Feed, DType)>,
}

impl TextModel {
    pub fn new(graph: &Graph, task: TextTask) -> Result<TextModel> {
        let mut feeds = Vec::new();
        for input in graph.runtime_inputs() {
            let feed = match input.name.as_str() {
                n if n.contains("input_ids") => Feed::Ids,
                n if n.contains("attention_mask") => Feed::Mask,
                n if n.contains("token_type_ids") => Feed::TypeIds,
                n if n.contains("position_ids") => Feed::Positions,
                other => return Err(Error::UnknownInput(other.to_string())),
            };
            feeds.push((input.name.clone(), feed, input.dtype));
        }
        if !feeds.iter().any(|(_, f, _)| matches!(f, Feed::Ids)) {
            let names: Vec<&str> = feeds.iter().map(|(n, _, _)| n.as_str()).collect();
            return Err(Error::NoInputIds(names.join(", ")));
        }
        Ok(TextModel { task, feeds })
    }

    pub fn task(&self) -> &TextTask {
        &self.task
    }

    pub fn default_embed_options(&self) -> EmbedOptions {
        EmbedOptions { pooling: self.task.pooling, normalize: self.task.normalize }
    }

    /// Embeds a tokenized batch.
    pub fn embed_batch(&self, session: &Session, batch: &Batch, opts: EmbedOptions) -> Result<Embeddings> {
        self.expect_task(TaskKind::FeatureExtraction, "embed")?;
        let (shape, hidden) = self.run(session, batch)?;
        let (mut data, dim) = match shape[..] {
            // Token states: pool them.
            [b, n, d] if b == batch.batch && n == batch.seq_len => (pool(&hidden, &batch.attention_mask, b, n, d, opts.pooling), d),
            // The model pools itself.
            [b, d] if b == batch.batch => (hidden, d),
            _ => return Err(self.shape_err(shape, "embed", "[batch, tokens, dim] or [batch, dim]")),
        };
        if opts.normalize {
            normalize_rows(&mut data, dim);
        }
        Ok(Embeddings { data, dim, truncated: batch.truncated.clone(), seq_len: batch.seq_len })
    }

    /// Classifies each text (text-classification) or each of its tokens (token-classification)
    /// of a tokenized batch.
    pub fn classify_batch(&self, session: &Session, batch: &Batch) -> Result<Vec<Classification>> {
        let labels = self.task.labels.clone().unwrap_or_default();
        let (shape, logits) = self.run(session, batch)?;
        let label_of = |scores: &[f32]| -> Label {
            let (index, &score) = scores.iter().enumerate().fold((0, &f32::MIN), |best, x| if x.1 > best.1 { x } else { best });
            Label { label: labels.get(index).cloned().unwrap_or_else(|| format!("LABEL_{index}")), index, score }
        };
        match (self.task.task, &shape[..]) {
            (TaskKind::TextClassification, &[b, k]) if b == batch.batch && k == labels.len() => Ok(logits
                .chunks_exact(k)
                .enumerate()
                .map(|(i, row)| {
                    let scores = softmax(row);
                    Classification {
                        best: label_of(&scores),
                        scores,
                        tokens: None,
                        entities: None,
                        truncated: batch.truncated.contains(&i),
                    }
                })
                .collect()),
            (TaskKind::TokenClassification, &[b, n, k]) if b == batch.batch && n == batch.seq_len && k == labels.len() => Ok((0..b)
                .map(|i| {
                    let tokens = (0..n)
                        .filter(|&t| batch.attention_mask[i * n + t] != 0 && batch.offsets[i][t] != (0, 0))
                        .map(|t| (label_of(&softmax(&logits[(i * n + t) * k..(i * n + t + 1) * k])), batch.offsets[i][t]))
                        .collect::<Vec<_>>();
                    let best = tokens.first().map(|t| t.0.clone()).unwrap_or(Label { label: String::new(), index: 0, score: 0.0 });
                    Classification {
                        best,
                        scores: Vec::new(),
                        tokens: Some(tokens),
                        entities: None,
                        truncated: batch.truncated.contains(&i),
                    }
                })
                .collect()),
            (TaskKind::FeatureExtraction, _) => {
                Err(Error::WrongTask { have: "feature-extraction", want: "classify", need: "text-classification or token-classification" })
            }
            _ => {
                Err(self.shape_err(shape, "classify", "[batch, labels] (text) or [batch, tokens, labels] (token), labels as in the bundle"))
            }
        }
    }

    /// Runs the model on a tokenized batch; returns the task's output shape and values.
    fn run(&self, session: &Session, batch: &Batch) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = vec![batch.batch, batch.seq_len];
        let mut inputs = HashMap::new();
        for (name, feed, dtype) in &self.feeds {
            let values = match feed {
                Feed::Ids => batch.ids.clone(),
                Feed::Mask => batch.attention_mask.clone(),
                Feed::TypeIds => batch.type_ids.clone(),
                Feed::Positions => (0..batch.batch).flat_map(|_| 0..batch.seq_len as i64).collect(),
            };
            inputs.insert(name.clone(), integer_tensor(shape.clone(), values, *dtype)?);
        }
        let outputs = session.run(inputs)?;
        let (_, tensor) = match &self.task.output {
            Some(want) => outputs.into_iter().find(|(n, _)| n == want).ok_or_else(|| Error::NoOutput(want.clone()))?,
            None => outputs.into_iter().next().ok_or_else(|| Error::NoOutput("(first output)".into()))?,
        };
        Ok((tensor.shape().to_vec(), tensor.view().to_f32_vec()))
    }

    fn expect_task(&self, want: TaskKind, call: &'static str) -> Result<()> {
        if self.task.task == want {
            return Ok(());
        }
        Err(Error::WrongTask { have: task_name(self.task.task), want: call, need: task_name(want) })
    }

    fn shape_err(&self, shape: Vec<usize>, task: &'static str, needs: &'static str) -> Error {
        Error::OutputShape { name: self.task.output.clone().unwrap_or_else(|| "(first output)".into()), shape, task, needs }
    }
}

/// A tokenizer in front of a [`TextModel`]: texts in, embeddings or labels out (the CLI and
/// the edge server).
#[cfg(feature = "tokenizer")]
pub struct TextPipeline {
    tokenizer: TextTokenizer,
    model: TextModel,
}

#[cfg(feature = "tokenizer")]
impl TextPipeline {
    pub fn new(graph: &Graph, tokenizer: TextTokenizer, task: TextTask) -> Result<TextPipeline> {
        Ok(TextPipeline { tokenizer, model: TextModel::new(graph, task)? })
    }

    pub fn task(&self) -> &TextTask {
        self.model.task()
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn default_embed_options(&self) -> EmbedOptions {
        self.model.default_embed_options()
    }

    /// Embeds `texts` as one padded batch.
    pub fn embed(&self, session: &Session, texts: &[&str], opts: EmbedOptions) -> Result<Embeddings> {
        // The task is checked before tokenizing: a wrong-task call costs nothing.
        self.model.expect_task(TaskKind::FeatureExtraction, "embed")?;
        self.model.embed_batch(session, &self.tokenizer.encode_batch(texts)?, opts)
    }

    /// Classifies each text (text-classification) or each of its tokens (token-classification,
    /// merged into entities with [`Aggregation::Simple`]).
    pub fn classify(&self, session: &Session, texts: &[&str], aggregation: Aggregation) -> Result<Vec<Classification>> {
        let mut results = self.model.classify_batch(session, &self.tokenizer.encode_batch(texts)?)?;
        aggregation.apply(&mut results, texts);
        Ok(results)
    }

    /// [`TextPipeline::classify`] of texts and text pairs (`(text, Some(pair))`: a query and a
    /// passage for a cross-encoder, a premise and a hypothesis for NLI). Pairs need a
    /// text-classification bundle: a token classifier labels the tokens of one text.
    pub fn classify_inputs(
        &self,
        session: &Session,
        inputs: &[(&str, Option<&str>)],
        aggregation: Aggregation,
    ) -> Result<Vec<Classification>> {
        if inputs.iter().all(|(_, pair)| pair.is_none()) {
            let texts: Vec<&str> = inputs.iter().map(|(text, _)| *text).collect();
            return self.classify(session, &texts, aggregation);
        }
        self.model.expect_task(TaskKind::TextClassification, "classifying text pairs")?;
        self.model.classify_batch(session, &self.tokenizer.encode_batch_inputs(inputs)?)
    }
}

fn task_name(t: TaskKind) -> &'static str {
    match t {
        TaskKind::FeatureExtraction => "feature-extraction",
        TaskKind::TextClassification => "text-classification",
        TaskKind::TokenClassification => "token-classification",
    }
}

/// Token ids and masks in the integer type the model declares (int64 for most exports).
fn integer_tensor(shape: Vec<usize>, values: Vec<i64>, dtype: DType) -> Result<Tensor> {
    let data = match dtype {
        DType::I32 => TensorData::I32(values.into_iter().map(|v| v as i32).collect()),
        _ => TensorData::I64(values),
    };
    Ok(Tensor::new(shape, data)?)
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(label: &str, score: f32, span: (usize, usize)) -> (Label, (usize, usize)) {
        (Label { label: label.into(), index: 0, score }, span)
    }

    /// Word pieces of one name become one entity; `B-` starts a new one even of the same
    /// type; `O` runs are dropped; spans and text are in characters (the accent is one).
    #[test]
    fn simple_aggregation_merges_word_pieces_into_entities() {
        let text = "Zoë met Ann Lee in Lyon";
        let tokens = vec![
            token("B-PER", 0.9, (0, 2)),
            token("I-PER", 0.7, (2, 3)),
            token("O", 0.99, (3, 7)),
            token("B-PER", 0.8, (7, 11)),
            token("B-PER", 0.6, (11, 15)),
            token("O", 0.95, (15, 18)),
            token("LOC", 0.5, (18, 20)),
            token("LOC", 0.7, (20, 23)),
        ];
        let mut c =
            Classification { best: tokens[0].0.clone(), scores: Vec::new(), tokens: Some(tokens), entities: None, truncated: false };
        c.group_entities(text);
        let got: Vec<(&str, &str, (usize, usize))> =
            c.entities.as_ref().unwrap().iter().map(|e| (e.label.as_str(), e.text.as_str(), (e.start, e.end))).collect();
        assert_eq!(got, [("PER", "Zoë", (0, 3)), ("PER", " Ann", (7, 11)), ("PER", " Lee", (11, 15)), ("LOC", " Lyon", (18, 23))]);
        let e = c.entities.unwrap();
        assert!((e[0].score - 0.8).abs() < 1e-6 && (e[3].score - 0.6).abs() < 1e-6, "mean of the tokens' scores");

        // Text classification has no tokens to merge.
        let mut t = Classification {
            best: Label { label: "x".into(), index: 0, score: 1.0 },
            scores: vec![1.0],
            tokens: None,
            entities: None,
            truncated: false,
        };
        t.group_entities("anything");
        assert!(t.entities.is_none());
    }
}
