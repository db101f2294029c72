//! `cairn optimize`: constant folding, BatchNorm folding, dead-node removal and, with
//! `--quantize int8`, calibrated int8 quantization written as a QDQ ONNX model that
//! Cairn's loader runs on its int8 kernels (`int8-dynamic`: MatMuls with run-time
//! activation quantization, for transformers); `--prune` removes hidden channels, by one
//! ratio or, with `--sensitivity`, by per-block ratios that spare sensitive blocks.
//! The output is written atomically.

use crate::{fsutil, inputs_dir, model, model::human_bytes, progress, sensitivity};
use anyhow::{bail, Context, Result};
use cairn_core::passes::fold::fold_constants_for_storage;
use cairn_core::Session;
use cairn_quant::bn_prior::Priors;
use cairn_quant::calibrate::{calibrate, Method};
use cairn_quant::fidelity::Agreement;
use cairn_quant::quantize::{plan, quantize, Options, WeightRange};
use cairn_quant::sensitivity as measure;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct OptimizeArgs {
    /// The ONNX model to optimize.
    model: PathBuf,
    /// Where to write the optimized ONNX model.
    #[arg(short, long)]
    output: PathBuf,
    /// Quantize: `int8` (weights and activations, calibrated on --calibrate inputs: image
    /// models) or `int8-dynamic` (MatMul weights int8, activations quantized at run time:
    /// transformer encoders; needs no calibration inputs, but --keep-sensitive and
    /// --sensitivity measure layers on them).
    #[arg(long, value_name = "TYPE")]
    quantize: Option<String>,
    /// Directory of calibration inputs (.npy files or photos, one input set each; for a
    /// several-input model one subdirectory per set), or for a text model with --tokenizer a
    /// file of texts (one per line, plain or JSON lines); keep it disjoint from the inputs
    /// you evaluate on.
    #[arg(long, value_name = "DIR|TEXTS")]
    calibrate: Option<PathBuf>,
    /// The tokenizer.json that turns --calibrate TEXTS into the model's inputs.
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Calibration method: minmax, percentile (99.99th), mse (the clipping minimizing
    /// expected squared error) or entropy (the clipping minimizing the KL divergence
    /// between the observed and the quantized distribution, as TensorRT calibrates; the
    /// default: lowest mean KL and steadiest agreement on real photos, see the README).
    #[arg(long, default_value = "entropy")]
    calibration: String,
    /// Use at most this many calibration inputs.
    #[arg(long, default_value_t = 64)]
    max_inputs: usize,
    /// Bits of the int8 weights: 8 (-127..127) or 7 (-64..64, onnxruntime's reduce_range).
    /// 7 for x86-64 CPUs without VNNI (AVX2 only, e.g. AMD Zen 2-4, Intel before Ice Lake):
    /// there Cairn's byte kernel runs 7-bit weights exactly, 1.3-1.7x faster than 8-bit ones,
    /// and onnxruntime's kernel, which saturates on 8-bit weights, runs them exactly too. Costs
    /// one bit of weight precision: little on all-MiniLM-L6-v2 int8-dynamic (min cosine to f32
    /// 0.9919 vs 0.9927), much on EfficientNet-Lite0 static int8 (top-1 agreement with f32 on
    /// real photos 90.0% vs 94.4%): check with `cairn eval`. Elsewhere 8 is as fast.
    #[arg(long, value_name = "8|7", default_value_t = 8)]
    weight_bits: u8,
    /// int8-dynamic: keep the MatMuls whose weight name matches PATTERN in f32 (`*`: one
    /// dot-separated segment; repeatable). E.g. `encoder.layer.*.output.dense.weight` keeps a
    /// BERT-style encoder's FFN down projections, whose GELU inputs quantize worst.
    #[arg(long, value_name = "PATTERN")]
    keep_float: Vec<String>,
    /// Keep the first layer (reading the model input) in f32.
    #[arg(long)]
    keep_first: bool,
    /// Keep layers writing a model output in f32.
    #[arg(long)]
    keep_last: bool,
    /// Keep the N layers most sensitive to quantization in f32 (measured as with
    /// --sensitivity: each layer alone in int8 on the calibration inputs; with int8-dynamic,
    /// ranked by the cosine similarity of the first output to f32's).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_sensitive: usize,
    /// Per-layer sensitivity analysis on the calibration inputs, printed as a table: with
    /// --quantize, each layer quantized alone; with --prune, each block pruned alone at
    /// several ratios, and the blocks then get ratios that spare the sensitive ones while
    /// the overall ratio is kept.
    #[arg(long)]
    sensitivity: bool,
    /// Calibration inputs used for sensitivity analysis, spread evenly over the set (one
    /// model run per layer and input).
    #[arg(long, value_name = "N", default_value_t = 16)]
    sensitivity_inputs: usize,
    /// Also write the sensitivity tables as JSON to this file.
    #[arg(long, value_name = "FILE")]
    sensitivity_json: Option<PathBuf>,
    /// Skip bias correction (on by default: biases absorb the mean shift int8 weights
    /// cause in each output channel, from input means measured on the calibration inputs).
    #[arg(long)]
    no_bias_correction: bool,
    /// Structured pruning: remove this fraction of the hidden channels of every
    /// inverted-residual block (expand -> depthwise -> project), lowest L1 filter norm
    /// first (with --sensitivity: this fraction overall, per-block ratios by sensitivity).
    /// With --calibrate, channels are ranked by what dropping them costs on the calibration
    /// activations and their mean contribution is folded into the next layer's bias.
    #[arg(long, value_name = "RATIO")]
    prune: Option<f32>,
    /// Run-time widths: store hidden channels in importance order (measured on --calibrate
    /// inputs) with compensation terms for each width, given as shares of the full model's
    /// MACs (e.g. 0.85,0.7); `cairn run --width` and the web runtime pick one per request.
    #[arg(long, value_name = "LIST")]
    widths: Option<String>,
    /// Photos in the input directory: per-channel mean of `value / 255` (1 or 3 values).
    #[arg(long, default_value = "0")]
    mean: String,
    /// Photos: per-channel std of `value / 255`.
    #[arg(long, default_value = "1")]
    std: String,
    /// Print sizes and fidelity of the result on the calibration inputs.
    #[arg(long)]
    report: bool,
}

/// How the summary line names a weight range other than the full one.
fn weight_note(range: WeightRange) -> &'static str {
    match range {
        WeightRange::Full => "",
        WeightRange::Reduced => " (7-bit weights, -64..64)",
    }
}

