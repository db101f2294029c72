// Shared by every Cairn kernel: the parameter block and the activations fused into epilogues.
// Parameters are 64 u32 words (floats bitcast), one uniform block per dispatch, fixed per plan.
struct Params { v: array<vec4<u32>, 16> }
@group(0) @binding(0) var<uniform> prm: Params;

fn pu(i: u32) -> u32 { return prm.v[i / 4u][i % 4u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(pu(i)); }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }

// Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7): WGSL has no erf.
fn erf_approx(x: f32) -> f32 {
    let ax = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * ax);
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-ax * ax);
    return select(-y, y, x >= 0.0);
}

// Tanh through exp with the argument clamped: some drivers' tanh returns NaN for large |x|.
fn tanh_safe(x: f32) -> f32 {
    let c = clamp(x, -15.0, 15.0);
    let e = exp(2.0 * c);
    return (e - 1.0) / (e + 1.0);
}

// Activation codes (kept in step with `Act` in lower.rs).
fn act(x: f32, code: u32, a: f32, b: f32) -> f32 {
    switch code {
        case 0u: { return x; }
        case 1u: { return max(x, 0.0); }
        case 2u: { return min(max(x, a), b); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        case 4u: { return max(0.0, min(1.0, a * x + b)); }
        case 5u: { return x * max(0.0, min(1.0, x / 6.0 + 0.5)); }
        case 6u: { return tanh_safe(x); }
        case 7u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
        case 8u: { return erf_approx(x); }
        case 9u: { return exp(x); }
        case 10u: { return sqrt(x); }
        case 11u: { return -x; }
        case 12u: { return abs(x); }
        case 13u: { return select(a * x, x, x >= 0.0); }
        case 14u: { return 1.0 / x; }
        case 15u: { return log(x); }
        case 16u: { return 0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
        case 17u: { return select(log(1.0 + exp(x)), x, x > 20.0); }
        default: { return x; }
    }
}

// Flat invocation index of a 1-D kernel dispatched as (x, y) groups of 64 (x <= 65535).
fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }
