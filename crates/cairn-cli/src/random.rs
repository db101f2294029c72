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
