//! The fuzz targets' code (fuzz/bodies.rs) under `cargo test`, without a sanitizer build:
//!
//! 1. Replay: the seeds (fuzz/seeds), the crashes fuzzing found and that were fixed
//!    (fuzz/regressions: move a crash there with its fix) and any crash artifacts of a local
//!    run (fuzz/artifacts, not committed). A crash fixed once stays fixed in every run.
//! 2. Bounded mutational fuzzing: each target gets new inputs made from its corpus by
//!    byte-level mutations (flips, boundary values, inserted/deleted/duplicated ranges,
//!    truncation, splicing two inputs) for a few seconds. It is blind (no coverage feedback),
//!    so it finds less per execution than libFuzzer; it costs no extra build, so it runs in
//!    every suite. The coverage-guided fuzzing (cargo-fuzz, a sanitizer build) is
//!    `scripts/test-extra.sh fuzz`.
//!
//! Fuzzing knobs: CAIRN_FUZZ_SECONDS (per target, default 3), CAIRN_FUZZ_SEED (default: from
//! the clock, printed so a failure can be replayed). Exec counts go to stderr and to
//! target/fuzz-mutation.txt, which scripts/test.sh prints.

#[path = "../../../fuzz/bodies.rs"]
mod bodies;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fuzz_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every committed input of `target` (and a local run's crash artifacts), in a stable order.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut inputs = Vec::new();
    for dir in ["seeds", "regressions", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_root().join(dir).join(target)) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.expect("a readable corpus directory").path()).collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            inputs.push((file, bytes));
        }
    }
    assert!(!inputs.is_empty(), "no corpus found for fuzz target {target} under {}", fuzz_root().display());
    inputs
}

fn replay(target: &str, run: fn(&[u8])) {
    for (file, bytes) in corpus(target) {
        // A panic names the input, so the failure points at the file to debug.
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "fuzz target {target} panicked on {}", file.display());
    }
}

/// Values at the edges of the integer types: where length and offset checks go wrong.
const BOUNDARY_U32: [u32; 8] = [0, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// One to four random byte-level mutations of `input` (splicing may take from `other`).
fn mutate(rng: &mut fastrand::Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = data.len();
        match rng.u8(0..8) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                data[i] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let i = rng.usize(..len);
                data[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.usize(..5)];
            }
            2 if len >= 4 => {
                let i = rng.usize(..=len - 4);
                let v = BOUNDARY_U32[rng.usize(..BOUNDARY_U32.len())];
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 => {
                let i = rng.usize(..=len);
                let n = rng.usize(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                data.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let start = rng.usize(..len);
                let end = (start + rng.usize(1..=64)).min(len);
                data.drain(start..end);
            }
            5 if len > 0 => {
                let start = rng.usize(..len);
                let end = (start + rng.usize(1..=64)).min(len);
                let at = rng.usize(..=len);
                let chunk = data[start..end].to_vec();
                data.splice(at..at, chunk);
            }
            6 if len > 0 => data.truncate(rng.usize(..len)),
            7 if !other.is_empty() => {
                let cut = rng.usize(..=data.len());
                let from = rng.usize(..other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    data
}

fn fuzz_seed() -> u64 {
    match std::env::var("CAIRN_FUZZ_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|_| panic!("CAIRN_FUZZ_SEED must be an integer, not {s:?}")),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    }
}

fn fuzz_seconds() -> f64 {
    std::env::var("CAIRN_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

/// One execution slower than this is reported as a hang. Generous, because the suite runs on
/// a loaded 2-core machine where a legitimate heavy input (a large convolution within the
/// bodies' 64 MiB arena) can take seconds; an execution that never returns is caught by the
/// suite's own timeout instead, with the seed printed at the start of the test.
const HANG: Duration = Duration::from_secs(30);

/// Mutates the corpus of `target` for the time budget; a panic or a hang fails the test with
/// the seed, and the input is written to fuzz/artifacts/TARGET/ (which the replay then picks
/// up until the bug is fixed and the file moved to fuzz/regressions/).
fn fuzz_mutations(target: &str, run: fn(&[u8])) {
    let inputs = corpus(target);
    let seed = fuzz_seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let budget = Duration::from_secs_f64(fuzz_seconds());
    eprintln!("fuzz (mutational) {target}: seed {seed}, {} s", budget.as_secs_f64());
    let started = Instant::now();
    let mut execs = 0u64;
    let mut slowest = Duration::ZERO;
    // A panic in the target prints through the default hook; one line per failure is enough.
    while started.elapsed() < budget {
        let (_, input) = &inputs[rng.usize(..inputs.len())];
        let (_, other) = &inputs[rng.usize(..inputs.len())];
        let mutant = mutate(&mut rng, input, other);
        let one = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(&mutant));
        let took = one.elapsed();
        slowest = slowest.max(took);
        execs += 1;
        if outcome.is_err() || took > HANG {
            let dir = fuzz_root().join("artifacts").join(target);
            std::fs::create_dir_all(&dir).expect("fuzz/artifacts is writable");
            let file = dir.join(format!("mutant-{seed}-{execs}"));
            std::fs::write(&file, &mutant).expect("the failing input is written");
            let what = if outcome.is_err() { "panicked".to_string() } else { format!("took {took:?} (a hang)") };
            panic!("fuzz target {target} {what} on a mutated input (CAIRN_FUZZ_SEED={seed}, exec {execs}), saved as {}", file.display());
        }
    }
    let line = format!(
        "fuzz (mutational) {target}: {execs} execs in {:.1} s, 0 crashes, slowest {} ms, seed {seed}",
        started.elapsed().as_secs_f64(),
        slowest.as_millis()
    );
    eprintln!("{line}");
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-mutation.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(report) {
        let _ = writeln!(f, "{line}");
    }
}

macro_rules! fuzz_target_tests {
    ($($target:ident),* $(,)?) => {
        mod replay_corpus {
            $(#[test] fn $target() { super::replay(stringify!($target), super::bodies::$target); })*
        }
        mod mutational_fuzzing {
            $(#[test] fn $target() { super::fuzz_mutations(stringify!($target), super::bodies::$target); })*
        }
    };
}

fuzz_target_tests!(import_model, load_bundle, subgraph_sequence, import_tfjs, import_tflite, load_tokenizer);

#[test]
fn mutations_change_the_input_and_stay_reproducible() {
    let input: Vec<u8> = (0..=255).collect();
    let run = |seed| {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..50).map(|_| mutate(&mut rng, &input, b"other")).collect::<Vec<_>>()
    };
    let first = run(7);
    assert_eq!(first, run(7), "the same seed gives the same mutants");
    assert!(first.iter().filter(|m| m.as_slice() != input.as_slice()).count() >= 40, "most mutants differ from the input");
}
