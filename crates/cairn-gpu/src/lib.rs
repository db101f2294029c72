//! Cairn's WebGPU backend: runs a model's plan with WGSL compute kernels.
//!
//! Weights are uploaded once (on the first plan that reads them), intermediates stay in GPU
//! buffers between operators and a run reads back once, at the end. Steps without a GPU
//! kernel run on Cairn's CPU kernels with the fewest transfers (see `program.rs`), and every
//! run reports which operators fell back, the dispatches and the bytes moved. The same code
//! runs natively (wgpu on Vulkan, Metal or DX12) and in the browser (wgpu on WebGPU).
//! See docs/adr/0022-webgpu-backend.md.

mod device;
mod kernels;
mod liveness;
mod lower;
mod program;

pub use device::Gpu;
pub use program::RunCounters;

use cairn_core::plan::{InputBinding, Plan, PlanLimits};
use cairn_core::{Graph, Tensor};
use program::{Program, WeightCache};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No GPU adapter: the caller uses the CPU build.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The device was lost (or destroyed): the caller falls back to the CPU build.
    #[error("{0}")]
    DeviceLost(String),
    /// The device rejected work (a validation or out-of-memory error).
    #[error("GPU error: {0}")]
    Device(String),
    #[error("invalid input: {0}")]
    Input(String),
    /// Planning or a CPU-fallback kernel failed.
    #[error(transparent)]
    Engine(#[from] cairn_core::Error),
}

/// What one run did: the device counters plus the program's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuRunStats {
    pub counters: RunCounters,
    /// "node (OpType)" of every step that ran on the CPU kernels.
    pub fallback: Vec<String>,
    /// Bytes uploaded while preparing this run's program (weights new to the device,
    /// parameter blocks): non-zero on the first run of an input shape only.
    pub bytes_uploaded_at_build: u64,
    /// GPU memory the program holds for run-time values (inputs, intermediates, outputs), its
    /// buffers pooled by liveness; and what one buffer per value would take.
    pub value_bytes: u64,
    pub value_bytes_unpooled: u64,
}

/// A model on the GPU: its graph (folded, not CPU-fused) and a program per input shapes.
pub struct GpuSession {
    gpu: Gpu,
    graph: Graph,
    limits: PlanLimits,
    pipelines: kernels::Pipelines,
    weights: WeightCache,
    programs: Vec<(Vec<Vec<usize>>, Arc<Program>)>,
}

/// Programs kept per session (one per recent input shape), as the CPU plan cache does.
const PROGRAM_CACHE: usize = 4;

impl GpuSession {
    /// Takes an imported graph (not yet prepared): folds constants and removes dead nodes
    /// as the CPU path does, but keeps the plain operators (the CPU fusion pass prepacks
    /// weights for the CPU kernels; the GPU lowering fuses on its own).
    pub fn new(gpu: Gpu, graph: Graph) -> Result<GpuSession, GpuError> {
        let (graph, _) = cairn_core::passes::fold::fold_constants(graph)?;
        if graph.runs_eagerly() {
            return Err(GpuError::Engine(cairn_core::Error::Graph(
                "the GPU backend runs planned graphs only; this one has control flow or sequences (hint: use the CPU build)".into(),
            )));
        }
        Ok(GpuSession {
            gpu,
            graph,
            limits: PlanLimits::default(),
            pipelines: Default::default(),
            weights: HashMap::new(),
            programs: Vec::new(),
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Builds (or reuses) the program for these input shapes, uploading its weights: call
    /// at load with a representative input to take the upload off the first run.
    pub fn prepare(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), GpuError> {
        self.program(inputs).map(|_| ())
    }

    fn program(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(Arc<Program>, u64), GpuError> {
        self.gpu.check()?;
        let mut bindings = Vec::new();
        for info in self.graph.runtime_inputs() {
            let t = inputs.get(&info.name).ok_or_else(|| {
                GpuError::Input(format!("missing input '{}' (the model's inputs: {})", info.name, self.input_names().join(", ")))
            })?;
            if t.dtype() != info.dtype {
                return Err(GpuError::Input(format!("input '{}' must be {}, got {}", info.name, info.dtype, t.dtype())));
            }
            bindings.push(InputBinding { name: info.name.clone(), dtype: t.dtype(), shape: t.shape().to_vec(), value: None });
        }
        let key: Vec<Vec<usize>> = bindings.iter().map(|b| b.shape.clone()).collect();
        if let Some(pos) = self.programs.iter().position(|(k, _)| *k == key) {
            let entry = self.programs.remove(pos);
            let program = entry.1.clone();
            self.programs.push(entry);
            return Ok((program, 0));
        }
        let plan = Arc::new(Plan::build(&self.graph, &bindings, &self.limits)?);
        let program = Arc::new(Program::build(&self.gpu, &mut self.pipelines, &mut self.weights, &self.graph, plan)?);
        self.gpu.check()?;
        if self.programs.len() >= PROGRAM_CACHE {
            self.programs.remove(0);
        }
        self.programs.push((key, program.clone()));
        let built = program.built_bytes;
        Ok((program, built))
    }

    fn input_names(&self) -> Vec<String> {
        self.graph.runtime_inputs().map(|i| i.name.clone()).collect()
    }

    /// Runs the model; outputs in the graph's output order.
    pub async fn run(&mut self, inputs: HashMap<String, Tensor>) -> Result<(Vec<(String, Tensor)>, GpuRunStats), GpuError> {
        let (program, built) = self.program(&inputs)?;
        let (outputs, counters) = program.run(&self.gpu, &self.graph, &inputs).await?;
        debug_assert_eq!(counters.dispatches, program.dispatches);
        let stats = GpuRunStats {
            counters,
            fallback: program.fallback.clone(),
            bytes_uploaded_at_build: built,
            value_bytes: program.value_bytes,
            value_bytes_unpooled: program.value_bytes_unpooled,
        };
        Ok((outputs, stats))
    }
}
