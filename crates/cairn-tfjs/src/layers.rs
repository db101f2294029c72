//! Keras layers models (`format: layers-model`) → Cairn IR.
//!
//! Each layer call becomes a few Cairn nodes through [`Builder`], which keeps 4-D
//! activations channels-first between spatial layers (see builder.rs).

use crate::activation;
use crate::builder::{input_dims, Builder, Conv2d, Padding, Value};
use crate::topology::{self, Layer, TensorRef};
use crate::weights::Weights;
use crate::Error;
use cairn_core::{Attr, Attrs, DType, Graph, Tensor, ValueInfo};
use serde_json::Value as Json;
use std::collections::HashMap;

pub fn import(topology_json: &Json, weights: &Weights) -> Result<Graph, Error> {
    let topo = topology::parse(topology_json)?;
    let mut b = Builder::default();
    b.reserve(topo.layers.iter().map(|l| l.name.as_str()));
    let by_name: HashMap<&str, &Layer> = topo.layers.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut values: HashMap<TensorRef, Value> = HashMap::new();
    let mut inputs = Vec::new();
    for r in &topo.inputs {
        let layer = by_name[r.0.as_str()];
        if layer.class != "InputLayer" {
            return Err(Error::layer(&layer.name, &layer.class, "is listed as a model input but is not an InputLayer"));
        }
        let shape = input_shape(layer)?;
        inputs.push(ValueInfo { name: layer.name.clone(), dtype: DType::F32, dims: Some(input_dims(&layer.name, &shape)) });
        values.insert(r.clone(), Value::plain(layer.name.clone(), Some(shape.len())));
    }
    let mut unsupported: std::collections::BTreeMap<String, usize> = Default::default();
    for call in &topo.calls {
        let layer = &topo.layers[call.layer];
        if layer.class == "InputLayer" {
            continue;
        }
        let args = call
            .inputs
            .iter()
            .map(|r| {
                values.get(r).cloned().ok_or_else(|| Error::layer(&layer.name, &layer.class, format!("reads {r:?}, which no layer made")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if args.is_empty() {
            return Err(Error::layer(&layer.name, &layer.class, "has an inbound node with no inputs"));
        }
        let out = if call.node == 0 { layer.name.clone() } else { b.fresh(&format!("{}/call{}", layer.name, call.node)) };
        let lw = LayerWeights::new(&layer.name, weights);
        match convert(&mut b, layer, &out, &args, &lw) {
            Ok(v) => {
                values.insert((layer.name.clone(), call.node, 0), v);
            }
            Err(LayerError::Unsupported) => *unsupported.entry(layer.class.clone()).or_insert(0) += 1,
            Err(LayerError::Failed(e)) => return Err(e),
        }
    }
    if !unsupported.is_empty() {
        let list = unsupported.iter().map(|(c, n)| format!("{c} (x{n})")).collect::<Vec<_>>().join(", ");
        return Err(Error::Unsupported { kind: "Keras layers", list });
    }
    let mut outputs = Vec::new();
    for r in &topo.outputs {
        let v = values.get(r).cloned().ok_or_else(|| Error::Model(format!("the model output {r:?} is never computed")))?;
        let name = if topo.outputs.len() == 1 { r.0.clone() } else { format!("{}:{}", r.0, r.2) };
        outputs.push((name, v));
    }
    b.finish(inputs, outputs)
}

enum LayerError {
    Unsupported,
    Failed(Error),
}

impl From<Error> for LayerError {
    fn from(e: Error) -> Self {
        LayerError::Failed(e)
    }
}

/// The manifest weights of one layer, by their last name component (`kernel`, `bias`, ...).
struct LayerWeights<'a> {
    layer: &'a str,
    by_suffix: Vec<(&'a str, &'a Tensor)>,
}

impl<'a> LayerWeights<'a> {
    fn new(layer: &'a str, all: &'a Weights) -> Self {
        let prefix = format!("{layer}/");
        let mut by_suffix: Vec<(&str, &Tensor)> = all
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix) || n.contains(&format!("/{prefix}")))
            .map(|(n, t)| (n.rsplit('/').next().unwrap_or(n).trim_end_matches(":0"), t))
            .collect();
        by_suffix.sort_by_key(|(s, _)| *s);
        LayerWeights { layer, by_suffix }
    }

    fn find(&self, names: &[&str]) -> Option<&'a Tensor> {
        names.iter().find_map(|n| self.by_suffix.iter().find(|(s, _)| s == n).map(|(_, t)| *t))
    }

    fn get(&self, class: &str, names: &[&str]) -> Result<&'a Tensor, Error> {
        self.find(names).ok_or_else(|| {
            let have: Vec<&str> = self.by_suffix.iter().map(|(s, _)| *s).collect();
            Error::layer(self.layer, class, format!("weight '{}' is not in the manifest (it has {have:?} for this layer)", names[0]))
        })
    }
}

