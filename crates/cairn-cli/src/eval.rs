//! `cairn eval ORIGINAL OPTIMIZED --inputs DIR`: how closely an optimized model follows
//! its original (top-1/top-5 agreement on all and on decisive inputs, mean KL, cosine
//! similarity), accuracy of both with `--labels`, and per-layer error of every
//! quantized activation to find the culprit layer.

use crate::inputs_dir;
use anyhow::{Context, Result};
use cairn_core::passes::prepare_for_inference;
use cairn_core::{DType, Graph, Session, Tensor, ValueInfo};
use cairn_quant::fidelity::{cosine, relative_error, Agreement};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    /// The reference model (.onnx).
    original: PathBuf,
    /// The optimized model (.onnx), e.g. from `cairn optimize --quantize int8`.
    optimized: PathBuf,
    /// Directory of .npy inputs (one input set per file).
    #[arg(long, value_name = "DIR")]
    inputs: PathBuf,
    /// Labels: lines `FILE CLASS_INDEX` (file names as in --inputs) for real accuracy.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Use at most this many inputs.
    #[arg(long, default_value_t = 1000)]
    max_inputs: usize,
    /// Inputs used for the per-layer error table (the slowest part).
    #[arg(long, default_value_t = 8)]
    layer_inputs: usize,
    /// Photos in --inputs: per-channel mean of `value / 255` (1 or 3 values).
    #[arg(long, default_value = "0")]
    mean: String,
    /// Photos: per-channel std of `value / 255`.
    #[arg(long, default_value = "1")]
    std: String,
    /// Print the whole report as JSON.
    #[arg(long)]
    json: bool,
    /// The optimized model has run-time widths (`cairn optimize --widths`): report every
    /// width's MACs, latency and agreement with the original.
    #[arg(long)]
    widths: bool,
    /// With --widths: timed runs per width (on the first input, after one warm-up run).
    #[arg(long, default_value_t = 10)]
    latency_runs: usize,
}

/// A quantized activation of the optimized model: (original tensor, quantized value, scale, zero point).
struct Probe {
    tensor: String,
    quantized: String,
    scale: f32,
    zero: f32,
    dtype: DType,
}

fn probes(original: &Graph, optimized: &Graph) -> Vec<Probe> {
    let values: std::collections::HashSet<&str> = original.nodes.iter().flat_map(|n| n.outputs.iter().map(|s| s.as_str())).collect();
    let scalar = |name: &Option<String>| {
        name.as_ref().and_then(|n| optimized.initializers.get(n)).filter(|t| t.len() == 1).map(|t| (t.view().to_f32_vec()[0], t.dtype()))
    };
    optimized
        .nodes
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear" && n.domain.is_empty())
        .filter_map(|n| {
            let tensor = n.inputs[0].clone()?;
            let (scale, _) = scalar(n.inputs.get(1)?)?;
            let (zero, dtype) = n.inputs.get(2).and_then(scalar).unwrap_or((0.0, DType::U8));
            values.contains(tensor.as_str()).then(|| Probe { tensor, quantized: n.outputs[0].clone(), scale, zero, dtype })
        })
        .collect()
}

fn with_outputs(mut g: Graph, extra: &[(String, DType)]) -> Result<Session> {
    for (name, dtype) in extra {
        if !g.outputs.iter().any(|o| &o.name == name) {
            g.outputs.push(ValueInfo { name: name.clone(), dtype: *dtype, dims: None });
        }
    }
    Ok(Session::new(prepare_for_inference(g)?.0))
}

