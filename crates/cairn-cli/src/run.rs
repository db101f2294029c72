//! `cairn run`: run a model on .npy inputs (or random ones) and time it.

use crate::model::{self, human_bytes};
use crate::npy;
use crate::random::{choose_fill, XorShift};
use anyhow::{bail, Context, Result};
use cairn_core::{DType, Tensor};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Run a model on inputs from .npy files (or random ones) and print outputs and timing.
///
/// Inputs are `--input NAME=FILE.npy` (or just `--input FILE.npy` when the model has
/// one input). `--random` fills every input not given and says what it chose: floats
/// uniform in [0, 1); integer ids that a Gather reads from a table, within that table's
/// rows; inputs named like `attention_mask` all ones, `token_type_ids`/`segment_ids` all
/// zeros; other integers in [0, 10), booleans at random. Symbolic dims are 1 unless set by
/// `--dim`.
#[derive(Args)]
pub struct RunArgs {
    /// The .onnx model file, or a bundle directory written by `cairn pack`.
    model: PathBuf,
    /// An input as NAME=FILE.npy (repeatable), or FILE.npy for a single-input model.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE")]
    inputs: Vec<String>,
    /// Fill inputs not given with random data.
    #[arg(long)]
    random: bool,
    /// Seed for --random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bind a symbolic dimension for --random inputs, e.g. `--dim batch=4`.
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    dims: Vec<String>,
    /// Where to write outputs as .npy: one per graph output, in order.
    #[arg(long = "output", short = 'o', value_name = "FILE")]
    outputs: Vec<PathBuf>,
    /// Write every output to DIR/<output name>.npy.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Run this many times and report the median and minimum latency.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
    /// Threads for the kernels (default: every core). `--threads 1` measures single-core speed.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Time every step and print where the time goes, by operator and by node.
    #[arg(long)]
    profile: bool,
    /// Run-time width: the share of the full model's MACs to run (the model's nearest
    /// width is taken; see `cairn optimize --widths`). 1 runs the full model.
    #[arg(long, default_value_t = 1.0)]
    width: f32,
}

#[derive(Serialize)]
struct OutputSummary {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    file: Option<String>,
    /// For a classifier-like output ([1, N] or [N] floats): index of the largest value.
    argmax: Option<usize>,
    first_values: Vec<f64>,
}

#[derive(Serialize)]
struct RunSummary {
    load_ms: f64,
    /// First run, including planning for the input shapes.
    first_run_ms: f64,
    median_ms: Option<f64>,
    min_ms: Option<f64>,
    runs: usize,
    peak_working_bytes: usize,
    parameter_bytes: usize,
    threads: usize,
    outputs: Vec<OutputSummary>,
    /// With --profile: milliseconds per run by operator type, largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    profile_by_op: Vec<(String, f64)>,
    /// With --profile: the slowest nodes, milliseconds per run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    profile_by_node: Vec<(String, f64)>,
}

pub fn main(args: RunArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("cannot start the thread pool")?;
    }
    let t0 = Instant::now();
    let (loaded, width) = model::load_at_width(&args.model, args.width)?;
    if args.width < 1.0 {
        eprintln!("running at width {width} (the model's nearest to --width {})", args.width);
    }
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let graph = loaded.session.graph();
    let inputs = gather_inputs(&args, graph)?;
    let n_outputs = graph.outputs.len();
    if !args.outputs.is_empty() && args.outputs.len() != n_outputs {
        let names: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
        bail!("the model has {} outputs ({}) but {} --output files were given", n_outputs, names.join(", "), args.outputs.len());
    }

    let mut times = Vec::with_capacity(args.runs);
    let mut result = None;
    let mut arena = 0;
    let mut by_op: HashMap<String, f64> = HashMap::new();
    let mut by_node: HashMap<String, f64> = HashMap::new();
    for run in 0..args.runs {
        let t = Instant::now();
        let (outs, stats) =
            if args.profile { loaded.session.run_profiled(inputs.clone())? } else { loaded.session.run_with_stats(inputs.clone())? };
        times.push(t.elapsed().as_secs_f64() * 1e3);
        arena = stats.arena_bytes;
        result = Some(outs);
        // The first run includes planning; profile the steady ones (or the only one).
        if run > 0 || args.runs == 1 {
            for st in stats.profile {
                *by_op.entry(st.op_type.clone()).or_default() += st.seconds * 1e3;
                *by_node.entry(format!("{} ({})", st.node, st.op_type)).or_default() += st.seconds * 1e3;
            }
        }
    }
    let profiled_runs = if args.runs > 1 { args.runs - 1 } else { 1 } as f64;
    let ranked = |m: HashMap<String, f64>, keep: usize| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = m.into_iter().map(|(k, t)| (k, t / profiled_runs)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(keep);
        v
    };
    let outputs = result.expect("runs >= 1");
    let steady: Vec<f64> = {
        let mut s = if times.len() > 1 { times[1..].to_vec() } else { Vec::new() };
        s.sort_by(f64::total_cmp);
        s
    };

    let mut summaries = Vec::new();
    for (i, (name, tensor)) in outputs.iter().enumerate() {
        let file = match (args.outputs.get(i), &args.output_dir) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(dir)) => {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                Some(dir.join(format!("{}.npy", sanitize(name))))
            }
            _ => None,
        };
        if let Some(p) = &file {
            npy::write(p, tensor)?;
        }
        summaries.push(summarize(name, tensor, file.as_deref()));
    }
    let summary = RunSummary {
        load_ms,
        first_run_ms: times[0],
        median_ms: steady.get(steady.len() / 2).copied(),
        min_ms: steady.first().copied(),
        runs: args.runs,
        peak_working_bytes: arena,
        parameter_bytes: graph.parameter_stats().1,
        threads: rayon::current_num_threads(),
        outputs: summaries,
        profile_by_op: ranked(by_op, usize::MAX),
        profile_by_node: ranked(by_node, 15),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_text(&summary);
    }
    Ok(())
}

