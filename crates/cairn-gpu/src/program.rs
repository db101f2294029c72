//! A lowered plan bound to GPU buffers, and its execution.
//!
//! Built once per input shapes: every GPU-resident value gets its own buffer (values are
//! written once, so aliases and reuse across runs are safe), weights come from the
//! session's cache (uploaded once), and every dispatch's parameter block and bind group are
//! made here, so a run only writes the inputs, records the dispatches and reads back.
//! CPU fallbacks download exactly the GPU values they read (each at most once per run) and
//! upload exactly the outputs a later GPU kernel reads.

use crate::device::Gpu;
use crate::kernels::{Kernel, Pipelines};
use crate::liveness::{self, Access};
use crate::lower::{gpu_bytes, lower, IndexCheck, Item, Src};
use crate::GpuError;
use cairn_core::plan::{Location, Plan};
use cairn_core::{DType, Graph, Tensor, TensorData, TensorMut};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

enum Cmd {
    Dispatch { pipeline: Arc<wgpu::ComputePipeline>, bind_group: wgpu::BindGroup, groups: [u32; 3] },
    Cpu { step: usize, download: Vec<usize>, upload: Vec<usize> },
}

/// Weights on the device, by value name (or derived key): shared by every plan of a session.
pub(crate) type WeightCache = HashMap<String, Arc<wgpu::Buffer>>;

pub(crate) struct Program {
    plan: Arc<Plan>,
    cmds: Vec<Cmd>,
    /// The buffer of each GPU-resident (or GPU-read) run-time value; aliases share one.
    buffers: Vec<Option<Arc<wgpu::Buffer>>>,
    /// True for values computed on the GPU (their host copy needs a read-back).
    on_gpu: Vec<bool>,
    pub fallback: Vec<String>,
    /// Gather indices to check on upload, by the uploaded value (the root of any views).
    index_checks: Vec<IndexCheck>,
    pub dispatches: usize,
    /// Bytes this program uploaded when built (new weights and parameter blocks).
    pub built_bytes: u64,
    /// GPU memory for run-time values (inputs, intermediates, outputs; weights not counted):
    /// the pooled buffers this program holds, and what one buffer per value would take.
    pub value_bytes: u64,
    pub value_bytes_unpooled: u64,
}

/// What one run did on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunCounters {
    pub dispatches: usize,
    pub bytes_uploaded: u64,
    pub bytes_read_back: u64,
    /// Submissions that waited for a read-back (1 when nothing fell back to the CPU).
    pub read_backs: usize,
}

/// The buffer of every GPU value (views share their root's), pooled by liveness (see
/// liveness.rs), with the bytes one buffer per value would take and the bytes the pool takes.
fn pooled_buffers(
    device: &wgpu::Device,
    plan: &Plan,
    items: &[Item],
    alias_of: &[usize],
    needs: &[Option<u64>],
) -> (Vec<Option<Arc<wgpu::Buffer>>>, u64, u64) {
    let nv = plan.values.len();
    let root = |v: usize| alias_of[v];
    let mut pinned = vec![false; nv];
    for (_, v) in &plan.inputs {
        pinned[root(*v)] = true;
    }
    let mut to_end = vec![false; nv];
    for &v in &plan.outputs {
        to_end[root(v)] = true;
    }
    let mut commands = Vec::new();
    for item in items {
        match item {
            Item::Gpu(call) => {
                let reads = call.reads.iter().filter_map(|r| if let Src::Value(v) = r { Some(root(*v)) } else { None });
                commands.push(Access { writes: vec![root(call.out)], reads: reads.filter(|&v| needs[v].is_some()).collect() });
            }
            Item::Alias { .. } => {}
            Item::Cpu(step) => {
                let s = &plan.steps[*step];
                for &o in &s.outputs {
                    pinned[root(o)] = true; // uploaded with write_buffer
                }
                let reads = s.inputs.iter().flatten().map(|&v| root(v)).filter(|&v| needs[v].is_some()).collect();
                commands.push(Access { writes: Vec::new(), reads });
            }
        }
    }
    let slots = liveness::assign(&commands, needs, &pinned, &to_end);
    let made: Vec<Arc<wgpu::Buffer>> =
        slots.slot_bytes.iter().enumerate().map(|(k, &b)| Arc::new(storage(device, &format!("cairn value slot {k}"), b))).collect();
    let buffers = (0..nv).map(|v| slots.slot_of[root(v)].map(|k| made[k].clone())).collect();
    let unpooled = needs.iter().flatten().map(|&b| padded(b)).sum();
    let pooled = slots.slot_bytes.iter().map(|&b| padded(b)).sum();
    (buffers, unpooled, pooled)
}

