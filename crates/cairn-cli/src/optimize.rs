//! `cairn optimize`: constant folding, BatchNorm folding, dead-node removal and, with
//! `--quantize int8`, calibrated int8 quantization written as a QDQ ONNX model that
//! Cairn's loader runs on its int8 kernels (`int8-dynamic`: MatMuls with run-time
//! activation quantization, for transformers). The output is written atomically.

use crate::{fsutil, inputs_dir, model, model::human_bytes, progress};
use anyhow::{bail, Context, Result};
use cairn_core::passes::fold::fold_constants_for_storage;
use cairn_core::Session;
use cairn_quant::calibrate::{calibrate, Method};
use cairn_quant::fidelity::Agreement;
use cairn_quant::quantize::{plan, quantize, Options};
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
    /// transformer encoders; needs no calibration inputs).
    #[arg(long, value_name = "TYPE")]
    quantize: Option<String>,
    /// Directory of calibration inputs (.npy files, one input set each); keep it
    /// disjoint from the inputs you evaluate on.
    #[arg(long, value_name = "DIR")]
    calibrate: Option<PathBuf>,
    /// Calibration method: minmax, percentile (99.99th) or mse (`entropy` is accepted
    /// and means mse: the clipping that minimizes expected squared error).
    #[arg(long, default_value = "minmax")]
    calibration: String,
    /// Use at most this many calibration inputs.
    #[arg(long, default_value_t = 64)]
    max_inputs: usize,
    /// Keep the first layer (reading the model input) in f32.
    #[arg(long)]
    keep_first: bool,
    /// Keep layers writing a model output in f32.
    #[arg(long)]
    keep_last: bool,
    /// Skip bias correction (on by default: biases absorb the mean shift int8 weights
    /// cause in each output channel, from input means measured on the calibration inputs).
    #[arg(long)]
    no_bias_correction: bool,
    /// Structured pruning: remove this fraction of the hidden channels of every
    /// inverted-residual block (expand -> depthwise -> project), lowest L1 filter norm first.
    #[arg(long, value_name = "RATIO")]
    prune: Option<f32>,
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

pub fn main(args: OptimizeArgs) -> Result<()> {
    let norm = inputs_dir::Normalize { mean: inputs_dir::parse3("--mean", &args.mean)?, std: inputs_dir::parse3("--std", &args.std)? };
    let method = Method::parse(&args.calibration).with_context(|| format!("--calibration '{}' is not one of minmax, percentile, mse, entropy", args.calibration))?;
    let model = cairn_onnx::load(&args.model).with_context(|| format!("cannot load {}", args.model.display()))?;
    let original = model.graph.clone();
    let (mut graph, fold) = fold_constants_for_storage(model.graph).context("constant folding failed")?;
    let bn = cairn_core::passes::storage::fold_batchnorm_into_conv(&mut graph)?; // the pass `cairn pack` runs too
    eprintln!("folded {} constant nodes and {bn} BatchNormalizations", fold.folded_nodes);
    if let Some(ratio) = args.prune {
        let p = cairn_quant::prune::prune_hidden_channels(&mut graph, ratio)?;
        if p.blocks == 0 {
            bail!("--prune found no inverted-residual block (1x1 conv -> depthwise conv -> 1x1 conv) to prune");
        }
        eprintln!("pruned {} blocks: hidden channels {} -> {} ({:.1}% removed)", p.blocks, p.hidden_before, p.hidden_after, 100.0 * (1.0 - p.hidden_after as f64 / p.hidden_before as f64));
    }
    let mut calibration_inputs = Vec::new();
    if args.quantize.is_none() && args.report {
        if let Some(dir) = &args.calibrate {
            calibration_inputs = inputs_dir::read(dir, &graph, args.max_inputs, norm)?;
        }
    }
    match args.quantize.as_deref() {
        None => {}
        Some("int8") => {
            let dir = args.calibrate.as_ref().context("--quantize int8 needs --calibrate DIR (a directory of .npy inputs); for transformer encoders, --quantize int8-dynamic needs none")?;
            let inputs = inputs_dir::read(dir, &graph, args.max_inputs, norm)?;
            let opts = Options { bias_correction: !args.no_bias_correction, keep_first: args.keep_first, keep_last: args.keep_last };
            let (layers, targets) = plan(&graph, &opts);
            if layers.is_empty() {
                bail!("nothing to quantize: the model has no Conv, Gemm or MatMul with constant f32 weights");
            }
            let passes = if method == Method::MinMax { 1 } else { 2 };
            let bar = progress::bar((passes * inputs.len()) as u64, "calibrating");
            let cal = calibrate(&graph, &targets, &inputs, method, &|| bar.inc(1))?;
            bar.finish_and_clear();
            if !cal.zero_range.is_empty() {
                eprintln!("note: {} activation(s) were 0 on every calibration input and get scale 1 (0 stays exact): {}", cal.zero_range.len(), cal.zero_range.join(", "));
            }
            let (g, stats) = quantize(graph, &cal, &opts)?;
            if stats.corrected_channels > 0 {
                eprintln!("bias correction: {} output channels, mean shift {:.2e} removed", stats.corrected_channels, stats.mean_bias_shift);
            }
            graph = g;
            eprintln!(
                "quantized {} layers to int8 ({} activations calibrated with {} on {} inputs); weights {} -> {}",
                stats.layers,
                stats.activations,
                args.calibration,
                inputs.len(),
                human_bytes(stats.weight_bytes_before),
                human_bytes(stats.weight_bytes_after)
            );
            calibration_inputs = inputs;
        }
        Some("int8-dynamic") => {
            let (g, stats) = cairn_quant::dynamic::quantize_matmuls_dynamic(graph)?;
            if stats.matmuls == 0 {
                bail!("nothing to quantize: the model has no MatMul with a constant 2-D f32 weight (for convolutions use --quantize int8 --calibrate DIR)");
            }
            graph = g;
            eprintln!(
                "quantized {} MatMuls to int8 with activations quantized at run time ({} distinct inputs); weights {} -> {}",
                stats.matmuls,
                stats.activations,
                human_bytes(stats.weight_bytes_before),
                human_bytes(stats.weight_bytes_after)
            );
        }
        Some(other) => bail!("--quantize '{other}' is not supported (use int8, or int8-dynamic for transformer encoders)"),
    }
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
        println!("parameters  {} -> {} (in memory after load: {} -> {})", model::human_count(p0.0 as u64), model::human_count(p1.0 as u64), human_bytes(p0.1), human_bytes(p1.1));
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
