//! Optional (`cairn serve --calibrate`): picks how many rows a batch may stack by timing
//! batch sizes 1, 2, 4, ... up to the configured maximum on zero inputs, once at load, and
//! keeping the fastest per row. It measures an idle machine, which is not the machine under
//! load: on this repo's 2 cores MobileNetV2 runs fastest per row at batch 1 when idle
//! (8.6 ms/row vs 11.1 at batch 8), yet under 64 concurrent clients batches of 8 served
//! 1.85x more requests/s than batches of 1 (bench/load/run.sh), since each batch pays the
//! per-run costs (thread wake-ups, synchronization per operator) once for 8 rows while the
//! cores are contended. So it is off by default; it helps where a large batch's working
//! set falls out of the cache even under load.

use cairn_core::{Dim, Graph, Session, Tensor, ValueInfo};
use std::collections::HashMap;
use std::time::Instant;

/// A larger batch must beat the best smaller one per row by this factor to be chosen.
const MIN_GAIN: f64 = 0.9;
/// Timed runs per batch size (the minimum counts), after one warm-up run.
const RUNS: usize = 3;

/// Milliseconds per row at each measured batch size, and the size chosen.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub chosen: usize,
    pub ms_per_row: Vec<(usize, f64)>,
}

/// Measures on a throwaway session (so the large arenas it plans are freed afterwards).
/// `None` when the inputs have free dims past the first (their typical sizes are unknown).
pub fn calibrate(graph: &Graph, inputs: &[ValueInfo], max_batch: usize) -> Option<Calibration> {
    let rest: Vec<Vec<usize>> = inputs
        .iter()
        .map(|i| {
            i.dims.as_ref()?.iter().skip(1).map(|d| if let Dim::Known(n) = d { Some(*n) } else { None }).collect::<Option<Vec<usize>>>()
        })
        .collect::<Option<_>>()?;
    let session = Session::new(graph.clone());
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |b| Some(b * 2)).take_while(|&b| b < max_batch).collect();
    sizes.push(max_batch);
    let mut measured = Vec::new();
    let mut best = (1usize, f64::INFINITY);
    for b in sizes {
        let feed: HashMap<String, Tensor> = inputs
            .iter()
            .zip(&rest)
            .map(|(i, r)| Tensor::zeros(i.dtype, std::iter::once(b).chain(r.iter().copied()).collect()).map(|t| (i.name.clone(), t)))
            .collect::<Result<_, _>>()
            .ok()?;
        session.run(feed.clone()).ok()?;
        let mut fastest = f64::INFINITY;
        for _ in 0..RUNS {
            let t = Instant::now();
            session.run(feed.clone()).ok()?;
            fastest = fastest.min(t.elapsed().as_secs_f64() * 1e3);
        }
        let per_row = fastest / b as f64;
        measured.push((b, per_row));
        if per_row < best.1 * MIN_GAIN || best.1.is_infinite() {
            best = (b, per_row);
        } else if per_row > best.1 * 1.5 {
            break; // growing further only gets worse
        }
    }
    Some(Calibration { chosen: best.0, ms_per_row: measured })
}
