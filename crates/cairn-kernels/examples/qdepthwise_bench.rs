//! Times the int8 depthwise kernel against the f32 one on MobileNetV2-1.0's 17
//! depthwise layers (3x3, ReLU6; u8 in and out for int8), per ISA, one thread. The two
//! are timed alternately so machine load hits both alike; minimums are printed.
//!
//!   cargo run --release -p cairn-kernels --example qdepthwise_bench
//!   (wasm: build with --target wasm32-wasip1 and run under node tools/wasi-run.mjs)

use cairn_kernels::depthwise::{depthwise_conv2d_on, ConvGeometry};
use cairn_kernels::qdepthwise::{qdepthwise_conv2d_packed_on, QDwFilters};
use cairn_kernels::qgemm::{QEpilogue, QOut, Q8};
use cairn_kernels::{Activation, Isa};
use std::time::Instant;

/// (channels, input side, stride, layers of this shape in MobileNetV2).
const LAYERS: &[(usize, usize, usize, usize)] = &[
    (32, 112, 1, 1),
    (96, 112, 2, 1),
    (144, 56, 1, 1),
    (144, 56, 2, 1),
    (192, 28, 1, 2),
    (192, 28, 2, 1),
    (384, 14, 1, 4),
    (576, 14, 1, 2),
    (576, 14, 2, 1),
    (960, 7, 1, 3),
];

fn main() {
    // One thread (read by rayon when its pool starts, at the first kernel call).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let reps: usize = std::env::args().nth(1).map_or(15, |r| r.parse().expect("REPS must be a number"));
    let isas = Isa::all_available();
    println!("layer (channels x side / stride) x count; f32 on {}; int8 per ISA: ms per layer", Isa::current().name());
    // Two passes, the second printed: V8 runs a wasm function in its baseline tier until
    // the optimizing compile lands, which under load can take a whole first pass.
    for pass in 0..2 {
        let mut totals = vec![0.0f64; 1 + isas.len()];
        // QDW_LAYER=<channels> times only the layers with that many channels (for perf).
        let only: Option<usize> = std::env::var("QDW_LAYER").ok().and_then(|v| v.parse().ok());
        for &(ch, side, s, count) in LAYERS.iter().filter(|l| only.is_none_or(|c| c == l.0)) {
            let out = (side + 2 - 3) / s + 1;
            let g = ConvGeometry { ih: side, iw: side, kh: 3, kw: 3, sh: s, sw: s, dh: 1, dw: 1, pt: 1, pl: 1, oh: out, ow: out };
            let xf: Vec<f32> = (0..ch * side * side).map(|i| (i % 251) as f32 / 251.0).collect();
            let wf: Vec<f32> = (0..ch * 9).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
            let bias: Vec<f32> = (0..ch).map(|i| (i % 7) as f32 / 7.0).collect();
            let xq: Vec<u8> = (0..ch * side * side).map(|i| (i * 7 % 251) as u8).collect();
            let wq = QDwFilters::new((0..ch * 9).map(|i| (i * 37 % 255) as i16 - 127).collect(), ch, 3, 3);
            let scale: Vec<f32> = (0..ch).map(|i| 1e-4 * (1 + i % 5) as f32).collect();
            let epi = QEpilogue {
                scale: &scale,
                bias: Some(&bias),
                acc_bias: None,
                activation: Activation::Clip { min: 0.0, max: 6.0 },
                out_scale: 6.0 / 255.0,
                out_zero: 0,
            };
            let (mut yf, mut yq) = (vec![0f32; ch * out * out], vec![0u8; ch * out * out]);
            let mut best = vec![f64::MAX; 1 + isas.len()];
            for _ in 0..reps {
                let t = Instant::now();
                depthwise_conv2d_on(Isa::current(), &g, ch, &xf, &wf, Some(&bias), Activation::Clip { min: 0.0, max: 6.0 }, &mut yf);
                best[0] = best[0].min(t.elapsed().as_secs_f64());
                for (i, &isa) in isas.iter().enumerate() {
                    let t = Instant::now();
                    qdepthwise_conv2d_packed_on(isa, &g, ch, Q8::U8(&xq), 3, &wq, &epi, QOut::U8(&mut yq));
                    best[1 + i] = best[1 + i].min(t.elapsed().as_secs_f64());
                }
            }
            let cells: Vec<String> = best.iter().map(|t| format!("{:7.3}", t * 1e3)).collect();
            if pass == 0 {
                continue;
            }
            println!(
                "{ch:>4} x {side:>3} / {s} x{count}  f32 {}  int8 {}",
                cells[0],
                isas.iter().zip(&cells[1..]).map(|(i, c)| format!("{}: {c}", i.name())).collect::<Vec<_>>().join("  ")
            );
            for (t, b) in totals.iter_mut().zip(&best) {
                *t += b * count as f64;
            }
        }
        if pass == 0 {
            continue;
        }
        println!("MobileNetV2 depthwise total: f32 {:.3} ms", totals[0] * 1e3);
        for (i, &isa) in isas.iter().enumerate() {
            println!("  int8 {:<24} {:.3} ms = {:.2}x f32", isa.name(), totals[1 + i] * 1e3, totals[1 + i] / totals[0]);
        }
    }
}
