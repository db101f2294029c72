//! Tensors on the wire: request bodies (JSON or raw little-endian bytes) checked
//! against the model's declared inputs, and outputs as JSON.
//!
//! JSON: `{"inputs": {"ids": {"dtype": "i64", "shape": [1, 8], "data": [101, "9007199254740993", ...]}}}`
//! (`dtype` may be left out; a single-input model also takes the tensor object alone). Element
//! forms (exact int64 as numbers or decimal strings, NaN/Infinity as strings, bools): see
//! [`crate::json_tensor`].
//! Binary (`Content-Type: application/octet-stream`), one tensor: the bytes of the model's
//! single input (or the one named by `Cairn-Input`), shape from `Cairn-Shape: 1,3,224,224`
//! or, when only the first dim is free, from the body length; `Cairn-Dtype` if given must
//! match. Several tensors: `Cairn-Tensors: [{"name", "dtype", "shape", "offset", "bytes"}, ...]`
//! describes each one's byte range of the body, the packed form the browser worker uses
//! (ADR 0015), so a page sends its `BigInt64Array`s as they are.

use crate::error::ApiError;
use crate::json_tensor::{self, Data};
use crate::models::{parse_dtype, ServedModel};
use axum::http::HeaderMap;
use cairn_core::{DType, Dim, Tensor, ValueInfo};
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
    data: Data,
}

/// One tensor of a packed binary body (`Cairn-Tensors`): its bytes are `[offset, offset + bytes)`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackedSpec {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    offset: usize,
    bytes: usize,
}

/// The header naming the tensors of a packed binary body.
pub const TENSORS_HEADER: &str = "cairn-tensors";

/// Either `{"inputs": {NAME: tensor, ...}}` or one tensor's fields at the top. One struct
/// rather than an untagged enum: serde's error for a bad element (which one, why) then reaches
/// the client, and the body is not buffered twice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    #[serde(default)]
    inputs: Option<HashMap<String, JsonTensor>>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    shape: Option<Vec<usize>>,
    #[serde(default)]
    data: Option<Data>,
}

pub fn parse(model: &ServedModel, headers: &HeaderMap, body: &[u8]) -> Result<Inputs, ApiError> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let tensors: HashMap<String, Tensor> = match media.as_str() {
        "application/json" | "" => parse_json(model, body)?,
        "application/octet-stream" if headers.contains_key(TENSORS_HEADER) => parse_packed(model, headers, body)?,
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
            .hint("expected {\"inputs\": {\"NAME\": {\"dtype\": \"i64\", \"shape\": [...], \"data\": [...]}}}; int64 past 2^53 as decimal strings")
    })?;
    let named = match parsed {
        JsonBody { inputs: Some(inputs), dtype: None, shape: None, data: None } => inputs,
        JsonBody { inputs: None, dtype, shape: Some(shape), data: Some(data) } => match model.inputs.as_slice() {
            [only] => HashMap::from([(only.name.clone(), JsonTensor { dtype, shape, data })]),
            _ => return Err(ApiError::bad_request(format!("the model has {} inputs: name each under \"inputs\"", model.inputs.len()))),
        },
        _ => {
            return Err(ApiError::bad_request(
                "the JSON body is not a tensor request: it needs \"inputs\", or \"shape\" and \"data\" of one tensor",
            )
            .hint("expected {\"inputs\": {\"NAME\": {\"dtype\": \"i64\", \"shape\": [...], \"data\": [...]}}}"))
        }
    };
    let mut out = HashMap::new();
    for (name, t) in named {
        let info = find_input(model, &name)?;
        let dtype = match &t.dtype {
            Some(d) => dtype_named(&name, d)?,
            None => info.dtype,
        };
        let numel = checked_count(&t.shape, &name)?;
        if numel != t.data.0.len() {
            return Err(ApiError::bad_request(format!(
                "input '{name}': shape {:?} holds {numel} values but data has {}",
                t.shape,
                t.data.0.len()
            )));
        }
        let data = json_tensor::to_tensor_data(dtype, &t.data.0).map_err(|e| ApiError::bad_request(format!("input '{name}': {e}")))?;
        out.insert(name, Tensor::new(t.shape, data).map_err(|e| ApiError::bad_request(e.to_string()))?);
    }
    Ok(out)
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
        let dtype = dtype_named("Cairn-Dtype", d)?;
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
    Ok(HashMap::from([(info.name.clone(), from_bytes(&info.name, info.dtype, shape, body)?)]))
}

