//! The ONNX backend node tests (from the `onnx` wheel) run against Cairn.
//!
//! Cases come from `python3 tools/gen_onnx_node_tests.py` (dir: env `CAIRN_NODE_TESTS`,
//! default `target/onnx-node-tests`). Each case is classified:
//! - `pass`: outputs match (rtol 1e-3, atol 1e-7 for floats, as onnx's runner; exact otherwise);
//! - `unsupported`: Cairn declines clearly (unsupported op, dtype or attribute);
//! - `fail`: wrong numbers or shapes, or any other error;
//! - `panic`: always a bug.
//! - `random`: a case of a random operator (Bernoulli, RandomUniformLike, ...) whose values
//!   differ from the reference's numpy draws, as any other generator's do. Not a value
//!   check: shape and dtype must match exactly, and the values must be possible draws
//!   (0 or 1 for Bernoulli) with a count of ones within 4 standard deviations of the
//!   input probabilities' sum (docs/adr/0024). Counted apart from `pass`.
//!
//! The headline is passing / all written cases (every case the generator wrote, whatever
//! Cairn thinks of it); "attempted" = cases whose every op is in Cairn's registry is printed
//! beside it. The test fails if any case
//! listed in `tests/onnx-node-passing.txt` does not pass, or if any case panics.
//! `CAIRN_CONFORMANCE_UPDATE=1` adds newly passing cases to that list (it never removes any).
//! `CAIRN_NODE_FILTER=substr` runs a subset. Every case's result goes to
//! `target/conformance-report.txt`.

use cairn_core::{Registry, Session, Tensor, Value};
use cairn_onnx::proto::TypeProto;
use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pass,
    Unsupported,
    Fail,
    Panic,
    Random,
}

/// Operators whose outputs are draws: their cases get `random_check` instead of values.
const RANDOM_OPS: [&str; 6] = ["Bernoulli", "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Multinomial"];

fn is_random_case(dir: &Path) -> bool {
    let ops = std::fs::read_to_string(dir.join("ops.txt")).unwrap_or_default();
    ops.lines().any(|l| RANDOM_OPS.contains(&l.rsplit(':').next().unwrap_or(l)))
}

/// What a random case can be checked for: the output's shape and dtype, that every value
/// is a possible Bernoulli draw (0 or 1; the node cases' random ops all feed a Bernoulli
/// or its expansion), and that the number of ones is within 4 standard deviations of
/// sum(p), the input probabilities. Fails on a wrong shape, dtype, value or a biased draw.
fn random_check(p: &Tensor, got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() || got.dtype() != want.dtype() {
        return Err(format!("{} {:?}, expected {} {:?}", got.dtype(), got.shape(), want.dtype(), want.shape()));
    }
    let p = p.view().to_f64_vec();
    let y = got.view().to_f64_vec();
    if let Some(v) = y.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(format!("{v} is not a Bernoulli draw (0 or 1)"));
    }
    let ones: f64 = y.iter().sum();
    let mean: f64 = p.iter().sum();
    let sd = p.iter().map(|p| p * (1.0 - p)).sum::<f64>().sqrt();
    if (ones - mean).abs() > 4.0 * sd + 1e-9 {
        return Err(format!("{ones} ones, expected {mean:.2} +- {:.2} (4 sd)", 4.0 * sd));
    }
    Ok(())
}

