//! TFLite's sparse tensor format (`SparsityParameters`, the input of DENSIFY), expanded to a
//! dense tensor at import. Dimensions are visited in `traversal_order`; each is DENSE (all
//! `dense_size` positions) or SPARSE_CSR (the positions `array_indices[segments[p]..segments[p+1]]`
//! under parent position `p`); dimensions past the tensor's rank are the inner dimensions of
//! blocks of the dims `block_map` names. Stored values are consumed in traversal order.
//! Every index is checked against the dense shape and every segment against its arrays.

use crate::schema_generated::tflite;
use cairn_core::{DType, Tensor};

enum Dim {
    Dense(usize),
    Csr { segments: Vec<usize>, indices: Vec<usize> },
}

/// A segments or indices array of any of the three integer widths the schema allows.
fn index_vector(m: &tflite::DimensionMetadata, segments: bool) -> Option<Vec<usize>> {
    let widen = |v: flatbuffers::Vector<i32>| v.iter().map(|x| usize::try_from(x).ok()).collect::<Option<Vec<_>>>();
    if segments {
        if let Some(v) = m.array_segments_as_int_32_vector() {
            return widen(v.values()?);
        }
        if let Some(v) = m.array_segments_as_uint_16_vector() {
            return Some(v.values()?.iter().map(usize::from).collect());
        }
        return m.array_segments_as_uint_8_vector().and_then(|v| v.values()).map(|v| v.iter().map(usize::from).collect());
    }
    if let Some(v) = m.array_indices_as_int_32_vector() {
        return widen(v.values()?);
    }
    if let Some(v) = m.array_indices_as_uint_16_vector() {
        return Some(v.values()?.iter().map(usize::from).collect());
    }
    m.array_indices_as_uint_8_vector().and_then(|v| v.values()).map(|v| v.iter().map(usize::from).collect())
}

/// The dense tensor of `shape` that the sparse `values` (little-endian `dtype` bytes) describe.
pub(crate) fn densify(p: &tflite::SparsityParameters, values: &[u8], dtype: DType, shape: &[usize]) -> Result<Tensor, String> {
    let order: Vec<usize> = p
        .traversal_order()
        .ok_or("no traversal order")?
        .iter()
        .map(|v| usize::try_from(v).map_err(|_| "negative traversal index"))
        .collect::<Result<_, _>>()?;
    let block_map: Vec<usize> = p
        .block_map()
        .map(|b| b.iter().map(|v| usize::try_from(v).ok()).collect::<Option<_>>())
        .unwrap_or(Some(vec![]))
        .ok_or("negative block dimension")?;
    let meta = p.dim_metadata().ok_or("no dimension metadata")?;
    let rank = shape.len();
    let n = rank + block_map.len();
    if order.len() != n || meta.len() != n || block_map.iter().any(|&d| d >= rank) {
        return Err(format!(
            "traversal order {order:?}, block map {block_map:?} and {} dimension records do not fit rank {rank}",
            meta.len()
        ));
    }
    let mut seen = vec![false; n];
    for &d in &order {
        if d >= n || std::mem::replace(&mut seen[d], true) {
            return Err(format!("traversal order {order:?} is not a permutation"));
        }
    }
    let mut dims = Vec::with_capacity(n);
    for m in meta.iter() {
        dims.push(match m.format() {
            tflite::DimensionType::DENSE => Dim::Dense(usize::try_from(m.dense_size()).map_err(|_| "negative dense size")?),
            tflite::DimensionType::SPARSE_CSR => Dim::Csr {
                segments: index_vector(&m, true).ok_or("missing or negative segments")?,
                indices: index_vector(&m, false).ok_or("missing or negative indices")?,
            },
            _ => return Err("unknown dimension format".into()),
        });
    }
    // Sizes of the expanded dims: block-grid dims, then block-inner dims.
    let block_size: Vec<usize> = (0..block_map.len())
        .map(|k| match dims[order.iter().position(|&d| d == rank + k).expect("a permutation")] {
            Dim::Dense(s) if s > 0 => Ok(s),
            _ => Err("block dimensions must be dense and non-empty"),
        })
        .collect::<Result<_, _>>()?;
    let mut extent: Vec<usize> = shape.to_vec();
    for (k, &d) in block_map.iter().enumerate() {
        if !shape[d].is_multiple_of(block_size[k]) {
            return Err(format!("block size {} does not divide dimension {d} ({})", block_size[k], shape[d]));
        }
        extent[d] = shape[d] / block_size[k];
        extent.push(block_size[k]);
    }
    let size = dtype.size();
    if !values.len().is_multiple_of(size) {
        return Err(format!("{} bytes of values are not whole {dtype} elements", values.len()));
    }
    let numel: usize = shape.iter().product();
    let mut dense = vec![0u8; numel * size];
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let mut next_value = 0usize;
    let mut idx = vec![0usize; n];
    // Iterative depth-first walk: (level, parent position, next child).
    let mut stack: Vec<(usize, usize, usize)> = vec![(0, 0, 0)];
    while let Some(&mut (level, parent, ref mut child)) = stack.last_mut() {
        if level == n {
            let mut off = 0;
            for d in 0..rank {
                let k = block_map.iter().position(|&b| b == d);
                let i = match k {
                    Some(k) => idx[d] * block_size[k] + idx[rank + k],
                    None => idx[d],
                };
                off += i * strides[d];
            }
            let src =
                values.get(next_value * size..(next_value + 1) * size).ok_or("fewer stored values than the sparse structure names")?;
            dense[off * size..(off + 1) * size].copy_from_slice(src);
            next_value += 1;
            stack.pop();
            continue;
        }
        let d = order[level];
        let (range_end, pos, index) = match &dims[level] {
            Dim::Dense(s) => {
                if *s != extent[d] {
                    return Err(format!("dense size {s} of dimension {d} is not {}", extent[d]));
                }
                (*s, parent * s + *child, *child)
            }
            Dim::Csr { segments, indices } => {
                let (lo, hi) = (segments.get(parent).copied(), segments.get(parent + 1).copied());
                let (Some(lo), Some(hi)) = (lo, hi) else { return Err(format!("segment {parent} is out of range")) };
                if lo > hi || hi > indices.len() {
                    return Err(format!("segment {lo}..{hi} is outside {} indices", indices.len()));
                }
                let p = lo + *child;
                (hi - lo, p, indices.get(p).copied().unwrap_or(usize::MAX))
            }
        };
        if *child >= range_end {
            stack.pop();
            continue;
        }
        if index >= extent[d] {
            return Err(format!("index {index} is outside dimension {d} of size {}", extent[d]));
        }
        *child += 1;
        idx[d] = index;
        stack.push((level + 1, pos, 0));
    }
    if next_value * size != values.len() {
        return Err(format!("{} stored values, the sparse structure names {next_value}", values.len() / size));
    }
    Tensor::new(shape.to_vec(), crate::reader::tensor_data(&dense, dtype)).map_err(|e| e.to_string())
}
