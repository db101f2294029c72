//! Streaming bundle load in the worker: the manifest first, then shards as they
//! arrive; each is verified (size, sha256, content) and placed straight into the
//! final weight buffers, so the wasm heap never holds a second copy of the model.
//!
//! While shards of a later level are still on their way, the model runs on what
//! has arrived (the coarse level, refined weight by weight). That interim session
//! shares the loader's weight buffers and runs the standard operators unprepacked;
//! it is dropped before each refinement is written in place (so nothing is copied)
//! and rebuilt on the next run. An int8 bundle's interim session is prepared like the
//! final one, so the coarse level runs on the int8 kernels (unprepared, its weights
//! would be dequantized to f32 on every run): that holds the packed copy of a model a
//! quarter of f32's size while refinements arrive. When every level is in, the weights are handed to
//! the usual preparation (fusion, prepacking) and the buffers freed as it goes.

use crate::{js_err, Model};
use cairn_bundle::{Loader, Manifest};
use cairn_core::passes::prepare_for_inference;
use cairn_core::Session;
use wasm_bindgen::prelude::*;

/// Largest weight total a manifest may ask for: wasm32 memory tops out at 4 GiB.
const MAX_WEIGHT_BYTES: u64 = 2 << 30;

#[wasm_bindgen]
pub struct BundleLoad {
    loader: Option<Loader>,
    /// A shard being downloaded straight into wasm memory (see `stagingBuffer`).
    staging: Vec<u8>,
    /// The interim session over the weights received so far; rebuilt lazily.
    interim: Option<Session>,
    /// Set by `keepGpuGraph`: `finish` then also keeps the unprepared graph for the GPU
    /// backend (its own lowering reads plain operators; weights are shared, not copied).
    #[cfg(feature = "webgpu")]
    pub(crate) keep_gpu_graph: bool,
    #[cfg(feature = "webgpu")]
    pub(crate) gpu_graph: Option<cairn_core::Graph>,
}

#[wasm_bindgen]
impl BundleLoad {
    /// Parses and checks `manifest.json` and allocates the weights at their final size.
    #[wasm_bindgen(constructor)]
    pub fn new(manifest_json: &[u8]) -> Result<BundleLoad, JsError> {
        let manifest = Manifest::parse(manifest_json).map_err(js_err)?;
        let loader = Loader::new(manifest, MAX_WEIGHT_BYTES).map_err(js_err)?;
        Ok(BundleLoad {
            loader: Some(loader),
            staging: Vec::new(),
            interim: None,
            #[cfg(feature = "webgpu")]
            keep_gpu_graph: false,
            #[cfg(feature = "webgpu")]
            gpu_graph: None,
        })
    }

    /// The manifest, as JSON (the page reads preprocessing, labels and the shard list from it).
    #[wasm_bindgen(js_name = manifestJson)]
    pub fn manifest_json(&self) -> Result<String, JsError> {
        Ok(self.loader()?.manifest().to_json())
    }

    /// Verifies shard `index` and writes its weights in place. On error nothing changed:
    /// fetch the shard again. Accepting a shard twice is harmless.
    pub fn accept(&mut self, index: u32, bytes: &[u8]) -> Result<(), JsError> {
        // The interim session shares the weight buffers: drop it so they are written in place.
        self.interim = None;
        self.loader_mut()?.accept_shard(index as usize, bytes).map_err(js_err)
    }

    /// Allocates `len` bytes in wasm memory for the next shard and returns their address:
    /// the worker writes the download there directly (through a view of `memory.buffer`,
    /// taken again after each await, since memory may grow), so a shard is never held
    /// twice, once in JS and once in wasm.
    #[wasm_bindgen(js_name = stagingBuffer)]
    pub fn staging_buffer(&mut self, len: u32) -> u32 {
        self.staging = vec![0; len as usize];
        self.staging.as_mut_ptr() as usize as u32
    }

    /// Accepts the first `len` staged bytes as shard `index` (fewer than the manifest says
    /// means a truncated download: rejected). The staging buffer is freed either way.
    #[wasm_bindgen(js_name = acceptStaged)]
    pub fn accept_staged(&mut self, index: u32, len: u32) -> Result<(), JsError> {
        let mut bytes = std::mem::take(&mut self.staging);
        bytes.truncate(len as usize);
        self.accept(index, &bytes)
    }