struct CaseResult {
    name: String,
    status: Status,
    why: String,
    attempted: bool,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_clean_refusal(e: &cairn_onnx::Error) -> bool {
    use cairn_onnx::Error as E;
    match e {
        E::UnsupportedDType { .. } | E::UnsupportedOps { .. } | E::Opset { .. } | E::LegacyOpset { .. } => true,
        E::Core(c) => matches!(c, cairn_core::Error::UnsupportedOp { .. } | cairn_core::Error::UnsupportedAttr { .. }),
        E::Model(m) => m.contains("sequence, map, optional"),
        _ => false,
    }
}

/// Reads a `.pb` value as the model declares it: TensorProto, SequenceProto or OptionalProto.
fn read_value(p: &Path, declared: Option<&TypeProto>) -> Result<Value, String> {
    let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
    cairn_onnx::value_from_bytes(&bytes, declared).map_err(|e| e.to_string())
}

/// The declared types of the model's inputs and outputs (Cairn's IR keeps only element dtypes).
fn declared_types(model: &Path) -> (Vec<Option<TypeProto>>, Vec<Option<TypeProto>>) {
    let graph = std::fs::read(model).ok().and_then(|b| cairn_onnx::decode_model(&b).ok()).and_then(|m| m.graph);
    let types = |vs: &[cairn_onnx::proto::ValueInfoProto]| vs.iter().map(|v| v.r#type.clone()).collect();
    graph.map(|g| (types(&g.input), types(&g.output))).unwrap_or_default()
}

fn run_case(dir: &Path) -> (Status, String) {
    let model = match cairn_onnx::load(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => {
            let status = if is_clean_refusal(&e) { Status::Unsupported } else { Status::Fail };
            return (status, format!("load: {e}"));
        }
    };
    let input_names: Vec<String> = model.graph.inputs.iter().map(|i| i.name.clone()).collect();
    let graph = match cairn_core::passes::prepare_for_inference(model.graph) {
        Ok((g, _)) => g,
        Err(e) => return (Status::Fail, format!("prepare: {e}")),
    };
    let session = Session::new(graph);
    let (input_types, output_types) = declared_types(&dir.join("model.onnx"));
    let declared = |types: &[Option<TypeProto>], i: usize| types.get(i).cloned().flatten();
    let mut random = false;
    for k in 0.. {
        let set = dir.join(format!("test_data_set_{k}"));
        if !set.exists() {
            break;
        }
        let mut inputs = HashMap::new();
        for (i, name) in input_names.iter().enumerate() {
            let p = set.join(format!("input_{i}.pb"));
            if !p.exists() {
                break;
            }
            match read_value(&p, declared(&input_types, i).as_ref()) {
                Ok(t) => {
                    inputs.insert(name.clone(), t);
                }
                Err(e) => return (Status::Unsupported, format!("input {i}: {e}")),
            }
        }
        let p = input_names.first().and_then(|n| inputs.get(n)).and_then(|v| v.as_tensor("").ok()).cloned();
        let outputs = match session.run_values(inputs) {
            Ok(o) => o,
            Err(e) => return (Status::Fail, format!("run: {e}")),
        };
        for (i, (name, got)) in outputs.iter().enumerate() {
            let want = match read_value(&set.join(format!("output_{i}.pb")), declared(&output_types, i).as_ref()) {
                Ok(t) => t,
                Err(e) => return (Status::Unsupported, format!("expected output {i}: {e}")),
            };
            if let Err(why) = compare_values(got, &want) {
                let (Some(p), Value::Tensor(g), Value::Tensor(w), true) = (&p, got, &want, is_random_case(dir)) else {
                    return (Status::Fail, format!("output '{name}': {why}"));
                };
                if let Err(why) = random_check(p, g, w) {
                    return (Status::Fail, format!("output '{name}' (random op): {why}"));
                }
                random = true;
            }
        }
    }
    if random {
        return (Status::Random, "values are draws: shape, dtype, 0/1 values and count of ones checked, not values".into());
    }
    (Status::Pass, String::new())
}

/// Tensors as `compare`; sequences element by element; optionals by presence, then content.
fn compare_values(got: &Value, want: &Value) -> Result<(), String> {
    match (got, want) {
        (Value::Tensor(g), Value::Tensor(w)) => compare(g, w),
        (Value::Strings(g), Value::Strings(w)) if g.shape() != w.shape() => {
            Err(format!("string tensor of shape {:?}, expected {:?}", g.shape(), w.shape()))
        }
        (Value::Strings(g), Value::Strings(w)) => match g.data().iter().zip(w.data()).position(|(a, b)| a != b) {
            Some(i) => Err(format!("string {i} is {:?}, expected {:?}", g.data()[i], w.data()[i])),
            None => Ok(()),
        },
        (Value::Sequence(g), Value::Sequence(w)) => {
            if g.items.len() != w.items.len() {
                return Err(format!("sequence of {} tensors, expected {}", g.items.len(), w.items.len()));
            }
            g.items
                .iter()
                .zip(&w.items)
                .enumerate()
                .try_for_each(|(i, (g, w))| compare(g, w).map_err(|e| format!("sequence item {i}: {e}")))
        }
        (Value::Optional(None), Value::Optional(None)) => Ok(()),
        (Value::Optional(Some(g)), Value::Optional(Some(w))) => compare_values(g, w),
        (g, w) => Err(format!("{}, expected {}", g.describe(), w.describe())),
    }
}

fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
    }
    match got.data() {
        // Every float dtype with onnx's tolerance; f64 compared in f64.
        _ if got.dtype().is_float() => {
            let (g, w) = (got.view().to_f64_vec(), want.view().to_f64_vec());
            for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
                let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-7 + 1e-3 * b.abs();
                if !ok {
                    return Err(format!("element {i} is {a}, expected {b}"));
                }
            }
            Ok(())
        }
        _ if got.data() == want.data() => Ok(()),
        _ => Err("values differ (compared exactly: not a float dtype)".into()),
    }
}

