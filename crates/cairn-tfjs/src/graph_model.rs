//! TF.js graph models (`format: graph-model`): GraphDef nodes → Cairn IR.
//!
//! Constants come from the weights manifest (the converter stores every `Const` there,
//! by node name). Ops are mapped one by one through [`Builder`], which keeps 4-D
//! activations channels-first between spatial ops.

use crate::activation;
use crate::builder::{input_dims, Builder, Conv2d, Padding, Value};
use crate::graph_def::{GraphDef, NodeDef};
use crate::manifest::ModelJson;
use crate::weights::Weights;
use crate::Error;
use cairn_core::{Attr, Attrs, DType, Graph, Tensor, TensorData, ValueInfo};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Every TF op this importer maps (the upfront check lists all others at once).
const SUPPORTED: &[&str] = &[
    "Const",
    "Placeholder",
    "PlaceholderWithDefault",
    "Identity",
    "StopGradient",
    "Snapshot",
    "NoOp",
    "Conv2D",
    "DepthwiseConv2dNative",
    "_FusedConv2D",
    "FusedDepthwiseConv2dNative",
    "MatMul",
    "_FusedMatMul",
    "BiasAdd",
    "Add",
    "AddV2",
    "Sub",
    "Mul",
    "RealDiv",
    "Div",
    "Maximum",
    "Minimum",
    "Pow",
    "SquaredDifference",
    "AddN",
    "Relu",
    "Relu6",
    "Elu",
    "Selu",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Exp",
    "Log",
    "Sqrt",
    "Rsqrt",
    "Erf",
    "Square",
    "Neg",
    "Abs",
    "Reciprocal",
    "LeakyRelu",
    "Prelu",
    "MaxPool",
    "AvgPool",
    "Mean",
    "Sum",
    "Max",
    "Min",
    "Prod",
    "Pad",
    "PadV2",
    "MirrorPad",
    "Reshape",
    "Squeeze",
    "ExpandDims",
    "ConcatV2",
    "Softmax",
    "LogSoftmax",
    "ResizeBilinear",
    "ResizeNearestNeighbor",
    "Transpose",
    "Cast",
    "FusedBatchNorm",
    "FusedBatchNormV3",
];