fn cfg<'a>(layer: &'a Layer, key: &str) -> Option<&'a Json> {
    layer.config.get(key).filter(|v| !v.is_null())
}

fn pair(layer: &Layer, key: &str, default: i64) -> Result<[i64; 2], Error> {
    match cfg(layer, key) {
        None => Ok([default; 2]),
        Some(Json::Number(n)) => n.as_i64().map(|v| [v; 2]).ok_or_else(|| bad(layer, key)),
        Some(Json::Array(a)) if a.len() == 2 => {
            Ok([a[0].as_i64().ok_or_else(|| bad(layer, key))?, a[1].as_i64().ok_or_else(|| bad(layer, key))?])
        }
        Some(_) => Err(bad(layer, key)),
    }
    .and_then(|p| if p.iter().all(|&v| (1..=1 << 16).contains(&v)) { Ok(p) } else { Err(bad(layer, key)) })
}

fn bad(layer: &Layer, key: &str) -> Error {
    Error::layer(
        &layer.name,
        &layer.class,
        format!("'{key}' is {} (expected a positive int or a pair)", layer.config.get(key).unwrap_or(&Json::Null)),
    )
}

fn str_cfg<'a>(layer: &'a Layer, key: &str, default: &'a str) -> &'a str {
    cfg(layer, key).and_then(Json::as_str).unwrap_or(default)
}

fn f32_cfg(layer: &Layer, key: &str, default: f32) -> f32 {
    cfg(layer, key).and_then(Json::as_f64).map_or(default, |v| v as f32)
}

fn bool_cfg(layer: &Layer, key: &str, default: bool) -> bool {
    cfg(layer, key).and_then(Json::as_bool).unwrap_or(default)
}

fn padding(layer: &Layer) -> Result<Padding, Error> {
    let p = str_cfg(layer, "padding", "valid");
    Padding::parse(p).ok_or_else(|| Error::layer(&layer.name, &layer.class, format!("padding '{p}' is not 'same' or 'valid'")))
}

/// Keras 3 writes the activation as a string, or as a serialized object holding one.
fn activation_name(layer: &Layer) -> String {
    match cfg(layer, "activation") {
        Some(Json::String(s)) => s.clone(),
        Some(o) => {
            o.get("config").and_then(|c| c.as_str().or_else(|| c.get("name").and_then(Json::as_str))).unwrap_or("linear").to_string()
        }
        None => "linear".into(),
    }
}

fn channels_last(layer: &Layer) -> Result<(), Error> {
    match str_cfg(layer, "data_format", "channels_last") {
        "channels_last" => Ok(()),
        other => Err(Error::layer(
            &layer.name,
            &layer.class,
            format!("data_format '{other}': only channels_last (TF.js's default) is supported"),
        )),
    }
}

/// The layer's own activation, applied to `pre` (whose name is a scratch one) to give `out`.
fn with_activation(
    b: &mut Builder,
    layer: &Layer,
    out: &str,
    build: impl FnOnce(&mut Builder, &str) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let act = activation_name(layer);
    if act == "linear" {
        return build(b, out);
    }
    let pre = b.fresh(&format!("{out}/pre_activation"));
    let v = build(b, &pre)?;
    activation::apply(b, out, &v, &act)?
        .ok_or_else(|| Error::layer(&layer.name, &layer.class, format!("activation '{act}' is not supported")))
}

