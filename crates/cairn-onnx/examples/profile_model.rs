//! Per-operator profile of a model on random f32 inputs (symbolic dims = 1), for
//! builds where the CLI does not run: `--target wasm32-wasip1` with `tools/wasi-run.mjs`
//! as the runner shows where wasm time goes, e.g.
//! `RUSTFLAGS="-C target-feature=+simd128" cargo run --release --target wasm32-wasip1
//!  -p cairn-onnx --example profile_model -- target/models/mobilenetv2_int8.onnx 30`.
use cairn_core::{passes::prepare_for_inference, Dim, Session, Tensor};
use std::collections::HashMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: profile_model MODEL.onnx [RUNS]");
    let runs: usize = args.get(2).map_or(20, |r| r.parse().expect("RUNS must be a number"));
    let model = cairn_onnx::load(std::path::Path::new(path)).expect("cannot load the model");
    let (graph, _) = prepare_for_inference(model.graph).expect("cannot prepare the graph");
    let mut inputs = HashMap::new();
    for vi in &graph.inputs {
        let shape: Vec<usize> = vi.dims.as_ref().expect("input without shape").iter().map(|d| if let Dim::Known(n) = d { *n } else { 1 }).collect();
        let len = shape.iter().product();
        let data = (0..len).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        inputs.insert(vi.name.clone(), Tensor::from_f32(shape, data).expect("input tensor"));
    }
    let session = Session::new(graph);
    let mut by_op: HashMap<String, f64> = HashMap::new();
    let mut by_node: HashMap<String, f64> = HashMap::new();
    let mut times = Vec::new();
    for run in 0..=runs {
        let t = Instant::now();
        let (_, stats) = session.run_profiled(inputs.clone()).expect("run failed");
        if run == 0 {
            continue;
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
        for st in stats.profile {
            *by_op.entry(st.op_type.clone()).or_default() += st.seconds * 1e3 / runs as f64;
            *by_node.entry(format!("{} ({})", st.node, st.op_type)).or_default() += st.seconds * 1e3 / runs as f64;
        }
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.2} ms, min {:.2} ms over {runs} runs", times[times.len() / 2], times[0]);
    for (title, map, keep) in [("by operator", by_op, 20), ("slowest nodes", by_node, usize::MAX)] {
        let mut v: Vec<_> = map.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("{title}:");
        for (k, ms) in v.into_iter().take(keep) {
            println!("  {ms:8.3} ms  {k}");
        }
    }
}
