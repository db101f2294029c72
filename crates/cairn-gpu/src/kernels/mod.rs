//! The WGSL kernels and their compiled pipelines (built once per device, on first use).
//!
//! Every kernel is `common.wgsl` (parameter block, fused activations) plus its own source;
//! the two tiled matrix kernels share `tiled.wgsl` and differ in how they load and store.

use std::collections::HashMap;
use std::sync::Arc;

const COMMON: &str = include_str!("common.wgsl");
const TILED: &str = include_str!("tiled.wgsl");

/// One compute kernel. Bindings: 0 the parameter block, then the reads, then the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Unary,
    Binary,
    Copy,
    Gemm,
    Conv,
    Depthwise,
    Pool,
    ReduceRows,
    Gather,
    IntToF32,
    Reduce,
    Pad,
    Resize,
}

/// Invocations per workgroup of the 1-D kernels (all but the tiled ones and ReduceRows).
pub const GROUP_1D: u32 = 64;
/// The output tile of the tiled kernels (gemm, conv): 64 x 64 per workgroup.
pub const TILE: u32 = 64;

impl Kernel {
    fn source(self) -> String {
        let own = match self {
            Kernel::Unary => include_str!("unary.wgsl").to_string(),
            Kernel::Binary => include_str!("binary.wgsl").to_string(),
            Kernel::Copy => include_str!("copy.wgsl").to_string(),
            Kernel::Gemm => format!("{}\n{TILED}", include_str!("gemm_io.wgsl")),
            Kernel::Conv => format!("{}\n{TILED}", include_str!("conv_io.wgsl")),
            Kernel::Depthwise => include_str!("depthwise.wgsl").to_string(),
            Kernel::Pool => include_str!("pool.wgsl").to_string(),
            Kernel::ReduceRows => include_str!("reduce_rows.wgsl").to_string(),
            Kernel::Gather => include_str!("gather.wgsl").to_string(),
            Kernel::IntToF32 => include_str!("int_to_f32.wgsl").to_string(),
            Kernel::Reduce => include_str!("reduce.wgsl").to_string(),
            Kernel::Pad => include_str!("pad.wgsl").to_string(),
            Kernel::Resize => include_str!("resize.wgsl").to_string(),
        };
        format!("{COMMON}\n{own}")
    }
}

/// Compiled pipelines by kernel.
#[derive(Default)]
pub struct Pipelines {
    built: HashMap<Kernel, Arc<wgpu::ComputePipeline>>,
}

impl Pipelines {
    pub fn get(&mut self, device: &wgpu::Device, kernel: Kernel) -> Arc<wgpu::ComputePipeline> {
        self.built
            .entry(kernel)
            .or_insert_with(|| {
                let label = format!("cairn {kernel:?}");
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
                });
                Arc::new(device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                }))
            })
            .clone()
    }
}

/// Workgroups for `n` invocations of a 1-D kernel: (x, y) with x <= 65535, since the
/// per-dimension limit is 65535 and large activations exceed it.
pub fn groups_1d(n: usize) -> [u32; 3] {
    rows_groups(n.div_ceil(GROUP_1D as usize))
}

/// `n` workgroups laid out as (x, y) with x <= 65535 (the kernels flatten them back).
pub fn rows_groups(n: usize) -> [u32; 3] {
    let n = n.max(1) as u32;
    if n <= 65535 {
        [n, 1, 1]
    } else {
        [65535, n.div_ceil(65535), 1]
    }
}
