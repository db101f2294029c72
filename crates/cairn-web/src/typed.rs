//! Tensors of any dtype across the JS boundary. The worker packs its typed arrays
//! (`BigInt64Array` for int64, `Int32Array`, `Uint8Array` for uint8 and bool, `Uint16Array`
//! holding f16 bits, ...) into one byte buffer and describes each tensor in a JSON spec
//! (name, dtype, shape, byte range); outputs come back the same way. Bytes are copied as
//! they are, never converted element by element.

use crate::js_err;
use cairn_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

/// Output tensors start at multiples of this, so that the JS side can view each one as
/// its typed array without a copy (a `BigInt64Array` needs 8-byte alignment).
const ALIGN: usize = 8;

/// One tensor of a packed buffer.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct Spec {
    pub name: String,
    /// A Cairn dtype name: f32, f16, i8, u8, i32, i64, bool, ...
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Byte range `[offset, offset + bytes)` in the buffer.
    pub offset: usize,
    pub bytes: usize,
}

/// Inputs by name from a packed buffer: each spec's byte count must match its shape and
/// dtype, and bool tensors hold only 0 and 1.
pub(crate) fn unpack(spec_json: &str, buffer: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    let specs: Vec<Spec> = serde_json::from_str(spec_json).map_err(|e| format!("the tensor list is not valid: {e}"))?;
    let mut tensors = HashMap::with_capacity(specs.len());
    for s in specs {
        let dtype = DType::from_name(&s.dtype).ok_or_else(|| {
            let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
            format!("input '{}': dtype '{}' is not one of {}", s.name, s.dtype, names.join(", "))
        })?;
        let mut tensor = Tensor::zeros(dtype, s.shape.clone()).map_err(|e| format!("input '{}': {e}", s.name))?;
        let want = tensor.byte_len();
        let end = s.offset.checked_add(s.bytes).filter(|&e| e <= buffer.len());
        let Some(end) = end.filter(|_| s.bytes == want) else {
            return Err(format!(
                "input '{}': shape {:?} of {} needs {want} bytes, the message holds {} at offset {} of {}",
                s.name,
                s.shape,
                s.dtype,
                s.bytes,
                s.offset,
                buffer.len()
            ));
        };
        let bytes = &buffer[s.offset..end];
        if dtype == DType::Bool && bytes.iter().any(|&b| b > 1) {
            return Err(format!("input '{}': a bool tensor holds only 0 and 1", s.name));
        }
        tensor.bytes_mut().copy_from_slice(bytes);
        if tensors.insert(s.name.clone(), tensor).is_some() {
            return Err(format!("input '{}' is given twice", s.name));
        }
    }
    Ok(tensors)
}

/// Every output of a run, packed: `spec` is the JSON list of [`Spec`], `bytes` the buffer.
#[wasm_bindgen(getter_with_clone)]
pub struct TypedOutputs {
    pub spec: String,
    pub bytes: Vec<u8>,
}

pub(crate) fn pack(outputs: Vec<(String, Tensor)>) -> TypedOutputs {
    let mut specs = Vec::with_capacity(outputs.len());
    let mut bytes = Vec::new();
    for (name, tensor) in outputs {
        bytes.resize(bytes.len().next_multiple_of(ALIGN), 0);
        specs.push(Spec {
            name,
            dtype: tensor.dtype().name().to_string(),
            shape: tensor.shape().to_vec(),
            offset: bytes.len(),
            bytes: tensor.byte_len(),
        });
        bytes.extend_from_slice(tensor.bytes());
    }
    TypedOutputs { spec: serde_json::to_string(&specs).expect("specs serialize"), bytes }
}

pub(crate) fn run(session: &cairn_core::Session, spec_json: &str, buffer: &[u8]) -> Result<TypedOutputs, JsError> {
    let inputs = unpack(spec_json, buffer).map_err(|e| JsError::new(&e))?;
    Ok(pack(session.run(inputs).map_err(js_err)?))
}

