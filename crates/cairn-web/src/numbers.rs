//! JS numbers at the wasm boundary: inputs arrive and outputs leave as f32 arrays, whatever the
//! model's own dtypes. A model with integer I/O (a full-integer TFLite model takes and returns
//! uint8) gets its input values checked and converted exactly, and its outputs as the integers'
//! values, so the page API stays `{ data: Float32Array, shape }` for every model. Errors are
//! plain strings (a `JsError` cannot be made outside wasm, where these are tested).

use cairn_core::{DType, Session, Tensor};

/// `data` as the tensor the model's input `name` takes: f32 as is; for an integer input every
/// value must be a whole number within that dtype's range (no silent rounding or clamping).
pub fn input_tensor(session: &Session, name: &str, data: Vec<f32>, shape: Vec<usize>) -> Result<Tensor, String> {
    let dtype = session.graph().runtime_inputs().find(|i| i.name == name).map_or(DType::F32, |i| i.dtype);
    let tensor = Tensor::from_f32(shape, data).map_err(|e| e.to_string())?;
    if dtype == DType::F32 {
        return Ok(tensor);
    }
    let (lo, hi) =
        integer_range(dtype).ok_or_else(|| format!("input '{name}' is {dtype:?}: only f32 and integer inputs can be given as numbers"))?;
    if let Some(bad) =
        tensor.f32s().map_err(|e| e.to_string())?.iter().find(|v| v.fract() != 0.0 || f64::from(**v) < lo || f64::from(**v) > hi)
    {
        return Err(format!(
            "input '{name}' is {dtype:?}: every value must be a whole number in {lo}..={hi} (found {bad}); \
             quantize with the input's scale and zero point first"
        ));
    }
    tensor.cast(dtype).map_err(|e| e.to_string())
}

/// An output's values as f32 (integers up to 2^24 are exact, which covers 8- and 16-bit outputs).
pub fn output_values(tensor: &Tensor) -> Result<Vec<f32>, String> {
    match tensor.dtype() {
        DType::F32 => Ok(tensor.f32s().map_err(|e| e.to_string())?.to_vec()),
        _ => Ok(tensor.view().to_f32_vec()),
    }
}

fn integer_range(dtype: DType) -> Option<(f64, f64)> {
    Some(match dtype {
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::U8 => (0.0, u8::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::U16 => (0.0, u16::MAX.into()),
        // Larger integers: the whole numbers an f32 holds exactly.
        DType::I32 | DType::I64 => (-16_777_216.0, 16_777_216.0),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Attr, Attrs, Graph, Node, NodeSpec, Registry, ValueInfo};
    use std::collections::HashMap;

    fn cast_model(input: DType, output: DType) -> Session {
        let attrs = Attrs::from([("to".to_string(), Attr::Int(output.onnx_code()))]);
        let spec = NodeSpec {
            name: "cast".into(),
            domain: String::new(),
            op_type: "Cast".into(),
            attrs,
            inputs: vec![Some("x".into())],
            outputs: vec!["y".into()],
        };
        let graph = Graph {
            inputs: vec![ValueInfo { name: "x".into(), dtype: input, dims: None }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: output, dims: None }],
            initializers: HashMap::new(),
            nodes: vec![Node::build(spec, 17, Registry::global()).unwrap()],
            opset: 17,
        };
        Session::new(graph)
    }

    #[test]
    fn uint8_inputs_are_converted_exactly_and_outputs_come_back_as_their_values() {
        let s = cast_model(DType::U8, DType::I32);
        let t = input_tensor(&s, "x", vec![0.0, 7.0, 255.0], vec![3]).unwrap();
        assert_eq!(t.dtype(), DType::U8);
        let out = s.run(HashMap::from([("x".to_string(), t)])).unwrap();
        assert_eq!(output_values(&out[0].1).unwrap(), vec![0.0, 7.0, 255.0]);
    }

    #[test]
    fn fractions_and_out_of_range_values_are_refused_with_a_hint() {
        let s = cast_model(DType::U8, DType::F32);
        for bad in [256.0, -1.0, 0.5] {
            assert!(input_tensor(&s, "x", vec![1.0, bad], vec![2]).is_err(), "{bad}");
        }
    }
}
