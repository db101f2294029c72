//! Shards: safetensors files named by the sha256 of their bytes.
//!
//! Any safetensors tool can open a shard; the manifest says which key holds
//! which elements of which weight, and how they are encoded.

use crate::error::{Error, Result};
use crate::manifest::Encoding;
use cairn_core::DType;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The safetensors dtype a part is stored as.
pub fn stored_dtype(encoding: Encoding, dtype: DType) -> Dtype {
    match encoding {
        Encoding::F32Bf16 => Dtype::BF16,
        Encoding::F32Residual16 => Dtype::I16,
        Encoding::I8High4 | Encoding::I8Low4 => Dtype::U8,
        Encoding::Raw => match dtype {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::I8 => Dtype::I8,
            DType::U8 => Dtype::U8,
            DType::I32 => Dtype::I32,
            DType::I64 => Dtype::I64,
            DType::Bool => Dtype::BOOL,
            DType::BF16 => Dtype::BF16,
            DType::F64 => Dtype::F64,
            DType::I16 => Dtype::I16,
            DType::U16 => Dtype::U16,
            DType::U32 => Dtype::U32,
            DType::U64 => Dtype::U64,
            // One byte per element, as in memory; the manifest names the narrow dtype.
            _ => Dtype::U8,
        },
    }
}

/// One entry of a shard being written.
pub struct ShardEntryData {
    pub key: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Serializes entries as one safetensors file.
pub fn write_shard(entries: &[ShardEntryData], level: usize) -> Result<Vec<u8>> {
    let views = entries
        .iter()
        .map(|e| TensorView::new(e.dtype, e.shape.clone(), &e.bytes).map(|v| (e.key.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::ShardContent { path: "(new shard)".into(), detail: format!("{e:?}") })?;
    // One metadata key only: safetensors keeps metadata in a HashMap, whose order (and
    // so the file's bytes and hash) would otherwise change from run to run.
    let metadata = HashMap::from([("cairn".to_string(), format!("{} level {level}", crate::manifest::FORMAT))]);
    safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::ShardContent { path: "(new shard)".into(), detail: format!("{e:?}") })
}

/// A verified shard's bytes, parsed.
pub struct ShardReader<'a> {
    path: &'a str,
    tensors: SafeTensors<'a>,
}

impl<'a> ShardReader<'a> {
    /// Checks size and sha256 against the manifest, then parses the safetensors header.
    pub fn open(path: &'a str, expected_sha256: &str, expected_bytes: u64, bytes: &'a [u8]) -> Result<ShardReader<'a>> {
        if bytes.len() as u64 != expected_bytes {
            return Err(Error::ShardSize { path: path.into(), expected: expected_bytes, got: bytes.len() as u64 });
        }
        let got = sha256_hex(bytes);
        if got != expected_sha256 {
            return Err(Error::ShardHash { path: path.into(), got });
        }
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::ShardContent { path: path.into(), detail: format!("not a valid safetensors file: {e:?}") })?;
        Ok(ShardReader { path, tensors })
    }

    /// The bytes under `key`, checked to be `len` elements of `dtype`.
    pub fn part(&self, key: &str, dtype: Dtype, len: usize) -> Result<&'a [u8]> {
        let view = self
            .tensors
            .tensor(key)
            .map_err(|_| Error::ShardContent { path: self.path.into(), detail: format!("has no entry '{key}'") })?;
        let numel: usize = view.shape().iter().product();
        if view.dtype() != dtype || numel != len {
            return Err(Error::ShardContent {
                path: self.path.into(),
                detail: format!("entry '{key}' is {:?} x {numel}, the manifest expects {dtype:?} x {len}", view.dtype()),
            });
        }
        Ok(view.data())
    }
}
