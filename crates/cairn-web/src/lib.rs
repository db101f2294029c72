//! The wasm side of Cairn, loaded by the Web Worker: models from ONNX bytes or
//! streamed from a bundle ([`bundle::BundleLoad`]), run on tensors of any dtype
//! ([`typed`]) or on f32 numbers (integer inputs, e.g. a uint8 TFLite model's, converted
//! exactly: [`numbers`]), and text bundles' embedding/classification of tokenized batches ([`text`]; the
//! tokenizer is its own wasm module, crates/cairn-web-text).

mod bundle;
#[cfg(feature = "webgpu")]
mod gpu;
// The counting allocator is installed only in the wasm build (native tests use the system one).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod heap;
mod numbers;
pub mod policy;
mod scheduler;
mod text;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
mod threads;
mod typed;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: heap::CountingAllocator = heap::CountingAllocator;

pub use bundle::BundleLoad;
pub use scheduler::Scheduler;
pub use text::{EmbedOutput, TokenBatchInput};
pub use typed::TypedOutputs;

use cairn_core::{passes::prepare_for_inference, Graph, Session, Tensor};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

/// A loaded, prepared model.
#[wasm_bindgen]
pub struct Model {
    session: Session,
    /// Set for models loaded from a bundle: preprocessing and labels come from it.
    manifest: Option<cairn_bundle::Manifest>,
    input_names: Vec<String>,
    last_output_shape: Vec<u32>,
    /// A text bundle's task over this model, once `enableText` ran (tokenizing happens in
    /// the separate tokenizer module).
    text: Option<cairn_text::TextModel>,
    /// Set for bundles with run-time widths: every width, from the same weights.
    widths: Option<cairn_core::WidthSessions>,
}

#[wasm_bindgen]
impl Model {
    /// Imports an ONNX model and prepares it (folding, fusion, weight prepacking).
    #[wasm_bindgen(constructor)]
    pub fn new(onnx_bytes: Vec<u8>) -> Result<Model, JsError> {
        let model = cairn_onnx::load_owned(onnx_bytes, None).map_err(js_err)?;
        if model.graph.uses_strings() {
            return Err(JsError::new(
                "the model uses string tensors, which Cairn's browser runtime does not run (docs/adr/0031): keep string processing (tokenizing, label lookup) outside the model",
            ));
        }
        let (graph, _) = prepare_for_inference(model.graph).map_err(js_err)?;
        Ok(Model::from_graph(graph))
    }

    #[wasm_bindgen(js_name = inputNames)]
    pub fn input_names(&self) -> Vec<String> {
        self.input_names.clone()
    }

    /// Runs the model on one f32 input and returns its first output's values.
    pub fn run(&mut self, input_name: &str, data: Vec<f32>, shape: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let out = run_session(&self.session, input_name, data, shape)?;
        self.last_output_shape = out.shape;
        Ok(out.data)
    }

    /// Runs a model whose inputs are int64 tensors of one shape (a text encoder's
    /// `input_ids`, `attention_mask`, ...): `data` holds them one after another, in the
    /// order of `input_names`. Returns the first output's values.
    #[wasm_bindgen(js_name = runInt64)]
    pub fn run_int64(&mut self, input_names: Vec<String>, data: Vec<i64>, shape: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let per: usize = shape.iter().product();
        if per * input_names.len() != data.len() {
            return Err(JsError::new(&format!(
                "runInt64: {} values for {} inputs of shape {shape:?} (hint: pass the inputs one after another, each {per} values)",
                data.len(),
                input_names.len()
            )));
        }
        let mut inputs = HashMap::new();
        for (name, values) in input_names.into_iter().zip(data.chunks(per.max(1))) {
            inputs.insert(name, Tensor::from_i64(shape.clone(), values.to_vec()).map_err(js_err)?);
        }
        let outputs = self.session.run(inputs).map_err(js_err)?;
        let (_, first) = outputs.into_iter().next().ok_or_else(|| JsError::new("the model has no outputs"))?;
        self.last_output_shape = first.shape().iter().map(|&d| d as u32).collect();
        Ok(first.f32s().map_err(js_err)?.to_vec())
    }

    /// Runs the model on one f32 input; returns its first output with its shape.
    #[wasm_bindgen(js_name = runOutput)]
    pub fn run_output(&self, input_name: &str, data: Vec<f32>, shape: Vec<u32>) -> Result<RunOutput, JsError> {
        run_session(&self.session, input_name, data, shape)
    }

    /// Runs the model on named inputs of any dtype, packed in one buffer (`spec`: a JSON
    /// list of `{name, dtype, shape, offset, bytes}`); returns every output, packed the same way.
    #[wasm_bindgen(js_name = runTensors)]
    pub fn run_tensors(&self, spec: &str, buffer: &[u8]) -> Result<TypedOutputs, JsError> {
        typed::run(&self.session, spec, buffer)
    }