fn input_shape(layer: &Layer) -> Result<Vec<Option<usize>>, Error> {
    let shape = cfg(layer, "batch_input_shape")
        .or_else(|| cfg(layer, "batch_shape"))
        .and_then(Json::as_array)
        .ok_or_else(|| Error::layer(&layer.name, &layer.class, "declares no batch_input_shape / batch_shape"))?;
    if shape.is_empty() || shape.len() > 8 {
        return Err(Error::layer(&layer.name, &layer.class, format!("an input of rank {} is not supported", shape.len())));
    }
    shape
        .iter()
        .map(|d| match d {
            Json::Null => Ok(None),
            d => d
                .as_u64()
                .filter(|&n| n > 0 && n <= 1 << 24)
                .map(|n| Some(n as usize))
                .ok_or_else(|| Error::layer(&layer.name, &layer.class, format!("input dimension {d} is not a size (1 to 2^24)"))),
        })
        .collect()
}

fn convert(b: &mut Builder, layer: &Layer, out: &str, args: &[Value], w: &LayerWeights) -> Result<Value, LayerError> {
    let class = layer.class.as_str();
    let x = &args[0];
    let fail = |detail: String| LayerError::Failed(Error::layer(&layer.name, class, detail));
    let need4 = |v: &Value| if v.rank == Some(4) { Ok(()) } else { Err(fail(format!("expects a 4-D NHWC input, got rank {:?}", v.rank))) };
    Ok(match class {
        "Conv2D" | "DepthwiseConv2D" => {
            channels_last(layer)?;
            need4(x)?;
            if class == "Conv2D" && cfg(layer, "groups").and_then(Json::as_i64).unwrap_or(1) != 1 {
                return Err(fail("grouped Conv2D (groups > 1) is not supported".into()));
            }
            let depthwise = class == "DepthwiseConv2D";
            let kernel = if depthwise { w.get(class, &["depthwise_kernel", "kernel"])? } else { w.get(class, &["kernel"])? };
            let bias = if bool_cfg(layer, "use_bias", true) { Some(w.get(class, &["bias"])?) } else { None };
            let conv = Conv2d {
                kernel,
                bias,
                strides: pair(layer, "strides", 1)?,
                dilations: pair(layer, "dilation_rate", 1)?,
                padding: padding(layer)?,
                depthwise,
            };
            with_activation(b, layer, out, |b, o| b.conv2d(o, x, &conv))?
        }
        "SeparableConv2D" => {
            channels_last(layer)?;
            need4(x)?;
            let dw = w.get(class, &["depthwise_kernel"])?;
            let pw = w.get(class, &["pointwise_kernel"])?;
            let bias = if bool_cfg(layer, "use_bias", true) { Some(w.get(class, &["bias"])?) } else { None };
            let mid = b.fresh(&format!("{out}/depthwise"));
            let depth = Conv2d {
                kernel: dw,
                bias: None,
                strides: pair(layer, "strides", 1)?,
                dilations: pair(layer, "dilation_rate", 1)?,
                padding: padding(layer)?,
                depthwise: true,
            };
            let d = b.conv2d(&mid, x, &depth)?;
            let point = Conv2d { kernel: pw, bias, strides: [1, 1], dilations: [1, 1], padding: Padding::Valid, depthwise: false };
            with_activation(b, layer, out, |b, o| b.conv2d(o, &d, &point))?
        }
        "Dense" => {
            let kernel = w.get(class, &["kernel"])?;
            let bias = if bool_cfg(layer, "use_bias", true) { Some(w.get(class, &["bias"])?) } else { None };
            with_activation(b, layer, out, |b, o| dense(b, o, x, kernel, bias))?
        }
        "BatchNormalization" => {
            let axis = cfg(layer, "axis").map(|a| a.as_i64().or_else(|| a.get(0).and_then(Json::as_i64))).unwrap_or(Some(-1));
            let rank = x.rank.ok_or_else(|| fail("the input rank is unknown".into()))? as i64;
            if !matches!(axis, Some(a) if a == -1 || a == rank - 1) {
                return Err(fail(format!("normalizing over axis {axis:?} is not supported (only the channel axis, -1)")));
            }
            batch_norm(b, out, x, layer, w)?
        }
        "Activation" => {
            let act = activation_name(layer);
            activation::apply(b, out, x, &act)?.ok_or_else(|| fail(format!("activation '{act}' is not supported")))?
        }
        "ReLU" => {
            let (slope, threshold) = (f32_cfg(layer, "negative_slope", 0.0), f32_cfg(layer, "threshold", 0.0));
            if threshold != 0.0 || (slope != 0.0 && cfg(layer, "max_value").is_some()) {
                return Err(fail("ReLU with a threshold, or with both a slope and a max_value, is not supported".into()));
            }
            match cfg(layer, "max_value").and_then(Json::as_f64) {
                Some(m) => activation::clip(b, out, x, 0.0, Some(m as f32)),
                None if slope != 0.0 => leaky(b, out, x, slope),
                None => b.unary("Relu", out, x, &[], Attrs::new()),
            }
        }
        "LeakyReLU" => leaky(b, out, x, f32_cfg(layer, "negative_slope", f32_cfg(layer, "alpha", 0.3))),
        "ELU" => {
            let mut attrs = Attrs::new();
            attrs.insert("alpha".into(), Attr::Float(f32_cfg(layer, "alpha", 1.0)));
            b.unary("Elu", out, x, &[], attrs)
        }
        "Softmax" => {
            let axis = cfg(layer, "axis").map(|a| a.as_i64().or_else(|| a.get(0).and_then(Json::as_i64))).unwrap_or(Some(-1)).unwrap_or(-1);
            activation::softmax(b, out, x, axis)?
        }
        "PReLU" => {
            let alpha = w.get(class, &["alpha"])?;
            let a = Value {
                name: b.constant(&format!("{out}/alpha"), alpha.clone()),
                rank: Some(alpha.rank()),
                nchw: false,
                constant: Some(alpha.clone().into()),
            };
            b.binary("PRelu", out, x, &a)?
        }
        "MaxPooling2D" | "AveragePooling2D" => {
            channels_last(layer)?;
            need4(x)?;
            let size = pair(layer, "pool_size", 2)?;
            let strides = if cfg(layer, "strides").is_some() { pair(layer, "strides", 1)? } else { size };
            b.pool(out, x, class == "MaxPooling2D", size, strides, padding(layer)?)?
        }
        "GlobalAveragePooling2D" | "GlobalMaxPooling2D" => {
            channels_last(layer)?;
            need4(x)?;
            let op = if class == "GlobalAveragePooling2D" { "GlobalAveragePool" } else { "GlobalMaxPool" };
            let xn = b.nchw(x)?;
            if bool_cfg(layer, "keepdims", false) {
                Value { name: b.node(op, out, &[&xn], Attrs::new()), rank: Some(4), nchw: true, constant: None }
            } else {
                let pooled = b.op(op, &format!("{out}/pool"), &[&xn], Attrs::new());
                let mut attrs = Attrs::new();
                attrs.insert("axis".into(), Attr::Int(1));
                Value::plain(b.node("Flatten", out, &[&pooled], attrs), Some(2))
            }
        }
        "Add" | "Multiply" | "Subtract" | "Maximum" | "Minimum" | "Average" => merge(b, out, class, args)?,
        "Concatenate" => {
            let axis = cfg(layer, "axis").and_then(Json::as_i64).unwrap_or(-1);
            concat(b, out, args, axis)?
        }
        "Flatten" => {
            let xs = b.nhwc(x);
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(1));
            Value::plain(b.node("Flatten", out, &[&xs], attrs), Some(2))
        }
        "Reshape" => {
            let target = cfg(layer, "target_shape").and_then(Json::as_array).ok_or_else(|| fail("has no target_shape".into()))?;
            let mut shape = vec![0i64];
            for d in target {
                shape.push(
                    d.as_i64()
                        .filter(|&v| v == -1 || (1..=1 << 24).contains(&v))
                        .ok_or_else(|| fail(format!("target_shape entry {d} is not a size")))?,
                );
            }
            let xs = b.nhwc(x);
            let s = b.ints(&format!("{out}/shape"), &shape);
            Value::plain(b.node("Reshape", out, &[&xs, &s], Attrs::new()), Some(shape.len()))
        }
        "Dropout"
        | "SpatialDropout1D"
        | "SpatialDropout2D"
        | "GaussianNoise"
        | "GaussianDropout"
        | "AlphaDropout"
        | "ActivityRegularization" => b.unary("Identity", out, x, &[], Attrs::new()),
        "ZeroPadding2D" => {
            channels_last(layer)?;
            need4(x)?;
            let [t, bo, l, r] = zero_padding(layer)?;
            let xn = b.nchw(x)?;
            let pads = b.ints(&format!("{out}/pads"), &[0, 0, t, l, 0, 0, bo, r]);
            Value { name: b.node("Pad", out, &[&xn, &pads], Attrs::new()), rank: Some(4), nchw: true, constant: None }
        }
        "UpSampling2D" => {
            channels_last(layer)?;
            need4(x)?;
            let [sh, sw] = pair(layer, "size", 2)?;
            let interp = str_cfg(layer, "interpolation", "nearest");
            let mut attrs = Attrs::new();
            match interp {
                // tf.image.resize (Keras): nearest takes floor of the asymmetric source coordinate;
                // bilinear uses half-pixel centers.
                "nearest" => {
                    attrs.insert("mode".into(), Attr::Str("nearest".into()));
                    attrs.insert("coordinate_transformation_mode".into(), Attr::Str("asymmetric".into()));
                    attrs.insert("nearest_mode".into(), Attr::Str("floor".into()));
                }
                "bilinear" => {
                    attrs.insert("mode".into(), Attr::Str("linear".into()));
                    attrs.insert("coordinate_transformation_mode".into(), Attr::Str("half_pixel".into()));
                }
                other => return Err(fail(format!("interpolation '{other}' is not supported (nearest, bilinear)"))),
            }
            let xn = b.nchw(x)?;
            let scales =
                b.constant(&format!("{out}/scales"), Tensor::from_f32(vec![4], vec![1.0, 1.0, sh as f32, sw as f32]).map_err(Error::from)?);
            Value { name: b.node("Resize", out, &[&xn, "", &scales], attrs), rank: Some(4), nchw: true, constant: None }
        }
        "Rescaling" => {
            let scale = f32_cfg(layer, "scale", 1.0);
            let offset = f32_cfg(layer, "offset", 0.0);
            let s = scalar_value(b, &format!("{out}/scale"), scale);
            let mid = b.fresh(&format!("{out}/scaled"));
            let scaled = b.binary("Mul", &mid, x, &s)?;
            let o = scalar_value(b, &format!("{out}/offset"), offset);
            b.binary("Add", out, &scaled, &o)?
        }
        "Normalization" => normalization(b, out, x, layer, w)?,
        "Embedding" => {
            let table = w.get(class, &["embeddings"])?;
            let t = b.constant(&format!("{out}/table"), table.clone());
            let xs = b.nhwc(x);
            let mut to = Attrs::new();
            to.insert("to".into(), Attr::Int(7)); // int64
            let idx = b.op("Cast", &format!("{out}/indices"), &[&xs], to);
            Value::plain(b.node("Gather", out, &[&t, &idx], Attrs::new()), x.rank.map(|r| r + 1))
        }
        // LSTM/GRU map onto ONNX LSTM/GRU, which Cairn's engine does not run yet.
        _ => return Err(LayerError::Unsupported),
    })
}

