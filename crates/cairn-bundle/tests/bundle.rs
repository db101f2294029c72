//! Bundles end to end: pack a small convolutional classifier, load it shard by
//! shard (in order, out of order, with corrupted and truncated shards), run it,
//! and plan updates.

use cairn_bundle::{pack, Encoding, Error, Loader, Manifest, PackOptions, Packed, UpdatePlan};
mod common;

use cairn_core::{passes::prepare_for_inference, Attr, DType, Dim, Graph, Session, Tensor, ValueInfo};
use common::{node, stream, LIMIT};
use std::collections::HashMap;
use std::sync::Arc;

/// Deterministic pseudo-random values in [-scale, scale].
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut next = stream(seed);
    (0..n).map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale).collect()
}

/// x[1,3,8,8] -> Conv 3x3 (8) -> Relu -> Conv 1x1 (16) -> GlobalAveragePool -> Flatten -> Gemm (10).
fn classifier(seed: u64) -> Graph {
    let w = |shape: Vec<usize>, s: u64| {
        let n = shape.iter().product();
        Arc::new(Tensor::from_f32(shape, values(n, s, 0.5)).unwrap())
    };
    let initializers = HashMap::from([
        ("w1".to_string(), w(vec![8, 3, 3, 3], seed)),
        ("b1".to_string(), w(vec![8], seed + 1)),
        ("w2".to_string(), w(vec![16, 8, 1, 1], seed + 2)),
        ("wf".to_string(), w(vec![10, 16], seed + 3)),
        ("bf".to_string(), w(vec![10], seed + 4)),
    ]);
    let nodes = vec![
        node("conv1", "Conv", &["x", "w1", "b1"], "c1", vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]),
        node("relu1", "Relu", &["c1"], "r1", vec![]),
        node("conv2", "Conv", &["r1", "w2"], "c2", vec![]),
        node("pool", "GlobalAveragePool", &["c2"], "p", vec![]),
        node("flatten", "Flatten", &["p"], "f", vec![]),
        node("fc", "Gemm", &["f", "wf", "bf"], "logits", vec![("transB", Attr::Int(1))]),
    ];
    Graph {
        inputs: vec![ValueInfo {
            name: "x".into(),
            dtype: DType::F32,
            dims: Some(vec![Dim::Sym("batch".into()), Dim::Known(3), Dim::Known(8), Dim::Known(8)]),
        }],
        outputs: vec![ValueInfo { name: "logits".into(), dtype: DType::F32, dims: None }],
        initializers,
        nodes,
        opset: 17,
    }
    .validated()
    .unwrap()
}

fn small_shards() -> PackOptions {
    PackOptions { name: "tiny".into(), shard_bytes: 1024, min_split_elements: 64, ..PackOptions::default() }
}

fn run(graph: Graph, seed: u64) -> Vec<f32> {
    let (graph, _) = prepare_for_inference(graph).unwrap();
    let x = Tensor::from_f32(vec![2, 3, 8, 8], values(2 * 3 * 64, seed, 1.0)).unwrap();
    let out = Session::new(graph).run(HashMap::from([("x".to_string(), x)])).unwrap();
    out.into_iter().next().unwrap().1.f32s().unwrap().to_vec()
}

fn load_all(packed: &Packed, order: impl IntoIterator<Item = usize>) -> Loader {
    let mut loader = Loader::new(packed.manifest.clone(), LIMIT).unwrap();
    for i in order {
        loader.accept_shard(i, &packed.shards[i]).unwrap();
    }
    loader
}

#[test]
fn packed_bundle_runs_bit_exact_in_any_shard_order() {
    let packed = pack(&classifier(1), &small_shards()).unwrap();
    let m = &packed.manifest;
    assert_eq!(m.levels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["coarse", "full"]);
    assert!(m.shards.len() >= 3, "1 KiB shards should split this model, got {}", m.shards.len());
    // Level 0's shards come first in fetch order.
    assert!(m.shards.windows(2).all(|w| w[0].level <= w[1].level));
    let want = run(classifier(1), 7);
    let n = m.shards.len();
    for order in [(0..n).collect::<Vec<_>>(), (0..n).rev().collect()] {
        let got = run(load_all(&packed, order).into_graph().unwrap(), 7);
        assert_eq!(got, want, "a bundle must reproduce the original weights bit for bit");
    }
}

