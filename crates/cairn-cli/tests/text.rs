//! `cairn pack --tokenizer`, `cairn tokenize`, `cairn embed` on a tiny text encoder (an
//! embedding table over the byte-level BPE fixture of cairn-text), and their errors.
//! The real all-MiniLM-L6-v2 is checked against onnxruntime by tools/check_text_fidelity.py.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn")
}

fn manifest_dir(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).to_str().unwrap().to_string()
}

fn tokenizer() -> String {
    manifest_dir("../cairn-text/tests/fixtures/bpe.tokenizer.json")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-text-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text_bundle(dir: &Path, max_length: &str) -> String {
    let out = dir.join("bundle");
    let o = cairn(&[
        "pack",
        &manifest_dir("tests/data/tiny_text_encoder.onnx"),
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        &tokenizer(),
        "--task",
        "feature-extraction",
        "--max-length",
        max_length,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_str().unwrap().to_string()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn pack_ships_the_tokenizer_and_tokenize_reads_it_with_the_bundles_max_length() {
    let dir = tmp("tokenize");
    let bundle = text_bundle(&dir, "8");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new(&bundle).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["text"]["task"], "feature-extraction");
    assert_eq!(manifest["text"]["max_length"], 8);
    let v = json(&cairn(&["tokenize", &bundle, "--text", "offline notes search in the browser worker", "--text", "", "--json"]));
    assert_eq!(v[0]["ids"].as_array().unwrap().len(), 8);
    assert_eq!(v[0]["truncated"], true);
    assert_eq!(v[1]["tokens"], serde_json::json!(["<s>", "</s>"]));
    assert_eq!(v[1]["truncated"], false);
    // A tokenizer.json directly, without a length limit: the file's own truncation (256) applies.
    let v = json(&cairn(&["tokenize", &tokenizer(), "--text", "offline notes search in the browser worker", "--json"]));
    assert!(v[0]["ids"].as_array().unwrap().len() > 8);
}

#[test]
fn tokenize_joins_a_pair_and_says_which_text_each_token_came_from() {
    let pair = "déjà vu 🍕";
    let v = json(&cairn(&["tokenize", &tokenizer(), "--text", "lunch in Lyon", "--pair", pair, "--json"]));
    let alone = json(&cairn(&["tokenize", &tokenizer(), "--text", "lunch in Lyon", "--json"]));
    assert_eq!(v[0]["text_pair"], pair);
    assert!(alone[0].get("text_pair").is_none());
    let seq: Vec<Option<u64>> = serde_json::from_value(v[0]["sequence_ids"].clone()).unwrap();
    let offsets: Vec<(usize, usize)> = serde_json::from_value(v[0]["offsets"].clone()).unwrap();
    assert_eq!(seq.len(), v[0]["ids"].as_array().unwrap().len());
    assert!(seq.contains(&Some(0)) && seq.contains(&Some(1)) && seq.contains(&None), "{seq:?}");
    // Tokens of the second text end within it: their offsets are in its own characters.
    let second_end = seq.iter().zip(&offsets).filter(|(s, _)| **s == Some(1)).map(|(_, o)| o.1).max().unwrap();
    assert_eq!(second_end, pair.chars().count());
    assert!(!alone[0]["sequence_ids"].as_array().unwrap().contains(&serde_json::json!(1)));
    assert_ne!(v[0]["ids"], alone[0]["ids"]);
    let printed = String::from_utf8_lossy(&cairn(&["tokenize", &tokenizer(), "--text", "q", "--pair", "p"]).stdout).to_string();
    assert!(printed.starts_with("\"q\" / \"p\": ") && printed.contains("text 1"), "{printed}");
    let o = cairn(&["tokenize", &tokenizer(), "--text", "a", "--pair", "b", "--pair", "c"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("one --pair per --text"));
}

#[test]
fn embed_gives_unit_rows_equal_for_equal_texts_and_says_what_it_truncated() {
    let dir = tmp("embed");
    let bundle = text_bundle(&dir, "6");
    let o = cairn(&["embed", &bundle, "--text", "garden recipe", "--text", "garden recipe", "--text", &"music budget ".repeat(20)]);
    let v = json(&o);
    assert_eq!(v["dim"], 8);
    let rows: Vec<Vec<f64>> = serde_json::from_value(v["embeddings"].clone()).unwrap();
    for r in &rows {
        let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_eq!(rows[0], rows[1]);
    assert_ne!(rows[0], rows[2]);
    assert_eq!(v["truncated"], serde_json::json!([2]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated"));

    let corpus = dir.join("texts.jsonl");
    std::fs::write(&corpus, (0..20).map(|i| format!("{{\"text\": \"note {i} about coffee\"}}\n")).collect::<String>()).unwrap();
    let npy = dir.join("emb.npy");
    let v =
        json(&cairn(&["embed", &bundle, "--input", corpus.to_str().unwrap(), "-o", npy.to_str().unwrap(), "--json", "--batch-size", "3"]));
    assert_eq!(v["texts"], 20);
    // .npy header + 20 x 8 f32.
    assert!(std::fs::metadata(&npy).unwrap().len() >= 20 * 8 * 4);
}

#[test]
fn text_commands_fail_with_hints_on_bad_input() {
    let dir = tmp("errors");
    let bad = dir.join("tokenizer.json");
    std::fs::write(&bad, "{ this is not json").unwrap();
    let o = cairn(&["tokenize", bad.to_str().unwrap(), "--text", "x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("hint"), "{}", String::from_utf8_lossy(&o.stderr));

    let model = manifest_dir("tests/data/tiny_text_encoder.onnx");
    let out = dir.join("b");
    let o = cairn(&["pack", &model, "-o", out.to_str().unwrap(), "--tokenizer", bad.to_str().unwrap(), "--task", "feature-extraction"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("tokenizer"));
    let o = cairn(&["pack", &model, "-o", out.to_str().unwrap(), "--tokenizer", &tokenizer(), "--task", "text-classification"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--labels"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cairn(&["pack", &model, "-o", out.to_str().unwrap(), "--tokenizer", &tokenizer(), "--task", "translation"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("feature-extraction"));

    // A bundle whose tokenizer.json was swapped after packing is refused.
    let bundle = text_bundle(&dir, "16");
    std::fs::write(Path::new(&bundle).join("tokenizer.json"), &std::fs::read(tokenizer()).unwrap()[1..]).unwrap();
    let o = cairn(&["embed", &bundle, "--text", "x"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("does not match the manifest"));
    // An image bundle has no text task.
    let o = cairn(&["embed", &manifest_dir("tests/data"), "--text", "x"]);
    assert!(!o.status.success());
}

/// `cairn optimize --quantize int8-dynamic --calibrate texts --tokenizer FILE --keep-sensitive 1`:
/// texts become the model's inputs, each weight is quantized alone and ranked by the cosine
/// of the output to f32's, and the worst (the MatMul reading a 40x outlier channel) stays f32;
/// the embedding table becomes int8 rows.
#[test]
fn dynamic_int8_keeps_the_most_sensitive_weight_measured_on_texts() {
    let dir = tmp("dynamic-sensitive");
    let texts = dir.join("texts.jsonl");
    std::fs::write(&texts, "\"offline notes on the device\"\n{\"text\": \"search by meaning, not by words\"}\nplain line: déjà vu 🍕\n")
        .unwrap();
    let model = manifest_dir("tests/data/tiny_text_mlp.onnx");
    let (out, table) = (dir.join("int8.onnx"), dir.join("sensitivity.json"));
    let args = ["--quantize", "int8-dynamic", "--calibrate", texts.to_str().unwrap(), "--tokenizer", &tokenizer()];
    let o = cairn(&[&["optimize", &model, "-o", out.to_str().unwrap()], &args[..], &["--keep-sensitive", "1", "--sensitivity"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("keeping the 1 most sensitive weight(s) in f32: w_out"), "{err}");
    assert!(err.contains("quantized 1 MatMuls") && err.contains("1 embedding table(s)"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("cosine"));
    let o = cairn(
        &[
            &["optimize", &model, "-o", out.to_str().unwrap()],
            &args[..],
            &["--sensitivity-json", table.to_str().unwrap(), "--keep-sensitive", "1"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
    let layers = t["quantization"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["layer"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "w_in, w_out and the table emb: {t}");
    assert_eq!(names[0], "w_out", "{t}");
    let cosines: Vec<f64> = layers.iter().map(|l| l["mean_cosine"].as_f64().unwrap()).collect();
    assert!(cosines.windows(2).all(|w| w[0] <= w[1]) && cosines[0] < 1.0, "least cosine first: {cosines:?}");

    // --report measures the optimized model on the texts too.
    let o = cairn(&[&["optimize", &model, "-o", out.to_str().unwrap()], &args[..], &["--report"]].concat());
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && report.contains("on the 3 --calibrate inputs") && report.contains("cosine"), "{report}");

    // Texts need their tokenizer; sensitivity needs inputs; an empty texts file is no calibration.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let base = ["optimize", &model, "-o", out.to_str().unwrap(), "--quantize", "int8-dynamic"];
    for (extra, expect) in [
        (vec!["--calibrate", texts.to_str().unwrap(), "--keep-sensitive", "1"], "--tokenizer"),
        (vec!["--keep-sensitive", "1"], "--calibrate"),
        (vec!["--calibrate", empty.to_str().unwrap(), "--tokenizer", &tokenizer(), "--sensitivity"], "holds no texts"),
        (vec!["--calibrate", dir.to_str().unwrap(), "--tokenizer", &tokenizer(), "--sensitivity"], "is a directory of input sets"),
    ] {
        let o = cairn(&[&base[..], &extra[..]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expect), "{extra:?}: {err}");
    }
}

/// `--weight-bits 7`: the MatMul weights land within -64..64 (the range the AVX2 byte kernel
/// runs exactly), using it (some weight at +-64), while the embedding table keeps the full
/// range; other values, and the flag without int8, are refused with a hint.
#[test]
fn weight_bits_7_keeps_matmul_weights_within_64() {
    let dir = tmp("weight-bits");
    let model = manifest_dir("tests/data/tiny_text_mlp.onnx");
    let largest = |path: &Path| -> (i32, i32) {
        let m = cairn_onnx::load(path).unwrap();
        let max_of = |pred: &dyn Fn(&str) -> bool| {
            m.graph
                .initializers
                .iter()
                .filter(|(name, _)| name.ends_with("_quantized") && pred(name))
                .map(|(_, t)| match t.data() {
                    cairn_core::TensorData::I8(v) => v.iter().map(|&x| (x as i32).abs()).max().unwrap_or(0),
                    other => panic!("int8 weights expected, got {other:?}"),
                })
                .max()
                .unwrap()
        };
        (max_of(&|n| n.starts_with("w_")), max_of(&|n| n.starts_with("emb")))
    };
    let (out8, out7) = (dir.join("w8.onnx"), dir.join("w7.onnx"));
    let o = cairn(&["optimize", &model, "-o", out8.to_str().unwrap(), "--quantize", "int8-dynamic"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cairn(&["optimize", &model, "-o", out7.to_str().unwrap(), "--quantize", "int8-dynamic", "--weight-bits", "7"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("7-bit weights"), "{err}");
    assert_eq!(largest(&out8), (127, 127));
    assert_eq!(largest(&out7), (64, 127), "MatMul weights within 64, the table full range");
    for (extra, expect) in [
        (vec!["--quantize", "int8-dynamic", "--weight-bits", "4"], "give 8 (the default) or 7"),
        (vec!["--weight-bits", "7"], "give --quantize int8 or int8-dynamic"),
    ] {
        let o = cairn(&[&["optimize", &model, "-o", out7.to_str().unwrap()], &extra[..]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expect), "{extra:?}: {err}");
    }
}

/// A bundle of one of the tiny classifiers (tests/data/make.py) with its labels file.
fn classifier_bundle(dir: &Path, model: &str, task: &str, labels: &str) -> String {
    let out = dir.join(model);
    let o = cairn(&[
        "pack",
        &manifest_dir(&format!("tests/data/{model}.onnx")),
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        &tokenizer(),
        "--task",
        task,
        "--labels",
        &manifest_dir(&format!("tests/data/{labels}")),
        "--max-length",
        "16",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_str().unwrap().to_string()
}

/// `cairn classify`: a label per text (scores a softmax over the bundle's labels, the same
/// alone as in a padded batch), a label per token with spans that are the tokenizer's
/// offsets of the non-special tokens, truncation said, JSON lines for a corpus, and a
/// feature-extraction bundle refused with a hint.
#[test]
fn classify_labels_texts_and_tokens() {
    let dir = tmp("classify");
    let sentiment = classifier_bundle(&dir, "tiny_text_classifier", "text-classification", "text_labels.txt");
    let long = "budget music ".repeat(10);
    let texts = ["I love pizza", "never again, awful service", "", &long];
    let args: Vec<&str> = texts.iter().flat_map(|t| ["--text", *t]).collect();
    let all = json(&cairn(&[&["classify", &sentiment, "--json"], &args[..]].concat()));
    let results = all["results"].as_array().unwrap();
    assert_eq!(results.len(), texts.len());
    assert_eq!(all["truncated"], serde_json::json!([3]));
    assert_eq!(all["max_length"], 16);
    let labels = ["negative", "neutral", "positive"];
    for (i, r) in results.iter().enumerate() {
        let scores: Vec<f64> = r["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
        assert_eq!(scores.len(), 3);
        assert!((scores.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{scores:?}");
        let best = (0..3).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert_eq!(r["index"], best);
        assert_eq!(r["label"], labels[best]);
        assert_eq!(r["truncated"], i == 3);
        // Alone, in a batch of one, the answer is the same (the model masks the padding).
        let alone = json(&cairn(&["classify", &sentiment, "--text", texts[i], "--json"]));
        let a: Vec<f64> = alone["results"][0]["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
        assert!(a.iter().zip(&scores).all(|(x, y)| (x - y).abs() < 1e-6), "text {i}: {a:?} alone vs {scores:?} batched");
    }
    let o = cairn(&[&["classify", &sentiment], &args[..]].concat());
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"I love pizza\": "), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated"));

    // Token classification: one label per non-special token, spans as `cairn tokenize` gives them.
    let ner = classifier_bundle(&dir, "tiny_token_classifier", "token-classification", "token_labels.txt");
    let text = "Lunch in Lyon";
    let r = json(&cairn(&["classify", &ner, "--text", text, "--json"]));
    let tokens = r["results"][0]["tokens"].as_array().unwrap();
    let t = json(&cairn(&["tokenize", &ner, "--text", text, "--json"]));
    let offsets: Vec<&serde_json::Value> =
        t[0]["offsets"].as_array().unwrap().iter().filter(|o| *o != &serde_json::json!([0, 0])).collect();
    assert_eq!(tokens.len(), offsets.len(), "{r}");
    for (tok, span) in tokens.iter().zip(offsets) {
        assert_eq!(&tok[1], span);
        assert!(["O", "B-PLACE", "I-PLACE"].contains(&tok[0]["label"].as_str().unwrap()));
    }
    // --aggregate simple: the tokens merged into entities (B- starts one, I- of the same type
    // continues it, O is dropped), each with its span's text and its tokens' mean score.
    let text = "Lunch in Lyon, dinner in Paris: déjà vu";
    let r = json(&cairn(&["classify", &ner, "--text", text, "--json", "--aggregate", "simple"]));
    let tokens = r["results"][0]["tokens"].as_array().unwrap();
    let mut want: Vec<(usize, usize, f64, usize)> = Vec::new(); // start, end, score sum, tokens
    let mut last = "O";
    for t in tokens {
        let (label, start, end) = (t[0]["label"].as_str().unwrap(), t[1][0].as_u64().unwrap() as usize, t[1][1].as_u64().unwrap() as usize);
        let score = t[0]["score"].as_f64().unwrap();
        match (label, want.last_mut()) {
            ("I-PLACE", Some(e)) if last != "O" => {
                e.1 = end;
                e.2 += score;
                e.3 += 1;
            }
            ("B-PLACE" | "I-PLACE", _) => want.push((start, end, score, 1)),
            _ => {}
        }
        last = label;
    }
    let entities = r["results"][0]["entities"].as_array().unwrap();
    assert!(!want.is_empty(), "the tiny model labels some token PLACE: {r}");
    assert_eq!(entities.len(), want.len(), "{r}");
    let chars: Vec<char> = text.chars().collect();
    for (e, (start, end, sum, n)) in entities.iter().zip(&want) {
        assert_eq!((e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize), (*start, *end));
        assert_eq!(e["label"], "PLACE");
        assert_eq!(e["text"].as_str().unwrap(), chars[*start..*end].iter().collect::<String>());
        assert!((e["score"].as_f64().unwrap() - sum / *n as f64).abs() < 1e-5);
    }
    let o = cairn(&["classify", &ner, "--text", text, "--aggregate", "everything"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("simple"));
    let o = cairn(&["classify", &ner, "--text", text]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(table.lines().count(), 1 + tokens.len(), "a line per token under the text's: {table}");
    assert!(table.contains("\"Lu\"") || table.contains("\"L\""), "each token's piece of the text: {table}");

    // A corpus: JSON lines with the text, a progress bar's worth of texts.
    let corpus = dir.join("reviews.jsonl");
    std::fs::write(&corpus, (0..20).map(|i| format!("{{\"text\": \"review {i}: great coffee\"}}\n")).collect::<String>()).unwrap();
    let out = dir.join("labels.jsonl");
    let o = cairn(&["classify", &sentiment, "--input", corpus.to_str().unwrap(), "-o", out.to_str().unwrap(), "--batch-size", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[7]["text"], "review 7: great coffee");
    assert!(labels.contains(&lines[7]["label"].as_str().unwrap()));

    // An embedding bundle does not classify; no texts is an error.
    let o = cairn(&["classify", &text_bundle(&dir, "16"), "--text", "x"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cairn embed"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cairn(&["classify", &sentiment]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--text"));
}

/// Text pairs (a cross-encoder's query and passage, an NLI premise and hypothesis): `--pair`
/// per `--text`, or `{"text", "text_pair"}` lines; the pair is the model's input (the answer
/// differs from the first text's alone), the same alone or in a padded batch with single texts,
/// and refused where it cannot mean anything (a token classifier, embeddings, a count mismatch).
#[test]
fn classify_takes_text_pairs() {
    let dir = tmp("classify-pairs");
    let sentiment = classifier_bundle(&dir, "tiny_text_classifier", "text-classification", "text_labels.txt");
    let scores = |r: &serde_json::Value| -> Vec<f64> { r["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect() };
    let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let pair = json(&cairn(&["classify", &sentiment, "--text", "is the pizza good", "--pair", "awful service, never again", "--json"]));
    let alone = json(&cairn(&["classify", &sentiment, "--text", "is the pizza good", "--json"]));
    assert!(!close(&scores(&pair["results"][0]), &scores(&alone["results"][0])), "the pair is what the model sees: {pair} vs {alone}");
    // The same pair from a JSON lines file, between single texts (one padded batch), and -o.
    let input = dir.join("pairs.jsonl");
    std::fs::write(
        &input,
        "\"I love pizza\"\n{\"text\": \"is the pizza good\", \"text_pair\": \"awful service, never again\"}\n{\"text\": \"rain\"}\n",
    )
    .unwrap();
    let out = dir.join("labels.jsonl");
    let file = json(&cairn(&["classify", &sentiment, "--input", input.to_str().unwrap(), "--json", "-o", out.to_str().unwrap()]));
    assert!(close(&scores(&file["results"][1]), &scores(&pair["results"][0])), "{file} vs {pair}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        (lines[1]["text"].as_str(), lines[1]["text_pair"].as_str()),
        (Some("is the pizza good"), Some("awful service, never again"))
    );
    assert!(lines[0].get("text_pair").is_none());
    let printed = String::from_utf8_lossy(&cairn(&["classify", &sentiment, "--text", "q", "--pair", "p"]).stdout).to_string();
    assert!(printed.starts_with("\"q\" / \"p\": "), "{printed}");
    // Refused, with the reason.
    let fails = |args: &[&str], why: &str| {
        let o = cairn(args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && err.contains(why), "{args:?}: {err}");
    };
    fails(&["classify", &sentiment, "--text", "a", "--pair", "b", "--pair", "c"], "one --pair per --text");
    fails(&["classify", &sentiment, "--input", input.to_str().unwrap(), "--pair", "b"], "--pair goes with --text");
    let ner = classifier_bundle(&dir, "tiny_token_classifier", "token-classification", "token_labels.txt");
    fails(&["classify", &ner, "--text", "a", "--pair", "b"], "needs a text-classification bundle");
    let encoder = text_bundle(&dir, "16");
    fails(&["embed", &encoder, "--input", input.to_str().unwrap()], "embeddings are of single texts");
}