fn scalar_value(b: &mut Builder, hint: &str, v: f32) -> Value {
    let t = Tensor::scalar_f32(v);
    Value { name: b.constant(hint, t.clone()), rank: Some(0), nchw: false, constant: Some(t.into()) }
}

fn leaky(b: &mut Builder, out: &str, x: &Value, slope: f32) -> Value {
    let mut attrs = Attrs::new();
    attrs.insert("alpha".into(), Attr::Float(slope));
    b.unary("LeakyRelu", out, x, &[], attrs)
}

fn dense(b: &mut Builder, out: &str, x: &Value, kernel: &Tensor, bias: Option<&Tensor>) -> Result<Value, Error> {
    if kernel.rank() != 2 {
        return Err(Error::Model(format!("'{out}': a Dense kernel must be 2-D, got {:?}", kernel.shape())));
    }
    let xs = b.nhwc(x);
    let k = b.constant(&format!("{out}/kernel"), kernel.clone());
    if x.rank == Some(2) {
        let mut inputs = vec![xs.as_str(), k.as_str()];
        let bias_name = bias.map(|t| b.constant(&format!("{out}/bias"), t.clone()));
        if let Some(n) = &bias_name {
            inputs.push(n);
        }
        return Ok(Value::plain(b.node("Gemm", out, &inputs, Attrs::new()), Some(2)));
    }
    match bias {
        None => Ok(Value::plain(b.node("MatMul", out, &[&xs, &k], Attrs::new()), x.rank)),
        Some(t) => {
            let mm = b.op("MatMul", &format!("{out}/matmul"), &[&xs, &k], Attrs::new());
            let bn = b.constant(&format!("{out}/bias"), t.clone());
            Ok(Value::plain(b.node("Add", out, &[&mm, &bn], Attrs::new()), x.rank))
        }
    }
}

