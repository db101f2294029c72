//! Tensors on the wire: request bodies (JSON or raw little-endian bytes) checked
//! against the model's declared inputs, and outputs as JSON.
//!
//! JSON: `{"inputs": {"x": {"dtype": "f32", "shape": [1, 3, 224, 224], "data": [...]}}}`
//! (`dtype` may be left out; a single-input model also takes the tensor object alone).
//! Binary (`Content-Type: application/octet-stream`): the bytes of the model's single
//! input (or the one named by `Cairn-Input`), shape from `Cairn-Shape: 1,3,224,224`
//! or, when only the first dim is free, from the body length; `Cairn-Dtype` if given
//! must match.

use crate::error::ApiError;
use crate::models::{parse_dtype, ServedModel};
use axum::http::HeaderMap;
use cairn_core::{DType, Dim, Tensor, TensorData, ValueInfo};
use serde::Deserialize;
use std::collections::HashMap;

/// A request's inputs, in the model's input order, all with the same first dim (`rows`).
pub struct Inputs {
    pub tensors: Vec<Tensor>,
    pub rows: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTensor {
    #[serde(default)]
    dtype: Option<String>,
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonBody {
    Named { inputs: HashMap<String, JsonTensor> },
    Single(JsonTensor),
}

pub fn parse(model: &ServedModel, headers: &HeaderMap, body: &[u8]) -> Result<Inputs, ApiError> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let tensors: HashMap<String, Tensor> = match media.as_str() {
        "application/json" | "" => parse_json(model, body)?,
        "application/octet-stream" => parse_binary(model, headers, body)?,
        other => {
            return Err(ApiError::new(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("cannot read a '{other}' body"))
                .hint("send application/json ({\"inputs\": {NAME: {shape, data}}}) or application/octet-stream with Cairn-Shape"))
        }
    };
    check(&model.inputs, tensors)
}

fn parse_json(model: &ServedModel, body: &[u8]) -> Result<HashMap<String, Tensor>, ApiError> {
    let parsed: JsonBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the JSON body is not a tensor request: {e}"))
            .hint("expected {\"inputs\": {\"NAME\": {\"shape\": [...], \"data\": [...]}}}")
    })?;
    let named = match parsed {
        JsonBody::Named { inputs } => inputs,
        JsonBody::Single(t) => match model.inputs.as_slice() {
            [only] => HashMap::from([(only.name.clone(), t)]),
            _ => return Err(ApiError::bad_request(format!("the model has {} inputs: name each under \"inputs\"", model.inputs.len()))),
        },
    };
    let mut out = HashMap::new();
    for (name, t) in named {
        let info = find_input(model, &name)?;
        let dtype = match &t.dtype {
            Some(d) => parse_dtype(d).ok_or_else(|| ApiError::bad_request(format!("input '{name}': unknown dtype '{d}'")))?,
            None => info.dtype,
        };
        let numel = checked_count(&t.shape, &name)?;
        if numel != t.data.len() {
            return Err(ApiError::bad_request(format!(
                "input '{name}': shape {:?} holds {numel} values but data has {}",
                t.shape,
                t.data.len()
            )));
        }
        let data = json_values(dtype, &t.data).map_err(|e| ApiError::bad_request(format!("input '{name}': {e}")))?;
        out.insert(name, Tensor::new(t.shape, data).map_err(|e| ApiError::bad_request(e.to_string()))?);
    }
    Ok(out)
}

