//! Nanoseconds per element of the slice math (exp, erf, softmax rows of 128), natively or
//! as wasm32-wasip1 under Node (`tools/wasi-run.mjs`), to check that the loops vectorize.
use cairn_kernels::vmath::{erf_in_place, exp_in_place, softmax_rows};
use std::time::Instant;

fn main() {
    let n = 1 << 20;
    let base: Vec<f32> = (0..n).map(|i| ((i * 7919 % 2000) as f32 - 1000.0) / 250.0).collect();
    let time = |name: &str, f: &dyn Fn(&mut [f32])| {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let mut v = base.clone();
            let t = Instant::now();
            f(&mut v);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:<10} {:6.2} ns/element", best * 1e9 / n as f64);
    };
    time("exp", &|v| exp_in_place(v));
    time("erf", &|v| erf_in_place(v));
    time("softmax", &|v| softmax_rows(v, 128));
}
