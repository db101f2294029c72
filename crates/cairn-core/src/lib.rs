//! Cairn's engine core: tensors, the graph IR, operators, shape inference,
//! graph passes, the memory planner and the executor.
//!
//! The IR ([`Graph`]) is the one currency between importers, passes, the
//! executor and bundles: nothing format-specific crosses this crate's API.

// Tensors are read and written as little-endian bytes (ONNX raw data, safetensors
// shards, wasm memory); a big-endian target would need byte swaps everywhere.
#[cfg(target_endian = "big")]
compile_error!("Cairn supports little-endian targets only");

mod attrs;
mod clock;
mod dtype;
pub mod eager;
mod error;
pub mod exec;
mod graph;
pub mod narrow;
mod op;
pub mod ops;
pub mod passes;
pub mod plan;
mod registry;
mod run_order;
mod strings;
mod tensor;
#[cfg(test)]
mod testutil;
mod value;
pub mod width;

pub use attrs::{Attr, Attrs};
pub use clock::install_profile_clock;
pub use dtype::DType;
pub use error::{Error, Result};
pub use exec::{RunStats, Session, StepTime};
pub use graph::{Dim, Graph, Node, NodeSpec, Subgraph, ValueInfo, MAX_SUBGRAPH_DEPTH};
pub use op::{normalize_axis, required, Fact, Op, OpBuilder, OpContext};
pub use registry::{Registry, MAX_OPSET, MIN_OPSET, ONNX_DOMAIN, PER_OP_BELOW_OPSET};
pub use run_order::run_order;
pub use strings::{eval_interned, StringTensor};
pub use tensor::{checked_numel, DataMut, DataRef, Tensor, TensorData, TensorMut, TensorRef};
pub use value::{Sequence, Value};
pub use width::{narrow, WidthPlan, WidthSessions};

/// The instruction set the kernels use in this process (e.g. "x86_64-avx2-fma").
pub fn kernel_isa() -> &'static str {
    cairn_kernels::Isa::current().name()
}
