//! The text tasks of a text bundle under `/v1`: `POST /v1/models/{name}/embed` and
//! `POST /v1/models/{name}/classify`, with a JSON body `{"texts": ["...", ...]}` (or `"text"`;
//! `"aggregate": "simple"` merges a token classifier's labels into entities). A text of
//! `classify` may be a pair, `{"text": "...", "text_pair": "..."}` (a cross-encoder's query and
//! passage, an NLI premise and hypothesis), for a text-classification bundle.
//! Tokenizing and the model run happen on a compute slot, like every other inference.
//! `POST /v1/models/{name}/tokenize` takes the same texts (pairs too) and answers what the
//! bundle's tokenizer makes of them (ids, attention mask, offsets, tokens, which text each token
//! came from, truncation), as `cairn tokenize --json` prints it; no model runs, so it runs on a
//! blocking thread rather than a compute slot.

use crate::api::{json_response, submit_error};
use crate::error::ApiError;
use crate::models::ServedModel;
use crate::App;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_text::{Aggregation, EmbedOptions, Pooling, TaskKind, TextInput, TextPipeline, TextTokenizer, TokenizedText};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Most texts one request may carry (each is one row of the batch the model runs).
const MAX_TEXTS: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRequest {
    #[serde(default)]
    texts: Option<Vec<TextInput>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    pooling: Option<String>,
    #[serde(default)]
    normalize: Option<bool>,
    /// Token classification: "none" (a label per token) or "simple" (merged into entities).
    #[serde(default)]
    aggregate: Option<String>,
}

impl TextRequest {
    fn aggregation(&self) -> Result<Aggregation, ApiError> {
        match &self.aggregate {
            None => Ok(Aggregation::None),
            Some(a) => Aggregation::parse(a)
                .ok_or_else(|| ApiError::bad_request(format!("aggregate '{a}' is not one of {}", Aggregation::NAMES.join(", ")))),
        }
    }

    fn texts(self) -> Result<(Vec<TextInput>, Option<String>, Option<bool>), ApiError> {
        let texts = match (self.texts, self.text) {
            (Some(t), None) => t,
            (None, Some(t)) => vec![TextInput::Text(t)],
            _ => return Err(ApiError::bad_request("give either \"texts\": [...] or \"text\": \"...\"")),
        };
        if texts.is_empty() || texts.len() > MAX_TEXTS {
            return Err(ApiError::bad_request(format!("{} texts; a request carries 1 to {MAX_TEXTS}", texts.len())));
        }
        Ok((texts, self.pooling, self.normalize))
    }
}

/// Pipelines by model name and version, built on first use (reading a tokenizer.json takes
/// tens of milliseconds, so not once per request).
fn pipeline(app: &App, model: &ServedModel) -> Result<Arc<TextPipeline>, ApiError> {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Arc<TextPipeline>>>> = OnceLock::new();
    let key = (model.name.clone(), model.manifest.version.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().map_err(|_| ApiError::internal("text pipeline cache poisoned"))?.get(&key) {
        return Ok(p.clone());
    }
    let task = model.manifest.text.clone().ok_or_else(|| {
        ApiError::bad_request(format!("model '{}' is not a text model", model.name))
            .hint("pack it with --tokenizer tokenizer.json --task feature-extraction|text-classification")
    })?;
    let dir = app.root.join("models").join(&model.name);
    let bytes = cairn_bundle::read_tokenizer(&dir, &model.manifest).map_err(|e| ApiError::internal(e.to_string()))?;
    let tokenizer = TextTokenizer::from_json(&bytes, Some(task.max_length)).map_err(|e| ApiError::internal(e.to_string()))?;
    let built = Arc::new(TextPipeline::new(model.session.graph(), tokenizer, task).map_err(|e| ApiError::internal(e.to_string()))?);
    cache.lock().map_err(|_| ApiError::internal("text pipeline cache poisoned"))?.insert(key, built.clone());
    Ok(built)
}

pub async fn embed(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Result<Json<TextRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    run(app, name, body, Task::Embed).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn classify(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Result<Json<TextRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    run(app, name, body, Task::Classify).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn tokenize(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Result<Json<TextRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    tokenize_texts(app, name, body).await.unwrap_or_else(IntoResponse::into_response)
}

enum Task {
    Embed,
    Classify,
}

/// The request body, or a 400 saying what a text request looks like.
fn parse_body(body: Result<Json<TextRequest>, axum::extract::rejection::JsonRejection>) -> Result<TextRequest, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!("the body is not a text request: {}", e.body_text()))
            .hint("send {\"texts\": [\"...\"]} as application/json")
    })?;
    Ok(req)
}

