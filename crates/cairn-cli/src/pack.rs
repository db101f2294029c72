//! `cairn pack`: an ONNX model to a bundle directory a web app can ship.

use crate::fidelity::{self, Inputs};
use crate::model::{bind_shape, human_bytes};
use crate::random::{random_tensor, XorShift};
use crate::{npy, progress};
use anyhow::{bail, Context, Result};
use cairn_bundle::{pack, Loader, Manifest, PackOptions, Packed, Preprocess};
use cairn_core::passes::{fold, prepare_for_inference};
use cairn_core::{Graph, Session, Tensor};
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Pack a model into a bundle: DIR/manifest.json + DIR/shards/<sha256>.safetensors.
///
/// Weights are stored in the order the model first reads them, in shards of about
/// --shard-size, named by their sha256 so browsers and CDNs can cache them forever.
/// By default large weights are split into two levels with no byte sent twice:
/// "coarse" (the model runs on it alone) and "full" (the rest, refining the weights in
/// place). f32 weights: bfloat16 first, then the rest of each f32. int8 weights (from
/// `cairn optimize --quantize int8`): the high 4 bits first, then the low 4 bits;
/// depthwise filters go whole into the coarse level. Each level's fidelity against the
/// full model is measured and written to the manifest.
///
/// Packing into a directory that holds an earlier version keeps the shards that did
/// not change (`cairn diff` shows what a client must fetch) and removes the rest.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn pack mobilenetv2.onnx -o dist/models/mobilenetv2 --image-size 224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --labels imagenet.txt\n  cairn pack encoder.onnx -o dist/models/encoder --no-progressive --json\n  cairn pack minilm.onnx -o dist/models/minilm --tokenizer tokenizer.json --task feature-extraction --max-length 256 --pooling mean"
)]
pub struct PackArgs {
    /// The .onnx model file.
    model: PathBuf,
    /// The bundle directory to write (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    output: PathBuf,
    /// The model's name in the manifest (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// A version string (default: a hash of the graph and weights).
    #[arg(long = "model-version", value_name = "VERSION")]
    version: Option<String>,
    /// Target shard size in MiB.
    #[arg(long, default_value_t = 2.0, value_name = "MIB")]
    shard_size: f64,
    /// One level only: every weight whole (no coarse level).
    #[arg(long)]
    no_progressive: bool,
    /// Only weights of at least this many elements are split into two levels; smaller
    /// ones go whole into the coarse level. Raising it trades coarse-level bytes for
    /// fidelity: on the int8 EfficientNet-Lite0, 400000 splits only the classifier and
    /// the head conv (coarse level 100% decisive agreement, but ~80% of the bytes).
    #[arg(long, default_value_t = 4096, value_name = "N")]
    min_split_elements: usize,
    /// Split int8 depthwise (grouped) filters into nibbles too: a smaller coarse level,
    /// but its agreement with the full model drops (they are few bytes and sensitive).
    #[arg(long)]
    split_depthwise: bool,
    /// The input images are fed to (default: the model's only input).
    #[arg(long, value_name = "NAME")]
    image_input: Option<String>,
    /// Image preprocessing: the input's height and width, e.g. 224 or 256x192.
    #[arg(long, value_name = "SIZE")]
    image_size: Option<String>,
    /// Per-channel mean subtracted after scaling pixels to [0, 1].
    #[arg(long, value_name = "R,G,B", default_value = "0,0,0")]
    mean: String,
    /// Per-channel standard deviation divided by after subtracting the mean.
    #[arg(long, value_name = "R,G,B", default_value = "1,1,1")]
    std: String,
    /// Channel order the model expects: rgb or bgr.
    #[arg(long, default_value = "rgb")]
    color: String,
    /// Class names for the first output's last axis: a text file with one per line, or a JSON array.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// A directory of .npy inputs (single-input models) to measure each level's fidelity on.
    /// Without it, 32 seeded random inputs are used and the manifest says so.
    #[arg(long, value_name = "DIR")]
    fidelity_inputs: Option<PathBuf>,
    #[command(flatten)]
    text: crate::text::TextPackArgs,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

pub fn main(args: PackArgs) -> Result<()> {
    let model = crate::import::import_model(&args.model)?;
    // Bundles store the standard-operator graph after constant folding, with weights
    // laid out as the kernels read them in place and BatchNorm statistics folded into
    // the filters (fewer bytes; the coarse level runs lighter before fusion); the rest of
    // fusion and prepacking happen at load, for the loading machine's kernels.
    let widths = crate::widths::plan_of(&model.meta)?;
    // Folding drops initializers no node reads: keep the widths' compensation tensors.
    let compensation: Vec<_> = widths
        .iter()
        .flat_map(|p| p.tensors())
        .filter_map(|n| model.graph.initializers.get_key_value(n))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (mut graph, _) = fold::fold_constants_for_storage(model.graph).context("constant folding failed")?;
    cairn_core::passes::storage::fold_batchnorm_into_conv(&mut graph)?;
    cairn_core::passes::storage::gemm_weights_row_major(&mut graph)?;
    graph.initializers.extend(compensation);

    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("give --name: the output path has no directory name")?,
    };
    let opts = PackOptions {
        name,
        version: args.version.clone(),
        shard_bytes: (args.shard_size * (1 << 20) as f64) as usize,
        progressive: !args.no_progressive,
        split_grouped_int8: args.split_depthwise,
        min_split_elements: args.min_split_elements,
        text: args.text.task(read_labels(&args)?)?,
        widths,
    };
    let mut packed = pack(&graph, &opts)?;
    describe_io(&mut packed.manifest, &args)?;