#[test]
fn coarse_level_runs_alone_and_refines_in_place() {
    let packed = pack(&classifier(2), &small_shards()).unwrap();
    let want = run(classifier(2), 3);
    let mut loader = Loader::new(packed.manifest.clone(), LIMIT).unwrap();
    assert!(matches!(loader.graph(), Err(Error::LevelIncomplete { .. })));
    let coarse: Vec<usize> = packed.manifest.shards.iter().enumerate().filter(|(_, s)| s.level == 0).map(|(i, _)| i).collect();
    for &i in &coarse {
        loader.accept_shard(i, &packed.shards[i]).unwrap();
    }
    assert_eq!(loader.level_reached(), Some(0));
    let coarse_out = run(loader.graph().unwrap(), 3);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = coarse_out.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
    assert!(err > 0.0 && err < 2e-2, "coarse (bf16) output should be close but not exact: {err}");
    for i in loader.missing().collect::<Vec<_>>() {
        loader.accept_shard(i, &packed.shards[i]).unwrap();
    }
    assert_eq!(loader.level_reached(), Some(1));
    assert_eq!(run(loader.into_graph().unwrap(), 3), want);
}

#[test]
fn corrupted_or_truncated_shards_are_rejected_and_change_nothing() {
    let packed = pack(&classifier(3), &small_shards()).unwrap();
    let mut loader = Loader::new(packed.manifest.clone(), LIMIT).unwrap();
    let mut corrupted = packed.shards[0].clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0x40;
    assert!(matches!(loader.accept_shard(0, &corrupted), Err(Error::ShardHash { .. })));
    let truncated = &packed.shards[0][..packed.shards[0].len() - 1];
    assert!(matches!(loader.accept_shard(0, truncated), Err(Error::ShardSize { .. })));
    assert!(loader.accept_shard(0, &packed.shards[1]).is_err(), "another shard's bytes are not shard 0");
    assert_eq!(loader.missing().next(), Some(0), "a rejected shard is still missing");
    // The good bytes, fetched again, are accepted and the result is exact.
    for i in 0..packed.shards.len() {
        loader.accept_shard(i, &packed.shards[i]).unwrap();
        loader.accept_shard(i, &packed.shards[i]).unwrap(); // a duplicate is a no-op
    }
    assert_eq!(run(loader.into_graph().unwrap(), 5), run(classifier(3), 5));
}

#[test]
fn lying_manifests_are_refused_before_allocation() {
    let packed = pack(&classifier(4), &small_shards()).unwrap();
    let json = packed.manifest.to_json();
    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        f(&mut v);
        Manifest::parse(v.to_string().as_bytes())
    };
    assert!(Manifest::parse(json.as_bytes()).is_ok());
    assert!(Manifest::parse(b"{").is_err());
    assert!(Manifest::parse(b"").is_err());
    type Corrupt = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Corrupt)> = vec![
        ("format", Box::new(|v| v["format"] = "cairn-bundle/99".into())),
        ("huge shape", Box::new(|v| v["tensors"][0]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40]))),
        ("part past end", Box::new(|v| v["tensors"][0]["parts"][0]["len"] = 1_000_000.into())),
        ("shard index", Box::new(|v| v["tensors"][0]["parts"][0]["shard"] = 999.into())),
        ("shard path", Box::new(|v| v["shards"][0]["path"] = "../../etc/passwd".into())),
        ("level", Box::new(|v| v["shards"][0]["level"] = 7.into())),
        ("dtype", Box::new(|v| v["tensors"][0]["dtype"] = "f128".into())),
        (
            "duplicate part",
            Box::new(|v| {
                let p = v["tensors"][0]["parts"][0].clone();
                v["tensors"][0]["parts"].as_array_mut().unwrap().push(p);
            }),
        ),
        ("shard too small", Box::new(|v| v["shards"][0]["bytes"] = 8.into())),
    ];
    for (what, f) in cases {
        assert!(matches!(tamper(&*f), Err(Error::Manifest(_))), "{what} should be refused");
    }
    let mut big = packed.manifest.clone();
    big.tensors[0].shape = vec![1 << 20, 1 << 10];
    assert!(Loader::new(big, LIMIT).is_err());
}

