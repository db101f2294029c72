//! Decodes the weights manifest: shard bytes to tensors, TF.js quantization undone.
//!
//! Every size is checked against the bytes present before anything is allocated:
//! a manifest that claims more bytes than its shards hold, or shards longer than
//! the manifest explains, is an error naming the group and both sizes.

use crate::manifest::{WeightEntry, WeightGroup};
use crate::Error;
use cairn_core::{checked_numel, Tensor, TensorData};
use half::f16;
use std::collections::HashMap;

/// Largest dimension accepted in a file (2^31): bigger is hostile or corrupt.
pub const MAX_DIM: i64 = 1 << 31;

/// Where shard bytes come from: a directory on disk, or memory (tests, fuzzing, the browser).
pub trait ShardSource {
    /// The shard's length in bytes, without reading it.
    fn len(&self, path: &str) -> Result<u64, Error>;
    fn read(&self, path: &str) -> Result<Vec<u8>, Error>;
}

/// Shards held in memory, by the path the manifest names.
impl ShardSource for HashMap<String, Vec<u8>> {
    fn len(&self, path: &str) -> Result<u64, Error> {
        self.get(path).map(|b| b.len() as u64).ok_or_else(|| missing_shard(path))
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.get(path).cloned().ok_or_else(|| missing_shard(path))
    }
}

pub(crate) fn missing_shard(path: &str) -> Error {
    Error::Weights(format!("shard '{path}' is missing (copy every .bin file the manifest lists next to model.json)"))
}

/// Decoded weights by manifest name, in TF.js's own layout.
pub type Weights = HashMap<String, Tensor>;

pub fn decode(groups: &[WeightGroup], source: &dyn ShardSource) -> Result<Weights, Error> {
    let mut out = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        let layout = group.weights.iter().map(|w| Ok((w, entry_bytes(w)?))).collect::<Result<Vec<_>, Error>>()?;
        let expected = layout.iter().try_fold(0u64, |acc, (_, n)| acc.checked_add(*n as u64));
        let expected = expected.ok_or_else(|| Error::Weights(format!("group {g}: the weight sizes overflow")))?;
        let mut present = 0u64;
        for p in &group.paths {
            present = present.saturating_add(source.len(p)?);
        }
        if present != expected {
            return Err(Error::Weights(format!(
                "group {g} ({}): the manifest describes {expected} bytes but the shards hold {present} (a shard is truncated, \
                 from another export, or the manifest lies)",
                group.paths.join(", ")
            )));
        }
        let mut bytes = Vec::with_capacity(expected as usize);
        for p in &group.paths {
            let shard = source.read(p)?;
            bytes.extend_from_slice(&shard);
            if bytes.len() as u64 > expected {
                return Err(Error::Weights(format!("group {g}: shard '{p}' grew while it was read")));
            }
        }
        let mut offset = 0usize;
        for (entry, n) in layout {
            let tensor = decode_entry(entry, &bytes[offset..offset + n])?;
            offset += n;
            if out.insert(entry.name.clone(), tensor).is_some() {
                return Err(Error::weight(&entry.name, "listed twice in the manifest"));
            }
        }
    }
    Ok(out)
}