    /// Shards still missing, in fetch order.
    pub fn missing(&self) -> Result<Vec<u32>, JsError> {
        Ok(self.loader()?.missing().map(|i| i as u32).collect())
    }

    /// The highest complete level (0 = coarse), or -1 before level 0 is complete.
    #[wasm_bindgen(js_name = levelReached)]
    pub fn level_reached(&self) -> Result<i32, JsError> {
        Ok(self.loader()?.level_reached().map_or(-1, |l| l as i32))
    }

    /// RGBA pixels (already resized to the input's size) to the named input's tensor,
    /// following the manifest's preprocessing.
    #[wasm_bindgen(js_name = imageToInput)]
    pub fn image_to_input(&self, input_name: &str, rgba: &[u8], width: u32, height: u32) -> Result<Vec<f32>, JsError> {
        image_input(self.loader()?.manifest(), input_name, rgba, width, height)
    }

    /// Checks a text bundle's tokenizer.json against the manifest (size and sha256) before
    /// any shard is fetched: a missing or damaged tokenizer fails the load early.
    #[wasm_bindgen(js_name = checkTokenizer)]
    pub fn check_tokenizer(&self, bytes: &[u8]) -> Result<(), JsError> {
        cairn_bundle::verify_tokenizer(self.loader()?.manifest(), bytes).map_err(js_err)
    }

    /// Runs the model as loaded so far (level 0 must be complete) on one f32 input;
    /// returns the first output. For predictions before the last level arrives.
    #[wasm_bindgen(js_name = runInterim)]
    pub fn run_interim(&mut self, input_name: &str, data: Vec<f32>, shape: Vec<u32>) -> Result<crate::RunOutput, JsError> {
        if self.interim.is_none() {
            let loader = self.loader()?;
            let graph = loader.graph().map_err(js_err)?;
            let graph =
                if cairn_bundle::has_int8_levels(loader.manifest()) { prepare_for_inference(graph).map_err(js_err)?.0 } else { graph };
            self.interim = Some(Session::new(graph));
        }
        crate::run_session(self.interim.as_ref().expect("built above"), input_name, data, shape)
    }

    /// Every level has arrived: prepares the final model, handing the weights over.
    pub fn finish(&mut self) -> Result<Model, JsError> {
        let loader = self.loader()?;
        let last = loader.manifest().levels.len() - 1;
        if loader.level_reached() != Some(last) {
            return Err(JsError::new(&format!("{} shard(s) are still missing", loader.missing().count())));
        }
        self.interim = None;
        let loader = self.loader.take().expect("checked above");
        let manifest = loader.manifest().clone();
        let graph = loader.into_graph().map_err(js_err)?;
        // With run-time widths the unprepared weights stay: narrower widths are cut from them.
        let widths = match &manifest.widths {
            Some(plan) => Some(cairn_core::WidthSessions::new(graph.clone(), plan.clone()).map_err(js_err)?),
            None => None,
        };
        #[cfg(feature = "webgpu")]
        if self.keep_gpu_graph {
            self.gpu_graph = Some(graph.clone());
        }
        let (graph, _) = prepare_for_inference(graph).map_err(js_err)?;
        let mut model = Model::from_graph(graph);
        model.manifest = Some(manifest);
        model.widths = widths;
        Ok(model)
    }
}

impl BundleLoad {
    fn loader(&self) -> Result<&Loader, JsError> {
        self.loader.as_ref().ok_or_else(|| JsError::new("this load has already finished"))
    }
    fn loader_mut(&mut self) -> Result<&mut Loader, JsError> {
        self.loader.as_mut().ok_or_else(|| JsError::new("this load has already finished"))
    }
}

pub(crate) fn image_input(manifest: &Manifest, input_name: &str, rgba: &[u8], width: u32, height: u32) -> Result<Vec<f32>, JsError> {
    let input = manifest
        .inputs
        .iter()
        .find(|i| i.name == input_name)
        .ok_or_else(|| JsError::new(&format!("the model has no input '{input_name}'")))?;
    let pre = input.preprocess.as_ref().ok_or_else(|| {
        JsError::new(&format!("input '{input_name}' has no image preprocessing in the manifest (pack with --image-size)"))
    })?;
    cairn_bundle::rgba_to_input(rgba, width, height, pre).map_err(js_err)
}