pub fn main(args: EvalArgs) -> Result<()> {
    let norm = inputs_dir::Normalize { mean: inputs_dir::parse3("--mean", &args.mean)?, std: inputs_dir::parse3("--std", &args.std)? };
    let load = |p: &PathBuf| crate::import::import_model(p);
    let optimized = load(&args.optimized)?;
    let (orig, opt) = (load(&args.original)?.graph, optimized.graph);
    let inputs = inputs_dir::read(&args.inputs, &orig, args.max_inputs, norm)?;
    if args.widths {
        let plan = crate::widths::plan_of(&optimized.meta)?
            .context("--widths: the optimized model has no run-time widths (make them with `cairn optimize --widths`)")?;
        return crate::eval_widths::report(&orig, &opt, &plan, &inputs, args.latency_runs, args.json);
    }
    let labels: HashMap<String, usize> = match &args.labels {
        None => HashMap::new(),
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read labels {}", p.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (f, c) = l.rsplit_once(char::is_whitespace).with_context(|| format!("labels line '{l}' must be 'FILE CLASS_INDEX'"))?;
                Ok((f.trim().to_string(), c.trim().parse().with_context(|| format!("labels line '{l}': '{c}' is not a class index"))?))
            })
            .collect::<Result<_>>()?,
    };
    let probes = probes(&orig, &opt);
    let reference = with_outputs(orig.clone(), &probes.iter().map(|p| (p.tensor.clone(), DType::F32)).collect::<Vec<_>>())?;
    let candidate = with_outputs(opt.clone(), &probes.iter().map(|p| (p.quantized.clone(), p.dtype)).collect::<Vec<_>>())?;
    let bar = crate::progress::bar(inputs.len() as u64, "evaluating");
    let mut a = Agreement::default();
    let mut layer: HashMap<String, (f64, f64, usize)> = HashMap::new();
    for (k, (name, set)) in inputs.iter().enumerate() {
        let r: HashMap<String, Tensor> = reference.run(set.clone())?.into_iter().collect();
        let c: HashMap<String, Tensor> = candidate.run(set.clone())?.into_iter().collect();
        let out = &orig.outputs[0].name;
        a.add(&r[out].view().to_f32_vec(), &c[&opt.outputs[0].name].view().to_f32_vec(), labels.get(name).copied());
        if k < args.layer_inputs {
            for p in &probes {
                let want = r[&p.tensor].view().to_f32_vec();
                let got: Vec<f32> = c[&p.quantized].view().to_f32_vec().iter().map(|q| (q - p.zero) * p.scale).collect();
                let e = layer.entry(p.tensor.clone()).or_default();
                e.0 = e.0.max(relative_error(&want, &got));
                e.1 += cosine(&want, &got);
                e.2 += 1;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let pct = |n: usize, of: usize| 100.0 * Agreement::rate(n, of);
    let mut rows: Vec<(String, f64, f64)> =
        probes.iter().filter_map(|p| layer.get(&p.tensor).map(|(e, c, n)| (p.tensor.clone(), *e, c / *n as f64))).collect();
    if args.json {
        let doc = serde_json::json!({
            "inputs": a.inputs, "top1_agreement": Agreement::rate(a.top1, a.inputs), "top5_agreement": Agreement::rate(a.top5, a.inputs),
            "decisive_inputs": a.decisive, "decisive_top1_agreement": Agreement::rate(a.decisive_top1, a.decisive),
            "mean_kl": a.mean_kl(), "mean_cosine": a.mean_cosine(),
            "labeled": a.labeled, "original_accuracy": Agreement::rate(a.reference_correct, a.labeled), "optimized_accuracy": Agreement::rate(a.candidate_correct, a.labeled),
            "layers": rows.iter().map(|(t, e, c)| serde_json::json!({"tensor": t, "max_relative_error": e, "cosine": c})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("inputs                {}", a.inputs);
    println!("top-1 agreement       {:.1}% ({} / {})", pct(a.top1, a.inputs), a.top1, a.inputs);
    println!("top-5 agreement       {:.1}% (original's top-1 in optimized top-5)", pct(a.top5, a.inputs));
    match a.decisive {
        0 => println!("decisive inputs       0 (original softmax margin >= 0.1; none here, e.g. hidden states rather than class scores)"),
        d => println!("decisive inputs       {d} (original softmax margin >= 0.1): top-1 agreement {:.1}%", pct(a.decisive_top1, d)),
    }
    println!("mean KL(orig || opt)  {:.5}", a.mean_kl());
    println!("mean cosine           {:.5}", a.mean_cosine());
    if a.labeled > 0 {
        println!(
            "accuracy ({} labeled) original {:.1}%, optimized {:.1}%",
            a.labeled,
            pct(a.reference_correct, a.labeled),
            pct(a.candidate_correct, a.labeled)
        );
    }
    if !rows.is_empty() {
        let n = rows.len();
        rows.sort_by(|x, y| y.1.total_cmp(&x.1));
        println!("per-layer error of the {n} quantized activations (first {} inputs), worst first:", args.layer_inputs.min(a.inputs));
        println!("  {:>10} {:>9}  tensor", "max rel", "cosine");
        for (t, e, c) in rows.iter().take(10) {
            println!("  {e:>10.4} {c:>9.5}  {t}");
        }
    }
    Ok(())
}