fn gather_inputs(args: &RunArgs, graph: &cairn_core::Graph) -> Result<HashMap<String, Tensor>> {
    let runtime: Vec<&cairn_core::ValueInfo> = graph.runtime_inputs().collect();
    let mut inputs = HashMap::new();
    for spec in &args.inputs {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) => (n.to_string(), PathBuf::from(p)),
            None if runtime.len() == 1 => (runtime[0].name.clone(), PathBuf::from(spec)),
            None => {
                let names: Vec<&str> = runtime.iter().map(|i| i.name.as_str()).collect();
                bail!("the model has several inputs ({}): write --input NAME=FILE.npy", names.join(", "));
            }
        };
        let (mut tensor, converted) = npy::read(&path)?;
        let info = runtime.iter().find(|i| i.name == name);
        if let (Some(note), Some(info)) = (converted, info) {
            if info.dtype == DType::F32 {
                eprintln!("note: {}: {note}", path.display());
            } else {
                tensor = Tensor::zeros(DType::Bool, vec![0])?; // force the dtype error below
            }
        }
        inputs.insert(name, tensor);
    }
    let bound = model::parse_dims(&args.dims)?;
    let mut rng = XorShift::seeded(args.seed);
    for info in runtime {
        if inputs.contains_key(&info.name) {
            continue;
        }
        if info.dtype == DType::Str {
            bail!(
                "input '{}' is a string tensor, which `cairn run` does not feed (it reads numeric .npy files and draws numbers)",
                info.name
            );
        }
        if !args.random {
            bail!("input '{}' was not given (pass --input {}=FILE.npy, or --random)", info.name, info.name);
        }
        let dims = info.dims.as_deref().with_context(|| format!("input '{}' declares no shape; give it as a .npy file", info.name))?;
        let (shape, defaulted) = model::bind_shape(dims, &bound);
        if !defaulted.is_empty() && !args.json {
            eprintln!("note: symbolic dims {} set to 1 (use --dim NAME=SIZE)", defaulted.join(", "));
        }
        let fill = choose_fill(graph, info);
        // On stderr, so that --json output stays machine-readable.
        eprintln!("--random {}: {} {:?}, {}", info.name, info.dtype, shape, fill.describe(info.dtype));
        inputs.insert(info.name.clone(), fill.tensor(info.dtype, shape, &mut rng)?);
    }
    Ok(inputs)
}

/// xorshift64*: small, deterministic, good enough for test inputs.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

fn summarize(name: &str, t: &Tensor, file: Option<&Path>) -> OutputSummary {
    let values: Vec<f64> = t.view().to_f32_vec().into_iter().map(f64::from).collect();
    let classifier = t.dtype().is_float() && (t.rank() == 1 || (t.rank() == 2 && t.shape()[0] == 1)) && values.len() > 1;
    let argmax = classifier.then(|| values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i)).flatten();
    OutputSummary {
        name: name.to_string(),
        dtype: t.dtype().to_string(),
        shape: t.shape().to_vec(),
        file: file.map(|p| p.display().to_string()),
        argmax,
        first_values: values.into_iter().take(5).collect(),
    }
}

fn print_text(s: &RunSummary) {
    for o in &s.outputs {
        let preview: Vec<String> = o.first_values.iter().map(|v| format!("{v:.6}")).collect();
        let mut line = format!(
            "{} {} {:?} [{}{}]",
            o.name,
            o.dtype,
            o.shape,
            preview.join(", "),
            if o.shape.iter().product::<usize>() > 5 { ", ..." } else { "" }
        );
        if let Some(a) = o.argmax {
            line.push_str(&format!(" argmax {a}"));
        }
        if let Some(f) = &o.file {
            line.push_str(&format!(" -> {f}"));
        }
        println!("{line}");
    }
    print!("load {:.1} ms | first run {:.2} ms", s.load_ms, s.first_run_ms);
    if let (Some(med), Some(min)) = (s.median_ms, s.min_ms) {
        print!(" | median {:.2} ms, min {:.2} ms over {} runs", med, min, s.runs - 1);
    }
    println!(
        " | working memory {} | weights {} | {} thread(s)",
        human_bytes(s.peak_working_bytes),
        human_bytes(s.parameter_bytes),
        s.threads
    );
    if !s.profile_by_op.is_empty() {
        let total: f64 = s.profile_by_op.iter().map(|(_, t)| t).sum();
        println!("time per run by operator ({total:.2} ms in steps):");
        for (op, t) in &s.profile_by_op {
            println!("  {:>8.3} ms {:>5.1}%  {op}", t, 100.0 * t / total);
        }
        println!("slowest nodes:");
        for (node, t) in &s.profile_by_node {
            println!("  {t:>8.3} ms  {node}");
        }
    }
}