fn json_values(dtype: DType, v: &[f64]) -> Result<TensorData, String> {
    let ints = |lo: f64, hi: f64| -> Result<(), String> {
        match v.iter().find(|x| x.fract() != 0.0 || **x < lo || **x > hi) {
            Some(bad) => Err(format!("{bad} is not a {} value", dtype.name())),
            None => Ok(()),
        }
    };
    Ok(match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F16 => TensorData::F16(v.iter().map(|&x| half::f16::from_f64(x)).collect()),
        DType::I8 => ints(-128.0, 127.0).map(|_| TensorData::I8(v.iter().map(|&x| x as i8).collect()))?,
        DType::U8 => ints(0.0, 255.0).map(|_| TensorData::U8(v.iter().map(|&x| x as u8).collect()))?,
        DType::I32 => ints(i32::MIN as f64, i32::MAX as f64).map(|_| TensorData::I32(v.iter().map(|&x| x as i32).collect()))?,
        DType::I64 => ints(-(2f64.powi(53)), 2f64.powi(53)).map(|_| TensorData::I64(v.iter().map(|&x| x as i64).collect()))?,
        DType::Bool => ints(0.0, 1.0).map(|_| TensorData::Bool(v.iter().map(|&x| x as u8).collect()))?,
        DType::F64 => TensorData::F64(v.to_vec()),
        DType::BF16 => TensorData::BF16(v.iter().map(|&x| half::bf16::from_f64(x)).collect()),
        DType::I16 => ints(i16::MIN as f64, i16::MAX as f64).map(|_| TensorData::I16(v.iter().map(|&x| x as i16).collect()))?,
        DType::U16 => ints(0.0, u16::MAX as f64).map(|_| TensorData::U16(v.iter().map(|&x| x as u16).collect()))?,
        DType::U32 => ints(0.0, u32::MAX as f64).map(|_| TensorData::U32(v.iter().map(|&x| x as u32).collect()))?,
        DType::U64 => ints(0.0, 2f64.powi(53)).map(|_| TensorData::U64(v.iter().map(|&x| x as u64).collect()))?,
    })
}

fn parse_binary(model: &ServedModel, headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, Tensor>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let info = match (header("cairn-input"), model.inputs.as_slice()) {
        (Some(name), _) => find_input(model, name)?,
        (None, [only]) => only,
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "the model has {} inputs: a binary body must name one with Cairn-Input",
                model.inputs.len()
            )))
        }
    };
    if model.inputs.len() > 1 {
        return Err(ApiError::bad_request("a binary body carries one tensor but the model has several inputs").hint("send JSON instead"));
    }
    if let Some(d) = header("cairn-dtype") {
        let dtype = parse_dtype(d).ok_or_else(|| ApiError::bad_request(format!("Cairn-Dtype: unknown dtype '{d}'")))?;
        if dtype != info.dtype {
            return Err(ApiError::bad_request(format!("input '{}' must be {}, got {}", info.name, info.dtype.name(), dtype.name())));
        }
    }
    let elem = info.dtype.size();
    if !body.len().is_multiple_of(elem) {
        return Err(ApiError::bad_request(format!(
            "the body has {} bytes, not a whole number of {} values",
            body.len(),
            info.dtype.name()
        )));
    }
    let shape = match header("cairn-shape") {
        Some(s) => s
            .split(',')
            .map(|d| d.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ApiError::bad_request(format!("Cairn-Shape '{s}' must be sizes separated by commas, e.g. 1,3,224,224")))?,
        None => infer_rows_shape(info, body.len() / elem)?,
    };
    let numel = checked_count(&shape, &info.name)?;
    if numel * elem != body.len() {
        return Err(ApiError::bad_request(format!(
            "input '{}': shape {shape:?} needs {} bytes of {}, the body has {}",
            info.name,
            numel * elem,
            info.dtype.name(),
            body.len()
        )));
    }
    // Tensor bytes are native-endian, and every target Cairn builds for is little-endian.
    let mut t = Tensor::new(shape, TensorData::zeros(info.dtype, numel)).map_err(|e| ApiError::bad_request(e.to_string()))?;
    t.bytes_mut().copy_from_slice(body);
    Ok(HashMap::from([(info.name.clone(), t)]))
}

/// With no Cairn-Shape: every dim but the first must be known; the first is what the length says.
fn infer_rows_shape(info: &ValueInfo, numel: usize) -> Result<Vec<usize>, ApiError> {
    let dims =
        info.dims.as_deref().ok_or_else(|| ApiError::bad_request(format!("input '{}' declares no shape: send Cairn-Shape", info.name)))?;
    let rest: Option<Vec<usize>> = dims.iter().skip(1).map(|d| if let Dim::Known(n) = d { Some(*n) } else { None }).collect();
    let Some(rest) = rest.filter(|_| !dims.is_empty()) else {
        return Err(ApiError::bad_request(format!("input '{}' has free dims past the first: send Cairn-Shape", info.name)));
    };
    let per_row: usize = rest.iter().product();
    if per_row == 0 || !numel.is_multiple_of(per_row) || numel == 0 {
        return Err(ApiError::bad_request(format!(
            "the body holds {numel} values, not a whole number of rows of {per_row} for input '{}' {}",
            info.name,
            describe(dims)
        )));
    }
    Ok(std::iter::once(numel / per_row).chain(rest).collect())
}

