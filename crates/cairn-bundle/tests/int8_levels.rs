//! Progressive int8 bundles: int8 weights sent as high nibbles (coarse level) and low
//! nibbles (refinement), restored exactly whatever order the shards arrive in.

use cairn_bundle::{pack, Encoding, Error, Loader, Manifest, PackOptions, Packed};
mod common;

use cairn_core::{passes::prepare_for_inference, Attr, DType, Dim, Graph, Session, Tensor, TensorData, ValueInfo};
use common::{node, stream, LIMIT};
use std::collections::HashMap;
use std::sync::Arc;

/// Int8 weights shaped like a trained layer's: most near 0, a few at the ends of the range.
fn int8_weights(shape: Vec<usize>, seed: u64) -> Arc<Tensor> {
    let mut next = stream(seed);
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            let r = next();
            let magnitude = ((r >> 8) % 128) as i32 * ((r >> 20) % 128) as i32 / 127; // skewed to 0
            let v = if r & 1 == 0 { magnitude } else { -magnitude };
            v.clamp(-127, 127) as i8
        })
        .collect();
    Arc::new(Tensor::new(shape, TensorData::I8(data)).unwrap())
}

fn f32s(shape: Vec<usize>, value: f32) -> Arc<Tensor> {
    let n = shape.iter().product();
    Arc::new(Tensor::from_f32(shape, vec![value; n]).unwrap())
}

/// QDQ weights as `cairn optimize` writes them: x[1,8,6,6] -> Conv 1x1 (24, int8) -> Relu
/// -> depthwise 3x3 (24, int8) -> Relu -> Conv 1x1 (17, int8; 408 elements, an odd
/// count of nibble pairs when cut) -> GlobalAveragePool -> Flatten.
fn int8_model(seed: u64) -> Graph {
    let initializers = HashMap::from([
        ("w1".to_string(), int8_weights(vec![24, 8, 1, 1], seed)),
        ("s1".to_string(), f32s(vec![24], 0.01)),
        ("wd".to_string(), int8_weights(vec![24, 1, 3, 3], seed + 1)),
        ("sd".to_string(), f32s(vec![24], 0.02)),
        ("w2".to_string(), int8_weights(vec![17, 24, 1, 1], seed + 2)),
        ("s2".to_string(), f32s(vec![17], 0.01)),
    ]);
    let axis0 = || vec![("axis", Attr::Int(0))];
    let nodes = vec![
        node("dq1", "DequantizeLinear", &["w1", "s1"], "w1f", axis0()),
        node("conv1", "Conv", &["x", "w1f"], "c1", vec![]),
        node("relu1", "Relu", &["c1"], "r1", vec![]),
        node("dqd", "DequantizeLinear", &["wd", "sd"], "wdf", axis0()),
        node("dw", "Conv", &["r1", "wdf"], "c2", vec![("group", Attr::Int(24)), ("pads", Attr::Ints(vec![1, 1, 1, 1]))]),
        node("relu2", "Relu", &["c2"], "r2", vec![]),
        node("dq2", "DequantizeLinear", &["w2", "s2"], "w2f", axis0()),
        node("conv2", "Conv", &["r2", "w2f"], "c3", vec![]),
        node("pool", "GlobalAveragePool", &["c3"], "p", vec![]),
        node("flatten", "Flatten", &["p"], "logits", vec![]),
    ];
    Graph {
        inputs: vec![ValueInfo {
            name: "x".into(),
            dtype: DType::F32,
            dims: Some(vec![Dim::Known(1), Dim::Known(8), Dim::Known(6), Dim::Known(6)]),
        }],
        outputs: vec![ValueInfo { name: "logits".into(), dtype: DType::F32, dims: None }],
        initializers,
        nodes,
        opset: 17,
    }
    .validated()
    .unwrap()
}

/// Small shards and a low split threshold, so this small model has two levels.
fn options() -> PackOptions {
    PackOptions { name: "int8".into(), shard_bytes: 1024, min_split_elements: 64, ..PackOptions::default() }
}

fn packed(seed: u64, opts: &PackOptions) -> Packed {
    pack(&int8_model(seed), opts).unwrap()
}

fn run(graph: Graph) -> Vec<f32> {
    let (graph, _) = prepare_for_inference(graph).unwrap();
    let mut next = stream(99);
    let x = Tensor::from_f32(vec![1, 8, 6, 6], (0..288).map(|_| (next() % 1000) as f32 / 500.0 - 1.0).collect()).unwrap();
    let out = Session::new(graph).run(HashMap::from([("x".to_string(), x)])).unwrap();
    out.into_iter().next().unwrap().1.f32s().unwrap().to_vec()
}

