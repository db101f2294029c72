//! How the CLI talks to people: one-line errors with a hint, the op list.

use cairn_core::Registry;

/// Prints `error: <cause chain on one line>` and, when we know one, `hint: ...`.
pub fn print_error(err: &anyhow::Error) {
    let message: Vec<String> = err.chain().map(|e| e.to_string()).collect();
    let mut line = message.join(": ");
    line = line.replace('\n', " ");
    eprintln!("error: {line}");
    if let Some(hint) = hint_for(err, &line) {
        eprintln!("hint: {hint}");
    }
}

/// String tensors run in the library's eager interpreter only (docs/adr/0031).
const STRING_HINT: &str = "string tensors run through the library (cairn_onnx::load, then Session::run_values); `cairn run`, bundles, the browser runtime and the server compute on numbers: keep string pre/post-processing (tokenizing, label lookup) out of the graph and export the model from token ids; a text bundle (`cairn pack --tokenizer tokenizer.json`) tokenizes in the runtime";

/// What to do about a tensor type Cairn does not compute on (float64 and the integer types
/// are supported; these are what remains).
fn dtype_hint(dtype: &str) -> Option<&'static str> {
    Some(match dtype.to_ascii_uppercase().as_str() {
        "STRING" => STRING_HINT,
        d if d.starts_with("COMPLEX") => {
            "export complex values as a float tensor with a trailing dimension of 2 (real, imaginary), the layout ONNX's DFT uses"
        }
        "FLOAT8" | "UINT4" | "INT4" | "FLOAT4E2M1" => {
            "8-bit float and 4-bit tensors are not supported: export in float32, or quantize to int8 (`cairn optimize --quantize int8`)"
        }
        _ => "the file declares an undefined or unknown element type; check it with onnx.checker.check_model",
    })
}

fn hint_for(err: &anyhow::Error, line: &str) -> Option<&'static str> {
    for cause in err.chain() {
        if let Some(onnx) = cause.downcast_ref::<cairn_onnx::Error>() {
            return match onnx {
                cairn_onnx::Error::Core(core) => core_hint(core),
                cairn_onnx::Error::UnsupportedOps { .. } => {
                    core_hint(&cairn_core::Error::UnsupportedOp { node: String::new(), op_type: String::new(), opset: 0 })
                }
                cairn_onnx::Error::Decode(_) => {
                    Some("cairn reads ONNX protobuf files (.onnx); export with torch.onnx.export, tf2onnx or paddle2onnx")
                }
                cairn_onnx::Error::Opset { .. } => Some("convert the model with onnx.version_converter.convert_version(model, 17)"),
                cairn_onnx::Error::LegacyOpset { .. } => {
                    Some("convert the model to a newer opset with onnx.version_converter.convert_version(model, 17), or re-export it")
                }
                cairn_onnx::Error::UnsupportedDType { dtype, .. } => dtype_hint(dtype),
                cairn_onnx::Error::ExternalData { .. } => {
                    Some("keep the external data files next to the .onnx file, as the exporter wrote them")
                }
                _ => Some("the model file is malformed or truncated; re-export it or check it with onnx.checker.check_model"),
            };
        }
        if let Some(bundle) = cause.downcast_ref::<cairn_bundle::Error>() {
            return match bundle {
                cairn_bundle::Error::ShardHash { .. }
                | cairn_bundle::Error::ShardSize { .. }
                | cairn_bundle::Error::ShardContent { .. } => {
                    Some("`cairn verify DIR` lists every bad shard; re-run `cairn pack` (or copy the bundle again) to restore them")
                }
                cairn_bundle::Error::Manifest(m) if m.contains("string tensors") => Some(STRING_HINT),
                cairn_bundle::Error::Manifest(_) => {
                    Some("DIR must hold a manifest.json written by `cairn pack`; re-pack the model with this Cairn")
                }
                cairn_bundle::Error::Graph(core) => core_hint(core),
                cairn_bundle::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    Some("check the path; a bundle is the directory `cairn pack -o` wrote")
                }
                _ => None,
            };
        }
        if let Some(core) = cause.downcast_ref::<cairn_core::Error>() {
            return core_hint(core);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::NotFound {
                return Some("check the path");
            }
        }
    }
    if line.contains("string tensor") {
        return Some(STRING_HINT);
    }
    if line.contains("does not exist") {
        return Some("check the path");
    }
    None
}

fn core_hint(core: &cairn_core::Error) -> Option<&'static str> {
    Some(match core {
        cairn_core::Error::UnsupportedOp { .. } => {
            "`cairn ops` lists the operators Cairn implements; re-export the model with a different opset or ops"
        }
        cairn_core::Error::UnsupportedAttr { .. } => "this attribute value is not implemented; `cairn ops` lists what is",
        cairn_core::Error::Input(_) => "`cairn inspect MODEL` shows the inputs, dtypes and shapes the model expects",
        cairn_core::Error::TooLarge(_) => "the model asks for more memory than Cairn allows; check its shapes with `cairn inspect`",
        cairn_core::Error::Graph(_) => "the model file is malformed; re-export it or check it with onnx.checker.check_model",
        cairn_core::Error::AtNode { source, .. } => return core_hint(source),
        _ => return None,
    })
}

/// Lists registered ops; `--markdown` produces SUPPORTED_OPS.md.
pub fn print_ops(markdown: bool) -> anyhow::Result<()> {
    let ops = Registry::global().op_types();
    if markdown {
        println!("# Supported operators\n");
        println!("Generated by `cairn ops --markdown` from the operator registry; do not edit by hand.");
        println!(
            "Default-domain opsets {} to {} are accepted; below {}, per operator: a node whose operator's definition changed between the model's opset and {} is refused.",
            cairn_core::MIN_OPSET,
            cairn_core::MAX_OPSET,
            cairn_core::PER_OP_BELOW_OPSET,
            cairn_core::PER_OP_BELOW_OPSET
        );
        println!("ImageDecoder is native-only: the CLI and the server carry it, the browser engine (cairn-web) does not.");
        println!("String tensors (StringConcat, StringSplit, StringNormalizer, RegexFullMatch, Cast, Equal and data movement on strings) run in the library and the CLI's inspect; bundles, the browser engine and the server refuse string models; RegexFullMatch needs cairn-core's `regex` feature (docs/adr/0031).");
        println!(
            "The ai.onnx.preview.training operators (Adagrad, Adam, Momentum) are there for completeness: deterministic optimizer-update formulas that onnxruntime ships in its training build only.\n"
        );
        println!("| domain | operator |\n| --- | --- |");
        for (domain, op) in &ops {
            println!("| {} | {} |", if domain.is_empty() { "ai.onnx" } else { domain }, op);
        }
    } else {
        for (domain, op) in &ops {
            if domain.is_empty() {
                println!("{op}");
            } else {
                println!("{domain}.{op}");
            }
        }
    }
    Ok(())
}
