//! Replays the fuzzers' corpus — the seeds (fuzz/seeds), the crashes fuzzing found and that
//! were fixed (fuzz/regressions: move a crash there with its fix) and any crash artifacts of
//! a local run (fuzz/artifacts, not committed) — through the same code the fuzz targets run
//! (fuzz/bodies.rs), without a sanitizer build. A crash fixed once stays fixed in every
//! `cargo test`; the fuzzing itself (new inputs) is `scripts/test-extra.sh fuzz`.

#[path = "../../../fuzz/bodies.rs"]
mod bodies;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut count = 0;
    for dir in ["seeds", "regressions", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.expect("a readable corpus directory").path()).collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // A panic names the input, so the failure points at the file to debug.
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "fuzz target {target} panicked on {}", file.display());
            count += 1;
        }
    }
    assert!(count > 0, "no corpus found for fuzz target {target} under {}", root.display());
}

#[test]
fn import_model_corpus() {
    replay("import_model", bodies::import_model);
}

#[test]
fn load_bundle_corpus() {
    replay("load_bundle", bodies::load_bundle);
}

#[test]
fn subgraph_sequence_corpus() {
    replay("subgraph_sequence", bodies::subgraph_sequence);
}

#[test]
fn import_tfjs_corpus() {
    replay("import_tfjs", bodies::import_tfjs);
}

#[test]
fn import_tflite_corpus() {
    replay("import_tflite", bodies::import_tflite);
}