/// The `--keep-sensitive` most sensitive of a quantization ranking (layers of static int8,
/// weights of int8-dynamic), after printing the table (`--sensitivity`), adding it to the
/// JSON tables and saying which stay f32.
fn keep_most_sensitive(
    ranking: &[measure::Sensitivity],
    args: &OptimizeArgs,
    inputs: usize,
    tables: &mut serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> std::collections::BTreeSet<String> {
    let kept: std::collections::BTreeSet<String> = measure::most_sensitive(ranking, args.keep_sensitive).into_iter().collect();
    if args.sensitivity {
        sensitivity::print_quantization(ranking, &kept, inputs);
    }
    tables.insert("quantization".into(), sensitivity::quantization_json(ranking, &kept));
    if !kept.is_empty() {
        eprintln!("keeping the {} most sensitive {what}(s) in f32: {}", kept.len(), kept.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    kept
}

pub fn main(args: OptimizeArgs) -> Result<()> {
    let norm = inputs_dir::Normalize { mean: inputs_dir::parse3("--mean", &args.mean)?, std: inputs_dir::parse3("--std", &args.std)? };
    let method = Method::parse(&args.calibration)
        .with_context(|| format!("--calibration '{}' is not one of minmax, percentile, mse, entropy", args.calibration))?;
    let mut model = crate::import::import_model(&args.model)?;
    let original = model.graph.clone();
    let (mut graph, fold) = fold_constants_for_storage(model.graph).context("constant folding failed")?;
    // Read before folding: what the BatchNormalizations say of the training data ranks and
    // compensates pruned channels better than a few calibration photos (docs/adr/0018).
    let priors = cairn_quant::bn_prior::batchnorm_priors(&graph);
    let bn = cairn_core::passes::storage::fold_batchnorm_into_conv(&mut graph)?; // the pass `cairn pack` runs too
    eprintln!("folded {} constant nodes and {bn} BatchNormalizations", fold.folded_nodes);
    if args.sensitivity_json.is_some() && !args.sensitivity && args.keep_sensitive == 0 {
        bail!("--sensitivity-json needs --sensitivity or --keep-sensitive");
    }
    let static_int8 = args.quantize.as_deref() == Some("int8");
    if !args.keep_float.is_empty() && args.quantize.as_deref() != Some("int8-dynamic") {
        bail!("--keep-float keeps MatMuls of --quantize int8-dynamic in f32; give --quantize int8-dynamic");
    }
    let dynamic_int8 = args.quantize.as_deref() == Some("int8-dynamic");
    let Some(weight_range) = WeightRange::from_bits(args.weight_bits) else {
        bail!("--weight-bits {} is not supported: give 8 (the default) or 7 (for x86-64 CPUs without VNNI)", args.weight_bits);
    };
    if args.weight_bits != 8 && !static_int8 && !dynamic_int8 {
        bail!("--weight-bits sets the range of int8 weights; give --quantize int8 or int8-dynamic");
    }
    if args.keep_sensitive > 0 && !static_int8 && !dynamic_int8 {
        bail!("--keep-sensitive N keeps layers of --quantize int8 or int8-dynamic in f32; give one of them");
    }
    if dynamic_int8 && (args.keep_sensitive > 0 || args.sensitivity) && args.calibrate.is_none() {
        bail!("--keep-sensitive and --sensitivity measure each layer on inputs: give --calibrate (for a text model: --calibrate texts.jsonl --tokenizer tokenizer.json)");
    }
    if args.sensitivity && !static_int8 && !dynamic_int8 && args.prune.is_none() {
        bail!("--sensitivity measures layers for --quantize int8 or --prune; give one of them");
    }
    let wants_inputs = args.quantize.is_some() || args.report || args.prune.is_some() || args.widths.is_some();
    if args.widths.is_some() && (args.calibrate.is_none() || args.prune.is_some() || args.quantize.is_some()) {
        bail!("--widths needs --calibrate DIR, and goes without --prune and --quantize (widths of int8 models are not supported yet)");
    }
    let inputs = match (&args.calibrate, wants_inputs) {
        (Some(texts), true) if texts.is_file() => match &args.tokenizer {
            Some(tokenizer) => crate::text::calibration_inputs(&graph, texts, tokenizer, args.max_inputs)?,
            None => bail!(
                "--calibrate {} is a file: give --tokenizer tokenizer.json to read it as texts, or a directory of input sets",
                texts.display()
            ),
        },
        (Some(dir), true) => {
            if args.tokenizer.is_some() {
                bail!(
                    "--tokenizer reads --calibrate as a file of texts, but {} is a directory of input sets: drop --tokenizer, or give a texts file",
                    dir.display()
                );
            }
            inputs_dir::read(dir, &graph, args.max_inputs, norm)?
        }
        _ => Vec::new(),
    };
    // Sensitivity inputs spread evenly over the calibration set (files sorted by name
    // come grouped by photo: the first 16 of target/calib-inputs are all one chessboard).
    let probe: Vec<_> = inputs
        .iter()
        .step_by((inputs.len() / args.sensitivity_inputs.max(1)).max(1))
        .take(args.sensitivity_inputs.max(1))
        .cloned()
        .collect();
    let probe = probe.as_slice();
    let mut tables = serde_json::Map::new();
    if let Some(ratio) = args.prune {
        let p = if args.sensitivity {
            if inputs.is_empty() {
                bail!("--prune with --sensitivity needs --calibrate DIR (inputs to measure each block on)");
            }
            if !(0.0..1.0).contains(&ratio) {
                bail!("--prune {ratio}: the ratio must be in [0, 1)");
            }
            let probes = measure::probe_ratios(ratio);
            let blocks = cairn_quant::prune::prunable_blocks(&graph).len();
            let bar = progress::bar((blocks * probes.len()) as u64, "pruning sensitivity");
            let curves = measure::pruning(&graph, &probes, probe, &|| bar.inc(1))?;
            bar.finish_and_clear();
            let ratios = measure::allocate_prune_ratios(&curves, ratio)?;
            sensitivity::print_pruning(&curves, &ratios, probe.len());
            tables.insert("pruning".into(), sensitivity::pruning_json(&curves, &ratios));
            prune(&mut graph, &inputs, &priors, &|name| ratios.get(name).copied().unwrap_or(0.0))?
        } else if !inputs.is_empty() {
            prune(&mut graph, &inputs, &priors, &|_| ratio)?
        } else {
            eprintln!("note: without --calibrate, pruning ranks channels by weight norm and cannot compensate what they carried");
            cairn_quant::prune::prune_hidden_channels(&mut graph, ratio)?
        };
        if p.blocks == 0 {
            bail!("--prune found no inverted-residual block (1x1 conv -> depthwise conv -> 1x1 conv) to prune");
        }
        eprintln!(
            "pruned {} blocks: hidden channels {} -> {} ({:.1}% removed)",
            p.blocks,
            p.hidden_before,
            p.hidden_after,
            100.0 * (1.0 - p.hidden_after as f64 / p.hidden_before as f64)
        );
    }
    if let Some(list) = &args.widths {
        let plan = make_widths(&mut graph, &inputs, &priors, &crate::widths::parse(list)?)?;
        crate::widths::set_plan(&mut model.meta, &plan)?;
    }
    match args.quantize.as_deref() {
        None => {}
        Some("int8") => {
            if args.calibrate.is_none() {
                bail!("--quantize int8 needs --calibrate DIR (a directory of .npy inputs); for transformer encoders, --quantize int8-dynamic needs none");
            }
            let mut opts = Options {
                bias_correction: !args.no_bias_correction,
                keep_first: args.keep_first,
                keep_last: args.keep_last,
                weights: weight_range,
                ..Options::default()
            };
            let (layers, targets) = plan(&graph, &opts);
            if layers.is_empty() {
                bail!("nothing to quantize: the model has no Conv, Gemm or MatMul with constant f32 weights");
            }
            let passes = if method == Method::MinMax { 1 } else { 2 };
            let bar = progress::bar((passes * inputs.len()) as u64, "calibrating");
            let cal = calibrate(&graph, &targets, &inputs, method, &|| bar.inc(1))?;
            bar.finish_and_clear();
            if !cal.zero_range.is_empty() {
                eprintln!(
                    "note: {} activation(s) were 0 on every calibration input and get scale 1 (0 stays exact): {}",
                    cal.zero_range.len(),
                    cal.zero_range.join(", ")
                );
            }
            if args.sensitivity || args.keep_sensitive > 0 {
                let bar = progress::bar(layers.len() as u64, "quantization sensitivity");
                let ranking = measure::quantization(&graph, &cal, &opts, probe, &|| bar.inc(1))?;
                bar.finish_and_clear();
                opts.keep.extend(keep_most_sensitive(&ranking, &args, probe.len(), &mut tables, "layer"));
            }
            let (g, stats) = quantize(graph, &cal, &opts)?;
            if stats.corrected_channels > 0 {
                eprintln!(
                    "bias correction: {} output channels, mean shift {:.2e} removed",
                    stats.corrected_channels, stats.mean_bias_shift
                );
            }
            graph = g;
            eprintln!(
                "quantized {} layers to int8{} ({} activations calibrated with {} on {} inputs); weights {} -> {}",
                stats.layers,
                weight_note(weight_range),
                stats.activations,
                args.calibration,
                inputs.len(),
                human_bytes(stats.weight_bytes_before),
                human_bytes(stats.weight_bytes_after)
            );
        }
        Some("int8-dynamic") => {
            let mut keep_float = args.keep_float.clone();
            if args.sensitivity || args.keep_sensitive > 0 {
                let layers = cairn_quant::dynamic::candidates(&graph, &keep_float).len();
                let bar = progress::bar(layers as u64, "quantization sensitivity");
                let ranking = measure::dynamic_quantization(&graph, &keep_float, weight_range, probe, &|| bar.inc(1))?;
                bar.finish_and_clear();
                keep_float.extend(keep_most_sensitive(&ranking, &args, probe.len(), &mut tables, "weight"));
            }
            let (g, stats) = cairn_quant::dynamic::quantize_matmuls_dynamic_keeping(graph, &keep_float, weight_range)?;
            if stats.matmuls == 0 {
                bail!("nothing to quantize: the model has no MatMul with a constant 2-D f32 weight (for convolutions use --quantize int8 --calibrate DIR)");
            }
            graph = g;
            eprintln!(
                "quantized {} MatMuls to int8{} with activations quantized at run time ({} distinct inputs) and {} embedding table(s) to int8 rows; weights {} -> {}",
                stats.matmuls,
                weight_note(weight_range),
                stats.activations,
                stats.tables,
                human_bytes(stats.weight_bytes_before),
                human_bytes(stats.weight_bytes_after)
            );
        }
        Some(other) => bail!("--quantize '{other}' is not supported (use int8, or int8-dynamic for transformer encoders)"),
    }
    if let Some(path) = &args.sensitivity_json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(tables))?;
        fsutil::write_atomically(path, |f| Ok(f.write_all(text.as_bytes())?))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let calibration_inputs = inputs;
    let bytes = cairn_onnx::save_bytes(&graph, &model.meta)?;
    fsutil::write_atomically(&args.output, |f| Ok(f.write_all(&bytes)?))?;
    let before = std::fs::metadata(&args.model).map(|m| m.len() as usize).unwrap_or(0);
    eprintln!("wrote {} ({} -> {})", args.output.display(), human_bytes(before), human_bytes(bytes.len()));
    if args.report {
        let reference = Session::new(cairn_core::passes::prepare_for_inference(original)?.0);
        let reloaded = cairn_onnx::load(&args.output)?;
        let candidate = Session::new(cairn_core::passes::prepare_for_inference(reloaded.graph)?.0);
        let macs = |s: &Session| -> Option<u64> { s.plan(&model::zero_inputs(s.graph(), &Default::default()).ok()?).ok().map(|p| p.macs) };
        let (p0, p1) = (reference.graph().parameter_stats(), candidate.graph().parameter_stats());
        println!("file        {} -> {}", human_bytes(before), human_bytes(bytes.len()));
        println!(
            "parameters  {} -> {} (in memory after load: {} -> {})",
            model::human_count(p0.0 as u64),
            model::human_count(p1.0 as u64),
            human_bytes(p0.1),
            human_bytes(p1.1)
        );
        if let (Some(a), Some(b)) = (macs(&reference), macs(&candidate)) {
            println!("MACs        {} -> {} (batch 1)", model::human_count(a), model::human_count(b));
        }
        if calibration_inputs.is_empty() {
            println!("fidelity    give --calibrate DIR to measure it here, or run `cairn eval` on held-out inputs");
            return Ok(());
        }
        let mut a = Agreement::default();
        for (_, set) in &calibration_inputs {
            let r = reference.run(set.clone())?;
            let c = candidate.run(set.clone())?;
            a.add(&r[0].1.view().to_f32_vec(), &c[0].1.view().to_f32_vec(), None);
        }
        println!(
            "fidelity    on the {} --calibrate inputs (use `cairn eval` on held-out inputs): top-1 agreement {:.1}%, mean KL {:.4}, cosine {:.5}",
            a.inputs,
            100.0 * Agreement::rate(a.top1, a.inputs),
            a.mean_kl(),
            a.mean_cosine()
        );
    }
    Ok(())
}

/// Compensated pruning: channels ranked by their BatchNormalization priors where the model
/// has them (else on the calibration activations), their mean contribution folded into the
/// project biases.
fn prune(
    graph: &mut cairn_core::Graph,
    inputs: &Inputs,
    priors: &Priors,
    ratio_of: &dyn Fn(&str) -> f32,
) -> Result<cairn_quant::prune::PruneStats> {
    let sets: Vec<_> = inputs.iter().map(|(_, s)| s.clone()).collect();
    let bar = progress::bar(sets.len() as u64, "measuring channels");
    let stats = cairn_quant::widths::measure(graph, &sets, priors, &|| bar.inc(1))?;
    bar.finish_and_clear();
    report_priors(graph, priors);
    let before: usize = stats.iter().map(|s| s.mean.len()).sum();
    *graph = cairn_quant::widths::prune_compensated(graph, &stats, ratio_of)?;
    let after: usize = cairn_quant::prune::prunable_blocks(graph).iter().map(|b| b.hidden).sum();
    Ok(cairn_quant::prune::PruneStats { blocks: stats.len(), hidden_before: before, hidden_after: after })
}

type Inputs = [(String, std::collections::HashMap<String, cairn_core::Tensor>)];

/// Says where the channel statistics came from (they decide which channels go).
fn report_priors(graph: &cairn_core::Graph, priors: &Priors) {
    let (with, all) = cairn_quant::widths::blocks_with_priors(graph, priors);
    if with == all {
        eprintln!("channel statistics of all {all} blocks from the model's BatchNormalizations (its training data)");
    } else {
        eprintln!(
            "channel statistics: {with} of {all} blocks from the model's BatchNormalizations, the others from the --calibrate inputs"
        );
    }
}

/// Orders channels by importance and plans `fractions` (shares of the model's MACs).
fn make_widths(graph: &mut cairn_core::Graph, inputs: &Inputs, priors: &Priors, fractions: &[f32]) -> Result<cairn_core::WidthPlan> {
    use cairn_quant::widths as w;
    let sets: Vec<_> = inputs.iter().map(|(_, s)| s.clone()).collect();
    let bar = progress::bar(sets.len() as u64, "measuring channels");
    let mut stats = w::measure(graph, &sets, priors, &|| bar.inc(1))?;
    bar.finish_and_clear();
    report_priors(graph, priors);
    if stats.is_empty() {
        bail!("--widths found no inverted-residual block (1x1 conv -> depthwise conv -> 1x1 conv) to narrow");
    }
    w::order_channels(graph, &mut stats)?;
    let probes: Vec<_> = sets.iter().step_by((sets.len() / 16).max(1)).take(16).cloned().collect();
    let bar = progress::bar(stats.len() as u64, "block sensitivity");
    w::calibrate_costs(graph, &mut stats, &probes, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let total = w::macs(graph)?;
    let keeps: Vec<(f32, Vec<usize>)> = fractions.iter().map(|&f| (f, w::keep_for(&stats, total, f))).collect();
    let plan = w::plan(graph, &stats, &keeps)?;
    let hidden: usize = stats.iter().map(|s| s.mean.len()).sum();
    for width in &plan.widths {
        eprintln!(
            "width {}: {} of {} hidden channels, {} MACs ({:.1}% of {})",
            width.fraction,
            width.keep.iter().sum::<usize>(),
            hidden,
            model::human_count(width.macs),
            100.0 * width.macs as f64 / total as f64,
            model::human_count(total)
        );
    }
    Ok(plan)
}