/// True if every op the case uses is registered (Constant is handled by the importer).
fn attempted(dir: &Path) -> bool {
    let Ok(ops) = std::fs::read_to_string(dir.join("ops.txt")) else { return false };
    ops.lines().all(|l| {
        let (domain, op) = l.split_once(':').unwrap_or(("", l));
        op == "Constant" || Registry::global().supports(domain, op)
    })
}

/// Runs the generator, which returns at once when its stamp (onnx version and writer
/// revision) matches, and rewrites the cases when either changed.
fn ensure_cases(root: &Path) {
    let ok = std::process::Command::new("python3")
        .arg(workspace().join("tools/gen_onnx_node_tests.py"))
        .arg(root)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "no node tests in {0}: run `python3 tools/gen_onnx_node_tests.py {0}` (after pip install -r tools/requirements.txt)",
        root.display()
    );
}

#[test]
fn onnx_backend_node_tests() {
    let root = std::env::var("CAIRN_NODE_TESTS").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target/onnx-node-tests"));
    ensure_cases(&root);
    let filter = std::env::var("CAIRN_NODE_FILTER").unwrap_or_default();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("node test directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").exists() && p.file_name().unwrap().to_string_lossy().contains(&filter))
        .collect();
    cases.sort();

    // Silence the panic printer while cases run; panics are collected and reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut results = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let started = std::time::Instant::now();
        let (status, why) = catch_unwind(AssertUnwindSafe(|| run_case(dir))).unwrap_or_else(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            (Status::Panic, msg.unwrap_or_default())
        });
        if started.elapsed().as_secs() > 10 {
            eprintln!("slow case: {name} took {:?}", started.elapsed());
        }
        results.push(CaseResult { attempted: attempted(dir), name, status, why });
    }
    std::panic::set_hook(hook);

    let report: String =
        results.iter().map(|r| format!("{:<12} {} {}\n", format!("{:?}", r.status).to_lowercase(), r.name, r.why)).collect();
    let _ = std::fs::write(workspace().join("target/conformance-report.txt"), report);

    let count = |f: &dyn Fn(&CaseResult) -> bool| results.iter().filter(|r| f(r)).count();
    let passing: BTreeSet<&str> = results.iter().filter(|r| r.status == Status::Pass).map(|r| r.name.as_str()).collect();
    // The headline is passing / all written cases: a case Cairn refuses counts against it
    // exactly like a wrong answer. "Attempted" (every op registered) is printed beside it.
    let written = results.len();
    let percent = if written == 0 { 0.0 } else { 100.0 * passing.len() as f64 / written as f64 };
    println!(
        "ONNX node conformance: {} / {} written cases pass ({percent:.1}%); {} / {} attempted cases pass; {} random (shape/dtype/range checked, not values), {} unsupported, {} fail, {} panic. Report: target/conformance-report.txt",
        passing.len(),
        written,
        count(&|r| r.attempted && r.status == Status::Pass),
        count(&|r| r.attempted),
        count(&|r| r.status == Status::Random),
        count(&|r| r.status == Status::Unsupported),
        count(&|r| r.status == Status::Fail),
        count(&|r| r.status == Status::Panic),
    );

    let list_path = workspace().join("tests/onnx-node-passing.txt");
    let listed: BTreeSet<String> = std::fs::read_to_string(&list_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if std::env::var("CAIRN_CONFORMANCE_UPDATE").is_ok_and(|v| v == "1") {
        let mut all = listed.clone();
        all.extend(passing.iter().map(|s| s.to_string()));
        let body: String = all.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(&list_path, format!("# ONNX backend node tests Cairn passes. The list may only grow.\n{body}")).unwrap();
        println!("added {} cases to {}", all.len() - listed.len(), list_path.display());
    }
    let panics: Vec<String> = results.iter().filter(|r| r.status == Status::Panic).map(|r| format!("{}: {}", r.name, r.why)).collect();
    let regressed: Vec<String> =
        results.iter().filter(|r| listed.contains(&r.name) && r.status != Status::Pass).map(|r| format!("{}: {}", r.name, r.why)).collect();
    assert!(panics.is_empty(), "cases panicked (a panic is always a bug):\n{}", panics.join("\n"));
    assert!(regressed.is_empty(), "listed cases no longer pass:\n{}", regressed.join("\n"));
}
