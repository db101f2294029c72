//! Reading the verified flatbuffer: tensor descriptions and constant data, with every
//! size checked against the bytes the file holds before anything is allocated.

use crate::schema_generated::tflite;
use crate::Error;
use cairn_core::{DType, Tensor, TensorData};
use std::collections::HashMap;

/// Largest dimension and element count a declared shape may have. Real models stay far
/// below; a bit flip in a shape must not become a multi-gigabyte allocation at run time.
pub(crate) const MAX_DIM: usize = 1 << 24;
pub(crate) const MAX_ELEMENTS: usize = 1 << 28;

/// Verifies the buffer and returns the root table. The verifier checks every offset,
/// vector length, string and union of the file, so accessors cannot read out of bounds.
pub(crate) fn verified_model(bytes: &[u8]) -> Result<tflite::Model<'_>, Error> {
    if bytes.len() < 8 {
        return Err(Error::Decode(format!("the file has {} bytes; a TFLite flatbuffer has at least 8", bytes.len())));
    }
    if !crate::has_identifier(bytes) {
        return Err(Error::Decode(format!(
            "the file identifier is {:?}, not \"TFL3\" (hint: is this an ONNX, TF.js or SavedModel file?)",
            String::from_utf8_lossy(&bytes[4..8])
        )));
    }
    let opts = flatbuffers::VerifierOptions {
        max_depth: 64,
        // Every table costs at least 4 bytes, so this bound is never below what a valid file needs.
        max_tables: bytes.len() / 4 + 16,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: false,
    };
    let model = tflite::root_as_model_with_opts(&opts, bytes).map_err(|e| Error::Decode(e.to_string()))?;
    check_subgraph_references(&model)?;
    Ok(model)
}

/// Subgraph indices that control-flow operators name (IF, WHILE, CALL_ONCE): each must exist,
/// and none may reach itself (a file could otherwise describe infinite recursion).
fn check_subgraph_references(model: &tflite::Model) -> Result<(), Error> {
    let subgraphs = model.subgraphs().ok_or_else(|| Error::Model("the model has no subgraphs".into()))?;
    if subgraphs.is_empty() {
        return Err(Error::Model("the model has no subgraphs".into()));
    }
    let n = subgraphs.len();
    let mut calls: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (s, sg) in subgraphs.iter().enumerate() {
        for op in sg.operators().iter().flatten() {
            let mut refs = Vec::new();
            if let Some(o) = op.builtin_options_as_if_options() {
                refs.extend([o.then_subgraph_index(), o.else_subgraph_index()]);
            }
            if let Some(o) = op.builtin_options_as_while_options() {
                refs.extend([o.cond_subgraph_index(), o.body_subgraph_index()]);
            }
            if let Some(o) = op.builtin_options_as_call_once_options() {
                refs.push(o.init_subgraph_index());
            }
            for r in refs {
                let r = usize::try_from(r).ok().filter(|&r| r < n).ok_or_else(|| {
                    Error::Model(format!("subgraph {s} refers to subgraph {r}, but the model has {n} (the file is corrupt)"))
                })?;
                calls[s].push(r);
            }
        }
    }
    // Depth-first search with colours; iterative so a long chain cannot overflow the stack.
    let mut colour = vec![0u8; n];
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        colour[start] = 1;
        while let Some(&mut (s, ref mut next)) = stack.last_mut() {
            if let Some(&t) = calls[s].get(*next) {
                *next += 1;
                match colour[t] {
                    0 => {
                        colour[t] = 1;
                        stack.push((t, 0));
                    }
                    1 => {
                        return Err(Error::Model(format!(
                            "subgraph {t} calls itself (through subgraph {s}): cyclic subgraph references are not a valid model"
                        )))
                    }
                    _ => {}
                }
            } else {
                colour[s] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// Quantization of one tensor, as the file gives it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QParams {
    pub scale: Vec<f32>,
    pub zero: Vec<i64>,
    /// The axis of per-channel parameters (in the file's layout).
    pub axis: usize,
}

/// What the importer needs to know of one tensor.
#[derive(Clone, Debug)]
pub(crate) struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quant: Option<QParams>,
    /// Constant data in the file's layout, with its stored dtype.
    pub constant: Option<std::sync::Arc<Tensor>>,
}

pub(crate) fn dtype_of(t: tflite::TensorType) -> Option<DType> {
    Some(match t {
        tflite::TensorType::FLOAT32 => DType::F32,
        tflite::TensorType::FLOAT16 => DType::F16,
        tflite::TensorType::INT8 => DType::I8,
        tflite::TensorType::UINT8 => DType::U8,
        tflite::TensorType::INT32 => DType::I32,
        tflite::TensorType::INT64 => DType::I64,
        tflite::TensorType::BOOL => DType::Bool,
        _ => return None,
    })
}

/// Reads every tensor of a subgraph. Names are made unique (TFLite does not require it).
pub(crate) fn tensors(model: &tflite::Model, sg: &tflite::SubGraph) -> Result<Vec<TensorInfo>, Error> {
    let buffers = model.buffers();
    let list = sg.tensors().ok_or_else(|| Error::Model("subgraph 0 has no tensors".into()))?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, t) in list.iter().enumerate() {
        let raw_name = t.name().unwrap_or("").to_string();
        let bad = |detail: String| Error::Tensor { index, name: raw_name.clone(), detail };
        let dtype = dtype_of(t.type_()).ok_or_else(|| {
            bad(format!(
                "element type {:?} is not supported (Cairn imports float32, float16, int8, uint8, int32, int64, bool)",
                t.type_().variant_name().unwrap_or("unknown")
            ))
        })?;
        let shape = t
            .shape()
            .map(|s| s.iter().map(|d| usize::try_from(d).ok().filter(|&d| d <= MAX_DIM)).collect::<Option<Vec<_>>>())
            .unwrap_or(Some(Vec::new()))
            .ok_or_else(|| bad(format!("shape {:?} has a negative or huge dimension", t.shape().map(|s| s.iter().collect::<Vec<_>>()))))?;
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS);
        let numel = numel.ok_or_else(|| bad(format!("shape {shape:?} has more than {MAX_ELEMENTS} elements")))?;
        let quant = t.quantization().and_then(|q| {
            let scale: Vec<f32> = q.scale()?.iter().collect();
            (!scale.is_empty()).then(|| QParams {
                zero: q.zero_point().map(|z| z.iter().collect()).unwrap_or_default(),
                axis: q.quantized_dimension().max(0) as usize,
                scale,
            })
        });
        if let Some(q) = &quant {
            if q.scale.iter().any(|s| !s.is_finite() || *s <= 0.0) && dtype != DType::F32 {
                return Err(bad(format!("quantization scale {:?} is not positive and finite", &q.scale[..q.scale.len().min(4)])));
            }
            if q.scale.len() > 1 && (q.axis >= shape.len() || shape[q.axis] != q.scale.len()) {
                return Err(bad(format!("{} per-channel scales do not fit axis {} of shape {shape:?}", q.scale.len(), q.axis)));
            }
            if !q.zero.is_empty() && q.zero.len() != q.scale.len() {
                return Err(bad(format!("{} zero points for {} scales", q.zero.len(), q.scale.len())));
            }
        }
        let data = usize::try_from(t.buffer())
            .ok()
            .filter(|&b| b != 0)
            .and_then(|b| buffers.as_ref().and_then(|bs| (b < bs.len()).then(|| bs.get(b))))
            .and_then(|b| b.data())
            .filter(|d| !d.is_empty());
        let constant = match (data, t.sparsity()) {
            (Some(d), None) => Some(std::sync::Arc::new(constant(d.bytes(), dtype, &shape, numel).map_err(bad)?)),
            // Sparse weights are expanded here; DENSIFY then only forwards them.
            (Some(d), Some(p)) => Some(std::sync::Arc::new(
                crate::sparse::densify(&p, d.bytes(), dtype, &shape).map_err(|e| bad(format!("sparse data: {e}")))?,
            )),
            _ => None,
        };
        let base = if raw_name.is_empty() { format!("tensor_{index}") } else { raw_name.clone() };
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        let name = if *count == 1 { base } else { format!("{base}_t{index}") };
        out.push(TensorInfo { name, dtype, shape, quant, constant });
    }
    Ok(out)
}

