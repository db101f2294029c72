//! Reading and writing NumPy `.npy` files (format versions 1.0-3.0).
//! Spec: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use anyhow::{bail, Context, Result};
use cairn_core::{DType, Tensor, TensorData};
use half::f16;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a `.npy` file. float64 is converted to f32 (NumPy's default float is
/// float64, Cairn computes in f32) and reported through `converted`.
pub fn read(path: &Path) -> Result<(Tensor, Option<&'static str>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{} is not a usable .npy file", path.display()))
}

pub fn parse(bytes: &[u8]) -> Result<(Tensor, Option<&'static str>)> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("missing the \\x93NUMPY magic (save arrays with numpy.save)");
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("unsupported .npy format version {v}"),
    };
    let data_start = header_start.checked_add(header_len).filter(|&e| e <= bytes.len()).context("truncated header")?;
    let header = std::str::from_utf8(&bytes[header_start..data_start]).context("header is not text")?;
    let descr = dict_value(header, "descr").context("header has no 'descr'")?;
    let quote = descr.chars().next().filter(|c| *c == '\'' || *c == '"').context("'descr' is not a string")?;
    let descr = descr[1..].split(quote).next().unwrap_or_default();
    if dict_value(header, "fortran_order").map(|v| v.starts_with("True")).unwrap_or(false) {
        bail!("Fortran-ordered arrays are not supported (use numpy.ascontiguousarray before saving)");
    }
    let shape_text = dict_value(header, "shape").context("header has no 'shape'")?;
    let shape = parse_shape(shape_text)?;
    let n = cairn_core::checked_numel(&shape)?;
    let data = &bytes[data_start..];
    let need = |size: usize| -> Result<&[u8]> {
        let len = n.checked_mul(size).context("array too large")?;
        if data.len() < len {
            bail!("truncated data: shape {:?} needs {} bytes, file has {}", shape, len, data.len());
        }
        Ok(&data[..len])
    };
    let mut converted = None;
    let tensor_data = match descr {
        "<f4" => TensorData::F32(need(4)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
        "<f8" => {
            converted = Some("float64 converted to float32");
            TensorData::F32(need(8)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect())
        }
        "<f2" => TensorData::F16(need(2)?.chunks_exact(2).map(|c| f16::from_le_bytes(c.try_into().unwrap())).collect()),
        "|i1" => TensorData::I8(need(1)?.iter().map(|&b| b as i8).collect()),
        "|u1" => TensorData::U8(need(1)?.to_vec()),
        "|b1" => TensorData::Bool(need(1)?.iter().map(|&b| (b != 0) as u8).collect()),
        "<i4" => TensorData::I32(need(4)?.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()),
        "<i8" => TensorData::I64(need(8)?.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
        other => bail!("unsupported dtype '{other}' (Cairn reads <f4, <f8, <f2, |i1, |u1, |b1, <i4, <i8)"),
    };
    Ok((Tensor::new(shape, tensor_data)?, converted))
}

/// The raw text of a key's value in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let inner = text.strip_prefix('(').and_then(|t| t.split_once(')')).map(|(s, _)| s).context("malformed shape")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().with_context(|| format!("bad dimension '{s}'")))
        .collect()
}

/// Writes a tensor as a version 1.0 `.npy` file.
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let descr = match t.dtype() {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F64 => "<f8",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::BF16 => bail!("{}: .npy has no bfloat16 type (cast the output to f32 first)", path.display()),
    };
    let shape = match t.shape() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts on a 64-byte boundary, ending the header with '\n'.
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + t.byte_len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match t.data() {
        TensorData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::F16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        TensorData::U8(v) | TensorData::Bool(v) => out.extend_from_slice(v),
        TensorData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        // Tensor bytes are little-endian, as `descr` says.
        _ => out.extend_from_slice(t.bytes()),
    }
    crate::fsutil::write_atomically(path, |f| f.write_all(&out).map_err(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        let dir = std::env::temp_dir().join(format!("cairn-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = vec![
            Tensor::from_f32(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]).unwrap(),
            Tensor::from_i64(vec![3], vec![-1, 0, i64::MAX]).unwrap(),
            Tensor::new(vec![], TensorData::I32(vec![42])).unwrap(),
            Tensor::new(vec![2], TensorData::Bool(vec![1, 0])).unwrap(),
            Tensor::new(vec![0, 4], TensorData::U8(vec![])).unwrap(),
        ];
        for (i, t) in cases.into_iter().enumerate() {
            let p = dir.join(format!("{i}.npy"));
            write(&p, &t).unwrap();
            let (back, converted) = read(&p).unwrap();
            assert_eq!(back, t);
            assert!(converted.is_none());
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bytes in [&b""[..], b"\x93NUMPY", b"\x93NUMPY\x01\x00\xff\xff{", b"PK\x03\x04 zip file"] {
            assert!(parse(bytes).is_err());
        }
        let mut ok = Vec::from(&b"\x93NUMPY\x01\x00"[..]);
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }\n";
        ok.extend_from_slice(&(h.len() as u16).to_le_bytes());
        ok.extend_from_slice(h.as_bytes());
        let err = parse(&ok).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