    let fidelity_inputs = match (&opts.text, &args.fidelity_inputs) {
        (Some((task, tokenizer)), None) => crate::text::fidelity_inputs(&graph, tokenizer, task.max_length)?,
        _ => fidelity_inputs(&graph, &packed.manifest, &args)?,
    };
    measure_levels(&mut packed, graph, &fidelity_inputs.0, &fidelity_inputs.1)?;
    if args.version.is_none() {
        packed.manifest.version = content_version(&packed.manifest);
    }
    packed.manifest.check()?;

    let bar = progress::bar(packed.shards.len() as u64, "writing shards");
    let report = cairn_bundle::write_bundle(&args.output, &packed, |_| bar.inc(1))
        .with_context(|| format!("cannot write the bundle to {}", args.output.display()))?;
    bar.finish_and_clear();

    let m = &packed.manifest;
    if args.json {
        let summary = serde_json::json!({
            "dir": args.output.display().to_string(),
            "name": m.name,
            "version": m.version,
            "shards": m.shards.len(),
            "bytes": m.total_bytes(),
            "levels": m.levels,
            "write": report,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("packed {} version {} into {}", m.name, m.version, args.output.display());
    println!("  {} weights in {} shards, {}", m.tensors.len(), m.shards.len(), human_bytes(m.total_bytes() as usize));
    for (i, level) in m.levels.iter().enumerate() {
        let fid = level.fidelity.as_ref().map_or(String::new(), |f| {
            let decisive = match (f.decisive_inputs, f.decisive_top1_agreement) {
                (Some(n), Some(a)) => format!(", {:.1}% on the {n} decisive ones", a * 100.0),
                _ => String::new(),
            };
            let kl = f.mean_kl.map_or(String::new(), |k| format!(", mean KL {k:.2e}"));
            format!(
                ": top-1 agreement {:.1}% with the full model{decisive}{kl}, max relative error {:.1e} ({} {} inputs)",
                f.top1_agreement * 100.0,
                f.max_relative_error,
                f.inputs,
                f.input_source
            )
        });
        println!(
            "  level {i} '{}': {} (runs after {}){fid}",
            level.name,
            human_bytes(level.bytes as usize),
            human_bytes(m.bytes_through(i) as usize)
        );
    }
    println!(
        "  wrote {} shards ({}), kept {} unchanged ({}), removed {} no longer used",
        report.shards_written,
        human_bytes(report.bytes_written as usize),
        report.shards_reused,
        human_bytes(report.bytes_reused as usize),
        report.shards_removed
    );
    Ok(())
}

/// Adds preprocessing to the image input and labels to the first output.
fn describe_io(manifest: &mut Manifest, args: &PackArgs) -> Result<()> {
    if let Some(size) = &args.image_size {
        let size = parse_size(size)?;
        let input = match &args.image_input {
            Some(name) => {
                manifest.inputs.iter_mut().find(|i| &i.name == name).with_context(|| format!("the model has no input '{name}'"))?
            }
            None => match manifest.inputs.as_mut_slice() {
                [only] => only,
                _ => bail!("the model has {} inputs: say which takes images with --image-input", manifest.inputs.len()),
            },
        };
        if input.dims.len() != 4 {
            bail!("input '{}' has {} dims; image preprocessing needs [N, C, H, W] or [N, H, W, C]", input.name, input.dims.len());
        }
        let channels_at = |i: usize| matches!(input.dims[i], cairn_bundle::DimDoc::Known(3));
        let layout = if channels_at(1) {
            "nchw"
        } else if channels_at(3) {
            "nhwc"
        } else {
            bail!("input '{}' has no axis of 3 channels at position 1 or 3", input.name)
        };
        if !matches!(args.color.as_str(), "rgb" | "bgr") {
            bail!("--color must be rgb or bgr, got '{}'", args.color);
        }
        input.preprocess = Some(Preprocess {
            size,
            layout: layout.into(),
            color: args.color.clone(),
            mean: parse_triple(&args.mean, "--mean")?,
            std: parse_triple(&args.std, "--std")?,
        });
        if input.preprocess.as_ref().is_some_and(|p| p.std.contains(&0.0)) {
            bail!("--std must not contain 0");
        }
    }
    if let (Some(path), Some(labels)) = (&args.labels, read_labels(args)?) {
        let output = manifest.outputs.first_mut().context("the model has no outputs to label")?;
        if let Some(cairn_bundle::DimDoc::Known(n)) = output.dims.as_ref().and_then(|d| d.last()) {
            if *n != labels.len() {
                bail!("{} has {} labels but output '{}' has {n} classes", path.display(), labels.len(), output.name);
            }
        }
        output.labels = Some(labels);
    }
    Ok(())
}

/// The class names of --labels: a text file with one per line, or a JSON array.
fn read_labels(args: &PackArgs) -> Result<Option<Vec<String>>> {
    let Some(path) = &args.labels else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read labels from {}", path.display()))?;
    let labels = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).with_context(|| format!("{} looks like JSON but is not an array of strings", path.display()))?
    } else {
        text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    Ok(Some(labels))
}

fn parse_size(s: &str) -> Result<[u32; 2]> {
    let parts: Vec<&str> = s.split('x').collect();
    let nums: Vec<u32> = parts
        .iter()
        .map(|p| p.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--image-size '{s}' must look like 224 or 256x192"))?;
    match nums.as_slice() {
        [n] if *n > 0 => Ok([*n, *n]),
        [h, w] if *h > 0 && *w > 0 => Ok([*h, *w]),
        _ => bail!("--image-size '{s}' must look like 224 or 256x192"),
    }
}

fn parse_triple(s: &str, flag: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{flag} '{s}' must be three numbers, e.g. 0.485,0.456,0.406"))?;
    v.try_into().map_err(|_| anyhow::anyhow!("{flag} '{s}' must be three numbers, e.g. 0.485,0.456,0.406"))
}

/// The inputs each level is scored on, and a description of where they came from.
fn fidelity_inputs(graph: &Graph, manifest: &Manifest, args: &PackArgs) -> Result<(Vec<Inputs>, String)> {
    let runtime: Vec<_> = graph.runtime_inputs().collect();
    if let Some(dir) = &args.fidelity_inputs {
        let [only] = runtime.as_slice() else { bail!("--fidelity-inputs works for single-input models; this one has {}", runtime.len()) };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{} holds no .npy files", dir.display());
        }
        let sets = files
            .iter()
            .map(|f| {
                let (t, _) = npy::read(f).with_context(|| format!("cannot read {}", f.display()))?;
                check_fits(&t, only).with_context(|| format!("{} does not fit the model", f.display()))?;
                Ok(HashMap::from([(only.name.clone(), t)]))
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((sets, dir.display().to_string()));
    }
    let mut rng = XorShift::seeded(7);
    let sets = (0..32)
        .map(|_| {
            runtime
                .iter()
                .map(|info| {
                    let dims = info.dims.as_deref().with_context(|| format!("input '{}' declares no shape", info.name))?;
                    let (shape, _) = bind_shape(dims, &BTreeMap::new());
                    let mut t = random_tensor(info.dtype, shape, &mut rng)?;
                    if let Some(pre) = manifest.inputs.iter().find(|i| i.name == info.name).and_then(|i| i.preprocess.as_ref()) {
                        normalize_like_pixels(&mut t, pre)?;
                    }
                    Ok((info.name.clone(), t))
                })
                .collect::<Result<Inputs>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((sets, "synthetic (seeded random pixels)".into()))
}

/// Whether a tensor fits a declared input (dtype, rank, every known dim).
fn check_fits(t: &Tensor, input: &cairn_core::ValueInfo) -> Result<()> {
    let dims = input.dims.as_deref().unwrap_or(&[]);
    let fits = t.dtype() == input.dtype
        && t.rank() == dims.len()
        && t.shape().iter().zip(dims).all(|(n, d)| !matches!(d, cairn_core::Dim::Known(k) if k != n));
    if !fits {
        let want: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        bail!("it is {} {:?}, input '{}' takes {} [{}]", t.dtype(), t.shape(), input.name, input.dtype, want.join(", "));
    }
    // A NaN would make every comparison on it meaningless (and agreement look perfect).
    if t.f32s().is_ok_and(|v| v.iter().any(|x| !x.is_finite())) {
        bail!("it holds NaN or infinite values");
    }
    Ok(())
}

/// Turns uniform [0, 1) values into what the preprocessing would make of such pixels.
fn normalize_like_pixels(t: &mut Tensor, pre: &Preprocess) -> Result<()> {
    let shape = t.shape().to_vec();
    let plane = shape[2] * shape[3];
    let nchw = pre.layout == "nchw";
    let mut view = t.view_mut();
    for (i, v) in view.f32s_mut()?.iter_mut().enumerate() {
        let c = if nchw { (i / plane) % 3 } else { i % 3 };
        *v = (*v - pre.mean[c]) / pre.std[c];
    }
    Ok(())
}

/// Scores every level below the last against the full model and records it.
fn measure_levels(packed: &mut Packed, graph: Graph, inputs: &[Inputs], source: &str) -> Result<()> {
    let levels = packed.manifest.levels.len();
    if levels < 2 {
        return Ok(());
    }
    let (full, _) = prepare_for_inference(graph)?;
    let full = Session::new(full);
    let bar = progress::bar((levels - 1) as u64, "measuring level fidelity");
    for level in 0..levels - 1 {
        let mut loader = Loader::new(packed.manifest.clone(), u64::MAX)?;
        for (i, shard) in packed.manifest.shards.iter().enumerate() {
            if shard.level <= level {
                loader.accept_shard(i, &packed.shards[i])?;
            }
        }
        let (reduced, _) = prepare_for_inference(loader.graph()?)?;
        let mut fid = fidelity::compare(&full, &Session::new(reduced), inputs)?;
        fid.input_source = source.to_string();
        packed.manifest.levels[level].fidelity = Some(fid);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// A version that changes with anything a client loads (graph, I/O, weights), not with fidelity notes.
fn content_version(m: &Manifest) -> String {
    let content =
        serde_json::json!({ "graph": m.graph, "inputs": m.inputs, "outputs": m.outputs, "tensors": m.tensors, "shards": m.shards });
    cairn_bundle::sha256_hex(content.to_string().as_bytes())[..16].to_string()
}