/// Constant bytes as a tensor; the byte count must be exactly what the shape needs.
pub(crate) fn constant(bytes: &[u8], dtype: DType, shape: &[usize], numel: usize) -> Result<Tensor, String> {
    let want = numel.checked_mul(dtype.size()).ok_or("size overflows")?;
    if bytes.len() != want {
        return Err(format!("holds {} bytes of data, but shape {shape:?} of {dtype} needs {want}", bytes.len()));
    }
    let data = tensor_data(bytes, dtype);
    Tensor::new(shape.to_vec(), data).map_err(|e| e.to_string())
}

/// Little-endian bytes (of any alignment) as typed data.
pub(crate) fn tensor_data(bytes: &[u8], dtype: DType) -> TensorData {
    fn chunks<const N: usize, T>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact yields N bytes"))).collect()
    }
    match dtype {
        DType::F32 => TensorData::F32(chunks(bytes, f32::from_le_bytes)),
        DType::F16 => TensorData::F16(chunks(bytes, |b| half::f16::from_bits(u16::from_le_bytes(b)))),
        DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DType::U8 => TensorData::U8(bytes.to_vec()),
        DType::I32 => TensorData::I32(chunks(bytes, i32::from_le_bytes)),
        DType::I64 => TensorData::I64(chunks(bytes, i64::from_le_bytes)),
        DType::Bool => TensorData::Bool(bytes.iter().map(|&b| u8::from(b != 0)).collect()),
        DType::F64 => TensorData::F64(chunks(bytes, f64::from_le_bytes)),
        DType::BF16 => TensorData::BF16(chunks(bytes, |b| half::bf16::from_bits(u16::from_le_bytes(b)))),
        DType::I16 => TensorData::I16(chunks(bytes, i16::from_le_bytes)),
        DType::U16 => TensorData::U16(chunks(bytes, u16::from_le_bytes)),
        DType::U32 => TensorData::U32(chunks(bytes, u32::from_le_bytes)),
        DType::U64 => TensorData::U64(chunks(bytes, u64::from_le_bytes)),
    }
}
