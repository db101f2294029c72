//! `native-bench --engine cairn|tract --model M [--threads N] [--runs R] [--warmup W] [--seq S]`
//!
//! Runs one engine on one model with the deterministic input every engine of the
//! benchmark uses, and prints one JSON line: latency statistics, peak RSS and the
//! first output (so the driver can check that the engines agree).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::time::Instant;

struct Args {
    engine: String,
    model: String,
    threads: usize,
    runs: usize,
    warmup: usize,
    seq: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { engine: String::new(), model: String::new(), threads: 1, runs: 20, warmup: 3, seq: 128 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).context("every flag takes a value")?;
        match pair[0].as_str() {
            "--engine" => a.engine = v.clone(),
            "--model" => a.model = v.clone(),
            "--threads" => a.threads = v.parse()?,
            "--runs" => a.runs = v.parse()?,
            "--warmup" => a.warmup = v.parse()?,
            "--seq" => a.seq = v.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// The benchmark's shared inputs: images are uniform [0, 1) from a 32-bit LCG
/// (the same generator as bench/web and ort_bench.py); token ids cycle through
/// [1, 1000) and the attention mask is all ones.
enum Input {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

fn lcg_f32(n: usize) -> Vec<f32> {
    let mut s: u32 = 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

fn make_input(name: &str, is_int: bool, seq: usize) -> Input {
    if is_int {
        let shape = vec![1, seq];
        let v = if name.contains("mask") { vec![1; seq] } else { (0..seq).map(|i| 1 + (i as i64 * 37) % 999).collect() };
        Input::I64(shape, v)
    } else {
        Input::F32(vec![1, 3, 224, 224], lcg_f32(3 * 224 * 224))
    }
}

fn peak_rss_bytes() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

fn time_runs(runs: usize, warmup: usize, mut f: impl FnMut() -> Result<Vec<f32>>) -> Result<(f64, f64, Vec<f32>)> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::new();
    let mut out = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        out = f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[0], out))
}

fn run_cairn(a: &Args) -> Result<(f64, f64, Vec<f32>, f64)> {
    let t0 = Instant::now();
    let model = cairn_onnx::load(std::path::Path::new(&a.model))?;
    let (graph, _) = cairn_core::passes::prepare_for_inference(model.graph)?;
    let inputs: HashMap<String, cairn_core::Tensor> = graph
        .runtime_inputs()
        .map(|i| {
            let t = match make_input(&i.name, i.dtype == cairn_core::DType::I64, a.seq) {
                Input::F32(s, v) => cairn_core::Tensor::from_f32(s, v),
                Input::I64(s, v) => cairn_core::Tensor::from_i64(s, v),
            };
            t.map(|t| (i.name.clone(), t))
        })
        .collect::<Result<_, _>>()?;
    let session = cairn_core::Session::new(graph);
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (med, min, out) = time_runs(a.runs, a.warmup, || {
        let outs = session.run(inputs.clone())?;
        Ok(outs[0].1.f32s()?.to_vec())
    })?;
    Ok((med, min, out, load_ms))
}

fn run_tract(a: &Args) -> Result<(f64, f64, Vec<f32>, f64)> {
    use tract_onnx::prelude::*;
    let t0 = Instant::now();
    let mut model = tract_onnx::onnx().model_for_path(&a.model)?;
    let mut tensors = Vec::new();
    for (ix, outlet) in model.input_outlets()?.to_vec().iter().enumerate() {
        let fact = model.outlet_fact(*outlet)?.clone();
        let name = model.node(outlet.node).name.clone();
        let is_int = fact.datum_type == i64::datum_type().into();
        let t: Tensor = match make_input(&name, is_int, a.seq) {
            Input::F32(s, v) => tract_ndarray::ArrayD::from_shape_vec(s, v)?.into(),
            Input::I64(s, v) => tract_ndarray::ArrayD::from_shape_vec(s, v)?.into(),
        };
        model.set_input_fact(ix, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
        tensors.push(t);
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let inputs: TVec<TValue> = tensors.into_iter().map(|t| t.into()).collect();
    let (med, min, out) = time_runs(a.runs, a.warmup, || {
        let outs = plan.run(inputs.clone())?;
        Ok(outs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
    })?;
    Ok((med, min, out, load_ms))
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads).build()?;
    let (median_ms, min_ms, out, load_ms) = pool.install(|| match a.engine.as_str() {
        "cairn" => run_cairn(&a),
        "tract" => run_tract(&a),
        other => bail!("unknown engine {other}"),
    })?;
    let head: Vec<f32> = out.iter().take(4096).copied().collect();
    println!(
        "{}",
        serde_json::json!({"engine": a.engine, "threads": a.threads, "model": a.model, "runs": a.runs, "median_ms": median_ms, "min_ms": min_ms, "load_ms": load_ms, "peak_rss_bytes": peak_rss_bytes(), "output_head": head})
    );
    Ok(())
}
