//! String tensors (ONNX `tensor(string)`), held apart from numeric tensors.
//!
//! Numeric tensors live in typed buffers the planner lays out in one arena; strings have
//! per-element lengths and heap storage, so they cannot. A string tensor is a shape and a
//! `Vec<String>` (UTF-8, checked at import), carried by [`crate::Value::Strings`], and a
//! graph that holds one runs on the eager interpreter. Data-movement ops (Reshape, Gather,
//! Concat, ...) and Equal run unchanged on strings through [`eval_interned`]: each string is
//! replaced by its rank in the sorted set of the node's input strings, the op runs on those
//! i64 ids, and ids are mapped back. See docs/adr/0031-string-tensors.md.

use crate::eager::EvalContext;
use crate::{checked_numel, DType, Error, Op, Result, Tensor, TensorData, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A tensor of UTF-8 strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringTensor {
    shape: Vec<usize>,
    data: Vec<String>,
}

impl StringTensor {
    /// Checks that `data` holds exactly the elements `shape` calls for.
    pub fn new(shape: Vec<usize>, data: Vec<String>) -> Result<StringTensor> {
        let n = checked_numel(&shape)?;
        if n != data.len() {
            return Err(Error::Input(format!("string tensor of shape {shape:?} needs {n} strings, got {}", data.len())));
        }
        Ok(StringTensor { shape, data })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[String] {
        &self.data
    }

    pub fn into_data(self) -> Vec<String> {
        self.data
    }

    /// Bytes held: the text plus one `String` header per element.
    pub fn byte_len(&self) -> usize {
        self.data.iter().map(|s| s.len() + std::mem::size_of::<String>()).sum()
    }
}

/// Ops that only move, select or compare elements, so that they give the same answer on
/// order-preserving ids as on the strings: for each, which outputs hold elements of the
/// string inputs (the others, such as Equal's or Shape's, are not strings).
fn string_outputs(op: &str, n_outputs: usize) -> Option<Vec<bool>> {
    let all = vec![true; n_outputs];
    Some(match op {
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Transpose" | "Concat" | "Split" | "Slice" | "Gather"
        | "GatherElements" | "GatherND" | "Expand" | "Tile" | "Where" | "Compress" | "ScatterElements" | "ScatterND"
        | "ReverseSequence" | "Pad" => all,
        "Unique" => (0..n_outputs).map(|i| i == 0).collect(),
        "Equal" | "Shape" | "Size" => vec![false; n_outputs],
        _ => return None,
    })
}

/// Runs `op` on inputs some of which are string tensors (see the module doc). Ops outside
/// the list get an error naming them.
pub fn eval_interned(op: &dyn Op, inputs: &[Option<Value>], n_outputs: usize, cx: &EvalContext) -> Result<Vec<Value>> {
    let name = op.op_type();
    let Some(string_out) = string_outputs(name, n_outputs) else {
        return Err(Error::shape(
            name,
            "Cairn runs string tensors through the string operators, Cast, Equal and data-movement operators only (docs/adr/0031); this one takes numbers",
        ));
    };
    let table: Vec<&str> = inputs
        .iter()
        .flatten()
        .filter_map(|v| match v {
            Value::Strings(s) => Some(s.data().iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .collect();
    let ids: Vec<Option<Value>> = inputs
        .iter()
        .map(|v| match v {
            Some(Value::Strings(s)) => {
                let ids = s.data().iter().map(|x| table.binary_search(&x.as_str()).expect("in the table") as i64).collect();
                Ok(Some(Value::tensor(Tensor::new(s.shape().to_vec(), TensorData::I64(ids))?)))
            }
            other => Ok(other.clone()),
        })
        .collect::<Result<_>>()?;
    let outputs = op.eval(&ids, cx)?;
    outputs
        .into_iter()
        .zip(string_out.into_iter().chain(std::iter::repeat(false)))
        .map(|(v, is_string)| match (v, is_string) {
            (Value::Tensor(t), true) => {
                let ids =
                    t.i64s().map_err(|_| Error::DType { expected: DType::Str, got: t.dtype(), context: format!("{name} on strings") })?;
                let data = ids
                    .iter()
                    .map(|&i| table.get(i as usize).map(|s| s.to_string()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| Error::shape(name, "mixes strings with numbers"))?;
                Ok(Value::Strings(Arc::new(StringTensor::new(t.shape().to_vec(), data)?)))
            }
            (v, _) => Ok(v),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eager::EvalBudget;
    use crate::plan::PlanLimits;
    use crate::{Attrs, Registry};

    fn strings(shape: Vec<usize>, v: &[&str]) -> Value {
        Value::Strings(Arc::new(StringTensor::new(shape, v.iter().map(|s| s.to_string()).collect()).unwrap()))
    }

    fn eval(op: &str, inputs: &[Option<Value>], n_out: usize) -> Result<Vec<Value>> {
        let op = Registry::global().build("n", "", op, 17, &Attrs::new(), inputs.len(), n_out)?;
        let limits = PlanLimits::default();
        let budget = EvalBudget::default();
        eval_interned(op.as_ref(), inputs, n_out, &budget.context(&limits))
    }

    #[test]
    fn movement_and_equal_run_on_strings() {
        let x = strings(vec![2, 2], &["b", "a", "c", "a"]);
        let perm = eval("Transpose", &[Some(x.clone())], 1).unwrap();
        assert_eq!(perm[0], strings(vec![2, 2], &["b", "c", "a", "a"]));
        let eq = eval("Equal", &[Some(x.clone()), Some(strings(vec![2], &["b", "a"]))], 1).unwrap();
        assert_eq!(eq[0], Value::tensor(Tensor::new(vec![2, 2], TensorData::Bool(vec![1, 1, 0, 1])).unwrap()));
        let e = eval("Add", &[Some(x.clone()), Some(x)], 1).unwrap_err().to_string();
        assert!(e.contains("string"), "{e}");
    }

    #[test]
    fn a_lying_size_is_an_error() {
        assert!(StringTensor::new(vec![3], vec!["a".into()]).is_err());
        assert!(StringTensor::new(vec![1 << 40, 1 << 40], vec![]).is_err());
    }
}
