//! The WebGPU backend in the worker (feature `webgpu`): a model's plain graph on
//! `cairn_gpu`, run asynchronously (a read-back resolves on the browser's event loop).
//!
//! The worker keeps the CPU model beside it: when a GPU run fails because the device was
//! lost, the same request runs on the CPU build and later requests stay there.

use crate::bundle::BundleLoad;
use crate::{js_err, typed};
use cairn_core::Tensor;
use cairn_gpu::{Gpu, GpuError, GpuSession};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// A bundle's unprepared graph, handed from `BundleLoad.takeGpuGraph` to `GpuModel.create`.
#[wasm_bindgen]
pub struct GpuGraph(cairn_core::Graph);

#[wasm_bindgen]
impl BundleLoad {
    /// Asks `finish` to keep the unprepared graph for the GPU backend.
    #[wasm_bindgen(js_name = keepGpuGraph)]
    pub fn keep_gpu_graph(&mut self) {
        self.keep_gpu_graph = true;
    }

    /// The graph kept by `finish` (once).
    #[wasm_bindgen(js_name = takeGpuGraph)]
    pub fn take_gpu_graph(&mut self) -> Option<GpuGraph> {
        self.gpu_graph.take().map(GpuGraph)
    }
}

struct State {
    session: GpuSession,
    last_shape: Vec<u32>,
    last_stats: String,
}

/// A model on the GPU.
#[wasm_bindgen]
pub struct GpuModel {
    state: Rc<RefCell<State>>,
    /// The session's device, outside the RefCell: a run holds the session across its
    /// read-back, and loss checks and the destroy hook must not wait for it.
    gpu: Gpu,
}

/// Runs the session once and records the run's counters for `statsJson`.
// The borrow is held across the read-back on purpose: it is what refuses a second run on the
// same session (try_borrow_mut fails cleanly); the device's loss check and destroy hook live
// outside the RefCell, so nothing the worker does during a run waits on it.
#[allow(clippy::await_holding_refcell_ref)]
async fn run_session(state: &Rc<RefCell<State>>, inputs: HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>, JsValue> {
    // The worker runs one request at a time; a second run while one awaits is refused.
    let mut st = state.try_borrow_mut().map_err(|_| JsValue::from(JsError::new("the GPU model is busy with another run")))?;
    let result = st.session.run(inputs).await;
    let (outputs, stats) = result.map_err(|e| {
        let lost = matches!(e, GpuError::DeviceLost(_)) || st.session.gpu().is_lost();
        JsValue::from(JsError::new(&if lost { format!("device-lost: {e}") } else { e.to_string() }))
    })?;
    st.last_stats = serde_json::json!({
        "dispatches": stats.counters.dispatches,
        "bytesUploaded": stats.counters.bytes_uploaded,
        "bytesReadBack": stats.counters.bytes_read_back,
        "readBacks": stats.counters.read_backs,
        "bytesUploadedAtBuild": stats.bytes_uploaded_at_build,
        "valueBytes": stats.value_bytes,
        "valueBytesUnpooled": stats.value_bytes_unpooled,
        "fallbackOps": stats.fallback,
    })
    .to_string();
    Ok(outputs)
}

#[wasm_bindgen]
impl GpuModel {
    /// Acquires the GPU and prepares `graph`; rejects when there is no adapter or device.
    pub async fn create(graph: GpuGraph) -> Result<GpuModel, JsError> {
        let gpu = Gpu::acquire().await.map_err(js_err)?;
        let session = GpuSession::new(gpu.clone(), graph.0).map_err(js_err)?;
        Ok(GpuModel { state: Rc::new(RefCell::new(State { session, last_shape: Vec::new(), last_stats: String::new() })), gpu })
    }

    /// Runs on one f32 input; resolves to the first output's values (a Float32Array). A
    /// rejection whose message starts with "device-lost:" means the GPU is gone for good.
    pub fn run(&self, input_name: String, data: Vec<f32>, shape: Vec<u32>) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let input = Tensor::from_f32(shape, data).map_err(|e| JsValue::from(js_err(e)))?;
            let outputs = run_session(&state, HashMap::from([(input_name, input)])).await?;
            let (_, first) = outputs.into_iter().next().ok_or_else(|| JsValue::from(JsError::new("the model has no outputs")))?;
            state.borrow_mut().last_shape = first.shape().iter().map(|&d| d as u32).collect();
            let values = first.f32s().map_err(|e| JsValue::from(js_err(e)))?;
            Ok(js_sys::Float32Array::from(values).into())
        })
    }

    /// Runs on named inputs of any dtype, packed as `Model.runTensors` takes them (a text
    /// encoder's int64 ids and mask); resolves to every output packed the same way
    /// (`TypedOutputs`). Rejections as for `run`.
    #[wasm_bindgen(js_name = runTensors)]
    pub fn run_tensors(&self, spec: String, buffer: Vec<u8>) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let inputs = typed::unpack(&spec, &buffer).map_err(|e| JsValue::from(JsError::new(&e)))?;
            let outputs = run_session(&state, inputs).await?;
            Ok(typed::pack(outputs).into())
        })
    }

    /// The last run's output shape.
    #[wasm_bindgen(js_name = outputShape)]
    pub fn output_shape(&self) -> Vec<u32> {
        self.state.borrow().last_shape.clone()
    }

    /// The last run's counters as JSON: dispatches, bytes uploaded and read back, the
    /// operators that fell back to the CPU kernels.
    #[wasm_bindgen(js_name = statsJson)]
    pub fn stats_json(&self) -> String {
        self.state.borrow().last_stats.clone()
    }

    /// The adapter's name, backend and type.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.gpu.adapter_info.clone()
    }

    #[wasm_bindgen(js_name = isLost)]
    pub fn is_lost(&self) -> bool {
        self.gpu.is_lost()
    }

    /// Test hook: destroys the device, as a driver reset would (also while a run awaits).
    #[wasm_bindgen(js_name = destroyDevice)]
    pub fn destroy_device(&self) {
        self.gpu.destroy();
    }
}
