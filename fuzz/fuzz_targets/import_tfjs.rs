//! Feeds arbitrary bytes to the TF.js importer: the bytes before the first NUL are model.json,
//! the rest is the shard `group1-shard1of1.bin`. When a model loads, it is prepared and run
//! on zero inputs under a small memory limit. Any panic, overflow or OOM is a bug.
#![no_main]

use cairn_core::{plan::PlanLimits, Dim, Session, Tensor};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, rest) = data.split_at(split);
    let shards: HashMap<String, Vec<u8>> = [("group1-shard1of1.bin".to_string(), rest.get(1..).unwrap_or_default().to_vec())].into();
    let Ok(model) = cairn_tfjs::load_bytes(json, &shards) else { return };
    let mut inputs = HashMap::new();
    for info in model.graph.runtime_inputs() {
        let shape: Vec<usize> = info.dims.iter().flatten().map(|d| match d {
            Dim::Known(n) => *n,
            Dim::Sym(_) => 1,
        }).collect();
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > 1 << 16) {
            return; // keep each execution fast
        }
        let Ok(t) = Tensor::zeros(info.dtype, shape) else { return };
        inputs.insert(info.name.clone(), t);
    }
    let Ok((graph, _)) = cairn_core::passes::prepare_for_inference(model.graph) else { return };
    let session = Session::with_limits(graph, PlanLimits { max_arena_bytes: 64 << 20, max_loop_iterations: 256 });
    let _ = session.run(inputs);
});
