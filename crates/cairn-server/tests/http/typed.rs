//! Typed tensors in `/v1/models/{name}/infer` over real HTTP: int64 ids through a Gather
//! (embedding) graph, int64 beyond 2^53 both ways, bool, f16 and u8 inputs, i32/f16/bool
//! outputs, as JSON and as the packed binary form (`Cairn-Tensors`), each equal to native
//! Cairn; and bodies with a wrong dtype, shape, size or value answered 400 with a message
//! that names the input (the server keeps answering after each).

use crate::common::{node, values, Server};
use axum::http::StatusCode;
use cairn_bundle::{pack, write_bundle, PackOptions};
use cairn_core::{Attr, DType, Dim, Graph, Session, Tensor, TensorData, ValueInfo};
use cairn_server::Config;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

const VOCAB: usize = 50;
const DIM: usize = 8;
const TOKENS: usize = 4;

fn info(name: &str, dtype: DType, rest: &[usize]) -> ValueInfo {
    let dims = std::iter::once(Dim::Sym("batch".into())).chain(rest.iter().map(|&n| Dim::Known(n))).collect();
    ValueInfo { name: name.into(), dtype, dims: Some(dims) }
}

/// ids i64 [b, 4] -> Gather(table) -> ReduceMean over tokens -> pooled f32 [b, 8] (and as f16);
/// big i64 [b, 2] -> +1; mask bool [b, 4] -> Not; h f16 [b, 2] -> f32; small u8 [b, 3] -> i32.
fn typed_graph() -> Graph {
    let table = Tensor::from_f32(vec![VOCAB, DIM], values(VOCAB * DIM, 7, 1.0)).unwrap();
    let one = Tensor::new(vec![1], TensorData::I64(vec![1])).unwrap();
    let nodes = vec![
        node("embed", "Gather", &["table", "ids"], "e", vec![]),
        node("pool", "ReduceMean", &["e"], "pooled", vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))]),
        node("half", "Cast", &["pooled"], "pooled16", vec![("to", Attr::Int(10))]),
        node("next", "Add", &["big", "one"], "big_next", vec![]),
        node("not", "Not", &["mask"], "mask_not", vec![]),
        node("widen", "Cast", &["h"], "h32", vec![("to", Attr::Int(1))]),
        node("ints", "Cast", &["small"], "small32", vec![("to", Attr::Int(6))]),
    ];
    Graph {
        inputs: vec![
            info("ids", DType::I64, &[TOKENS]),
            info("big", DType::I64, &[2]),
            info("mask", DType::Bool, &[TOKENS]),
            info("h", DType::F16, &[2]),
            info("small", DType::U8, &[3]),
        ],
        outputs: vec![
            info("pooled", DType::F32, &[DIM]),
            info("pooled16", DType::F16, &[DIM]),
            info("big_next", DType::I64, &[2]),
            info("mask_not", DType::Bool, &[TOKENS]),
            info("h32", DType::F32, &[2]),
            info("small32", DType::I32, &[3]),
        ],
        initializers: HashMap::from([("table".to_string(), Arc::new(table)), ("one".to_string(), Arc::new(one))]),
        nodes,
        opset: 17,
    }
    .validated()
    .unwrap()
}

fn app(tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("cairn-server-typed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let options = PackOptions { name: "typed".into(), ..PackOptions::default() };
    write_bundle(&root.join("models/typed"), &pack(&typed_graph(), &options).unwrap(), |_| {}).unwrap();
    root
}

/// Two rows of inputs, with int64 values past 2^53 in `big`.
fn inputs() -> Vec<(&'static str, Tensor)> {
    let t = |shape: Vec<usize>, data: TensorData| Tensor::new(shape, data).unwrap();
    let h = [0.5f32, -1.25, 3.0, 0.1].map(half::f16::from_f32).to_vec();
    vec![
        ("ids", t(vec![2, TOKENS], TensorData::I64(vec![0, 7, 49, 3, 12, 12, 1, 30]))),
        ("big", t(vec![2, 2], TensorData::I64(vec![(1 << 53) + 1, -5, i64::MAX - 1, 1 << 62]))),
        ("mask", t(vec![2, TOKENS], TensorData::Bool(vec![1, 1, 0, 0, 1, 0, 1, 0]))),
        ("h", t(vec![2, 2], TensorData::F16(h))),
        ("small", t(vec![2, 3], TensorData::U8(vec![0, 200, 255, 1, 2, 3]))),
    ]
}

fn native() -> HashMap<String, Tensor> {
    let (graph, _) = cairn_core::passes::prepare_for_inference(typed_graph()).unwrap();
    let feed = inputs().into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    Session::new(graph).run(feed).unwrap().into_iter().collect()
}

/// `{"dtype", "shape", "data"}` with int64 as decimal strings (what a JS client sends) and
/// bools as true/false, f16 as numbers.
fn json_tensor(t: &Tensor) -> serde_json::Value {
    let data: Vec<serde_json::Value> = match t.data() {
        TensorData::I64(v) => v.iter().map(|x| x.to_string().into()).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| (x == 1).into()).collect(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f64().into()).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x.into()).collect(),
        other => panic!("no JSON form for {other:?} here"),
    };
    serde_json::json!({ "dtype": t.dtype().name(), "shape": t.shape(), "data": data })
}

