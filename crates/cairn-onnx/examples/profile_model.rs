//! Per-operator profile of a model on synthetic inputs (f32 in [0, 1); integer inputs are
//! token ids in [1, 1000), ones when named like a mask, zeros for token types; symbolic dims 1 unless bound by
//! NAME=SIZE arguments, e.g. `sequence=128`), for
//! builds where the CLI does not run: `--target wasm32-wasip1` with `tools/wasi-run.mjs`
//! as the runner shows where wasm time goes, e.g.
//! `RUSTFLAGS="-C target-feature=+simd128" cargo run --release --target wasm32-wasip1
//!  -p cairn-onnx --example profile_model -- target/models/mobilenetv2_int8.onnx 30 [NAME=SIZE ...]`.
use cairn_core::{passes::prepare_for_inference, DType, Dim, Session, Tensor, TensorData};
use std::collections::HashMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: profile_model MODEL.onnx [RUNS]");
    let runs: usize = args.get(2).map_or(20, |r| r.parse().expect("RUNS must be a number"));
    let dims: HashMap<String, usize> = args[3.min(args.len())..]
        .iter()
        .map(|a| {
            let (name, size) = a.split_once('=').expect("dims look like NAME=SIZE");
            (name.to_string(), size.parse().expect("SIZE must be a number"))
        })
        .collect();
    let model = cairn_onnx::load(std::path::Path::new(path)).expect("cannot load the model");
    let (graph, _) = prepare_for_inference(model.graph).expect("cannot prepare the graph");
    let mut inputs = HashMap::new();
    for vi in &graph.inputs {
        let shape: Vec<usize> = vi
            .dims
            .as_ref()
            .expect("input without shape")
            .iter()
            .map(|d| match d {
                Dim::Known(n) => *n,
                Dim::Sym(name) => dims.get(name).copied().unwrap_or(1),
            })
            .collect();
        let len = shape.iter().product();
        // Masks all ones and token types all zeros (as `cairn run --random` fills them).
        let ids = (0..len).map(|i| match vi.name.as_str() {
            n if n.contains("mask") => 1,
            n if n.contains("token_type") || n.contains("segment") => 0,
            _ => 1 + (i * 7919) % 999,
        });
        let data = match vi.dtype {
            DType::I64 => TensorData::I64(ids.map(|v| v as i64).collect()),
            DType::I32 => TensorData::I32(ids.map(|v| v as i32).collect()),
            _ => TensorData::F32((0..len).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect()),
        };
        inputs.insert(vi.name.clone(), Tensor::new(shape, data).expect("input tensor"));
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
