// Resize (nearest or linear) of the last two axes through per-axis tap tables made on the host
// with the CPU engine's coordinate rules: per output row and column, two source indices and
// their weights (nearest: one tap of weight 1, the second of weight 0). Summed as the CPU
// engine's separable passes do: rows first, then columns. Params: 0 count, 1 H, 2 W, 3 OH, 4 OW.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<f32>;
@group(0) @binding(3) var<storage, read> cols: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    let h = pu(1u); let w = pu(2u); let oh = pu(3u); let ow = pu(4u);
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let base = (i / (ow * oh)) * h * w;
    let y0 = u32(rows[4u * oy]); let y1 = u32(rows[4u * oy + 1u]);
    let wy0 = rows[4u * oy + 2u]; let wy1 = rows[4u * oy + 3u];
    let x0 = u32(cols[4u * ox]); let x1 = u32(cols[4u * ox + 1u]);
    let wx0 = cols[4u * ox + 2u]; let wx1 = cols[4u * ox + 3u];
    let c0 = wy0 * x[base + y0 * w + x0] + wy1 * x[base + y1 * w + x0];
    let c1 = wy0 * x[base + y0 * w + x1] + wy1 * x[base + y1 * w + x1];
    out[i] = wx0 * c0 + wx1 * c1;
}