/// Inference BatchNorm: BatchNormalization on channels-first 4-D data, else a folded `x * s + t`.
fn batch_norm(b: &mut Builder, out: &str, x: &Value, layer: &Layer, w: &LayerWeights) -> Result<Value, Error> {
    let class = layer.class.as_str();
    let mean = w.get(class, &["moving_mean"])?.view().to_f32_vec();
    let var = w.get(class, &["moving_variance"])?.view().to_f32_vec();
    let c = mean.len();
    let gamma = if bool_cfg(layer, "scale", true) { w.get(class, &["gamma"])?.view().to_f32_vec() } else { vec![1.0; c] };
    let beta = if bool_cfg(layer, "center", true) { w.get(class, &["beta"])?.view().to_f32_vec() } else { vec![0.0; c] };
    if var.len() != c || gamma.len() != c || beta.len() != c {
        return Err(Error::layer(&layer.name, class, "gamma, beta, mean and variance differ in length"));
    }
    let eps = f32_cfg(layer, "epsilon", 1e-3);
    if x.rank == Some(4) {
        let xn = b.nchw(x)?;
        let names: Vec<String> = [("scale", gamma), ("bias", beta), ("mean", mean), ("var", var)]
            .into_iter()
            .map(|(n, v)| b.constant(&format!("{out}/{n}"), Tensor::from_f32(vec![c], v).expect("length checked")))
            .collect();
        let mut attrs = Attrs::new();
        attrs.insert("epsilon".into(), Attr::Float(eps));
        let refs: Vec<&str> = std::iter::once(xn.as_str()).chain(names.iter().map(String::as_str)).collect();
        return Ok(Value { name: b.node("BatchNormalization", out, &refs, attrs), rank: Some(4), nchw: true, constant: None });
    }
    let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    affine(b, out, x, scale, shift)
}