/// The packed binary form: the tensors' bytes at 8-byte offsets and their Cairn-Tensors list.
fn packed(tensors: &[(&str, Tensor)]) -> (Vec<u8>, String) {
    let mut body = Vec::new();
    let mut specs = Vec::new();
    for (name, t) in tensors {
        body.resize(body.len().next_multiple_of(8), 0);
        specs.push(
            serde_json::json!({ "name": name, "dtype": t.dtype().name(), "shape": t.shape(), "offset": body.len(), "bytes": t.byte_len() }),
        );
        body.extend_from_slice(t.bytes());
    }
    (body, serde_json::to_string(&specs).unwrap())
}

/// An output as the server sent it, read back into a tensor of its dtype.
fn read_output(v: &serde_json::Value) -> (DType, Vec<usize>, Vec<serde_json::Value>) {
    let dtype = DType::from_name(v["dtype"].as_str().unwrap()).unwrap();
    let shape = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    (dtype, shape, v["data"].as_array().unwrap().clone())
}

/// The server's outputs equal native Cairn's, element for element and exactly. (Floats are
/// compared in their own width: serde_json's default parser may be 1 ulp off in f64, never
/// enough to change the f32 or f16 the server wrote.)
fn assert_matches_native(outputs: &serde_json::Value, want: &HashMap<String, Tensor>) {
    for (name, t) in want {
        let (dtype, shape, data) = read_output(&outputs[name]);
        assert_eq!((dtype, shape.as_slice()), (t.dtype(), t.shape()), "{name}");
        let text = |x: &serde_json::Value| x.to_string().trim_matches('"').to_string();
        let (got, exact): (Vec<String>, Vec<String>) = match t.data() {
            TensorData::F32(v) => {
                (data.iter().map(|x| (x.as_f64().unwrap() as f32).to_string()).collect(), v.iter().map(|x| x.to_string()).collect())
            }
            TensorData::F16(v) => (
                data.iter().map(|x| half::f16::from_f64(x.as_f64().unwrap()).to_string()).collect(),
                v.iter().map(|x| x.to_string()).collect(),
            ),
            TensorData::I64(v) => (data.iter().map(text).collect(), v.iter().map(|x| x.to_string()).collect()),
            TensorData::I32(v) => (data.iter().map(text).collect(), v.iter().map(|x| x.to_string()).collect()),
            TensorData::Bool(v) => (data.iter().map(text).collect(), v.iter().map(|&x| (x == 1).to_string()).collect()),
            other => panic!("unexpected output {other:?}"),
        };
        assert_eq!(got, exact, "output '{name}'");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_infer_as_json_and_packed_binary_equals_native_cairn() {
    let root = app("infer");
    let server = Server::start(Config::new(&root)).await;
    let want = native();
    // The int64 output past 2^53 is a string, the one below it a number.
    assert_eq!(want["big_next"].i64s().unwrap()[0], (1 << 53) + 2);

    let models = server.get("/v1/models", &[]).await.json();
    let inputs_doc = &models["models"][0]["inputs"];
    assert_eq!(inputs_doc[0]["dtype"], "i64", "{models}");

    let named: serde_json::Map<String, serde_json::Value> = inputs().iter().map(|(n, t)| (n.to_string(), json_tensor(t))).collect();
    let body = serde_json::to_vec(&serde_json::json!({ "inputs": named })).unwrap();
    let r = server.post("/v1/models/typed/infer", &[("content-type", "application/json")], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let json_answer = r.json();
    assert_matches_native(&json_answer["outputs"], &want);
    assert_eq!(
        json_answer["outputs"]["big_next"]["data"],
        serde_json::json!(["9007199254740994", -4, "9223372036854775807", "4611686018427387905"])
    );
    assert_eq!(json_answer["outputs"]["mask_not"]["data"], serde_json::json!([false, false, true, true, false, true, false, true]));

    // int64 ids as plain JSON numbers (exact too: never read through f64).
    let mut numbers = named.clone();
    numbers["big"]["data"] = serde_json::json!([9007199254740993i64, -5, 9223372036854775806i64, 4611686018427387904i64]);
    let r = server
        .post(
            "/v1/models/typed/infer",
            &[("content-type", "application/json")],
            serde_json::to_vec(&serde_json::json!({ "inputs": numbers })).unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["outputs"], json_answer["outputs"]);

    // The packed binary form gives the same answer.
    let (body, spec) = packed(&inputs());
    let r = server.post("/v1/models/typed/infer", &[("content-type", "application/octet-stream"), ("cairn-tensors", &spec)], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["outputs"], json_answer["outputs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_typed_requests_are_batched_and_each_gets_its_own_rows() {
    let root = app("batched");
    let mut config = Config::new(&root);
    config.batch.max_wait = std::time::Duration::from_millis(40);
    let server = Arc::new(Server::start(config).await);
    let want = native();
    let all = inputs();
    let mut tasks = Vec::new();
    for row in 0..2 {
        // Row `row` of every input, alone in its request.
        let one: Vec<(&str, Tensor)> = all
            .iter()
            .map(|(n, t)| {
                let per = t.byte_len() / 2;
                let mut r = Tensor::zeros(t.dtype(), [1].into_iter().chain(t.shape()[1..].iter().copied()).collect()).unwrap();
                r.bytes_mut().copy_from_slice(&t.bytes()[row * per..(row + 1) * per]);
                (*n, r)
            })
            .collect();
        let (body, spec) = packed(&one);
        let s = server.clone();
        tasks.push(tokio::spawn(async move {
            s.post("/v1/models/typed/infer", &[("content-type", "application/octet-stream"), ("cairn-tensors", &spec)], body).await
        }));
    }
    let mut batched = 0;
    for (row, task) in tasks.into_iter().enumerate() {
        let r = task.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        batched = batched.max(v["batch_rows"].as_u64().unwrap());
        let got: Vec<i64> = v["outputs"]["big_next"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap_or_else(|| x.as_str().unwrap().parse().unwrap()))
            .collect();
        assert_eq!(got, want["big_next"].i64s().unwrap()[row * 2..row * 2 + 2]);
    }
    assert_eq!(batched, 2, "the two requests should have run as one batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_typed_bodies_get_400_with_the_input_named() {
    let root = app("errors");
    let server = Server::start(Config::new(&root)).await;
    let good: serde_json::Map<String, serde_json::Value> = inputs().iter().map(|(n, t)| (n.to_string(), json_tensor(t))).collect();
    let with = |name: &str, field: &str, value: serde_json::Value| {
        let mut m = good.clone();
        m[name][field] = value;
        serde_json::to_vec(&serde_json::json!({ "inputs": m })).unwrap()
    };
    let json_cases: Vec<(Vec<u8>, &str)> = vec![
        (with("ids", "data", serde_json::json!([0, 1.5, 2, 3, 4, 5, 6, 7])), "input 'ids': element 1 (1.5) is not a whole number"),
        (with("ids", "data", serde_json::json!([0, "1x", 2, 3, 4, 5, 6, 7])), "not a decimal integer"),
        (with("big", "data", serde_json::json!([1e17, 1, 2, 3])), "beyond 2^53 as a JSON float: send i64 values past 2^53 as strings"),
        (
            with("big", "data", serde_json::json!(["9223372036854775808", 1, 2, 3])),
            "input 'big': element 0 (9223372036854775808) is out of the i64 range",
        ),
        (with("small", "data", serde_json::json!([0, 256, 1, 1, 1, 1])), "input 'small': element 1 (256) is out of the u8 range"),
        (with("mask", "data", serde_json::json!([1, 2, 0, 0, 1, 0, 1, 0])), "input 'mask': element 1 (2) is not a bool"),
        (with("h", "data", serde_json::json!([true, 1, 1, 1])), "input 'h': element 0 (true) is a boolean"),
        (with("ids", "dtype", "f32".into()), "input 'ids' must be i64, got f32"),
        (with("ids", "dtype", "int65".into()), "ids: unknown dtype 'int65'"),
        (with("ids", "shape", serde_json::json!([2, 5])), "holds 10 values but data has 8"),
        (with("ids", "shape", serde_json::json!([4, 2])), "input 'ids' must have shape [batch, 4], got [4, 2]"),
        (with("big", "shape", serde_json::json!([4, 1])), "input 'big' must have shape [batch, 2], got [4, 1]"),
        (with("ids", "shape", serde_json::json!([1usize << 40, 1usize << 40, 1usize << 40])), "is too large"),
        (with("ids", "data", serde_json::json!([[0, 1]])), "not a tensor request"),
    ];
    for (body, want) in json_cases {
        let r = server.post("/v1/models/typed/infer", &[("content-type", "application/json")], body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{want}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains(want), "want '{want}', got {}", r.text());
    }
    // Rows must agree across inputs: ids for 2 rows, big for 1.
    let mut m = good.clone();
    m["big"] = serde_json::json!({ "dtype": "i64", "shape": [1, 2], "data": [1, 2] });
    let r = server.post("/v1/models/typed/infer", &[], serde_json::to_vec(&serde_json::json!({ "inputs": m })).unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("input 'big' must have shape [batch, 2], got [1, 2]"), "{}", r.text());

    // Packed binary bodies.
    let (body, spec) = packed(&inputs());
    let mut specs: Vec<serde_json::Value> = serde_json::from_str(&spec).unwrap();
    let edit = |i: usize, field: &str, v: serde_json::Value| {
        let mut s = specs.clone();
        s[i][field] = v;
        serde_json::to_string(&s).unwrap()
    };
    let mut bad_bool = body.clone();
    let mask_at = specs[2]["offset"].as_u64().unwrap() as usize;
    bad_bool[mask_at + 1] = 7;
    let packed_cases: Vec<(Vec<u8>, String, &str)> = vec![
        (body.clone(), edit(0, "bytes", 60.into()), "input 'ids': shape [2, 4] of i64 needs 64 bytes; Cairn-Tensors gives 60"),
        (body.clone(), edit(0, "offset", (body.len() - 8).into()), "at offset"),
        (body.clone(), edit(0, "offset", u64::MAX.into()), "at offset 18446744073709551615"),
        (body.clone(), edit(0, "dtype", "i32".into()), "input 'ids' must be i64, got i32"),
        (body.clone(), edit(1, "name", "ids".into()), "input 'ids' is given twice"),
        (body.clone(), edit(1, "name", "nope".into()), "has no input 'nope'"),
        (body[..body.len() - 1].to_vec(), spec.clone(), "of a"),
        (bad_bool, spec.clone(), "input 'mask': byte 1 is 7, but a bool tensor holds only 0 and 1"),
        (body.clone(), "{not json".into(), "Cairn-Tensors is not a tensor list"),
    ];
    specs.pop();
    let missing = serde_json::to_string(&specs).unwrap();
    for (body, spec, want) in packed_cases.into_iter().chain([(body.clone(), missing, "missing input 'small'")]) {
        let r =
            server.post("/v1/models/typed/infer", &[("content-type", "application/octet-stream"), ("cairn-tensors", &spec)], body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{want}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains(want), "want '{want}', got {}", r.text());
    }
    // A single-tensor binary body for a five-input model says to name them.
    let r = server.post("/v1/models/typed/infer", &[("content-type", "application/octet-stream")], vec![0; 64]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Cairn-Input"), "{}", r.text());
    // Still serving after every bad body.
    let (body, spec) = packed(&inputs());
    let r = server.post("/v1/models/typed/infer", &[("content-type", "application/octet-stream"), ("cairn-tensors", &spec)], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_binds_the_tensor_list_too() {
    let root = app("idempotent");
    let server = Server::start(Config::new(&root)).await;
    let (body, spec) = packed(&inputs());
    let headers = |spec: &str| {
        [("content-type", "application/octet-stream"), ("cairn-tensors", spec), ("idempotency-key", "typed-1")]
            .map(|(k, v)| (k, v.to_string()))
    };
    let send = |spec: String, body: Vec<u8>| {
        let s = &server;
        async move {
            let h = headers(&spec);
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.post("/v1/models/typed/infer", &refs, body).await
        }
    };
    let first = send(spec.clone(), body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let again = send(spec.clone(), body.clone()).await;
    assert_eq!((again.status, again.header(cairn_server::REPLAYED_HEADER)), (StatusCode::OK, "true"));
    assert_eq!(again.body, first.body);
    // The same bytes described as other tensors (ids read from big's bytes and back, one row)
    // are another request: the key reused for it is refused, not answered with the first
    // request's outputs (Cairn-Tensors is part of what the key is bound to).
    let mut specs: Vec<serde_json::Value> = serde_json::from_str(&spec).unwrap();
    let (ids_at, big_at) = (specs[0]["offset"].clone(), specs[1]["offset"].clone());
    specs[1]["offset"] = ids_at;
    specs[0]["offset"] = big_at;
    specs[0]["bytes"] = 32.into();
    specs[0]["shape"] = serde_json::json!([1, 4]);
    specs[1]["shape"] = serde_json::json!([1, 2]);
    specs[1]["bytes"] = 16.into();
    let other = send(serde_json::to_string(&specs).unwrap(), body).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.text());
}
