//! Sequence and optional values from their protobuf form (`SequenceProto`, `OptionalProto`):
//! the `.pb` files ONNX test data uses for inputs and outputs that are not tensors.

use crate::proto::{type_proto, value_elem_type as vt, OptionalProto, SequenceProto, TensorProto, TypeProto};
use crate::tensor::{convert, convert_strings, dtype_of};
use crate::Error;
use cairn_core::{Sequence, Value};
use prost::Message;
use std::sync::Arc;

/// Decodes a serialized value of the declared type: a `TensorProto`, a `SequenceProto` for
/// `seq(...)` or an `OptionalProto` for `optional(...)` (what onnx's own test runner reads).
pub fn value_from_bytes(bytes: &[u8], declared: Option<&TypeProto>) -> Result<Value, Error> {
    match declared.and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::SequenceType(n)) => {
            let s = SequenceProto::decode(bytes).map_err(|e| Error::Decode(format!("not a SequenceProto: {e}")))?;
            sequence(&s, n.elem_type.as_deref())
        }
        Some(type_proto::Value::OptionalType(n)) => {
            let o = OptionalProto::decode(bytes).map_err(|e| Error::Decode(format!("not an OptionalProto: {e}")))?;
            optional(&o, n.elem_type.as_deref())
        }
        _ => {
            let t = TensorProto::decode(bytes).map_err(|e| Error::Decode(format!("not a TensorProto: {e}")))?;
            if t.data_type == crate::proto::data_type::STRING {
                return Ok(Value::Strings(Arc::new(convert_strings(&t)?)));
            }
            Ok(Value::tensor(convert(&t, None)?))
        }
    }
}

fn sequence(s: &SequenceProto, declared_elem: Option<&TypeProto>) -> Result<Value, Error> {
    if !s.sequence_values.is_empty() || !s.optional_values.is_empty() || !matches!(s.elem_type, vt::TENSOR | vt::UNDEFINED) {
        return Err(Error::Model(format!("sequence '{}' holds sequences or optionals; Cairn handles sequences of tensors", s.name)));
    }
    let items = s.tensor_values.iter().map(|t| convert(t, None).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
    let elem = match (items.first(), declared_elem.and_then(|t| t.value.as_ref())) {
        (Some(t), _) => t.dtype(),
        (None, Some(type_proto::Value::TensorType(t))) => dtype_of(t.elem_type, &s.name)?,
        (None, _) => cairn_core::DType::F32,
    };
    Ok(Value::Sequence(Sequence::new(elem, items)?))
}

fn optional(o: &OptionalProto, declared_elem: Option<&TypeProto>) -> Result<Value, Error> {
    let inner = match o.elem_type {
        vt::UNDEFINED => None,
        vt::TENSOR => {
            let t = o.tensor_value.as_ref().ok_or_else(|| Error::Model(format!("optional '{}' says tensor but holds none", o.name)))?;
            Some(Value::tensor(convert(t, None)?))
        }
        vt::SEQUENCE => {
            let s =
                o.sequence_value.as_deref().ok_or_else(|| Error::Model(format!("optional '{}' says sequence but holds none", o.name)))?;
            let elem = declared_elem.and_then(|t| match &t.value {
                Some(type_proto::Value::SequenceType(n)) => n.elem_type.as_deref(),
                _ => None,
            });
            Some(sequence(s, elem)?)
        }
        other => return Err(Error::Model(format!("optional '{}' holds a value of kind {other}, which Cairn does not handle", o.name))),
    };
    Ok(Value::Optional(inner.map(Box::new)))
}