/// Several tensors in one body, each described in `Cairn-Tensors` (the worker's packed form).
fn parse_packed(model: &ServedModel, headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, Tensor>, ApiError> {
    let spec = headers.get(TENSORS_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let specs: Vec<PackedSpec> = serde_json::from_str(spec).map_err(|e| {
        ApiError::bad_request(format!("Cairn-Tensors is not a tensor list: {e}"))
            .hint("Cairn-Tensors: [{\"name\": \"ids\", \"dtype\": \"i64\", \"shape\": [1, 8], \"offset\": 0, \"bytes\": 64}]")
    })?;
    let mut out = HashMap::with_capacity(specs.len());
    for s in specs {
        let info = find_input(model, &s.name)?;
        let dtype = dtype_named(&s.name, &s.dtype)?;
        if dtype != info.dtype {
            return Err(ApiError::bad_request(format!("input '{}' must be {}, got {}", info.name, info.dtype.name(), dtype.name())));
        }
        let want = checked_count(&s.shape, &s.name)?.checked_mul(dtype.size());
        let end = s.offset.checked_add(s.bytes).filter(|&e| e <= body.len());
        let (Some(end), true) = (end, want == Some(s.bytes)) else {
            return Err(ApiError::bad_request(format!(
                "input '{}': shape {:?} of {} needs {} bytes; Cairn-Tensors gives {} at offset {} of a {}-byte body",
                s.name,
                s.shape,
                dtype.name(),
                want.map_or("too many".to_string(), |w| w.to_string()),
                s.bytes,
                s.offset,
                body.len()
            )));
        };
        let t = from_bytes(&s.name, dtype, s.shape, &body[s.offset..end])?;
        if out.insert(s.name.clone(), t).is_some() {
            return Err(ApiError::bad_request(format!("input '{}' is given twice in Cairn-Tensors", s.name)));
        }
    }
    Ok(out)
}

/// A tensor holding `bytes` (little-endian, as many as `shape` needs); bools must be 0 or 1.
fn from_bytes(name: &str, dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> Result<Tensor, ApiError> {
    if dtype.is_narrow() {
        return Err(ApiError::bad_request(format!("input '{name}': {dtype} inputs are not accepted (send f32 and cast in the model)")));
    }
    if dtype == DType::Bool {
        if let Some(i) = bytes.iter().position(|&b| b > 1) {
            return Err(ApiError::bad_request(format!("input '{name}': byte {i} is {}, but a bool tensor holds only 0 and 1", bytes[i])));
        }
    }
    // Tensor bytes are native-endian, and every target Cairn builds for is little-endian.
    let mut t = Tensor::zeros(dtype, shape).map_err(|e| ApiError::bad_request(format!("input '{name}': {e}")))?;
    t.bytes_mut().copy_from_slice(bytes);
    Ok(t)
}

/// A dtype by any name the API accepts (Cairn's `i64` or NumPy's `int64`), or a 400 listing them.
fn dtype_named(what: &str, name: &str) -> Result<DType, ApiError> {
    parse_dtype(name).ok_or_else(|| {
        ApiError::bad_request(format!("{what}: unknown dtype '{name}'"))
            .hint("dtypes: f32, f16, bf16, f64, i8, u8, i16, u16, i32, u32, i64, u64, bool (or NumPy names: float32, int64, ...)")
    })
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

/// One output tensor as JSON (exact: see [`crate::json_tensor`]).
pub fn tensor_json(t: &Tensor) -> serde_json::Value {
    json_tensor::tensor_json(t)
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