/// A storage buffer's size for `bytes`: binding sizes must be non-zero multiples of 4.
fn padded(bytes: u64) -> u64 {
    bytes.max(16).next_multiple_of(4)
}

fn storage(device: &wgpu::Device, label: &str, bytes: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        // Binding sizes must be non-zero and multiples of 4.
        size: padded(bytes),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl Program {
    pub fn build(
        gpu: &Gpu,
        pipelines: &mut Pipelines,
        weights: &mut WeightCache,
        graph: &Graph,
        plan: Arc<Plan>,
    ) -> Result<Program, GpuError> {
        let device = &gpu.device;
        let max_binding = device.limits().max_storage_buffer_binding_size;
        let lowered = lower(graph, &plan, max_binding as u64);
        let nv = plan.values.len();
        let mut built_bytes = 0u64;

        // Which values the GPU computes, and which it reads.
        let mut on_gpu = vec![false; nv];
        let mut gpu_reads = vec![false; nv];
        let mut alias_of: Vec<usize> = (0..nv).collect();
        for item in &lowered.items {
            match item {
                Item::Gpu(call) => {
                    on_gpu[call.out] = true;
                    for r in &call.reads {
                        if let Src::Value(v) = r {
                            gpu_reads[*v] = true;
                        }
                    }
                }
                Item::Alias { out, of } => {
                    on_gpu[*out] = true;
                    gpu_reads[*of] = true;
                    alias_of[*out] = alias_of[*of];
                }
                Item::Cpu(_) => {}
            }
        }
        let is_const = |v: usize| matches!(plan.values[v].location, Location::Const(_));
        let needs: Vec<Option<u64>> = (0..nv)
            .map(|v| (alias_of[v] == v && (on_gpu[v] || gpu_reads[v]) && !is_const(v)).then(|| gpu_bytes(plan.values[v].numel())))
            .collect();
        let (buffers, unpooled_bytes, pooled_bytes) = pooled_buffers(device, &plan, &lowered.items, &alias_of, &needs);
        let mut weight_bytes = 0u64;
        let mut weight = |key: &str, t: &Tensor| -> Result<Arc<wgpu::Buffer>, GpuError> {
            if let Some(b) = weights.get(key) {
                return Ok(b.clone());
            }
            let mut bytes = gpu_layout(t, key)?.into_owned();
            weight_bytes += bytes.len() as u64;
            bytes.resize(bytes.len().max(16).next_multiple_of(4), 0);
            let buffer = Arc::new(device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(key),
                contents: &bytes,
                usage: wgpu::BufferUsages::STORAGE,
            }));
            weights.insert(key.to_string(), buffer.clone());
            Ok(buffer)
        };
        let dummy = storage(device, "cairn unused binding", 16);

        let mut cmds = Vec::new();
        let mut downloaded = vec![false; nv];
        let mut dispatches = 0;
        for item in lowered.items {
            match item {
                Item::Gpu(call) => {
                    let mut bound: Vec<Arc<wgpu::Buffer>> = Vec::new();
                    let mut dummy_at = Vec::new();
                    for (k, r) in call.reads.iter().enumerate() {
                        match r {
                            Src::Value(v) => match &plan.values[*v].location {
                                Location::Const(t) => bound.push(weight(&plan.values[*v].name, t)?),
                                Location::Arena(_) => bound.push(buffers[*v].clone().expect("GPU-read values have buffers")),
                            },
                            Src::Derived(key, t) => bound.push(weight(key, t)?),
                            Src::Dummy => dummy_at.push(k),
                        }
                    }
                    let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("cairn params"),
                        contents: bytemuck::cast_slice(&call.params),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    built_bytes += (call.params.len() * 4) as u64;
                    let pipeline = pipelines.get(device, call.kernel);
                    let out = buffers[call.out].clone().expect("GPU outputs have buffers");
                    let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
                    let mut it = bound.iter();
                    for k in 0..call.reads.len() {
                        let buf = if dummy_at.contains(&k) { &dummy } else { it.next().expect("one buffer per bound read") };
                        entries.push(wgpu::BindGroupEntry { binding: k as u32 + 1, resource: buf.as_entire_binding() });
                    }
                    entries.push(wgpu::BindGroupEntry { binding: call.reads.len() as u32 + 1, resource: out.as_entire_binding() });
                    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(kernel_label(call.kernel)),
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    });
                    dispatches += 1;
                    cmds.push(Cmd::Dispatch { pipeline, bind_group, groups: call.groups });
                }
                Item::Alias { .. } => {}
                Item::Cpu(step) => {
                    let s = &plan.steps[step];
                    let download: Vec<usize> = s.inputs.iter().flatten().copied().filter(|&v| on_gpu[v] && !downloaded[v]).collect();
                    for &v in &download {
                        downloaded[v] = true;
                    }
                    let upload = s.outputs.iter().copied().filter(|&o| gpu_reads[o]).collect();
                    cmds.push(Cmd::Cpu { step, download, upload });
                }
            }
        }
        built_bytes += weight_bytes;
        let index_checks = lowered.index_checks.into_iter().map(|c| IndexCheck { value: alias_of[c.value], ..c }).collect();
        Ok(Program {
            plan,
            cmds,
            buffers,
            on_gpu,
            fallback: lowered.fallback,
            index_checks,
            dispatches,
            built_bytes,
            value_bytes: pooled_bytes,
            value_bytes_unpooled: unpooled_bytes,
        })
    }

    /// Runs the program: outputs in graph order.
    pub async fn run(
        &self,
        gpu: &Gpu,
        graph: &Graph,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<(Vec<(String, Tensor)>, RunCounters), GpuError> {
        gpu.check()?;
        let device = &gpu.device;
        let plan = &self.plan;
        let mut counters = RunCounters::default();
        let mut host: HashMap<usize, Tensor> = HashMap::new();
        for (name, v) in &plan.inputs {
            let t = inputs.get(name).ok_or_else(|| GpuError::Input(format!("missing input '{name}'")))?;
            if self.buffers[*v].is_some() {
                self.upload(gpu, *v, t, &mut counters)?;
            }
            host.insert(*v, t.clone());
        }
        let new_encoder = || device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cairn run") });
        let mut encoder = new_encoder();
        let mut k = 0;
        while k < self.cmds.len() {
            match &self.cmds[k] {
                Cmd::Dispatch { .. } => {
                    // One compute pass for each run of consecutive dispatches.
                    let mut pass =
                        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("cairn"), timestamp_writes: None });
                    while let Some(Cmd::Dispatch { pipeline, bind_group, groups }) = self.cmds.get(k) {
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, bind_group, &[]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        counters.dispatches += 1;
                        k += 1;
                    }
                }
                Cmd::Cpu { step, download, upload } => {
                    if !download.is_empty() {
                        let done = std::mem::replace(&mut encoder, new_encoder());
                        for (v, t) in self.read_back(gpu, done, download, &mut counters).await? {
                            host.insert(v, t);
                        }
                    }
                    let s = &plan.steps[*step];
                    let node = &graph.nodes[s.node];
                    let ins: Vec<Option<cairn_core::TensorRef>> = s
                        .inputs
                        .iter()
                        .map(|i| {
                            i.map(|v| match &plan.values[v].location {
                                Location::Const(t) => t.view(),
                                Location::Arena(_) => host.get(&v).expect("read back or computed on the host before use").view(),
                            })
                        })
                        .collect();
                    let mut outs: Vec<Tensor> = s
                        .outputs
                        .iter()
                        .map(|&o| Tensor::zeros(plan.values[o].dtype, plan.values[o].shape.clone()))
                        .collect::<Result<_, _>>()?;
                    let mut views: Vec<TensorMut> = outs.iter_mut().map(|t| t.view_mut()).collect();
                    node.op.run(&ins, &mut views).map_err(|e| e.at_node(&node.name, &node.op_type))?;
                    drop(views);
                    drop(ins);
                    for (&o, t) in s.outputs.iter().zip(outs) {
                        if upload.contains(&o) {
                            self.upload(gpu, o, &t, &mut counters)?;
                        }
                        host.insert(o, t);
                    }
                    k += 1;
                }
            }
        }
        // One read-back for every output the GPU computed.
        let pending: Vec<usize> = plan.outputs.iter().copied().filter(|v| self.on_gpu[*v] && !host.contains_key(v)).collect();
        let mut unique = pending.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            gpu.queue.submit([encoder.finish()]);
        } else {
            for (v, t) in self.read_back(gpu, encoder, &unique, &mut counters).await? {
                host.insert(v, t);
            }
        }
        gpu.check()?;
        let outputs = plan
            .outputs
            .iter()
            .zip(&graph.outputs)
            .map(|(&v, info)| {
                let t = match &plan.values[v].location {
                    Location::Const(t) => (**t).clone(),
                    Location::Arena(_) => host.get(&v).expect("every output is computed").clone(),
                };
                (info.name.clone(), t)
            })
            .collect();
        Ok((outputs, counters))
    }

    /// Writes a host value into its buffer in the GPU layout, after checking any Gather
    /// indices it holds (the kernel itself cannot fail).
    fn upload(&self, gpu: &Gpu, v: usize, t: &Tensor, counters: &mut RunCounters) -> Result<(), GpuError> {
        for check in self.index_checks.iter().filter(|c| c.value == v) {
            let bad = match t.data() {
                TensorData::I64(d) => d.iter().copied().find(|i| !(-check.dim..check.dim).contains(i)),
                TensorData::I32(d) => d.iter().map(|&i| i as i64).find(|i| !(-check.dim..check.dim).contains(i)),
                _ => None,
            };
            if let Some(i) = bad {
                return Err(GpuError::Input(format!(
                    "{}: index {i} in '{}' is out of range for an axis of size {}",
                    check.node, self.plan.values[v].name, check.dim
                )));
            }
        }
        let bytes = gpu_layout(t, &self.plan.values[v].name)?;
        let buf = self.buffers[v].as_ref().expect("GPU-read values have buffers");
        gpu.queue.write_buffer(buf, 0, &bytes);
        counters.bytes_uploaded += bytes.len() as u64;
        Ok(())
    }

    /// Submits `encoder` plus copies of `values` into one staging buffer and reads them back.
    async fn read_back(
        &self,
        gpu: &Gpu,
        mut encoder: wgpu::CommandEncoder,
        values: &[usize],
        counters: &mut RunCounters,
    ) -> Result<Vec<(usize, Tensor)>, GpuError> {
        let mut offsets = Vec::with_capacity(values.len());
        let mut total = 0u64;
        for &v in values {
            offsets.push(total);
            total += gpu_bytes(self.plan.values[v].numel());
        }
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cairn read-back"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (&v, &off) in values.iter().zip(&offsets) {
            let bytes = gpu_bytes(self.plan.values[v].numel());
            if bytes > 0 {
                let buf = self.buffers[v].as_ref().expect("GPU values have buffers");
                encoder.copy_buffer_to_buffer(buf, 0, &staging, off, bytes);
            }
        }
        let data = gpu.read(encoder, &staging).await?;
        counters.read_backs += 1;
        counters.bytes_read_back += total;
        values
            .iter()
            .zip(&offsets)
            .map(|(&v, &off)| {
                let pv = &self.plan.values[v];
                let bytes = &data[off as usize..(off + gpu_bytes(pv.numel())) as usize];
                let t = match pv.dtype {
                    DType::F32 => Tensor::from_f32(pv.shape.clone(), bytemuck::pod_collect_to_vec(bytes))?,
                    DType::I32 => Tensor::new(pv.shape.clone(), TensorData::I32(bytemuck::pod_collect_to_vec(bytes)))?,
                    DType::I64 => {
                        let narrow: Vec<i32> = bytemuck::pod_collect_to_vec(bytes);
                        Tensor::from_i64(pv.shape.clone(), narrow.into_iter().map(i64::from).collect())?
                    }
                    other => return Err(GpuError::Device(format!("a {other} value cannot be read back from the GPU"))),
                };
                Ok((v, t))
            })
            .collect()
    }
}