#[test]
fn changing_one_layer_changes_only_its_shards() {
    let opts = small_shards();
    let old = pack(&classifier(5), &opts).unwrap();
    let mut graph = classifier(5);
    graph.initializers.insert("w2".into(), Arc::new(Tensor::from_f32(vec![16, 8, 1, 1], values(128, 99, 0.5)).unwrap()));
    let new = pack(&graph, &opts).unwrap();
    let again = pack(&classifier(5), &opts).unwrap();
    assert_eq!(again.manifest, old.manifest, "packing is deterministic");
    let plan = UpdatePlan::between(&old.manifest, &new.manifest);
    let holding_w2: std::collections::HashSet<usize> =
        new.manifest.tensors.iter().filter(|t| t.name == "w2").flat_map(|t| t.parts.iter().map(|p| p.shard)).collect();
    assert_eq!(plan.fetch.len(), holding_w2.len(), "only the shards holding w2 change: {plan:#?}");
    assert!(plan.reuse_bytes > 0 && plan.fetch_bytes < new.manifest.total_bytes());
    assert_ne!(old.manifest.version, new.manifest.version);
    let same = UpdatePlan::between(&old.manifest, &old.manifest);
    assert!(same.fetch.is_empty() && !same.manifest_changed);
}

#[test]
fn bundles_round_trip_through_a_directory() {
    let dir = std::env::temp_dir().join(format!("cairn-bundle-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = pack(&classifier(6), &small_shards()).unwrap();
    let report = cairn_bundle::write_bundle(&dir, &first, |_| {}).unwrap();
    assert_eq!(report.shards_written, first.shards.len());
    let mut graph = classifier(6);
    graph.initializers.insert("wf".into(), Arc::new(Tensor::from_f32(vec![10, 16], values(160, 42, 0.5)).unwrap()));
    let second = pack(&graph, &small_shards()).unwrap();
    let report = cairn_bundle::write_bundle(&dir, &second, |_| {}).unwrap();
    assert!(report.shards_reused > 0 && report.shards_written > 0 && report.shards_removed == report.shards_written);
    let loader = cairn_bundle::load_dir(&dir, LIMIT).unwrap();
    assert_eq!(run(loader.into_graph().unwrap(), 1), run(graph, 1));
    // Every shard is a plain safetensors file.
    for s in &second.manifest.shards {
        let bytes = std::fs::read(dir.join(&s.path)).unwrap();
        assert!(safetensors::SafeTensors::deserialize(&bytes).is_ok());
    }
    // A corrupted file on disk is reported, not loaded.
    let victim = dir.join(&second.manifest.shards[0].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let checked = cairn_bundle::check_dir(&dir, LIMIT, |_| {}).unwrap();
    assert_eq!(checked.problems.len(), 1, "{:?}", checked.problems);
    assert!(cairn_bundle::load_dir(&dir, LIMIT).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_progressive_bundles_have_one_level_of_raw_parts() {
    let packed = pack(&classifier(7), &PackOptions { progressive: false, ..small_shards() }).unwrap();
    assert_eq!(packed.manifest.levels.len(), 1);
    assert!(packed.manifest.tensors.iter().all(|t| t.parts.iter().all(|p| p.encoding == Encoding::Raw)));
    assert_eq!(run(load_all(&packed, 0..packed.shards.len()).into_graph().unwrap(), 2), run(classifier(7), 2));
}

/// The fuzz target's input format (2-byte manifest length, manifest, shard), replayed
/// on every kept seed: the valid ones must load, none may panic.
#[test]
fn fuzz_seeds_replay() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/load_bundle");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&seeds).expect("fuzz/seeds/load_bundle exists") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let len = u16::from_le_bytes([data[0], data[1]]) as usize;
        let (manifest, shard) = data[2..].split_at(len.min(data.len() - 2));
        let Ok(manifest) = Manifest::parse(manifest) else { continue };
        let Ok(mut loader) = Loader::new(manifest, 64 << 20) else { continue };
        if loader.accept_shard(0, shard).is_ok() {
            loaded += 1;
        }
    }
    assert!(loaded >= 3, "the classifier seeds are valid bundles: {loaded}");
}