fn weights_of(loader: Loader) -> HashMap<String, Vec<u8>> {
    let graph = loader.into_graph().unwrap();
    graph.initializers.iter().map(|(k, v)| (k.clone(), v.bytes().to_vec())).collect()
}

#[test]
fn int8_weights_are_split_into_nibble_levels_except_grouped_convs() {
    let p = packed(1, &options());
    let m = &p.manifest;
    assert_eq!(m.levels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["coarse", "full"]);
    let encodings =
        |name: &str| -> Vec<Encoding> { m.tensors.iter().find(|t| t.name == name).unwrap().parts.iter().map(|p| p.encoding).collect() };
    assert!(encodings("w1").contains(&Encoding::I8High4) && encodings("w1").contains(&Encoding::I8Low4));
    assert!(encodings("w2").contains(&Encoding::I8High4) && encodings("w2").contains(&Encoding::I8Low4));
    assert!(encodings("wd").iter().all(|e| *e == Encoding::Raw), "the depthwise filter goes whole into level 0");
    // Nibbles take half a byte each: level 0 holds the raw depthwise filter plus half of the rest.
    let split_elements = 24 * 8 + 17 * 24;
    let nibble_bytes: u64 =
        m.tensors.iter().flat_map(|t| &t.parts).filter(|p| p.encoding == Encoding::I8High4).map(|p| p.len.div_ceil(2) as u64).sum();
    assert!(nibble_bytes >= split_elements as u64 / 2 && nibble_bytes <= split_elements as u64 / 2 + 4, "{nibble_bytes}");
    let with_grouped = packed(1, &PackOptions { split_grouped_int8: true, ..options() });
    assert!(with_grouped.manifest.tensors.iter().find(|t| t.name == "wd").unwrap().parts.iter().any(|p| p.encoding == Encoding::I8High4));
}

#[test]
fn int8_levels_restore_every_weight_exactly_in_any_shard_order() {
    let p = packed(2, &options());
    let original = int8_model(2);
    let want = run(original.clone());
    let n = p.manifest.shards.len();
    let mut next = stream(5);
    let mut shuffled: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        shuffled.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    for order in [(0..n).collect::<Vec<_>>(), (0..n).rev().collect(), shuffled] {
        let mut loader = Loader::new(p.manifest.clone(), LIMIT).unwrap();
        for &i in &order {
            loader.accept_shard(i, &p.shards[i]).unwrap();
        }
        let weights = weights_of(loader);
        for (name, t) in &original.initializers {
            assert_eq!(&weights[name], &t.bytes().to_vec(), "weight '{name}' after shards in order {order:?}");
        }
        let mut loader = Loader::new(p.manifest.clone(), LIMIT).unwrap();
        for &i in &order {
            loader.accept_shard(i, &p.shards[i]).unwrap();
        }
        assert_eq!(run(loader.into_graph().unwrap()), want);
    }
}

#[test]
fn cut_weights_round_trip_with_parts_of_odd_length() {
    // 1 KiB shards with a 600-byte weight first: the cuts fall inside the nibble streams.
    let mut graph = int8_model(3);
    graph.initializers.insert("w2".into(), int8_weights(vec![17, 24, 1, 1], 33));
    graph.initializers.insert("w1".into(), int8_weights(vec![24, 8, 1, 1], 31));
    let big = int8_weights(vec![3001], 34);
    graph.initializers.insert("extra".into(), big.clone());
    graph.outputs.push(ValueInfo { name: "extra".into(), dtype: DType::I8, dims: None });
    let p = pack(&graph, &options()).unwrap();
    let extra = p.manifest.tensors.iter().find(|t| t.name == "extra").unwrap();
    assert!(extra.parts.iter().filter(|p| p.encoding == Encoding::I8High4).count() >= 2, "the 3001 nibbles span shards: {:?}", extra.parts);
    assert!(extra.parts.iter().any(|p| p.len % 2 == 1), "the last part has an odd length");
    for order in [(0..p.shards.len()).collect::<Vec<_>>(), (0..p.shards.len()).rev().collect()] {
        let mut loader = Loader::new(p.manifest.clone(), LIMIT).unwrap();
        for i in order {
            loader.accept_shard(i, &p.shards[i]).unwrap();
        }
        assert_eq!(weights_of(loader)["extra"], big.bytes());
    }
}