fn kernel_label(k: Kernel) -> &'static str {
    match k {
        Kernel::Unary => "unary",
        Kernel::Binary => "binary",
        Kernel::Copy => "copy",
        Kernel::Gemm => "gemm",
        Kernel::Conv => "conv",
        Kernel::Depthwise => "depthwise",
        Kernel::Pool => "pool",
        Kernel::ReduceRows => "reduce_rows",
        Kernel::Gather => "gather",
        Kernel::IntToF32 => "int_to_f32",
        Kernel::Reduce => "reduce",
        Kernel::Pad => "pad",
        Kernel::Resize => "resize",
    }
}

/// A tensor's bytes as the GPU holds them: f32 and i32 as they are, int64 narrowed to i32
/// (every integer the GPU kernels read is an index or a mask; ADR 0022), with a clear error
/// for a value that does not fit.
fn gpu_layout<'t>(t: &'t Tensor, name: &str) -> Result<Cow<'t, [u8]>, GpuError> {
    match t.data() {
        TensorData::I64(d) => {
            let narrow: Vec<i32> = d
                .iter()
                .enumerate()
                .map(|(k, &x)| {
                    i32::try_from(x).map_err(|_| {
                        GpuError::Input(format!(
                            "'{name}' holds {x} at element {k}, which does not fit the GPU's 32-bit integers (hint: use the CPU build for such values)"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Cow::Owned(bytemuck::cast_slice(&narrow).to_vec()))
        }
        _ => Ok(Cow::Borrowed(t.bytes())),
    }
}