    /// Runs as `runTensors` and times every step: a JSON list of `[node, op type,
    /// milliseconds]` in run order, outputs dropped (bench/web/profile_ops.mjs).
    #[wasm_bindgen(js_name = profileTensors)]
    pub fn profile_tensors(&self, spec: &str, buffer: &[u8]) -> Result<String, JsError> {
        typed::profile(&self.session, spec, buffer)
    }

    /// Runs at a run-time width (a share of the full model's MACs; 1 = full): the model's
    /// nearest width runs, and `width` of the result says which. Models without widths run
    /// in full. Switching widths reloads nothing: a narrower width is cut from the weights
    /// in memory on its first use and kept.
    #[wasm_bindgen(js_name = runOutputAt)]
    pub fn run_output_at(&mut self, input_name: &str, data: Vec<f32>, shape: Vec<u32>, width: f32) -> Result<RunOutput, JsError> {
        match &mut self.widths {
            Some(w) if width < 1.0 => {
                let (session, ran) = w.session(width).map_err(js_err)?;
                let mut out = run_session(session, input_name, data, shape)?;
                out.width = ran;
                Ok(out)
            }
            _ => run_session(&self.session, input_name, data, shape),
        }
    }

    /// The run-time widths this model offers (shares of the full MACs), widest first; the
    /// full width (1) is always there and not listed.
    #[wasm_bindgen(js_name = widthFractions)]
    pub fn width_fractions(&self) -> Vec<f32> {
        self.widths.as_ref().map_or_else(Vec::new, |w| w.plan().widths.iter().map(|x| x.fraction).collect())
    }

    /// RGBA pixels (resized to the input's size) to the input tensor, per the bundle's manifest.
    #[wasm_bindgen(js_name = imageToInput)]
    pub fn image_to_input(&self, input_name: &str, rgba: &[u8], width: u32, height: u32) -> Result<Vec<f32>, JsError> {
        let manifest =
            self.manifest.as_ref().ok_or_else(|| JsError::new("this model was not loaded from a bundle, so it has no preprocessing"))?;
        bundle::image_input(manifest, input_name, rgba, width, height)
    }

    /// The shape of the output returned by the last `run`.
    #[wasm_bindgen(js_name = outputShape)]
    pub fn output_shape(&self) -> Vec<u32> {
        self.last_output_shape.clone()
    }
}

impl Model {
    pub(crate) fn from_graph(graph: Graph) -> Model {
        let input_names = graph.runtime_inputs().map(|i| i.name.clone()).collect();
        Model { session: Session::new(graph), manifest: None, input_names, last_output_shape: Vec::new(), text: None, widths: None }
    }
}

/// The first output of a run: values and shape.
#[wasm_bindgen(getter_with_clone)]
pub struct RunOutput {
    pub data: Vec<f32>,
    pub shape: Vec<u32>,
    /// The run-time width that ran (1: the full model).
    pub width: f32,
}

pub(crate) fn run_session(session: &Session, input_name: &str, data: Vec<f32>, shape: Vec<u32>) -> Result<RunOutput, JsError> {
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    // `data` arrives as a Vec the module owns (one copy from JS): an f32 input takes it as is.
    let tensor = numbers::input_tensor(session, input_name, data, shape).map_err(|e| JsError::new(&e))?;
    let inputs = HashMap::from([(input_name.to_string(), tensor)]);
    let outputs = session.run(inputs).map_err(js_err)?;
    let (_, first) = outputs.into_iter().next().ok_or_else(|| JsError::new("the model has no outputs"))?;
    Ok(RunOutput {
        shape: first.shape().iter().map(|&d| d as u32).collect(),
        data: numbers::output_values(&first).map_err(|e| JsError::new(&e))?,
        width: 1.0,
    })
}

pub(crate) fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
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

/// Threads the kernels run on: 1 in the single-threaded builds; in the threaded build
/// the calling worker plus the pool workers parked in `poolWorkerLoop`.
#[wasm_bindgen(js_name = kernelThreads)]
pub fn kernel_threads() -> u32 {
    cairn_kernels::parallel::threads() as u32
}

/// Where to run the next request (device or edge) and why: `signals` is the JSON of a
/// [`policy::Signals`] (camelCase browser signal names), the answer the JSON of a
/// [`policy::Decision`]: `{"where": "device" | "edge", "reason": "...", "rule": "..."}`.
#[wasm_bindgen(js_name = decidePlacement)]
pub fn decide_placement(signals: &str) -> Result<String, JsError> {
    let signals: policy::Signals = serde_json::from_str(signals).map_err(|e| JsError::new(&format!("placement signals: {e}")))?;
    serde_json::to_string(&policy::decide(&signals)).map_err(js_err)
}