fn find_input<'a>(model: &'a ServedModel, name: &str) -> Result<&'a ValueInfo, ApiError> {
    model.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
        let names: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
        ApiError::bad_request(format!("model '{}' has no input '{name}' (its inputs: {})", model.name, names.join(", ")))
    })
}

fn checked_count(shape: &[usize], name: &str) -> Result<usize, ApiError> {
    cairn_core::checked_numel(shape).map_err(|_| ApiError::bad_request(format!("input '{name}': shape {shape:?} is too large")))
}

fn describe(dims: &[Dim]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(", "))
}

/// Every input present with the declared dtype and shape; symbolic dims bound consistently;
/// all inputs agree on the first dim (the rows a batch stacks).
fn check(declared: &[ValueInfo], mut given: HashMap<String, Tensor>) -> Result<Inputs, ApiError> {
    let mut symbols: HashMap<&str, usize> = HashMap::new();
    let mut tensors = Vec::with_capacity(declared.len());
    for info in declared {
        let t = given.remove(&info.name).ok_or_else(|| ApiError::bad_request(format!("missing input '{}'", info.name)))?;
        if t.dtype() != info.dtype {
            return Err(ApiError::bad_request(format!("input '{}' must be {}, got {}", info.name, info.dtype.name(), t.dtype().name())));
        }
        if let Some(dims) = &info.dims {
            let ok = dims.len() == t.rank()
                && dims.iter().zip(t.shape()).all(|(d, &n)| match d {
                    Dim::Known(k) => *k == n,
                    Dim::Sym(s) => n > 0 && *symbols.entry(s.as_str()).or_insert(n) == n,
                });
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "input '{}' must have shape {}, got {:?}",
                    info.name,
                    describe(dims),
                    t.shape()
                )));
            }
        }
        if t.rank() == 0 {
            return Err(ApiError::bad_request(format!("input '{}' is a scalar; the server needs a leading batch dimension", info.name)));
        }
        tensors.push(t);
    }
    let rows = tensors.first().map_or(1, |t| t.shape()[0]);
    Ok(Inputs { tensors, rows })
}

/// One output tensor as JSON.
pub fn tensor_json(t: &Tensor) -> serde_json::Value {
    let data: serde_json::Value = match t.data() {
        TensorData::F32(v) => serde_json::json!(v),
        TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>().into(),
        TensorData::I8(v) => serde_json::json!(v),
        TensorData::U8(v) => serde_json::json!(v),
        TensorData::I32(v) => serde_json::json!(v),
        TensorData::I64(v) => serde_json::json!(v),
        TensorData::Bool(v) => serde_json::json!(v),
        TensorData::BF16(v) => v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>().into(),
        TensorData::F64(v) => serde_json::json!(v),
        TensorData::I16(v) => serde_json::json!(v),
        TensorData::U16(v) => serde_json::json!(v),
        TensorData::U32(v) => serde_json::json!(v),
        TensorData::U64(v) => serde_json::json!(v),
    };
    serde_json::json!({ "dtype": t.dtype().name(), "shape": t.shape(), "data": data })
}

/// Softmax over the last axis of row `row` of a [rows, classes] float output.
pub fn probabilities(t: &Tensor, row: usize) -> Option<Vec<f32>> {
    if !t.dtype().is_float() || t.rank() != 2 || row >= t.shape()[0] {
        return None;
    }
    let classes = t.shape()[1];
    let all = t.view().to_f32_vec();
    let logits = &all[row * classes..(row + 1) * classes];
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    Some(exp.into_iter().map(|e| e / sum).collect())
}

/// The `k` most probable classes: index, label (if known), probability.
pub fn top_k(probs: &[f32], k: usize, labels: Option<&[String]>) -> Vec<serde_json::Value> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    idx.into_iter()
        .take(k)
        .map(|i| serde_json::json!({ "index": i, "label": labels.and_then(|l| l.get(i)), "probability": probs[i] }))
        .collect()
}
