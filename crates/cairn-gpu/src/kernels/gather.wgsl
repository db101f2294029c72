// Gather of f32 data along one axis by integer indices (i32 on the GPU: int64 indices are
// narrowed, and checked against the axis, when they are uploaded; see program.rs). Negative
// indices count from the end. out[o, j, e] = data[o, idx[j], e] with o over the axes before
// `axis`, j over the indices and e over the axes after it. Params: 0 count, 1 index count,
// 2 inner (elements after the axis), 3 axis size.
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    let inner = pu(2u);
    let n_idx = pu(1u);
    let dim = pi(3u);
    let e = i % inner;
    let j = (i / inner) % n_idx;
    let o = i / (inner * n_idx);
    var k = idx[j];
    if (k < 0) { k = k + dim; }
    out[i] = data[(o * u32(dim) + u32(k)) * inner + e];
}