/// Checks a manifest shape and returns it as sizes.
pub fn shape_of(shape: &[i64], name: &str) -> Result<Vec<usize>, Error> {
    let dims = shape
        .iter()
        .map(|&d| {
            if (0..=MAX_DIM).contains(&d) {
                Ok(d as usize)
            } else {
                Err(Error::weight(name, format!("invalid dimension {d} in {shape:?}")))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    checked_numel(&dims).map_err(|_| Error::weight(name, format!("shape {shape:?} overflows")))?;
    Ok(dims)
}

/// Bytes the entry occupies in its shard.
fn entry_bytes(w: &WeightEntry) -> Result<usize, Error> {
    let numel = checked_numel(&shape_of(&w.shape, &w.name)?).map_err(|e| Error::weight(&w.name, e.to_string()))?;
    let width = match &w.quantization {
        Some(q) => match q.dtype.as_str() {
            "uint8" => 1,
            "uint16" | "float16" => 2,
            other => {
                return Err(Error::weight(
                    &w.name,
                    format!("quantization dtype '{other}' is not one TF.js writes (uint8, uint16, float16)"),
                ))
            }
        },
        None => match w.dtype.as_str() {
            "float32" | "int32" => 4,
            "bool" => 1,
            other => {
                return Err(Error::weight(
                    &w.name,
                    format!("dtype '{other}' is not supported (Cairn reads float32, int32 and bool weights)"),
                ))
            }
        },
    };
    numel.checked_mul(width).ok_or_else(|| Error::weight(&w.name, "byte size overflows"))
}

fn decode_entry(w: &WeightEntry, bytes: &[u8]) -> Result<Tensor, Error> {
    let shape = shape_of(&w.shape, &w.name)?;
    let data = match &w.quantization {
        Some(q) => dequantize(w, q, bytes)?,
        None => match w.dtype.as_str() {
            "float32" => TensorData::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            "int32" => TensorData::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            _ => TensorData::Bool(bytes.iter().map(|&b| u8::from(b != 0)).collect()),
        },
    };
    Tensor::new(shape, data).map_err(|e| Error::weight(&w.name, e.to_string()))
}

fn dequantize(w: &WeightEntry, q: &crate::manifest::Quantization, bytes: &[u8]) -> Result<TensorData, Error> {
    let values: Vec<f32> = match q.dtype.as_str() {
        "float16" => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => {
            let (scale, min) = match (q.scale, q.min) {
                (Some(s), Some(m)) if s.is_finite() && m.is_finite() => (s, m),
                _ => return Err(Error::weight(&w.name, format!("{} quantization needs finite 'scale' and 'min'", q.dtype))),
            };
            if q.dtype == "uint8" {
                bytes.iter().map(|&b| b as f32 * scale + min).collect()
            } else {
                bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as f32 * scale + min).collect()
            }
        }
    };
    // The manifest's dtype is what the values were before quantization.
    let original = q.original_dtype.as_deref().unwrap_or(&w.dtype);
    Ok(match original {
        "float32" => TensorData::F32(values),
        "int32" => TensorData::I32(values.iter().map(|v| v.round() as i32).collect()),
        other => return Err(Error::weight(&w.name, format!("quantized weights of dtype '{other}' are not supported"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Quantization;

    fn entry(dtype: &str, q: Option<(&str, f32, f32)>) -> WeightEntry {
        WeightEntry {
            name: "w".into(),
            shape: vec![3],
            dtype: dtype.into(),
            quantization: q.map(|(d, scale, min)| Quantization {
                dtype: d.into(),
                scale: Some(scale),
                min: Some(min),
                original_dtype: None,
            }),
        }
    }

    #[test]
    fn uint8_dequantizes_as_scale_times_q_plus_min() {
        let t = decode_entry(&entry("float32", Some(("uint8", 0.5, -1.0))), &[0, 2, 255]).unwrap();
        assert_eq!(t.view().to_f32_vec(), vec![-1.0, 0.0, 126.5]);
    }

    #[test]
    fn uint16_and_float16_decode() {
        let t = decode_entry(&entry("float32", Some(("uint16", 0.25, 1.0))), &[4, 0, 0, 1, 255, 255]).unwrap();
        assert_eq!(t.view().to_f32_vec(), vec![2.0, 65.0, 16384.75]);
        let bytes: Vec<u8> = [1.5f32, -2.0, 0.099975586].iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
        let t = decode_entry(&entry("float32", Some(("float16", 0.0, 0.0))), &bytes).unwrap();
        assert_eq!(t.view().to_f32_vec(), vec![1.5, -2.0, 0.099975586]);
    }

    #[test]
    fn a_manifest_claiming_more_bytes_than_the_shards_hold_fails_before_reading() {
        let groups = vec![WeightGroup { paths: vec!["a.bin".into()], weights: vec![entry("float32", None)] }];
        let shards: HashMap<String, Vec<u8>> = [("a.bin".to_string(), vec![0u8; 8])].into();
        let err = decode(&groups, &shards).unwrap_err().to_string();
        assert!(err.contains("12 bytes but the shards hold 8"), "{err}");
    }
}