pub fn import(m: &ModelJson, weights: &Weights) -> Result<Graph, Error> {
    let gd: GraphDef =
        serde_json::from_value(m.model_topology.clone()).map_err(|e| Error::Json(format!("modelTopology is not a GraphDef: {e}")))?;
    if gd.library.as_ref().and_then(|l| l.get("function")).and_then(Json::as_array).is_some_and(|f| !f.is_empty()) {
        return Err(Error::Unsupported { kind: "TF features", list: "functions in the GraphDef library (TF2 control flow)".into() });
    }
    let mut unsupported: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &gd.node {
        if !SUPPORTED.contains(&n.op.as_str()) {
            *unsupported.entry(n.op.as_str()).or_insert(0) += 1;
        }
    }
    if !unsupported.is_empty() {
        let list = unsupported.iter().map(|(op, n)| format!("{op} (x{n})")).collect::<Vec<_>>().join(", ");
        return Err(Error::Unsupported { kind: "TensorFlow ops", list });
    }
    let order = run_order(&gd.node)?;
    let mut b = Builder::default();
    b.reserve(gd.node.iter().map(|n| n.name.as_str()));
    let mut values: HashMap<String, Value> = HashMap::new();
    let mut inputs = Vec::new();
    for i in order {
        let n = &gd.node[i];
        let args = n
            .data_inputs()
            .iter()
            .map(|name| {
                values.get(name).cloned().ok_or_else(|| {
                    n_err(n, format!("reads '{name}', which no node makes (only output 0 of multi-output ops is supported)"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let v = match n.op.as_str() {
            "Placeholder" | "PlaceholderWithDefault" => {
                let shape = n.shape("shape")?.ok_or_else(|| n_err(n, "the input's rank is unknown; Cairn needs at least the rank"))?;
                let dims: Vec<Option<usize>> = shape.iter().map(|&d| (d >= 0).then_some(d as usize)).collect();
                inputs.push(ValueInfo { name: n.name.clone(), dtype: dtype_attr(n, "dtype")?, dims: Some(input_dims(&n.name, &dims)) });
                Value::plain(n.name.clone(), Some(shape.len()))
            }
            "Const" => {
                let t = weights.get(&n.name).ok_or_else(|| n_err(n, "its value is not in the weights manifest"))?;
                let name = b.constant(&n.name, t.clone());
                Value { name, rank: Some(t.rank()), nchw: false, constant: Some(Arc::new(t.clone())) }
            }
            "NoOp" => continue,
            _ => convert(&mut b, n, &args)?,
        };
        values.insert(n.name.clone(), v);
    }
    let outputs = output_names(m, &gd)?
        .into_iter()
        .map(|name| {
            let v = values.get(&name).cloned().ok_or_else(|| Error::Model(format!("the model output '{name}' is not made by any node")))?;
            Ok((name, v))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    b.finish(inputs, outputs)
}

fn n_err(n: &NodeDef, detail: impl Into<String>) -> Error {
    Error::node(&n.name, &n.op, detail)
}

/// The signature's outputs (top level, or in `userDefinedMetadata`); else the nodes nobody reads.
fn output_names(m: &ModelJson, gd: &GraphDef) -> Result<Vec<String>, Error> {
    let sig = m.signature.as_ref().or_else(|| m.user_defined_metadata.as_ref().and_then(|u| u.get("signature")));
    if let Some(outs) = sig.and_then(|s| s.get("outputs")).and_then(Json::as_object) {
        let names: Vec<String> = outs
            .values()
            .filter_map(|o| o.get("name").and_then(Json::as_str))
            .map(|n| n.strip_suffix(":0").unwrap_or(n).to_string())
            .collect();
        if !names.is_empty() {
            return Ok(names);
        }
    }
    let read: BTreeSet<String> = gd.node.iter().flat_map(NodeDef::data_inputs).collect();
    let sinks: Vec<String> =
        gd.node.iter().filter(|n| !matches!(n.op.as_str(), "Const" | "NoOp") && !read.contains(&n.name)).map(|n| n.name.clone()).collect();
    if sinks.is_empty() {
        return Err(Error::Model("the graph has no outputs".into()));
    }
    Ok(sinks)
}

/// Node indices in an order where inputs come first (Kahn's algorithm); cycles and
/// unknown inputs are errors.
fn run_order(nodes: &[NodeDef]) -> Result<Vec<usize>, Error> {
    let mut index = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        if index.insert(n.name.as_str(), i).is_some() {
            return Err(n_err(n, "two nodes have this name"));
        }
    }
    let mut reads = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for input in &n.input {
            let src = input.trim_start_matches('^');
            let src = src.rsplit_once(':').filter(|(_, k)| k.parse::<u32>().is_ok()).map_or(src, |(s, _)| s);
            let p = *index.get(src).ok_or_else(|| n_err(n, format!("reads '{input}', which is not a node of the graph")))?;
            reads.push((i, p));
        }
    }
    cairn_core::run_order(nodes.len(), reads).map_err(|stuck| {
        Error::Model(format!("the graph has a cycle (through node '{}'); TF v1 control flow is not supported", nodes[stuck].name))
    })
}

fn dtype_attr(n: &NodeDef, key: &str) -> Result<DType, Error> {
    match n.attr.get(key).and_then(|a| a.get("type")).and_then(Json::as_str).unwrap_or("DT_FLOAT") {
        "DT_FLOAT" => Ok(DType::F32),
        "DT_INT32" => Ok(DType::I32),
        "DT_INT64" => Ok(DType::I64),
        "DT_BOOL" => Ok(DType::Bool),
        "DT_UINT8" => Ok(DType::U8),
        "DT_INT8" => Ok(DType::I8),
        "DT_HALF" => Ok(DType::F16),
        other => Err(n_err(n, format!("'{key}' is {other}, which Cairn does not support"))),
    }
}

fn const_of<'a>(n: &NodeDef, v: &'a Value, what: &str) -> Result<&'a Tensor, Error> {
    v.constant.as_deref().ok_or_else(|| n_err(n, format!("its {what} must be a constant (computed {what}s are not supported)")))
}

fn const_ints(n: &NodeDef, v: &Value, what: &str) -> Result<Vec<i64>, Error> {
    match const_of(n, v, what)?.data() {
        TensorData::I32(d) => Ok(d.iter().map(|&x| x as i64).collect()),
        TensorData::I64(d) => Ok(d.clone()),
        _ => Err(n_err(n, format!("its {what} must be integers"))),
    }
}

fn arg<'a>(n: &NodeDef, args: &'a [Value], i: usize) -> Result<&'a Value, Error> {
    args.get(i).ok_or_else(|| n_err(n, format!("needs at least {} inputs, has {}", i + 1, args.len())))
}

fn nhwc_only(n: &NodeDef) -> Result<(), Error> {
    match n.string("data_format")?.as_deref() {
        None | Some("NHWC") => Ok(()),
        Some(other) => Err(n_err(n, format!("data_format {other}: only NHWC (what TF.js writes) is supported"))),
    }
}

fn padding(n: &NodeDef) -> Result<Padding, Error> {
    match n.string("padding")?.as_deref() {
        Some("SAME") => Ok(Padding::Same),
        Some("VALID") | None => Ok(Padding::Valid),
        Some("EXPLICIT") => {
            let p = n.ints("explicit_paddings")?.unwrap_or_default();
            if p.len() != 8 || p[..2] != [0, 0] || p[6..] != [0, 0] || p.iter().any(|&v| !(0..=1 << 16).contains(&v)) {
                return Err(n_err(n, format!("explicit_paddings {p:?} are not 4 NHWC pairs with zero batch and channel pads")));
            }
            Ok(Padding::Explicit([p[2], p[3], p[4], p[5]]))
        }
        Some(other) => Err(n_err(n, format!("padding '{other}' is not SAME, VALID or EXPLICIT"))),
    }
}

fn attrs1(key: &str, a: Attr) -> Attrs {
    let mut attrs = Attrs::new();
    attrs.insert(key.into(), a);
    attrs
}

fn convert(b: &mut Builder, n: &NodeDef, args: &[Value]) -> Result<Value, Error> {
    let out = n.name.as_str();
    let x = arg(n, args, 0)?;
    Ok(match n.op.as_str() {
        "Identity" | "StopGradient" | "Snapshot" => x.clone(),
        "Conv2D" | "DepthwiseConv2dNative" | "_FusedConv2D" | "FusedDepthwiseConv2dNative" => {
            nhwc_only(n)?;
            let depthwise = n.op.contains("Depthwise");
            let kernel = const_of(n, arg(n, args, 1)?, "filter")?;
            let fused = n.strings("fused_ops")?;
            let (bias, act) = fused_parts(n, &fused, args)?;
            let conv = Conv2d {
                kernel,
                bias,
                strides: n.spatial("strides", 1)?,
                dilations: n.spatial("dilations", 1)?,
                padding: padding(n)?,
                depthwise,
            };
            if x.rank != Some(4) {
                return Err(n_err(n, format!("expects a 4-D input, got rank {:?}", x.rank)));
            }
            with_fused_activation(b, n, out, act, args, |b, o| b.conv2d(o, x, &conv))?
        }
        "MatMul" | "_FusedMatMul" => {
            let fused = n.strings("fused_ops")?;
            let (bias, act) = fused_parts(n, &fused, args)?;
            with_fused_activation(b, n, out, act, args, |b, o| matmul(b, n, o, x, arg(n, args, 1)?, bias))?
        }
        "BiasAdd" | "Add" | "AddV2" => b.binary("Add", out, x, arg(n, args, 1)?)?,
        "Sub" => b.binary("Sub", out, x, arg(n, args, 1)?)?,
        "Mul" => b.binary("Mul", out, x, arg(n, args, 1)?)?,
        "RealDiv" | "Div" => b.binary("Div", out, x, arg(n, args, 1)?)?,
        "Maximum" => b.binary("Max", out, x, arg(n, args, 1)?)?,
        "Minimum" => b.binary("Min", out, x, arg(n, args, 1)?)?,
        "Pow" => b.binary("Pow", out, x, arg(n, args, 1)?)?,
        "Prelu" => b.binary("PRelu", out, x, arg(n, args, 1)?)?,
        "SquaredDifference" => {
            let d = b.fresh(&format!("{out}/difference"));
            let d = b.binary("Sub", &d, x, arg(n, args, 1)?)?;
            b.binary("Mul", out, &d, &d)?
        }
        "AddN" => {
            let mut acc = x.clone();
            for (i, v) in args[1..].iter().enumerate() {
                let name = if i + 2 == args.len() { out.to_string() } else { b.fresh(&format!("{out}/{i}")) };
                acc = b.binary("Add", &name, &acc, v)?;
            }
            acc
        }
        "Relu" | "Relu6" | "Elu" | "Selu" | "Sigmoid" | "Tanh" | "Softplus" => {
            activation::apply(b, out, x, &n.op.to_ascii_lowercase())?.ok_or_else(|| n_err(n, "unmapped activation"))?
        }
        "LeakyRelu" => b.unary("LeakyRelu", out, x, &[], attrs1("alpha", Attr::Float(n.float("alpha").unwrap_or(0.2)))),
        "Exp" | "Log" | "Sqrt" | "Neg" | "Abs" | "Reciprocal" | "Erf" => b.unary(&n.op, out, x, &[], Attrs::new()),
        "Rsqrt" => {
            let s = b.fresh(&format!("{out}/sqrt"));
            let s = b.unary("Sqrt", &s, x, &[], Attrs::new());
            b.unary("Reciprocal", out, &s, &[], Attrs::new())
        }
        "Square" => b.binary("Mul", out, x, x)?,
        "MaxPool" | "AvgPool" => {
            nhwc_only(n)?;
            if x.rank != Some(4) {
                return Err(n_err(n, format!("expects a 4-D input, got rank {:?}", x.rank)));
            }
            b.pool(out, x, n.op == "MaxPool", n.spatial("ksize", 1)?, n.spatial("strides", 1)?, padding(n)?)?
        }
        "Mean" | "Sum" | "Max" | "Min" | "Prod" => reduce(b, n, out, x, &const_ints(n, arg(n, args, 1)?, "axes")?)?,
        "Pad" | "PadV2" | "MirrorPad" => pad(b, n, out, x, args)?,
        "Reshape" => {
            let shape = const_ints(n, arg(n, args, 1)?, "shape")?;
            if shape.iter().any(|&d| d == 0 || d < -1) || shape.iter().filter(|&&d| d == -1).count() > 1 {
                return Err(n_err(n, format!("shape {shape:?} is not supported (zero-sized or several -1)")));
            }
            let s = b.ints(&format!("{out}/shape"), &shape);
            let xs = b.nhwc(x);
            Value::plain(b.node("Reshape", out, &[&xs, &s], Attrs::new()), Some(shape.len()))
        }
        "Squeeze" => {
            let axes = n.ints("squeeze_dims")?.unwrap_or_default();
            let xs = b.nhwc(x);
            if axes.is_empty() {
                Value::plain(b.node("Squeeze", out, &[&xs], Attrs::new()), None)
            } else {
                let a = b.ints(&format!("{out}/axes"), &axes);
                Value::plain(b.node("Squeeze", out, &[&xs, &a], Attrs::new()), x.rank.map(|r| r.saturating_sub(axes.len())))
            }
        }
        "ExpandDims" => {
            let axes = const_ints(n, arg(n, args, 1)?, "axis")?;
            let a = b.ints(&format!("{out}/axes"), &axes);
            let xs = b.nhwc(x);
            Value::plain(b.node("Unsqueeze", out, &[&xs, &a], Attrs::new()), x.rank.map(|r| r + axes.len()))
        }
        "ConcatV2" => {
            let (axis_v, parts) = args.split_last().ok_or_else(|| n_err(n, "has no inputs"))?;
            let axis = *const_ints(n, axis_v, "axis")?.first().ok_or_else(|| n_err(n, "the axis is empty"))?;
            if parts.is_empty() {
                return Err(n_err(n, "concatenates nothing"));
            }
            crate::layers::concat(b, out, parts, axis)?
        }
        "Softmax" => activation::softmax(b, out, x, -1)?,
        "LogSoftmax" => activation::apply(b, out, x, "log_softmax")?.ok_or_else(|| n_err(n, "unmapped"))?,
        "ResizeBilinear" | "ResizeNearestNeighbor" => resize(b, n, out, x, &const_ints(n, arg(n, args, 1)?, "size")?)?,
        "Transpose" => {
            let perm = const_ints(n, arg(n, args, 1)?, "perm")?;
            b.plain_op("Transpose", out, &[x], attrs1("perm", Attr::Ints(perm)), x.rank)
        }
        "Cast" => {
            let to = dtype_attr(n, "DstT")?.onnx_code();
            b.unary("Cast", out, x, &[], attrs1("to", Attr::Int(to)))
        }
        "FusedBatchNorm" | "FusedBatchNormV3" => {
            nhwc_only(n)?;
            let xn = b.nchw(x)?;
            let mut names = vec![xn];
            for i in 1..5 {
                let t = const_of(n, arg(n, args, i)?, "statistics")?;
                names.push(b.constant(&format!("{out}/p{i}"), t.clone()));
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let eps = n.float("epsilon").unwrap_or(1e-3);
            Value {
                name: b.node("BatchNormalization", out, &refs, attrs1("epsilon", Attr::Float(eps))),
                rank: Some(4),
                nchw: true,
                constant: None,
            }
        }
        other => return Err(n_err(n, format!("'{other}' has no mapping"))),
    })
}

/// The bias and activation of a fused op (`fused_ops`: `BiasAdd` then an optional activation).
fn fused_parts<'a>(n: &NodeDef, fused: &'a [String], args: &'a [Value]) -> Result<(Option<&'a Tensor>, Option<&'a str>), Error> {
    match fused.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => Ok((None, None)),
        ["BiasAdd"] => Ok((Some(const_of(n, arg(n, args, 2)?, "bias")?), None)),
        ["BiasAdd", act] => Ok((Some(const_of(n, arg(n, args, 2)?, "bias")?), Some(*act))),
        other => Err(n_err(n, format!("fused ops {other:?} are not supported (BiasAdd and one activation are)"))),
    }
}

fn with_fused_activation(
    b: &mut Builder,
    n: &NodeDef,
    out: &str,
    act: Option<&str>,
    args: &[Value],
    build: impl FnOnce(&mut Builder, &str) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let Some(act) = act else { return build(b, out) };
    let pre = b.fresh(&format!("{out}/pre_activation"));
    let v = build(b, &pre)?;
    match act {
        "Prelu" => b.binary("PRelu", out, &v, arg(n, args, 3)?),
        "LeakyRelu" => Ok(b.unary("LeakyRelu", out, &v, &[], attrs1("alpha", Attr::Float(n.float("leakyrelu_alpha").unwrap_or(0.2))))),
        other => activation::apply(b, out, &v, &other.to_ascii_lowercase())?
            .ok_or_else(|| n_err(n, format!("fused activation '{other}' is not supported"))),
    }
}

fn matmul(b: &mut Builder, n: &NodeDef, out: &str, x: &Value, w: &Value, bias: Option<&Tensor>) -> Result<Value, Error> {
    let xs = b.nhwc(x);
    let ws = b.nhwc(w);
    let mut attrs = Attrs::new();
    if n.bool("transpose_a") {
        attrs.insert("transA".into(), Attr::Int(1));
    }
    if n.bool("transpose_b") {
        attrs.insert("transB".into(), Attr::Int(1));
    }
    let mut inputs = vec![xs.as_str(), ws.as_str()];
    let bias_name = bias.map(|t| b.constant(&format!("{out}/bias"), t.clone()));
    if let Some(bn) = &bias_name {
        inputs.push(bn);
    }
    Ok(Value::plain(b.node("Gemm", out, &inputs, attrs), Some(2)))
}

fn reduce(b: &mut Builder, n: &NodeDef, out: &str, x: &Value, axes: &[i64]) -> Result<Value, Error> {
    let op = match n.op.as_str() {
        "Mean" => "ReduceMean",
        "Sum" => "ReduceSum",
        "Max" => "ReduceMax",
        "Min" => "ReduceMin",
        _ => "ReduceProd",
    };
    let keep = n.bool("keep_dims");
    let rank = x.rank.ok_or_else(|| n_err(n, "the input rank is unknown"))?;
    let logical: BTreeSet<i64> =
        axes.iter().map(|&a| Builder::stored_axis(&Value { nchw: false, ..x.clone() }, a)).collect::<Result<_, _>>()?;
    // Channels-first data stays so when the kept axes keep their order: always with keep_dims,
    // else when H and W both go, or C goes.
    let stays_nchw = x.nchw && (keep || (logical.contains(&1) && logical.contains(&2)) || logical.contains(&3));
    let (input, stored): (String, Vec<i64>) = if stays_nchw {
        (x.name.clone(), logical.iter().map(|&a| [0, 2, 3, 1][a as usize]).collect())
    } else {
        (b.nhwc(x), logical.iter().copied().collect())
    };
    let mut attrs = attrs1("keepdims", Attr::Int(keep as i64));
    let out_rank = if keep { rank } else { rank - logical.len() };
    let name = if op == "ReduceSum" {
        let a = b.ints(&format!("{out}/axes"), &stored);
        b.node(op, out, &[&input, &a], attrs)
    } else {
        attrs.insert("axes".into(), Attr::Ints(stored));
        b.node(op, out, &[&input], attrs)
    };
    Ok(Value { name, rank: Some(out_rank), nchw: stays_nchw && keep, constant: None })
}

fn pad(b: &mut Builder, n: &NodeDef, out: &str, x: &Value, args: &[Value]) -> Result<Value, Error> {
    let p = const_ints(n, arg(n, args, 1)?, "paddings")?;
    let rank = x.rank.ok_or_else(|| n_err(n, "the input rank is unknown"))?;
    if p.len() != 2 * rank || p.iter().any(|&v| !(0..=1 << 16).contains(&v)) {
        return Err(n_err(n, format!("paddings {p:?} do not fit a rank-{rank} input")));
    }
    let mode = match n.string("mode")?.as_deref() {
        None => "constant",
        Some("REFLECT") => "reflect",
        Some(other) => return Err(n_err(n, format!("MirrorPad mode {other} is not supported (REFLECT is)"))),
    };
    let channels_first = rank == 4;
    let order: Vec<usize> = if channels_first { vec![0, 3, 1, 2] } else { (0..rank).collect() };
    let mut pads: Vec<i64> = order.iter().map(|&a| p[2 * a]).collect();
    pads.extend(order.iter().map(|&a| p[2 * a + 1]));
    let input = if channels_first { b.nchw(x)? } else { b.nhwc(x) };
    let pads_name = b.ints(&format!("{out}/pads"), &pads);
    let mut inputs = vec![input, pads_name];
    if n.op == "PadV2" {
        inputs.push(b.nhwc(arg(n, args, 2)?));
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let name = b.node("Pad", out, &refs, attrs1("mode", Attr::Str(mode.into())));
    Ok(Value { name, rank: Some(rank), nchw: channels_first, constant: None })
}

/// TF resize to a constant `[h, w]`: the sizes input is built from the runtime N and C.
fn resize(b: &mut Builder, n: &NodeDef, out: &str, x: &Value, size: &[i64]) -> Result<Value, Error> {
    if size.len() != 2 || size.iter().any(|&s| !(1..=1 << 16).contains(&s)) {
        return Err(n_err(n, format!("size {size:?} is not [height, width]")));
    }
    let (align, half) = (n.bool("align_corners"), n.bool("half_pixel_centers"));
    let nearest = n.op == "ResizeNearestNeighbor";
    let mut attrs = attrs1("mode", Attr::Str(if nearest { "nearest" } else { "linear" }.into()));
    let coord = match (align, half, nearest) {
        (true, _, _) => "align_corners",
        (false, true, true) => "tf_half_pixel_for_nn",
        (false, true, false) => "half_pixel",
        (false, false, _) => "asymmetric",
    };
    attrs.insert("coordinate_transformation_mode".into(), Attr::Str(coord.into()));
    if nearest {
        // TF rounds the source coordinate to nearest with align_corners, else floors.
        attrs.insert("nearest_mode".into(), Attr::Str(if align { "round_prefer_ceil" } else { "floor" }.into()));
    }
    let xn = b.nchw(x)?;
    let shape = b.op("Shape", &format!("{out}/shape"), &[&xn], Attrs::new());
    let (s0, s2, ax) = (b.ints(&format!("{out}/start"), &[0]), b.ints(&format!("{out}/end"), &[2]), b.ints(&format!("{out}/axis"), &[0]));
    let nc = b.op("Slice", &format!("{out}/nc"), &[&shape, &s0, &s2, &ax], Attrs::new());
    let hw = b.ints(&format!("{out}/hw"), size);
    let sizes = b.op("Concat", &format!("{out}/sizes"), &[&nc, &hw], attrs1("axis", Attr::Int(0)));
    let name = b.node("Resize", out, &[&xn, "", "", &sizes], attrs);
    Ok(Value { name, rank: Some(4), nchw: true, constant: None })
}