/// Runs as [`run`] and times every step: a JSON list of `[node, op type, milliseconds]` in
/// run order (the outputs are dropped). For per-operator profiles of the browser builds
/// (bench/web/profile_ops.mjs); the clock is the embedder's `performance.now`.
pub(crate) fn profile(session: &cairn_core::Session, spec_json: &str, buffer: &[u8]) -> Result<String, JsError> {
    #[cfg(target_arch = "wasm32")]
    cairn_core::install_profile_clock(|| performance_now() / 1000.0);
    let inputs = unpack(spec_json, buffer).map_err(|e| JsError::new(&e))?;
    let (_, stats) = session.run_profiled(inputs).map_err(js_err)?;
    let steps: Vec<(String, String, f64)> = stats.profile.into_iter().map(|s| (s.node, s.op_type, s.seconds * 1000.0)).collect();
    serde_json::to_string(&steps).map_err(js_err)
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
extern "C" {
    /// The page's or worker's monotonic clock, in milliseconds (Node has it as a global too).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Attrs, Graph, Node, NodeSpec, Registry, Session, ValueInfo};

    fn spec(name: &str, dtype: &str, shape: &[usize], offset: usize, bytes: usize) -> Spec {
        Spec { name: name.into(), dtype: dtype.into(), shape: shape.to_vec(), offset, bytes }
    }

    #[test]
    fn every_dtype_round_trips_through_the_packed_buffer() {
        let ids: Vec<u8> = [101i64, -7, 1 << 40].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mask = [1u8, 0, 1];
        let half: Vec<u8> = [0x3c00u16, 0xc000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut buffer = ids.clone();
        buffer.extend_from_slice(&mask);
        buffer.extend_from_slice(&half);
        let specs = vec![spec("ids", "i64", &[1, 3], 0, 24), spec("mask", "bool", &[3], 24, 3), spec("h", "f16", &[2], 27, 4)];
        let tensors = unpack(&serde_json::to_string(&specs).unwrap(), &buffer).unwrap();
        assert_eq!(tensors["ids"].i64s().unwrap(), &[101, -7, 1 << 40]);
        assert_eq!(tensors["mask"].dtype(), DType::Bool);
        let mut outs: Vec<(String, Tensor)> = tensors.into_iter().collect();
        outs.sort_by(|a, b| a.0.cmp(&b.0));
        let packed = pack(outs);
        let back: Vec<Spec> = serde_json::from_str(&packed.spec).unwrap();
        assert!(back.iter().all(|s| s.offset % ALIGN == 0));
        let ids_back = back.iter().find(|s| s.name == "ids").unwrap();
        assert_eq!(&packed.bytes[ids_back.offset..ids_back.offset + ids_back.bytes], &ids[..]);
        let h_back = back.iter().find(|s| s.name == "h").unwrap();
        assert_eq!((h_back.dtype.as_str(), &packed.bytes[h_back.offset..h_back.offset + 4]), ("f16", &half[..]));
    }

    #[test]
    fn wrong_sizes_dtypes_and_bool_values_are_errors_that_name_the_input() {
        let buffer = [0u8; 16];
        let cases = [
            (vec![spec("a", "i64", &[3], 0, 16)], "needs 24 bytes"),
            (vec![spec("a", "i32", &[2], 12, 8)], "at offset 12"),
            (vec![spec("a", "int64", &[2], 0, 16)], "is not one of"),
            (vec![spec("a", "u8", &[2], 0, 2), spec("a", "u8", &[2], 2, 2)], "given twice"),
        ];
        for (specs, want) in cases {
            let err = unpack(&serde_json::to_string(&specs).unwrap(), &buffer).unwrap_err();
            assert!(err.contains(want) && err.contains("'a'"), "{err}");
        }
        let err = unpack(&serde_json::to_string(&[spec("m", "bool", &[2], 0, 2)]).unwrap(), &[1, 2]).unwrap_err();
        assert!(err.contains("only 0 and 1"), "{err}");
        assert!(unpack("{not json", &buffer).unwrap_err().contains("not valid"));
    }

    /// A profiled run lists every step of the plan in run order, with its op and a time.
    #[test]
    fn a_profile_names_every_step_with_its_time() {
        let node = |name: &str, op: &str, x: &str, y: &str| {
            let spec = NodeSpec {
                name: name.into(),
                domain: String::new(),
                op_type: op.into(),
                attrs: Attrs::new(),
                inputs: vec![Some(x.into())],
                outputs: vec![y.into()],
            };
            Node::build(spec, 17, Registry::global()).unwrap()
        };
        let graph = Graph {
            inputs: vec![ValueInfo { name: "x".into(), dtype: DType::F32, dims: None }],
            outputs: vec![ValueInfo { name: "z".into(), dtype: DType::F32, dims: None }],
            initializers: HashMap::new(),
            nodes: vec![node("first", "Relu", "x", "y"), node("second", "Neg", "y", "z")],
            opset: 17,
        };
        let session = Session::new(graph);
        let x: Vec<u8> = [1.0f32, -2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let specs = serde_json::to_string(&[spec("x", "f32", &[3], 0, 12)]).unwrap();
        let steps: Vec<(String, String, f64)> = serde_json::from_str(&profile(&session, &specs, &x).unwrap()).unwrap();
        assert_eq!(steps.iter().map(|(n, op, _)| (n.as_str(), op.as_str())).collect::<Vec<_>>(), [("first", "Relu"), ("second", "Neg")]);
        assert!(steps.iter().all(|&(_, _, ms)| ms >= 0.0 && ms.is_finite()));
    }
}
