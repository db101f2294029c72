//! Seeded random inputs (`run --random`, synthetic inputs for `pack`'s fidelity check).

use anyhow::Result;
use cairn_core::{DType, Tensor, TensorData};

/// xorshift64*: fast, seedable, good enough for test inputs.
pub struct XorShift(u64);

impl XorShift {
    pub fn seeded(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

pub fn random_tensor(dtype: DType, shape: Vec<usize>, rng: &mut XorShift) -> Result<Tensor> {
    if dtype == DType::Str {
        anyhow::bail!("the model takes a string tensor, which `cairn run` does not feed (it reads numeric .npy files and draws numbers)");
    }
    let n = cairn_core::checked_numel(&shape)?;
    let data = match dtype {
        DType::F32 => TensorData::F32((0..n).map(|_| rng.unit()).collect()),
        DType::F16 => TensorData::F16((0..n).map(|_| half::f16::from_f32(rng.unit())).collect()),
        DType::I8 => TensorData::I8((0..n).map(|_| (rng.next() % 10) as i8).collect()),
        DType::U8 => TensorData::U8((0..n).map(|_| (rng.next() % 10) as u8).collect()),
        DType::I32 => TensorData::I32((0..n).map(|_| (rng.next() % 10) as i32).collect()),
        DType::I64 => TensorData::I64((0..n).map(|_| (rng.next() % 10) as i64).collect()),
        DType::Bool => TensorData::Bool((0..n).map(|_| (rng.next() & 1) as u8).collect()),
        // The wider and rarer dtypes: the same values, drawn as f32 or i64 and converted.
        other => {
            let wide = if other.is_float() { DType::F32 } else { DType::I64 };
            return Ok(random_tensor(wide, shape, rng)?.cast(other)?);
        }
    };
    Ok(Tensor::new(shape, data)?)
}

/// What `run --random` puts in one input, chosen from its name and from what reads it,
/// so that a BERT-style model runs as it would on real text: token ids index their
/// embedding table, attention masks are all ones, token type ids are zeros.
#[derive(Clone, Debug, PartialEq)]
pub enum RandomFill {
    /// Floats uniform in [0, 1), integers in [0, 10), booleans at random.
    Uniform,
    /// Integers uniform in [0, rows): the input indexes a table of `rows` rows.
    IdsBelow {
        rows: usize,
        table: String,
    },
    Ones,
    Zeros,
}

impl RandomFill {
    /// For a message: what was chosen and why.
    pub fn describe(&self, dtype: DType) -> String {
        match self {
            RandomFill::Uniform if dtype.is_float() => "uniform in [0, 1)".into(),
            RandomFill::Uniform if dtype == DType::Bool => "random booleans".into(),
            RandomFill::Uniform => "integers in [0, 10)".into(),
            RandomFill::IdsBelow { rows, table } => format!("ids in [0, {rows}) (rows of '{table}', which a Gather reads them from)"),
            RandomFill::Ones => "all ones (a mask, by its name)".into(),
            RandomFill::Zeros => "all zeros (token type / segment ids, by their name)".into(),
        }
    }

    pub fn tensor(&self, dtype: DType, shape: Vec<usize>, rng: &mut XorShift) -> Result<Tensor> {
        match self {
            RandomFill::Uniform => random_tensor(dtype, shape, rng),
            RandomFill::Ones => constant_tensor(dtype, shape, 1),
            RandomFill::Zeros => constant_tensor(dtype, shape, 0),
            RandomFill::IdsBelow { rows, .. } => {
                let n = cairn_core::checked_numel(&shape)?;
                let rows = (*rows).max(1) as u64;
                let ids: Vec<i64> = (0..n).map(|_| (rng.next() % rows) as i64).collect();
                let data = match dtype {
                    DType::I64 => TensorData::I64(ids),
                    DType::I32 => TensorData::I32(ids.into_iter().map(|v| v as i32).collect()),
                    _ => return random_tensor(dtype, shape, rng),
                };
                Ok(Tensor::new(shape, data)?)
            }
        }
    }
}

fn constant_tensor(dtype: DType, shape: Vec<usize>, v: u8) -> Result<Tensor> {
    let n = cairn_core::checked_numel(&shape)?;
    let data = match dtype {
        DType::F32 => TensorData::F32(vec![f32::from(v); n]),
        DType::F16 => TensorData::F16(vec![half::f16::from_f32(f32::from(v)); n]),
        DType::I8 => TensorData::I8(vec![v as i8; n]),
        DType::U8 => TensorData::U8(vec![v; n]),
        DType::I32 => TensorData::I32(vec![i32::from(v); n]),
        DType::I64 => TensorData::I64(vec![i64::from(v); n]),
        DType::Bool => TensorData::Bool(vec![v; n]),
        other => return Ok(constant_tensor(DType::I64, shape, v)?.cast(other)?),
    };
    Ok(Tensor::new(shape, data)?)
}

/// Ops that pass index values through unchanged, so a Gather behind them still reads the input's ids.
const ID_PRESERVING: &[&str] = &["Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"];

/// Chooses how to fill `input` for `--random`. Floats stay uniform; for integer and
/// boolean inputs, a mask-like name means ones, a token type / segment name means zeros,
/// and an input that (through Cast/Reshape-like ops) indexes a Gather over a constant
/// table gets ids within that table.
pub fn choose_fill(graph: &cairn_core::Graph, input: &cairn_core::ValueInfo) -> RandomFill {
    if input.dtype.is_float() {
        return RandomFill::Uniform;
    }
    let name = input.name.to_ascii_lowercase();
    if name.contains("mask") {
        return RandomFill::Ones;
    }
    if name.contains("token_type") || name.contains("segment") {
        return RandomFill::Zeros;
    }
    table_indexed_by(graph, &input.name).map_or(RandomFill::Uniform, |(rows, table)| RandomFill::IdsBelow { rows, table })
}

/// The row count and name of the smallest constant table that a Gather reads `value` from,
/// following `value` through [`ID_PRESERVING`] ops (breadth-first, each value once).
fn table_indexed_by(graph: &cairn_core::Graph, value: &str) -> Option<(usize, String)> {
    let mut frontier = vec![value.to_string()];
    let mut seen = std::collections::HashSet::new();
    let mut best: Option<(usize, String)> = None;
    while let Some(v) = frontier.pop() {
        if !seen.insert(v.clone()) {
            continue;
        }
        for node in graph.nodes.iter().filter(|n| n.inputs.iter().any(|i| i.as_deref() == Some(v.as_str()))) {
            let is_default = node.domain.is_empty() || node.domain == "ai.onnx";
            if is_default && node.op_type == "Gather" && node.inputs.get(1).and_then(|i| i.as_deref()) == Some(v.as_str()) {
                let table = node.inputs.first().and_then(|i| i.as_deref()).unwrap_or_default();
                if let Some(t) = graph.initializers.get(table) {
                    let axis = match node.attrs.get("axis") {
                        Some(cairn_core::Attr::Int(a)) => *a,
                        _ => 0,
                    };
                    let rank = t.rank() as i64;
                    let axis = if axis < 0 { axis + rank } else { axis };
                    if let Some(&rows) = usize::try_from(axis).ok().and_then(|a| t.shape().get(a)) {
                        if best.as_ref().is_none_or(|(r, _)| rows < *r) {
                            best = Some((rows, table.to_string()));
                        }
                    }
                }
            } else if is_default && ID_PRESERVING.contains(&node.op_type.as_str()) {
                frontier.extend(node.outputs.iter().filter(|o| !o.is_empty()).cloned());
            }
        }
    }
    best
}