/// `x * scale + shift` over the last axis.
fn affine(b: &mut Builder, out: &str, x: &Value, scale: Vec<f32>, shift: Vec<f32>) -> Result<Value, Error> {
    let c = scale.len();
    let konst = |b: &mut Builder, hint: String, v: Vec<f32>| -> Result<Value, Error> {
        let t = Tensor::from_f32(vec![c], v)?;
        Ok(Value { name: b.constant(&hint, t.clone()), rank: Some(1), nchw: false, constant: Some(t.into()) })
    };
    let s = konst(b, format!("{out}/scale"), scale)?;
    let mid = b.fresh(&format!("{out}/scaled"));
    let scaled = b.binary("Mul", &mid, x, &s)?;
    let t = konst(b, format!("{out}/shift"), shift)?;
    b.binary("Add", out, &scaled, &t)
}

/// Keras Normalization: `(x - mean) / max(sqrt(variance), epsilon)`, folded to an affine map.
fn normalization(b: &mut Builder, out: &str, x: &Value, layer: &Layer, w: &LayerWeights) -> Result<Value, Error> {
    let from_cfg = |key: &str| {
        cfg(layer, key).and_then(Json::as_array).map(|a| a.iter().filter_map(Json::as_f64).map(|v| v as f32).collect::<Vec<_>>())
    };
    let mean = w.find(&["mean"]).map(|t| t.view().to_f32_vec()).or_else(|| from_cfg("mean"));
    let var = w.find(&["variance"]).map(|t| t.view().to_f32_vec()).or_else(|| from_cfg("variance"));
    let (Some(mean), Some(var)) = (mean, var) else {
        return Err(Error::layer(&layer.name, &layer.class, "has no mean/variance (neither weights nor config)"));
    };
    if mean.len() != var.len() || mean.is_empty() {
        return Err(Error::layer(&layer.name, &layer.class, "mean and variance differ in length"));
    }
    let scale: Vec<f32> = var.iter().map(|v| 1.0 / v.sqrt().max(1e-7)).collect();
    let shift: Vec<f32> = mean.iter().zip(&scale).map(|(m, s)| -m * s).collect();
    affine(b, out, x, scale, shift)
}