async fn tokenize_texts(
    app: Arc<App>,
    name: String,
    body: Result<Json<TextRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let model = app.models().find(&name, None)?;
    let req = parse_body(body)?;
    if req.pooling.is_some() || req.normalize.is_some() || req.aggregate.is_some() {
        return Err(ApiError::bad_request("pooling, normalize and aggregate are options of /embed and /classify")
            .hint("send {\"texts\": [...]} (or \"text\") alone to /tokenize"));
    }
    let (texts, _, _) = req.texts()?;
    let pipeline = pipeline(&app, &model)?;
    let started = std::time::Instant::now();
    let p = pipeline.clone();
    let results = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let (text, text_pair) = input.as_refs();
                let encoding = p.tokenizer().encode_input(text, text_pair).map_err(|e| format!("text {i}: {e}"))?;
                serde_json::to_value(TokenizedText { text, text_pair, encoding }).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))?
    .map_err(ApiError::bad_request)?;
    let doc = serde_json::json!({
        "model": model.name,
        "version": model.manifest.version,
        "where": "edge",
        "max_length": pipeline.task().max_length,
        "results": results,
        "timings": {"total_ms": started.elapsed().as_secs_f64() * 1e3},
    });
    Ok(json_response(axum::http::StatusCode::OK, &doc))
}

async fn run(
    app: Arc<App>,
    name: String,
    body: Result<Json<TextRequest>, axum::extract::rejection::JsonRejection>,
    task: Task,
) -> Result<Response, ApiError> {
    let model = app.models().find(&name, None)?;
    let req = parse_body(body)?;
    let aggregation = req.aggregation()?;
    let (texts, pooling, normalize) = req.texts()?;
    let pipeline = pipeline(&app, &model)?;
    let kind = pipeline.task().task;
    let fits = match task {
        Task::Embed => kind == TaskKind::FeatureExtraction,
        Task::Classify => kind != TaskKind::FeatureExtraction,
    };
    if let Some(i) =
        texts.iter().position(|t| t.pair().is_some()).filter(|_| !matches!((&task, kind), (Task::Classify, TaskKind::TextClassification)))
    {
        let why = match task {
            Task::Embed => "embeddings are of single texts".to_string(),
            Task::Classify => {
                format!("model '{}' is a {} model, and pairs need a text-classification one", model.name, TaskKind::NAMES[kind as usize])
            }
        };
        return Err(
            ApiError::bad_request(format!("text {i} is a pair: {why}")).hint("send pairs to a cross-encoder or NLI model's /classify")
        );
    }
    if !fits {
        let (want, use_instead) = match task {
            Task::Embed => ("embed", "classify"),
            Task::Classify => ("classify", "embed"),
        };
        return Err(ApiError::bad_request(format!("model '{}' cannot {want}: its task is {}", model.name, TaskKind::NAMES[kind as usize]))
            .hint(format!("POST /v1/models/{}/{use_instead}", model.name)));
    }
    let mut opts: EmbedOptions = EmbedOptions { pooling: pipeline.task().pooling, normalize: pipeline.task().normalize };
    if let Some(p) = pooling {
        opts.pooling = Pooling::parse(&p)
            .ok_or_else(|| ApiError::bad_request(format!("pooling '{p}' is not one of {}", Pooling::NAMES.join(", "))))?;
    }
    opts.normalize = normalize.unwrap_or(opts.normalize);
    let started = std::time::Instant::now();
    let p = pipeline.clone();
    let doc = model
        .batcher
        .exclusive(true, move |session, _| {
            let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(TextInput::as_refs).collect();
            let refs: Vec<&str> = inputs.iter().map(|(text, _)| *text).collect();
            match task {
                Task::Embed => p.embed(session, &refs, opts).map(|e| {
                    let rows: Vec<&[f32]> = e.data.chunks_exact(e.dim.max(1)).collect();
                    serde_json::json!({"dim": e.dim, "embeddings": rows, "truncated": e.truncated})
                }),
                Task::Classify => p.classify_inputs(session, &inputs, aggregation).map(|c| serde_json::json!({"results": c})),
            }
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(submit_error)?;
    let mut doc = doc;
    doc["model"] = model.name.clone().into();
    doc["version"] = model.manifest.version.clone().into();
    doc["where"] = "edge".into();
    doc["max_length"] = pipeline.task().max_length.into();
    doc["timings"] = serde_json::json!({"total_ms": started.elapsed().as_secs_f64() * 1e3});
    Ok(json_response(axum::http::StatusCode::OK, &doc))
}
