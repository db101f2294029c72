//! Owned tensors and borrowed views of them.
//!
//! Owned [`Tensor`]s hold weights, graph inputs/outputs and folded constants.
//! Kernels never see them directly: they read [`TensorRef`]s and write
//! [`TensorMut`]s, which may point into the executor's shared arena.

use crate::{DType, Error, Result};
use half::{bf16, f16};

/// Typed storage of an owned tensor. `Bool` holds bytes that are 0 or 1.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<u8>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    /// A narrow dtype (float8, float4, 2/4-bit integers): one bit pattern per byte.
    Narrow(DType, Vec<u8>),
}

/// Borrowed typed slice, read-only.
#[derive(Clone, Copy, Debug)]
pub enum DataRef<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    I8(&'a [i8]),
    U8(&'a [u8]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    Bool(&'a [u8]),
    BF16(&'a [bf16]),
    F64(&'a [f64]),
    I16(&'a [i16]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    Narrow(DType, &'a [u8]),
}

/// Borrowed typed slice, writable.
#[derive(Debug)]
pub enum DataMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [f16]),
    I8(&'a mut [i8]),
    U8(&'a mut [u8]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    Bool(&'a mut [u8]),
    BF16(&'a mut [bf16]),
    F64(&'a mut [f64]),
    I16(&'a mut [i16]),
    U16(&'a mut [u16]),
    U32(&'a mut [u32]),
    U64(&'a mut [u64]),
    Narrow(DType, &'a mut [u8]),
}

/// Applies `$body` to the typed slice inside any of the data enums, binding it to `$v`.
/// Lets generic code (copies, gathers, transposes) be written once for every dtype.
#[macro_export]
macro_rules! dispatch_data {
    ($enum:ident, $value:expr, $v:ident => $body:expr) => {
        match $value {
            $enum::F32($v) => $body,
            $enum::F16($v) => $body,
            $enum::I8($v) => $body,
            $enum::U8($v) => $body,
            $enum::I32($v) => $body,
            $enum::I64($v) => $body,
            $enum::Bool($v) => $body,
            $enum::BF16($v) => $body,
            $enum::F64($v) => $body,
            $enum::I16($v) => $body,
            $enum::U16($v) => $body,
            $enum::U32($v) => $body,
            $enum::U64($v) => $body,
            $enum::Narrow(_, $v) => $body,
        }
    };
}

/// Runs `$body` with `$s`/`$d` bound to the typed source and destination slices when
/// both have the same dtype; evaluates to `Ok(())`, or to a dtype error otherwise.
/// One place for the per-dtype match every data-movement kernel needs.
#[macro_export]
macro_rules! with_same_dtype {
    ($src:expr, $dst:expr, |$s:ident, $d:ident| $body:expr) => {
        match ($src, $dst) {
            ($crate::DataRef::F32($s), $crate::DataMut::F32($d)) => Ok($body),
            ($crate::DataRef::F16($s), $crate::DataMut::F16($d)) => Ok($body),
            ($crate::DataRef::I8($s), $crate::DataMut::I8($d)) => Ok($body),
            ($crate::DataRef::U8($s), $crate::DataMut::U8($d)) => Ok($body),
            ($crate::DataRef::I32($s), $crate::DataMut::I32($d)) => Ok($body),
            ($crate::DataRef::I64($s), $crate::DataMut::I64($d)) => Ok($body),
            ($crate::DataRef::Bool($s), $crate::DataMut::Bool($d)) => Ok($body),
            ($crate::DataRef::BF16($s), $crate::DataMut::BF16($d)) => Ok($body),
            ($crate::DataRef::F64($s), $crate::DataMut::F64($d)) => Ok($body),
            ($crate::DataRef::I16($s), $crate::DataMut::I16($d)) => Ok($body),
            ($crate::DataRef::U16($s), $crate::DataMut::U16($d)) => Ok($body),
            ($crate::DataRef::U32($s), $crate::DataMut::U32($d)) => Ok($body),
            ($crate::DataRef::U64($s), $crate::DataMut::U64($d)) => Ok($body),
            ($crate::DataRef::Narrow(a, $s), $crate::DataMut::Narrow(b, $d)) if $crate::DType::eq(&a, &b) => Ok($body),
            (s, d) => Err($crate::Error::DType { expected: d.dtype(), got: s.dtype(), context: "copy between tensors".into() }),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::BF16(_) => DType::BF16,
            TensorData::F64(_) => DType::F64,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::Narrow(d, _) => *d,
        }
    }

    pub fn len(&self) -> usize {
        dispatch_data!(TensorData, self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Zero-filled storage of `len` elements.
    pub fn zeros(dtype: DType, len: usize) -> TensorData {
        match dtype {
            DType::F32 => TensorData::F32(vec![0.0; len]),
            DType::F16 => TensorData::F16(vec![f16::ZERO; len]),
            DType::I8 => TensorData::I8(vec![0; len]),
            DType::U8 => TensorData::U8(vec![0; len]),
            DType::I32 => TensorData::I32(vec![0; len]),
            DType::I64 => TensorData::I64(vec![0; len]),
            DType::Bool => TensorData::Bool(vec![0; len]),
            DType::BF16 => TensorData::BF16(vec![bf16::ZERO; len]),
            DType::F64 => TensorData::F64(vec![0.0; len]),
            DType::I16 => TensorData::I16(vec![0; len]),
            DType::U16 => TensorData::U16(vec![0; len]),
            DType::U32 => TensorData::U32(vec![0; len]),
            DType::U64 => TensorData::U64(vec![0; len]),
            narrow => TensorData::Narrow(narrow, vec![0; len]),
        }
    }

    pub fn as_ref(&self) -> DataRef<'_> {
        match self {
            TensorData::F32(v) => DataRef::F32(v),
            TensorData::F16(v) => DataRef::F16(v),
            TensorData::I8(v) => DataRef::I8(v),
            TensorData::U8(v) => DataRef::U8(v),
            TensorData::I32(v) => DataRef::I32(v),
            TensorData::I64(v) => DataRef::I64(v),
            TensorData::Bool(v) => DataRef::Bool(v),
            TensorData::BF16(v) => DataRef::BF16(v),
            TensorData::F64(v) => DataRef::F64(v),
            TensorData::I16(v) => DataRef::I16(v),
            TensorData::U16(v) => DataRef::U16(v),
            TensorData::U32(v) => DataRef::U32(v),
            TensorData::U64(v) => DataRef::U64(v),
            TensorData::Narrow(d, v) => DataRef::Narrow(*d, v),
        }
    }

    pub fn as_mut(&mut self) -> DataMut<'_> {
        match self {
            TensorData::F32(v) => DataMut::F32(v),
            TensorData::F16(v) => DataMut::F16(v),
            TensorData::I8(v) => DataMut::I8(v),
            TensorData::U8(v) => DataMut::U8(v),
            TensorData::I32(v) => DataMut::I32(v),
            TensorData::I64(v) => DataMut::I64(v),
            TensorData::Bool(v) => DataMut::Bool(v),
            TensorData::BF16(v) => DataMut::BF16(v),
            TensorData::F64(v) => DataMut::F64(v),
            TensorData::I16(v) => DataMut::I16(v),
            TensorData::U16(v) => DataMut::U16(v),
            TensorData::U32(v) => DataMut::U32(v),
            TensorData::U64(v) => DataMut::U64(v),
            TensorData::Narrow(d, v) => DataMut::Narrow(*d, v),
        }
    }
}

impl DataRef<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            DataRef::F32(_) => DType::F32,
            DataRef::F16(_) => DType::F16,
            DataRef::I8(_) => DType::I8,
            DataRef::U8(_) => DType::U8,
            DataRef::I32(_) => DType::I32,
            DataRef::I64(_) => DType::I64,
            DataRef::Bool(_) => DType::Bool,
            DataRef::BF16(_) => DType::BF16,
            DataRef::F64(_) => DType::F64,
            DataRef::I16(_) => DType::I16,
            DataRef::U16(_) => DType::U16,
            DataRef::U32(_) => DType::U32,
            DataRef::U64(_) => DType::U64,
            DataRef::Narrow(d, _) => *d,
        }
    }

    pub fn len(&self) -> usize {
        dispatch_data!(DataRef, self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_owned(&self) -> TensorData {
        match *self {
            DataRef::F32(v) => TensorData::F32(v.to_vec()),
            DataRef::F16(v) => TensorData::F16(v.to_vec()),
            DataRef::I8(v) => TensorData::I8(v.to_vec()),
            DataRef::U8(v) => TensorData::U8(v.to_vec()),
            DataRef::I32(v) => TensorData::I32(v.to_vec()),
            DataRef::I64(v) => TensorData::I64(v.to_vec()),
            DataRef::Bool(v) => TensorData::Bool(v.to_vec()),
            DataRef::BF16(v) => TensorData::BF16(v.to_vec()),
            DataRef::F64(v) => TensorData::F64(v.to_vec()),
            DataRef::I16(v) => TensorData::I16(v.to_vec()),
            DataRef::U16(v) => TensorData::U16(v.to_vec()),
            DataRef::U32(v) => TensorData::U32(v.to_vec()),
            DataRef::U64(v) => TensorData::U64(v.to_vec()),
            DataRef::Narrow(d, v) => TensorData::Narrow(d, v.to_vec()),
        }
    }
}

impl DataMut<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            DataMut::F32(_) => DType::F32,
            DataMut::F16(_) => DType::F16,
            DataMut::I8(_) => DType::I8,
            DataMut::U8(_) => DType::U8,
            DataMut::I32(_) => DType::I32,
            DataMut::I64(_) => DType::I64,
            DataMut::Bool(_) => DType::Bool,
            DataMut::BF16(_) => DType::BF16,
            DataMut::F64(_) => DType::F64,
            DataMut::I16(_) => DType::I16,
            DataMut::U16(_) => DType::U16,
            DataMut::U32(_) => DType::U32,
            DataMut::U64(_) => DType::U64,
            DataMut::Narrow(d, _) => *d,
        }
    }

    pub fn len(&self) -> usize {
        dispatch_data!(DataMut, self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An owned copy of the elements.
    pub fn to_owned(&self) -> TensorData {
        match self {
            DataMut::F32(v) => TensorData::F32(v.to_vec()),
            DataMut::F16(v) => TensorData::F16(v.to_vec()),
            DataMut::I8(v) => TensorData::I8(v.to_vec()),
            DataMut::U8(v) => TensorData::U8(v.to_vec()),
            DataMut::I32(v) => TensorData::I32(v.to_vec()),
            DataMut::I64(v) => TensorData::I64(v.to_vec()),
            DataMut::Bool(v) => TensorData::Bool(v.to_vec()),
            DataMut::BF16(v) => TensorData::BF16(v.to_vec()),
            DataMut::F64(v) => TensorData::F64(v.to_vec()),
            DataMut::I16(v) => TensorData::I16(v.to_vec()),
            DataMut::U16(v) => TensorData::U16(v.to_vec()),
            DataMut::U32(v) => TensorData::U32(v.to_vec()),
            DataMut::U64(v) => TensorData::U64(v.to_vec()),
            DataMut::Narrow(d, v) => TensorData::Narrow(*d, v.to_vec()),
        }
    }

    /// Copies `src` in; dtypes and lengths must match.
    pub fn copy_from(&mut self, src: DataRef<'_>) -> Result<()> {
        if self.len() != src.len() {
            return Err(Error::Input(format!("cannot copy {} x {} into {} x {}", src.len(), src.dtype(), self.len(), self.dtype())));
        }
        crate::with_same_dtype!(src, self, |s, d| d.copy_from_slice(s))
    }
}

/// A read-only view: a shape and a typed slice of exactly `shape.product()` elements.
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a> {
    pub shape: &'a [usize],
    pub data: DataRef<'a>,
}

/// A writable view with the same invariant as [`TensorRef`].
#[derive(Debug)]
pub struct TensorMut<'a> {
    pub shape: &'a [usize],
    pub data: DataMut<'a>,
}

macro_rules! typed_accessors {
    ($($get:ident, $get_mut:ident, $variant:ident, $t:ty);* $(;)?) => {
        impl<'a> TensorRef<'a> {
            $(
            /// The data as this type, or a dtype error naming `context`.
            pub fn $get(&self) -> Result<&'a [$t]> {
                match self.data {
                    DataRef::$variant(v) => Ok(v),
                    other => Err(Error::DType { expected: DType::$variant, got: other.dtype(), context: String::new() }),
                }
            }
            )*
        }
        impl<'a> TensorMut<'a> {
            $(
            pub fn $get_mut(&mut self) -> Result<&mut [$t]> {
                match &mut self.data {
                    DataMut::$variant(v) => Ok(v),
                    other => Err(Error::DType { expected: DType::$variant, got: other.dtype(), context: String::new() }),
                }
            }
            )*
        }
        impl Tensor {
            $(
            pub fn $get(&self) -> Result<&[$t]> {
                match &self.data {
                    TensorData::$variant(v) => Ok(v),
                    other => Err(Error::DType { expected: DType::$variant, got: other.dtype(), context: String::new() }),
                }
            }
            )*
        }
    };
}

typed_accessors! {
    f32s, f32s_mut, F32, f32;
    f16s, f16s_mut, F16, f16;
    i8s, i8s_mut, I8, i8;
    u8s, u8s_mut, U8, u8;
    i32s, i32s_mut, I32, i32;
    i64s, i64s_mut, I64, i64;
    bools, bools_mut, Bool, u8;
    bf16s, bf16s_mut, BF16, bf16;
    f64s, f64s_mut, F64, f64;
    i16s, i16s_mut, I16, i16;
    u16s, u16s_mut, U16, u16;
    u32s, u32s_mut, U32, u32;
    u64s, u64s_mut, U64, u64;
}

impl TensorRef<'_> {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn to_tensor(&self) -> Tensor {
        Tensor { shape: self.shape.to_vec(), data: self.data.to_owned() }
    }

    /// Reads an integer tensor (i32 or i64) as i64s; used for shape-like inputs.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        match self.data {
            DataRef::I64(v) => Ok(v.to_vec()),
            DataRef::I32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            other => Err(Error::DType { expected: DType::I64, got: other.dtype(), context: "integer tensor".into() }),
        }
    }

    /// Reads a numeric tensor as f64s: exact for every dtype but the widest integers
    /// (|x| > 2^53), which kernels working in f64 accept as onnx's reference does.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self.data {
            DataRef::F64(v) => v.to_vec(),
            DataRef::I64(v) => v.iter().map(|&x| x as f64).collect(),
            DataRef::U64(v) => v.iter().map(|&x| x as f64).collect(),
            DataRef::Narrow(d, v) => v.iter().map(|&x| crate::narrow::decode(d, x)).collect(),
            DataRef::I32(v) => v.iter().map(|&x| x as f64).collect(),
            DataRef::U32(v) => v.iter().map(|&x| x as f64).collect(),
            _ => self.to_f32_vec().into_iter().map(f64::from).collect(),
        }
    }

    /// Reads a numeric tensor as f32s (for scalars like Clip bounds or Pad values).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.data {
            DataRef::F32(v) => v.to_vec(),
            DataRef::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            DataRef::I8(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::U8(v) | DataRef::Bool(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::I32(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::I64(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            DataRef::F64(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::I16(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::U16(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::U32(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::U64(v) => v.iter().map(|&x| x as f32).collect(),
            DataRef::Narrow(d, v) => v.iter().map(|&x| crate::narrow::decode(d, x) as f32).collect(),
        }
    }
}

impl TensorMut<'_> {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// An owned tensor: a shape and matching typed data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

/// Numeric tensors never hold strings: those are [`crate::StringTensor`]s (docs/adr/0031).
fn no_strings(dtype: DType) -> Result<()> {
    if dtype == DType::Str {
        return Err(Error::Input(
            "a string tensor cannot be a numeric Tensor: string tensors are StringTensor values (Value::Strings)".into(),
        ));
    }
    Ok(())
}

impl Tensor {
    /// Builds a tensor, checking that the data length equals the product of the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor> {
        no_strings(data.dtype())?;
        let expected = checked_numel(&shape)?;
        if expected != data.len() {
            return Err(Error::Input(format!("tensor of shape {:?} needs {} elements, got {}", shape, expected, data.len())));
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Tensor> {
        no_strings(dtype)?;
        let n = checked_numel(&shape)?;
        Ok(Tensor { data: TensorData::zeros(dtype, n), shape })
    }

    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::F32(data))
    }

    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::I64(data))
    }

    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor { shape: vec![], data: TensorData::F32(vec![v]) }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn data(&self) -> &TensorData {
        &self.data
    }
    pub fn into_data(self) -> TensorData {
        self.data
    }
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// The elements' bytes, little-endian (the layout of safetensors, ONNX raw data and wasm memory).
    pub fn bytes(&self) -> &[u8] {
        dispatch_data!(TensorData, &self.data, v => bytemuck::cast_slice(v.as_slice()))
    }

    /// The elements' bytes, writable (loaders fill weights in place with this).
    /// `Bool` tensors may be given only 0 or 1 bytes: callers validate.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        dispatch_data!(TensorData, &mut self.data, v => bytemuck::cast_slice_mut(v.as_mut_slice()))
    }

    pub fn view(&self) -> TensorRef<'_> {
        TensorRef { shape: &self.shape, data: self.data.as_ref() }
    }

    /// A writable view; the shape stays fixed.
    pub fn view_mut(&mut self) -> TensorMut<'_> {
        TensorMut { shape: &self.shape, data: self.data.as_mut() }
    }

    /// The same values in another dtype, converted as ONNX's `Cast` does.
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        let mut out = Tensor::zeros(dtype, self.shape.clone())?;
        crate::ops::convert(self.data.as_ref(), &mut out.data.as_mut())?;
        Ok(out)
    }

    /// Same data, new shape of equal element count.
    pub fn reshaped(mut self, shape: Vec<usize>) -> Result<Tensor> {
        if checked_numel(&shape)? != self.len() {
            return Err(Error::Input(format!("cannot reshape {:?} to {:?}", self.shape, shape)));
        }
        self.shape = shape;
        Ok(self)
    }
}

/// Product of dims, or an error if it overflows (hostile shapes must not wrap around).
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| Error::TooLarge(format!("shape {:?} overflows", shape)))
}
