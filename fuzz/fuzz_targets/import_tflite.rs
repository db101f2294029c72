//! Feeds arbitrary bytes to the TFLite importer; when a model loads, plans and runs it
//! on zero inputs under a small memory limit. Any panic, overflow or OOM is a bug.
#![no_main]

use cairn_core::{plan::PlanLimits, Dim, Session, Tensor};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = cairn_tflite::load_bytes(data) else { return };
    let mut inputs = HashMap::new();
    for info in model.graph.runtime_inputs() {
        let shape: Vec<usize> = info.dims.iter().flatten().map(|d| match d {
            Dim::Known(n) => *n,
            Dim::Sym(_) => 1,
        }).collect();
        if shape.iter().product::<usize>() > 1 << 16 {
            return; // keep each execution fast
        }
        let Ok(t) = Tensor::zeros(info.dtype, shape) else { return };
        inputs.insert(info.name.clone(), t);
    }
    let Ok((graph, _)) = cairn_core::passes::prepare_for_inference(model.graph) else { return };
    let session = Session::with_limits(graph, PlanLimits { max_arena_bytes: 64 << 20, max_loop_iterations: 256 });
    let _ = session.run(inputs);
});