fn zero_padding(layer: &Layer) -> Result<[i64; 4], Error> {
    let bad = || bad(layer, "padding");
    let as_pad = |v: &Json| v.as_i64().filter(|&n| (0..=1 << 16).contains(&n)).ok_or_else(bad);
    match cfg(layer, "padding") {
        None => Ok([1; 4]),
        Some(Json::Number(_)) => {
            let p = as_pad(cfg(layer, "padding").expect("matched"))?;
            Ok([p; 4])
        }
        Some(Json::Array(a)) if a.len() == 2 => match (&a[0], &a[1]) {
            (Json::Array(h), Json::Array(w)) if h.len() == 2 && w.len() == 2 => {
                Ok([as_pad(&h[0])?, as_pad(&h[1])?, as_pad(&w[0])?, as_pad(&w[1])?])
            }
            (h, w) => {
                let (h, w) = (as_pad(h)?, as_pad(w)?);
                Ok([h, h, w, w])
            }
        },
        Some(_) => Err(bad()),
    }
}

fn merge(b: &mut Builder, out: &str, class: &str, args: &[Value]) -> Result<Value, Error> {
    if args.len() < 2 {
        return Err(Error::Model(format!("'{out}' ({class}) needs at least two inputs")));
    }
    let op = match class {
        "Add" | "Average" => "Add",
        "Multiply" => "Mul",
        "Subtract" => "Sub",
        "Maximum" => "Max",
        _ => "Min",
    };
    let mut acc = args[0].clone();
    for (i, v) in args[1..].iter().enumerate() {
        let last = i + 2 == args.len() && class != "Average";
        let name = if last { out.to_string() } else { b.fresh(&format!("{out}/{i}")) };
        acc = b.binary(op, &name, &acc, v)?;
    }
    if class == "Average" {
        let n = scalar_value(b, &format!("{out}/count"), 1.0 / args.len() as f32);
        acc = b.binary("Mul", out, &acc, &n)?;
    }
    Ok(acc)
}

/// Concat along TF axis `axis`: channels-first when every input is 4-D (one already is).
pub fn concat(b: &mut Builder, out: &str, args: &[Value], axis: i64) -> Result<Value, Error> {
    let first = &args[0];
    let all4 = args.iter().all(|v| v.rank == Some(4));
    let mut attrs = Attrs::new();
    if all4 && args.iter().any(|v| v.nchw) {
        let names = args.iter().map(|v| b.nchw(v)).collect::<Result<Vec<_>, _>>()?;
        let probe = Value { nchw: true, ..first.clone() };
        attrs.insert("axis".into(), Attr::Int(Builder::stored_axis(&probe, axis)?));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        return Ok(Value { name: b.node("Concat", out, &refs, attrs), rank: Some(4), nchw: true, constant: None });
    }
    attrs.insert("axis".into(), Attr::Int(Builder::stored_axis(&Value { nchw: false, ..first.clone() }, axis)?));
    let refs: Vec<&Value> = args.iter().collect();
    Ok(b.plain_op("Concat", out, &refs, attrs, first.rank))
}
