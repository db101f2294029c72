//! The wasm side of Cairn: load an ONNX model from bytes and run it.
//!
//! This is the minimal surface the benchmarks and tests drive; the worker
//! runtime (bundles, scheduler, policy) grows on top of it.

use cairn_core::{passes::prepare_for_inference, Session, Tensor};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

/// A loaded, prepared model.
#[wasm_bindgen]
pub struct Model {
    session: Session,
    input_names: Vec<String>,
    last_output_shape: Vec<u32>,
}

#[wasm_bindgen]
impl Model {
    /// Imports an ONNX model and prepares it (folding, fusion, weight prepacking).
    #[wasm_bindgen(constructor)]
    pub fn new(onnx_bytes: Vec<u8>) -> Result<Model, JsError> {
        let model = cairn_onnx::load_owned(onnx_bytes, None).map_err(|e| JsError::new(&e.to_string()))?;
        let (graph, _) = prepare_for_inference(model.graph).map_err(|e| JsError::new(&e.to_string()))?;
        let input_names = graph.runtime_inputs().map(|i| i.name.clone()).collect();
        Ok(Model { session: Session::new(graph), input_names, last_output_shape: Vec::new() })
    }

    #[wasm_bindgen(js_name = inputNames)]
    pub fn input_names(&self) -> Vec<String> {
        self.input_names.clone()
    }

    /// Runs the model on one f32 input and returns its first output's values.
    pub fn run(&mut self, input_name: &str, data: &[f32], shape: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let tensor = Tensor::from_f32(shape, data.to_vec()).map_err(|e| JsError::new(&e.to_string()))?;
        let inputs = HashMap::from([(input_name.to_string(), tensor)]);
        let outputs = self.session.run(inputs).map_err(|e| JsError::new(&e.to_string()))?;
        let (_, first) = outputs.into_iter().next().ok_or_else(|| JsError::new("the model has no outputs"))?;
        self.last_output_shape = first.shape().iter().map(|&d| d as u32).collect();
        Ok(first.f32s().map_err(|e| JsError::new(&e.to_string()))?.to_vec())
    }

    /// The shape of the output returned by the last `run`.
    #[wasm_bindgen(js_name = outputShape)]
    pub fn output_shape(&self) -> Vec<u32> {
        self.last_output_shape.clone()
    }
}

/// Bytes of linear memory this module holds (weights, arenas, everything): the
/// number to compare with other engines' wasm heaps.
#[wasm_bindgen(js_name = memoryBytes)]
pub fn memory_bytes() -> f64 {
    #[cfg(target_arch = "wasm32")]
    return (core::arch::wasm32::memory_size(0) * 65536) as f64;
    #[cfg(not(target_arch = "wasm32"))]
    return 0.0;
}

/// Which kernels this build runs (`wasm32-simd128` or `generic`).
#[wasm_bindgen(js_name = kernelIsa)]
pub fn kernel_isa() -> String {
    cairn_core::kernel_isa().to_string()
}
