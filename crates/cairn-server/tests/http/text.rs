//! `/v1/models/{name}/embed` and `/classify` over real HTTP on text bundles built here: the
//! byte-level BPE tokenizer.json fixture of cairn-text (800 tokens) and tiny encoders (an
//! embedding table, masked; a mean-pool + linear classifier). Answers are checked against
//! the same arithmetic done by hand on the tokenizer's ids, and the text model also answers
//! typed `/infer` with its int64 ids. Bad bodies get 400 with a hint.

use crate::common::{node, values, Server};
use axum::http::StatusCode;
use cairn_bundle::text_task::{Pooling, TaskKind, TextTask, TokenizerFile};
use cairn_bundle::{pack, write_bundle, PackOptions};
use cairn_core::{Attr, DType, Dim, Graph, Tensor, TensorData, ValueInfo};
use cairn_server::Config;
use cairn_text::TextTokenizer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const VOCAB: usize = 800;
const DIM: usize = 8;
const LABELS: [&str; 3] = ["negative", "neutral", "positive"];
const MAX_LENGTH: usize = 16;

fn tokenizer_json() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../cairn-text/tests/fixtures/bpe.tokenizer.json")).unwrap()
}

fn table() -> Vec<f32> {
    values(VOCAB * DIM, 11, 1.0)
}

fn classifier_weights() -> Vec<f32> {
    values(LABELS.len() * DIM, 12, 1.0)
}

fn text_info(name: &str, dtype: DType, dims: Vec<Dim>) -> ValueInfo {
    ValueInfo { name: name.into(), dtype, dims: Some(dims) }
}

/// input_ids, attention_mask (i64 [batch, seq]) -> Gather(table) * mask -> hidden [batch, seq, 8];
/// with `classify`, then ReduceMean over seq -> Gemm -> logits [batch, 3].
fn encoder(classify: bool) -> Graph {
    let (b, s) = (Dim::Sym("batch".into()), Dim::Sym("seq".into()));
    let mut nodes = vec![
        node("embed", "Gather", &["table", "input_ids"], "tokens", vec![]),
        node("mask_f", "Cast", &["attention_mask"], "mask_f", vec![("to", Attr::Int(1))]),
        node("mask_3d", "Unsqueeze", &["mask_f", "axis2"], "mask_3d", vec![]),
        node("masked", "Mul", &["tokens", "mask_3d"], "hidden", vec![]),
    ];
    let mut initializers = HashMap::from([
        ("table".to_string(), Arc::new(Tensor::from_f32(vec![VOCAB, DIM], table()).unwrap())),
        ("axis2".to_string(), Arc::new(Tensor::new(vec![1], TensorData::I64(vec![2])).unwrap())),
    ]);
    let output = if classify {
        nodes.push(node("pool", "ReduceMean", &["hidden"], "pooled", vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))]));
        nodes.push(node("fc", "Gemm", &["pooled", "w"], "logits", vec![("transB", Attr::Int(1))]));
        initializers.insert("w".into(), Arc::new(Tensor::from_f32(vec![LABELS.len(), DIM], classifier_weights()).unwrap()));
        text_info("logits", DType::F32, vec![b.clone(), Dim::Known(LABELS.len())])
    } else {
        text_info("hidden", DType::F32, vec![b.clone(), s.clone(), Dim::Known(DIM)])
    };
    Graph {
        inputs: vec![text_info("input_ids", DType::I64, vec![b.clone(), s.clone()]), text_info("attention_mask", DType::I64, vec![b, s])],
        outputs: vec![output],
        initializers,
        nodes,
        opset: 17,
    }
    .validated()
    .unwrap()
}

fn pack_text(root: &Path, name: &str, task: TaskKind) {
    let text = TextTask {
        task,
        tokenizer: TokenizerFile { path: String::new(), sha256: String::new(), bytes: 0 },
        max_length: MAX_LENGTH,
        pooling: Pooling::Mean,
        normalize: task == TaskKind::FeatureExtraction,
        output: None,
        labels: (task != TaskKind::FeatureExtraction).then(|| LABELS.iter().map(|l| l.to_string()).collect()),
    };
    let options = PackOptions { name: name.into(), text: Some((text, tokenizer_json())), ..PackOptions::default() };
    let packed = pack(&encoder(task != TaskKind::FeatureExtraction), &options).unwrap();
    write_bundle(&root.join("models").join(name), &packed, |_| {}).unwrap();
}

