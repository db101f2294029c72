//! `TensorProto` → Cairn `Tensor`, checking every size against the bytes present.

use crate::proto::{data_type as dt, tensor_proto::DATA_LOCATION_EXTERNAL, TensorProto};
use crate::Error;
use cairn_core::{checked_numel, narrow, DType, StringTensor, Tensor, TensorData};
use half::{bf16, f16};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// Largest dimension Cairn accepts in a file (2^40): anything bigger is hostile or corrupt.
pub const MAX_DIM: i64 = 1 << 40;

pub fn dtype_of(code: i32, name: &str) -> Result<DType, Error> {
    Ok(match code {
        dt::FLOAT => DType::F32,
        dt::FLOAT16 => DType::F16,
        dt::INT8 => DType::I8,
        dt::UINT8 => DType::U8,
        dt::INT32 => DType::I32,
        dt::INT64 => DType::I64,
        dt::BOOL => DType::Bool,
        dt::DOUBLE => DType::F64,
        dt::BFLOAT16 => DType::BF16,
        dt::INT16 => DType::I16,
        dt::UINT16 => DType::U16,
        dt::UINT32 => DType::U32,
        dt::UINT64 => DType::U64,
        // Held as StringTensors, not Tensors (docs/adr/0031): see `convert_strings`.
        dt::STRING => DType::Str,
        // float8, float4, 2/4-bit integers (docs/adr/0021).
        narrow if DType::ALL.iter().any(|d| d.is_narrow() && d.onnx_code() == narrow as i64) => {
            DType::ALL.into_iter().find(|d| d.is_narrow() && d.onnx_code() == narrow as i64).expect("found above")
        }
        other => return Err(Error::UnsupportedDType { name: name.to_string(), dtype: dt::name(other) }),
    })
}