#[test]
fn coarse_int8_level_runs_alone_close_to_the_full_model() {
    let p = packed(4, &options());
    let want = run(int8_model(4));
    let mut loader = Loader::new(p.manifest.clone(), LIMIT).unwrap();
    for (i, s) in p.manifest.shards.iter().enumerate() {
        if s.level == 0 {
            loader.accept_shard(i, &p.shards[i]).unwrap();
        }
    }
    assert_eq!(loader.level_reached(), Some(0));
    // Every coarse weight lies within the bucket of its exact value (at most 15 away).
    let graph = loader.graph().unwrap();
    for (name, t) in &int8_model(4).initializers {
        if t.dtype() == DType::I8 {
            let coarse = graph.initializers[name].bytes();
            assert!(coarse.iter().zip(t.bytes()).all(|(c, w)| (*c as i8 as i32 - *w as i8 as i32).abs() <= 15), "{name}");
            assert!(coarse.iter().zip(t.bytes()).all(|(c, w)| c >> 4 == w >> 4), "{name}: the high nibble is exact");
        }
    }
    let got = run(graph);
    // Relative L2 error (0.20 here): three layers of 4-bit weights on random data are rough
    // but far from unrelated; the real fidelity is measured on real models by `cairn pack`.
    let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
    let err = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt() / norm;
    assert!(err > 0.0 && err < 0.35, "coarse int8 output should be near, not exact: {err}");
}

#[test]
fn hostile_int8_manifests_are_refused() {
    let p = packed(5, &options());
    let json = p.manifest.to_json();
    let w1 = p.manifest.tensors.iter().position(|t| t.name == "w1").unwrap();
    let s1 = p.manifest.tensors.iter().position(|t| t.name == "s1").unwrap();
    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        f(&mut v);
        Manifest::parse(v.to_string().as_bytes())
    };
    assert!(Manifest::parse(json.as_bytes()).is_ok());
    type Corrupt = Box<dyn Fn(&mut serde_json::Value)>;
    let hi_part = move |v: &serde_json::Value| -> usize {
        v["tensors"][w1]["parts"].as_array().unwrap().iter().position(|p| p["encoding"] == "i8-high4").unwrap()
    };
    let cases: Vec<(&str, Corrupt)> = vec![
        ("coarse value outside its bucket", Box::new(move |v| v["tensors"][w1]["coarse_values"][0] = 16.into())),
        ("coarse value not a byte", Box::new(move |v| v["tensors"][w1]["coarse_values"][3] = 300.into())),
        (
            "15 coarse values",
            Box::new(move |v| {
                v["tensors"][w1]["coarse_values"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "no coarse values",
            Box::new(move |v| {
                v["tensors"][w1].as_object_mut().unwrap().remove("coarse_values");
            }),
        ),
        ("coarse values on a raw tensor", Box::new(move |v| v["tensors"][s1]["coarse_values"] = v["tensors"][w1]["coarse_values"].clone())),
        ("nibbles of an f32 tensor", Box::new(move |v| v["tensors"][s1]["parts"][0]["encoding"] = "i8-high4".into())),
        (
            "nibbles mixed with bf16",
            Box::new(move |v| {
                let i = hi_part(v);
                v["tensors"][w1]["parts"][i]["encoding"] = "f32-bf16".into();
            }),
        ),
        (
            "refinement missing",
            Box::new(move |v| {
                let parts = v["tensors"][w1]["parts"].as_array_mut().unwrap();
                parts.retain(|p| p["encoding"] != "i8-low4");
            }),
        ),
        (
            "coarse part too long",
            Box::new(move |v| {
                let i = hi_part(v);
                let len = v["tensors"][w1]["parts"][i]["len"].as_u64().unwrap();
                v["tensors"][w1]["parts"][i]["len"] = (len + 1).into();
            }),
        ),
        (
            "refinement in level 0",
            Box::new(move |v| {
                let parts = v["tensors"][w1]["parts"].as_array_mut().unwrap();
                for p in parts.iter_mut().filter(|p| p["encoding"] == "i8-low4") {
                    p["level"] = 0.into();
                }
            }),
        ),
        (
            "raw part beside nibbles",
            Box::new(move |v| {
                let i = hi_part(v);
                let mut p = v["tensors"][w1]["parts"][i].clone();
                p["encoding"] = "raw".into();
                v["tensors"][w1]["parts"].as_array_mut().unwrap().push(p);
            }),
        ),
    ];
    for (what, f) in cases {
        assert!(matches!(tamper(&*f), Err(Error::Manifest(_))), "{what} should be refused");
    }
}
