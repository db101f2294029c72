//! Values that flow through the eager interpreter: tensors, and the ONNX sequence and
//! optional types the planned arena cannot hold (their length or presence changes per run).
//! See docs/adr/0010-control-flow-and-dynamic-shapes.md.

use crate::{DType, Error, Result, StringTensor, Tensor};
use std::sync::Arc;

/// An ordered list of tensors of one element type (ONNX `seq(tensor(T))`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// The element type, known even when the sequence is empty (`SequenceEmpty(dtype)`).
    pub elem: DType,
    pub items: Vec<Arc<Tensor>>,
}

impl Sequence {
    pub fn new(elem: DType, items: Vec<Arc<Tensor>>) -> Result<Sequence> {
        if let Some(t) = items.iter().find(|t| t.dtype() != elem) {
            return Err(Error::DType { expected: elem, got: t.dtype(), context: "every tensor of a sequence has one dtype".into() });
        }
        Ok(Sequence { elem, items })
    }

    /// Resolves an ONNX position (negative counts from the end) against `len` valid slots.
    pub fn position(&self, op: &str, pos: i64, len: usize) -> Result<usize> {
        let n = len as i64;
        let p = if pos < 0 { pos + n } else { pos };
        if !(0..n).contains(&p) {
            return Err(Error::shape(
                op,
                format!("position {pos} is out of range for a sequence of {} tensors (valid: {} to {})", self.items.len(), -n, n - 1),
            ));
        }
        Ok(p as usize)
    }
}

/// One value of the eager interpreter.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Tensor(Arc<Tensor>),
    Sequence(Sequence),
    /// An ONNX optional: `None` is the empty optional.
    Optional(Option<Box<Value>>),
    /// A tensor of strings (docs/adr/0031-string-tensors.md).
    Strings(Arc<StringTensor>),
}

impl Value {
    pub fn tensor(t: Tensor) -> Value {
        Value::Tensor(Arc::new(t))
    }

    /// "tensor", "sequence" or "optional", for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Tensor(_) => "tensor",
            Value::Sequence(_) => "sequence",
            Value::Optional(_) => "optional",
            Value::Strings(_) => "string tensor",
        }
    }

    /// The tensor inside, or an error naming what `op` got instead.
    pub fn as_tensor(&self, op: &str) -> Result<&Arc<Tensor>> {
        match self {
            Value::Tensor(t) => Ok(t),
            other => Err(Error::shape(op, format!("expected a tensor, got {}", other.describe()))),
        }
    }

    pub fn as_sequence(&self, op: &str) -> Result<&Sequence> {
        match self {
            Value::Sequence(s) => Ok(s),
            other => Err(Error::shape(op, format!("expected a sequence, got {}", other.describe()))),
        }
    }

    /// Bytes held (what the eager interpreter counts against the memory limit).
    pub fn byte_len(&self) -> usize {
        match self {
            Value::Tensor(t) => t.byte_len(),
            Value::Sequence(s) => s.items.iter().map(|t| t.byte_len()).sum(),
            Value::Optional(v) => v.as_ref().map_or(0, |v| v.byte_len()),
            Value::Strings(s) => s.byte_len(),
        }
    }

    /// A short description such as "tensor f32 [2, 3]" or "sequence of 4 f32 tensors".
    pub fn describe(&self) -> String {
        match self {
            Value::Tensor(t) => format!("tensor {} {:?}", t.dtype(), t.shape()),
            Value::Sequence(s) => format!("sequence of {} {} tensors", s.items.len(), s.elem),
            Value::Optional(None) => "empty optional".into(),
            Value::Optional(Some(v)) => format!("optional holding {}", v.describe()),
            Value::Strings(s) => format!("string tensor {:?}", s.shape()),
        }
    }
}