/// Text models are not warmed at start (their sequence length comes with each request).
async fn text_server(root: &Path) -> Server {
    Server::start_expecting(Config::new(root), &["symbolic sizes past the batch dim"]).await
}

fn app(tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("cairn-server-text-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    pack_text(&root, "embedder", TaskKind::FeatureExtraction);
    pack_text(&root, "sentiment", TaskKind::TextClassification);
    root
}

/// What the models compute, by hand from the tokenizer's ids: per text, the mean of its
/// unmasked token rows (normalized) and the classifier's softmax over the padded batch.
struct Expected {
    embeddings: Vec<Vec<f32>>,
    scores: Vec<Vec<f32>>,
    truncated: Vec<usize>,
}

fn expected(texts: &[&str]) -> Expected {
    expected_inputs(&texts.iter().map(|&t| (t, None)).collect::<Vec<_>>())
}

/// [`expected`] of texts and text pairs, tokenized as one batch.
fn expected_inputs(inputs: &[(&str, Option<&str>)]) -> Expected {
    let tok = TextTokenizer::from_json(&tokenizer_json(), Some(MAX_LENGTH)).unwrap();
    let batch = tok.encode_batch_inputs(inputs).unwrap();
    let (table, w) = (table(), classifier_weights());
    let (n, s) = (batch.batch, batch.seq_len);
    let mut embeddings = Vec::new();
    let mut scores = Vec::new();
    for i in 0..n {
        let mut sum = [0f32; DIM];
        let mut count = 0f32;
        for t in 0..s {
            if batch.attention_mask[i * s + t] == 1 {
                let id = batch.ids[i * s + t] as usize;
                sum.iter_mut().zip(&table[id * DIM..(id + 1) * DIM]).for_each(|(a, b)| *a += b);
                count += 1.0;
            }
        }
        let mean: Vec<f32> = sum.iter().map(|x| x / count).collect();
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        embeddings.push(mean.iter().map(|x| x / norm).collect());
        // ReduceMean in the classifier divides by the padded length.
        let pooled: Vec<f32> = sum.iter().map(|x| x / s as f32).collect();
        let logits: Vec<f32> = (0..LABELS.len()).map(|k| (0..DIM).map(|d| pooled[d] * w[k * DIM + d]).sum()).collect();
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let z: f32 = e.iter().sum();
        scores.push(e.iter().map(|x| x / z).collect());
    }
    Expected { embeddings, scores, truncated: batch.truncated }
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x} in {v}")) as f32)
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

const TEXTS: [&str; 4] = [
    "offline notes search in the browser",
    "Crème brûlée, 東京 and 🎉 emoji",
    "",
    "a very long text that goes on and on past the sixteen tokens this bundle keeps, so it is cut",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_and_classify_answer_what_the_models_compute() {
    let root = app("tasks");
    let server = text_server(&root).await;
    let want = expected(&TEXTS);
    assert!(want.truncated.contains(&3), "the long text should be cut: {:?}", want.truncated);

    let body = serde_json::to_vec(&serde_json::json!({ "texts": TEXTS })).unwrap();
    let r = server.post("/v1/models/embedder/embed", &[("content-type", "application/json")], body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["dim"].as_u64(), v["max_length"].as_u64(), v["where"].as_str()),
        (Some(DIM as u64), Some(MAX_LENGTH as u64), Some("edge"))
    );
    assert_eq!(v["truncated"], serde_json::json!(want.truncated));
    let rows = v["embeddings"].as_array().unwrap();
    assert_eq!(rows.len(), TEXTS.len());
    for (i, row) in rows.iter().enumerate() {
        assert!(close(&floats(row), &want.embeddings[i]), "text {i}: {row} vs {:?}", want.embeddings[i]);
    }
    // One text alone embeds as in the batch (padding does not leak into mean pooling).
    let r = server
        .post(
            "/v1/models/embedder/embed",
            &[("content-type", "application/json")],
            serde_json::to_vec(&serde_json::json!({ "text": TEXTS[1] })).unwrap(),
        )
        .await;
    assert!(close(&floats(&r.json()["embeddings"][0]), &want.embeddings[1]), "{}", r.text());
    // Options: max pooling, not normalized, gives another vector.
    let r = server
        .post(
            "/v1/models/embedder/embed",
            &[("content-type", "application/json")],
            serde_json::to_vec(&serde_json::json!({ "text": TEXTS[0], "pooling": "max", "normalize": false })).unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!close(&floats(&r.json()["embeddings"][0]), &want.embeddings[0]));

    let r = server.post("/v1/models/sentiment/classify", &[("content-type", "application/json")], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), TEXTS.len());
    for (i, res) in results.iter().enumerate() {
        let scores = floats(&res["scores"]);
        assert!(close(&scores, &want.scores[i]), "text {i}: {scores:?} vs {:?}", want.scores[i]);
        let best = (0..LABELS.len()).max_by(|&a, &b| want.scores[i][a].total_cmp(&want.scores[i][b])).unwrap();
        assert_eq!((res["label"].as_str(), res["index"].as_u64()), (Some(LABELS[best]), Some(best as u64)));
        assert_eq!(res["truncated"], want.truncated.contains(&i));
    }

    // A text pair (a cross-encoder's query and passage) beside a single text: what the model
    // computes on the pair's tokens, joined by the tokenizer's pair template.
    let body = serde_json::json!({ "texts": [{ "text": TEXTS[0], "text_pair": TEXTS[1] }, TEXTS[2]] });
    let r = server.post("/v1/models/sentiment/classify", &[("content-type", "application/json")], serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let want = expected_inputs(&[(TEXTS[0], Some(TEXTS[1])), (TEXTS[2], None)]);
    let results = r.json()["results"].as_array().unwrap().clone();
    for (i, res) in results.iter().enumerate() {
        assert!(close(&floats(&res["scores"]), &want.scores[i]), "input {i}: {res} vs {:?}", want.scores[i]);
    }
    assert!(!close(&floats(&results[0]["scores"]), &expected(&[TEXTS[0], TEXTS[2]]).scores[0]), "the pair is what the model saw");
}

/// `/tokenize` answers the bundle's tokenizer (its max length) for texts and pairs, field for
/// field what `TextTokenizer` gives, on either task's bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_answers_the_bundles_tokenizer() {
    let root = app("tokenize");
    let server = text_server(&root).await;
    let tok = TextTokenizer::from_json(&tokenizer_json(), Some(MAX_LENGTH)).unwrap();
    let body = serde_json::json!({ "texts": [TEXTS[0], TEXTS[3], { "text": TEXTS[1], "text_pair": TEXTS[0] }] });
    for model in ["embedder", "sentiment"] {
        let r = server
            .post(&format!("/v1/models/{model}/tokenize"), &[("content-type", "application/json")], serde_json::to_vec(&body).unwrap())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(
            (v["model"].as_str(), v["max_length"].as_u64(), v["where"].as_str()),
            (Some(model), Some(MAX_LENGTH as u64), Some("edge"))
        );
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for (res, (text, pair)) in results.iter().zip([(TEXTS[0], None), (TEXTS[3], None), (TEXTS[1], Some(TEXTS[0]))]) {
            let e = tok.encode_input(text, pair).unwrap();
            assert_eq!(res["text"], text);
            assert_eq!(res.get("text_pair").and_then(|p| p.as_str()), pair);
            assert_eq!(res["ids"], serde_json::json!(e.ids), "{text}");
            assert_eq!(res["attention_mask"], serde_json::json!(e.attention_mask));
            assert_eq!(res["offsets"], serde_json::json!(e.offsets));
            assert_eq!(res["tokens"], serde_json::json!(e.tokens));
            assert_eq!(res["sequence_ids"], serde_json::json!(e.sequence_ids));
            assert_eq!(res["truncated"], e.truncated);
        }
        assert_eq!(results[1]["truncated"], true, "the long text is cut to the bundle's max length");
        assert_eq!(results[1]["ids"].as_array().unwrap().len(), MAX_LENGTH);
        assert!(
            results[2]["sequence_ids"].as_array().unwrap().contains(&serde_json::json!(1)),
            "the pair's tokens say they came from text 1"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_model_also_takes_typed_int64_ids_on_infer() {
    let root = app("infer");
    let server = text_server(&root).await;
    let tok = TextTokenizer::from_json(&tokenizer_json(), Some(MAX_LENGTH)).unwrap();
    let batch = tok.encode_batch(&TEXTS[..2]).unwrap();
    let shape = [batch.batch, batch.seq_len];
    // int64 as decimal strings, the form a JavaScript client sends for a BigInt64Array.
    let strings = |v: &[i64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let body = serde_json::json!({ "inputs": {
        "input_ids": { "dtype": "int64", "shape": shape, "data": strings(&batch.ids) },
        "attention_mask": { "dtype": "int64", "shape": shape, "data": strings(&batch.attention_mask) },
    }});
    let r = server.post("/v1/models/sentiment/infer", &[("content-type", "application/json")], serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let want = expected(&TEXTS[..2]);
    let logits = &v["outputs"]["logits"];
    assert_eq!((logits["dtype"].as_str(), &logits["shape"]), (Some("f32"), &serde_json::json!([2, LABELS.len()])));
    let logits = floats(&logits["data"]);
    for (i, row) in logits.chunks(LABELS.len()).enumerate() {
        // The softmax of the logits /infer gives is what /classify scores.
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = row.iter().map(|l| (l - max).exp()).collect();
        let probs: Vec<f32> = e.iter().map(|x| x / e.iter().sum::<f32>()).collect();
        assert!(close(&probs, &want.scores[i]), "text {i}: {probs:?} vs {:?}", want.scores[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_requests_get_400_with_a_hint() {
    let root = app("errors");
    let server = text_server(&root).await;
    let post = |path: &'static str, body: Vec<u8>| {
        let s = &server;
        async move { s.post(path, &[("content-type", "application/json")], body).await }
    };
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/v1/models/embedder/embed", json(serde_json::json!({ "texts": [] })), "0 texts; a request carries 1 to 256"),
        ("/v1/models/embedder/embed", json(serde_json::json!({ "texts": vec!["a"; 257] })), "257 texts"),
        ("/v1/models/embedder/embed", json(serde_json::json!({})), "give either \"texts\""),
        ("/v1/models/embedder/embed", json(serde_json::json!({ "text": "a", "texts": ["b"] })), "give either"),
        ("/v1/models/embedder/embed", json(serde_json::json!({ "texts": [1, 2] })), "the body is not a text request"),
        ("/v1/models/embedder/embed", b"{not json".to_vec(), "the body is not a text request"),
        (
            "/v1/models/embedder/embed",
            json(serde_json::json!({ "text": "a", "pooling": "median" })),
            "pooling 'median' is not one of mean, cls, max",
        ),
        (
            "/v1/models/embedder/classify",
            json(serde_json::json!({ "text": "a" })),
            "model 'embedder' cannot classify: its task is feature-extraction",
        ),
        ("/v1/models/sentiment/embed", json(serde_json::json!({ "text": "a" })), "model 'sentiment' cannot embed"),
        (
            "/v1/models/sentiment/classify",
            json(serde_json::json!({ "text": "a", "aggregate": "words" })),
            "aggregate 'words' is not one of none, simple",
        ),
        (
            "/v1/models/embedder/embed",
            json(serde_json::json!({ "texts": ["a", { "text": "q", "text_pair": "p" }] })),
            "text 1 is a pair: embeddings are of single texts",
        ),
        ("/v1/models/sentiment/classify", json(serde_json::json!({ "texts": [{ "text_pair": "p" }] })), "the body is not a text request"),
        (
            "/v1/models/embedder/tokenize",
            json(serde_json::json!({ "text": "a", "pooling": "mean" })),
            "are options of /embed and /classify",
        ),
        ("/v1/models/embedder/tokenize", json(serde_json::json!({ "texts": [] })), "0 texts"),
        ("/v1/models/embedder/tokenize", b"[1]".to_vec(), "the body is not a text request"),
    ];
    for (path, body, want) in cases {
        let r = post(path, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} {want}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains(want), "want '{want}', got {}", r.text());
    }
    let r = post("/v1/models/nope/embed", json(serde_json::json!({ "text": "a" }))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A wrong task's error says which endpoint to use instead.
    let r = post("/v1/models/sentiment/embed", json(serde_json::json!({ "text": "a" }))).await;
    assert!(r.text().contains("/v1/models/sentiment/classify"), "{}", r.text());
    // Still serving.
    let r = post("/v1/models/embedder/embed", json(serde_json::json!({ "text": "still here" }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