pub fn dims_of(dims: &[i64], name: &str) -> Result<Vec<usize>, Error> {
    let shape = dims
        .iter()
        .map(|&d| {
            if (0..=MAX_DIM).contains(&d) {
                Ok(d as usize)
            } else {
                Err(Error::tensor(name, format!("invalid dimension {d} in {dims:?}")))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    checked_numel(&shape).map_err(|_| Error::tensor(name, format!("dims {dims:?} overflow")))?;
    Ok(shape)
}

/// Converts a tensor; external data is read relative to `external_dir`.
pub fn convert(t: &TensorProto, external_dir: Option<&Path>) -> Result<Tensor, Error> {
    let name = t.name.as_str();
    if t.segment.is_some() {
        return Err(Error::tensor(name, "segmented tensors are not supported"));
    }
    let dtype = dtype_of(t.data_type, name)?;
    if dtype == DType::Str {
        // A string tensor where only numbers go (an attribute, a sequence item): a refusal.
        return Err(Error::UnsupportedDType {
            name: name.to_string(),
            dtype:
                "STRING here (string tensors are taken as graph inputs, initializers and Constants, not as attributes or sequence items)",
        });
    }
    let shape = dims_of(&t.dims, name)?;
    let numel = checked_numel(&shape)?;
    let external;
    let raw: Option<&[u8]> = if t.data_location == DATA_LOCATION_EXTERNAL {
        external = read_external(t, stored_len(dtype, numel), external_dir)?;
        Some(&external)
    } else if !t.raw_data.is_empty() || typed_len(t) == 0 && numel > 0 {
        Some(&t.raw_data)
    } else {
        None
    };
    let data = match raw {
        Some(bytes) => from_raw(bytes, dtype, numel, name)?,
        None => from_typed(t, dtype, numel, name)?,
    };
    Tensor::new(shape, data).map_err(|e| Error::tensor(name, e.to_string()))
}

/// Converts a `tensor(string)`: one UTF-8 string per element, from `string_data`; a count
/// that differs from the dims, external data or bytes that are not UTF-8 are errors.
pub fn convert_strings(t: &TensorProto) -> Result<StringTensor, Error> {
    let name = t.name.as_str();
    if t.segment.is_some() || t.data_location == DATA_LOCATION_EXTERNAL {
        return Err(Error::tensor(name, "segmented or external string tensors are not supported"));
    }
    let shape = dims_of(&t.dims, name)?;
    let numel = checked_numel(&shape)?;
    if t.string_data.len() != numel {
        return Err(Error::tensor(
            name,
            format!("dims {:?} promise {numel} strings but string_data holds {}", t.dims, t.string_data.len()),
        ));
    }
    let data = t
        .string_data
        .iter()
        .enumerate()
        .map(|(i, b)| {
            String::from_utf8(b.clone())
                .map_err(|_| Error::tensor(name, format!("string {i} is not valid UTF-8 (Cairn's string tensors hold UTF-8 text)")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    StringTensor::new(shape, data).map_err(|e| Error::tensor(name, e.to_string()))
}

/// Bytes `numel` elements take in a file: sub-byte types are packed there.
fn stored_len(dtype: DType, numel: usize) -> usize {
    if dtype.is_narrow() {
        narrow::packed_len(dtype, numel)
    } else {
        numel * dtype.size()
    }
}

fn typed_len(t: &TensorProto) -> usize {
    t.float_data.len() + t.int32_data.len() + t.int64_data.len() + t.double_data.len() + t.uint64_data.len()
}

fn from_raw(bytes: &[u8], dtype: DType, numel: usize, name: &str) -> Result<TensorData, Error> {
    let need = stored_len(dtype, numel);
    if bytes.len() != need {
        return Err(Error::tensor(name, format!("dims promise {numel} elements ({need} bytes) but raw_data holds {} bytes", bytes.len())));
    }
    fn le<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N"))).collect()
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(le(bytes, f32::from_le_bytes)),
        DType::F16 => TensorData::F16(le(bytes, f16::from_le_bytes)),
        DType::I32 => TensorData::I32(le(bytes, i32::from_le_bytes)),
        DType::I64 => TensorData::I64(le(bytes, i64::from_le_bytes)),
        DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DType::U8 => TensorData::U8(bytes.to_vec()),
        DType::Bool => TensorData::Bool(bytes.iter().map(|&b| (b != 0) as u8).collect()),
        DType::BF16 => TensorData::BF16(le(bytes, bf16::from_le_bytes)),
        DType::F64 => TensorData::F64(le(bytes, f64::from_le_bytes)),
        DType::I16 => TensorData::I16(le(bytes, i16::from_le_bytes)),
        DType::U16 => TensorData::U16(le(bytes, u16::from_le_bytes)),
        DType::U32 => TensorData::U32(le(bytes, u32::from_le_bytes)),
        DType::U64 => TensorData::U64(le(bytes, u64::from_le_bytes)),
        narrow => TensorData::Narrow(narrow, narrow::unpack(narrow, bytes, numel).expect("length checked above")),
    })
}

fn from_typed(t: &TensorProto, dtype: DType, numel: usize, name: &str) -> Result<TensorData, Error> {
    let check = |len: usize, field: &str| {
        if len == numel {
            Ok(())
        } else {
            Err(Error::tensor(name, format!("dims promise {numel} elements but {field} holds {len}")))
        }
    };
    Ok(match dtype {
        DType::F32 => {
            check(t.float_data.len(), "float_data")?;
            TensorData::F32(t.float_data.clone())
        }
        DType::I64 => {
            check(t.int64_data.len(), "int64_data")?;
            TensorData::I64(t.int64_data.clone())
        }
        // ONNX stores these in int32_data, one element per entry (float16 as its bit pattern).
        DType::I32 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::I32(t.int32_data.clone())
        }
        DType::I8 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::U8 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::Bool => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::Bool(t.int32_data.iter().map(|&v| (v != 0) as u8).collect())
        }
        DType::F16 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::F16(t.int32_data.iter().map(|&v| f16::from_bits(v as u16)).collect())
        }
        DType::BF16 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::BF16(t.int32_data.iter().map(|&v| bf16::from_bits(v as u16)).collect())
        }
        DType::I16 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::I16(t.int32_data.iter().map(|&v| v as i16).collect())
        }
        DType::U16 => {
            check(t.int32_data.len(), "int32_data")?;
            TensorData::U16(t.int32_data.iter().map(|&v| v as u16).collect())
        }
        DType::F64 => {
            check(t.double_data.len(), "double_data")?;
            TensorData::F64(t.double_data.clone())
        }
        // uint32 and uint64 live in uint64_data.
        DType::U32 => {
            check(t.uint64_data.len(), "uint64_data")?;
            TensorData::U32(t.uint64_data.iter().map(|&v| v as u32).collect())
        }
        DType::U64 => {
            check(t.uint64_data.len(), "uint64_data")?;
            TensorData::U64(t.uint64_data.clone())
        }
        // int32_data holds one float8 per entry, or one packed byte of 2/4-bit values.
        narrow => {
            let bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
            let elements = narrow::unpack(narrow, &bytes, numel).ok_or_else(|| {
                Error::tensor(name, format!("dims promise {numel} {narrow} elements but int32_data holds {} bytes", bytes.len()))
            })?;
            TensorData::Narrow(narrow, elements)
        }
    })
}

/// Reads `expected` bytes of external data. The location must be a relative path
/// inside the model's directory; the file must hold the range before anything is allocated.
fn read_external(t: &TensorProto, expected: usize, dir: Option<&Path>) -> Result<Vec<u8>, Error> {
    let name = t.name.as_str();
    let err = |detail: String| Error::ExternalData { name: name.to_string(), detail };
    let dir =
        dir.ok_or_else(|| err("the model was loaded from bytes, so external files cannot be located (load it from its path)".into()))?;
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        match kv.key.as_str() {
            "location" => location = Some(kv.value.clone()),
            "offset" => offset = kv.value.parse().map_err(|_| err(format!("bad offset '{}'", kv.value)))?,
            "length" => length = Some(kv.value.parse::<u64>().map_err(|_| err(format!("bad length '{}'", kv.value)))?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| err("no 'location' key".into()))?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(err(format!("location '{location}' must be a relative path inside the model's directory")));
    }
    if let Some(len) = length {
        if len != expected as u64 {
            return Err(err(format!("length {len} does not match the {expected} bytes its dims need")));
        }
    }
    let path = dir.join(rel);
    let mut file = std::fs::File::open(&path).map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
    let file_len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    let end = offset.checked_add(expected as u64).ok_or_else(|| err("offset overflows".into()))?;
    if end > file_len {
        return Err(err(format!("{} holds {file_len} bytes but the tensor needs bytes {offset}..{end}", path.display())));
    }
    file.seek(SeekFrom::Start(offset)).map_err(|e| err(e.to_string()))?;
    let mut buf = vec![0u8; expected];
    file.read_exact(&mut buf).map_err(|e| err(e.to_string()))?;
    Ok(buf)
}
