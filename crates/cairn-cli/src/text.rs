//! Text models in the CLI: `cairn pack --tokenizer/--task`, `cairn tokenize`, `cairn embed`,
//! `cairn classify`.

use crate::fidelity::Inputs;
use crate::{npy, progress};
use anyhow::{bail, Context, Result};
use cairn_bundle::text_task::{Pooling, TaskKind, TextTask, TokenizerFile, TOKENIZER_PATH};
use cairn_core::Session;
use cairn_core::{DType, Graph, Tensor, TensorData};
use cairn_text::{Aggregation, EmbedOptions, TextInput, TextPipeline, TextTokenizer, TokenizedText};
use clap::Args;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The text-model flags of `cairn pack`.
#[derive(Args, Clone, Default)]
pub struct TextPackArgs {
    /// A Hugging Face tokenizer.json to ship in the bundle (makes it a text model).
    #[arg(long, value_name = "FILE", requires = "task")]
    tokenizer: Option<PathBuf>,
    /// The text task: feature-extraction, text-classification or token-classification.
    #[arg(long, requires = "tokenizer")]
    task: Option<String>,
    /// Texts longer than this many tokens (special tokens included) are truncated.
    #[arg(long, value_name = "TOKENS", default_value_t = 256)]
    max_length: usize,
    /// How feature-extraction pools token states: mean, cls or max.
    #[arg(long, default_value = "mean")]
    pooling: String,
    /// Do not L2-normalize embeddings (normalized by default).
    #[arg(long)]
    no_normalize: bool,
}

impl TextPackArgs {
    /// The task and tokenizer bytes to pack, if this is a text model (labels come from `--labels`).
    pub fn task(&self, labels: Option<Vec<String>>) -> Result<Option<(TextTask, Vec<u8>)>> {
        let (Some(path), Some(task)) = (&self.tokenizer, &self.task) else { return Ok(None) };
        let task = TaskKind::parse(task).with_context(|| format!("--task '{task}' must be one of {}", TaskKind::NAMES.join(", ")))?;
        let pooling = Pooling::parse(&self.pooling)
            .with_context(|| format!("--pooling '{}' must be one of {}", self.pooling, Pooling::NAMES.join(", ")))?;
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the tokenizer {}", path.display()))?;
        // Refuse a file the runtime could not read now, not when a browser first loads it.
        TextTokenizer::from_json(&bytes, Some(self.max_length)).with_context(|| path.display().to_string())?;
        let text = TextTask {
            task,
            tokenizer: TokenizerFile { path: TOKENIZER_PATH.into(), sha256: String::new(), bytes: 0 },
            max_length: self.max_length,
            pooling,
            normalize: !self.no_normalize,
            output: None,
            labels,
        };
        if text.task != TaskKind::FeatureExtraction && text.labels.is_none() {
            bail!("--task {} needs --labels FILE (one class name per line, in logit order)", TaskKind::NAMES[text.task as usize]);
        }
        Ok(Some((text, bytes)))
    }
}

/// Sentences a text bundle's levels are scored on when no --fidelity-inputs are given.
const FIDELITY_TEXTS: [&str; 8] = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Offline web apps keep working without a network connection.",
    "Café crème, déjà vu, naïve façade.",
    "東京は日本の首都です。",
    "The meeting moved to 14:30 on Friday, room 4B.",
    "I love pizza 🍕 and sushi!",
    "",
];

/// Tokenized sentences as model inputs, for the levels' fidelity measurement.
pub fn fidelity_inputs(graph: &Graph, tokenizer: &[u8], max_length: usize) -> Result<(Vec<Inputs>, String)> {
    let tok = TextTokenizer::from_json(tokenizer, Some(max_length))?;
    let texts: Vec<TextInput> = FIDELITY_TEXTS.iter().map(|t| TextInput::Text(t.to_string())).collect();
    let sets = token_inputs(graph, &tok, &texts)?;
    Ok((sets, format!("{} built-in sentences, tokenized", FIDELITY_TEXTS.len())))
}

/// Calibration inputs of `cairn optimize --calibrate TEXTS --tokenizer FILE`: the lines of
/// TEXTS (JSON lines or plain, as `cairn embed --input` reads them), one input set each,
/// truncated as the tokenizer.json says; named `text N` (1-based line of the texts).
pub fn calibration_inputs(graph: &Graph, path: &Path, tokenizer: &Path, limit: usize) -> Result<Vec<(String, Inputs)>> {
    let bytes = std::fs::read(tokenizer).with_context(|| format!("cannot read the tokenizer {}", tokenizer.display()))?;
    let tok = TextTokenizer::from_json(&bytes, None).with_context(|| format!("{} is not a usable tokenizer.json", tokenizer.display()))?;
    // Pairs ({"text", "text_pair"} lines) calibrate a cross-encoder on what it will see.
    let texts: Vec<TextInput> = read_texts(path)?.into_iter().take(limit).collect();
    if texts.is_empty() {
        bail!("{} holds no texts (one per line, plain or JSON lines)", path.display());
    }
    let sets = token_inputs(graph, &tok, &texts)?;
    Ok(sets.into_iter().enumerate().map(|(i, s)| (format!("text {}", i + 1), s)).collect())
}

/// Each text alone (batch 1) as the model's inputs: ids, attention mask and token type ids
/// by input name, i64 or i32 as the model declares.
fn token_inputs(graph: &Graph, tok: &TextTokenizer, texts: &[TextInput]) -> Result<Vec<Inputs>> {
    texts
        .iter()
        .map(|text| {
            let b = tok.encode_batch_inputs(&[text.as_refs()])?;
            let mut inputs = Inputs::new();
            for info in graph.runtime_inputs() {
                let values = if info.name.contains("attention_mask") {
                    b.attention_mask.clone()
                } else if info.name.contains("token_type_ids") {
                    b.type_ids.clone()
                } else {
                    b.ids.clone()
                };
                let data = if info.dtype == DType::I32 {
                    TensorData::I32(values.iter().map(|&v| v as i32).collect())
                } else {
                    TensorData::I64(values)
                };
                inputs.insert(info.name.clone(), Tensor::new(vec![1, b.seq_len], data)?);
            }
            Ok(inputs)
        })
        .collect()
}

/// Tokenize text with a bundle's tokenizer or a tokenizer.json: ids, attention mask, offsets.
///
/// Offsets are [start, end) in Unicode characters of the text; special tokens have [0, 0].
/// A pair (--pair) is joined by the tokenizer's pair template, as a cross-encoder or NLI
/// model sees it: each token says which of the two texts it came from (0 or 1; "-" and null
/// for special tokens), and its offsets are in that text.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn tokenize dist/models/minilm --text \"Offline search, on the device\"\n  cairn tokenize tokenizer.json --text \"déjà vu 🍕\" --max-length 16 --json\n  cairn tokenize dist/models/reranker --text \"is it offline?\" --pair \"The app works without a network.\""
)]
pub struct TokenizeArgs {
    /// A text bundle directory, or a tokenizer.json file.
    source: PathBuf,
    /// The text to tokenize (repeat for several).
    #[arg(long, required = true)]
    text: Vec<String>,
    /// The second text of a pair, one per --text in order: tokenized together as the
    /// tokenizer's pair template joins them (a query and a passage, a premise and a hypothesis).
    #[arg(long, value_name = "TEXT")]
    pair: Vec<String>,
    /// Truncate to this many tokens (default: the bundle's max length, or the file's truncation).
    #[arg(long, value_name = "TOKENS")]
    max_length: Option<usize>,
    /// Print JSON (one object per text) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn tokenize_main(args: TokenizeArgs) -> Result<()> {
    let inputs = texts_with_pairs(&args.text, &args.pair)?;
    let tok = open_tokenizer(&args.source, args.max_length)?;
    let mut all = Vec::new();
    for input in &inputs {
        let (text, pair) = input.as_refs();
        let e = tok.encode_input(text, pair)?;
        if args.json {
            all.push(serde_json::to_value(TokenizedText { text, text_pair: pair, encoding: e })?);
            continue;
        }
        let cut = if e.truncated { format!(" (truncated to {})", e.ids.len()) } else { String::new() };
        match pair {
            Some(pair) => println!("{text:?} / {pair:?}: {} tokens{cut}", e.ids.len()),
            None => println!("{text:?}: {} tokens{cut}", e.ids.len()),
        }
        for (((id, token), (start, end)), seq) in e.ids.iter().zip(&e.tokens).zip(&e.offsets).zip(&e.sequence_ids) {
            // Which text a pair's token came from: its offsets count in that text.
            let from = match (pair, seq) {
                (None, _) => String::new(),
                (Some(_), Some(s)) => format!("  text {s}"),
                (Some(_), None) => "  -".into(),
            };
            println!("  {id:>7}  {token:<20} {start}..{end}{from}");
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

/// A tokenizer from a text bundle (its max length applies) or from a tokenizer.json.
fn open_tokenizer(source: &Path, max_length: Option<usize>) -> Result<TextTokenizer> {
    if crate::model::is_bundle(source) {
        let dir = bundle_dir(source);
        let manifest = cairn_bundle::read_manifest(dir)?;
        let bytes = cairn_bundle::read_tokenizer(dir, &manifest)?;
        let max = max_length.or(manifest.text.as_ref().map(|t| t.max_length));
        return Ok(TextTokenizer::from_json(&bytes, max)?);
    }
    let bytes =
        std::fs::read(source).with_context(|| format!("cannot read {} (give a text bundle or a tokenizer.json)", source.display()))?;
    TextTokenizer::from_json(&bytes, max_length).with_context(|| source.display().to_string())
}

fn bundle_dir(path: &Path) -> &Path {
    if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    }
}

/// Loads a text bundle: its graph (every shard verified), tokenizer and task.
pub fn load_text_model(path: &Path) -> Result<(Session, TextPipeline)> {
    if !crate::model::is_bundle(path) {
        bail!(
            "{} is not a bundle directory: pack the model first (cairn pack MODEL --tokenizer tokenizer.json --task ...)",
            path.display()
        );
    }
    let dir = bundle_dir(path);
    let manifest = cairn_bundle::read_manifest(dir)?;
    let task = manifest.text.clone().with_context(|| {
        format!("the bundle in {} has no text task: pack it with --tokenizer tokenizer.json --task feature-extraction", dir.display())
    })?;
    let tokenizer = TextTokenizer::from_json(&cairn_bundle::read_tokenizer(dir, &manifest)?, Some(task.max_length))?;
    let loaded = crate::model::load(dir)?;
    let pipeline = TextPipeline::new(loaded.session.graph(), tokenizer, task)?;
    Ok((loaded.session, pipeline))
}

/// Embed texts with a feature-extraction bundle: one vector per text.
///
/// Texts come from --text (repeatable) or --input (JSON lines: a string or {"text": ...} per
/// line, or plain text, one per line). With -o the embeddings go to an .npy file of shape
/// [texts, dim] (f32); without it they are printed as JSON.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn embed dist/models/minilm --text \"where is my invoice\" --text \"billing\"\n  cairn embed dist/models/minilm --input notes.jsonl -o embeddings.npy --batch-size 16"
)]
pub struct EmbedArgs {
    /// A feature-extraction bundle (cairn pack ... --task feature-extraction).
    bundle: PathBuf,
    #[command(flatten)]
    texts: TextsArgs,
    /// Write the embeddings as .npy [texts, dim].
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Override the bundle's pooling: mean, cls or max.
    #[arg(long)]
    pooling: Option<String>,
    /// Do not L2-normalize (overrides the bundle).
    #[arg(long)]
    no_normalize: bool,
    /// Print a JSON summary (with -o) or the embeddings (without).
    #[arg(long)]
    json: bool,
}

pub fn embed_main(args: EmbedArgs) -> Result<()> {
    let texts = args.texts.read()?;
    let (session, model) = load_text_model(&args.bundle)?;
    let mut opts = model.default_embed_options();
    if let Some(p) = &args.pooling {
        opts.pooling = Pooling::parse(p).with_context(|| format!("--pooling '{p}' must be one of {}", Pooling::NAMES.join(", ")))?;
    }
    opts.normalize &= !args.no_normalize;
    let (data, dim, truncated) = embed_all(&session, &model, &texts, args.texts.batch_size, opts)?;
    note_truncated(&truncated, texts.len(), model.task().max_length);
    match &args.output {
        Some(path) => {
            npy::write(path, &Tensor::from_f32(vec![texts.len(), dim], data)?)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"output": path.display().to_string(), "texts": texts.len(), "dim": dim, "truncated": truncated})
                );
            } else {
                println!("wrote {} embeddings of dimension {dim} to {}", texts.len(), path.display());
            }
        }
        None => {
            let rows: Vec<&[f32]> = data.chunks_exact(dim).collect();
            println!("{}", serde_json::to_string(&serde_json::json!({"dim": dim, "embeddings": rows, "truncated": truncated}))?);
        }
    }
    Ok(())
}

/// Embeds texts in batches (with a progress bar for a corpus).
fn embed_all(
    session: &Session,
    model: &TextPipeline,
    texts: &[String],
    batch_size: usize,
    opts: EmbedOptions,
) -> Result<(Vec<f32>, usize, Vec<usize>)> {
    let (mut data, mut dim, mut truncated) = (Vec::new(), 0, Vec::new());
    in_batches(texts, batch_size, "embedding", |first, chunk| {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let e = model.embed(session, &refs, opts)?;
        dim = e.dim;
        data.extend(e.data);
        truncated.extend(e.truncated.iter().map(|i| first + i));
        Ok(())
    })?;
    Ok((data, dim, truncated))
}

/// Says on stderr which texts were cut to the bundle's max length (indices into the texts).
fn note_truncated(truncated: &[usize], texts: usize, max_length: usize) {
    if let Some(first) = truncated.first() {
        eprintln!("note: {} of {texts} texts were longer than {max_length} tokens and were truncated (first: #{first})", truncated.len());
    }
}

/// Runs `f` on consecutive batches of `texts` (the index of each batch's first text and its
/// texts), with a progress bar named `verb` for a corpus; an error names the batch's texts.
fn in_batches<T>(texts: &[T], batch_size: usize, verb: &str, mut f: impl FnMut(usize, &[T]) -> cairn_text::Result<()>) -> Result<()> {
    let bar = progress::bar(texts.len() as u64, verb);
    for (b, chunk) in texts.chunks(batch_size).enumerate() {
        let first = b * batch_size;
        f(first, chunk).with_context(|| format!("{verb} texts {first}..{}", first + chunk.len()))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The texts of `cairn embed` and `cairn classify`, and how many run at once.
#[derive(Args)]
struct TextsArgs {
    /// A text (repeat for several).
    #[arg(long, conflicts_with = "input")]
    text: Vec<String>,
    /// A file of texts: JSON lines ("..." or {"text": "..."}; for `classify` also
    /// {"text": "...", "text_pair": "..."}) or plain lines.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Texts per model run.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

impl TextsArgs {
    /// The texts from --text or --input, refused when there are none, when one is a pair
    /// (only `classify` takes pairs: [`TextsArgs::read_inputs`]) or the batch size is 0.
    fn read(&self) -> Result<Vec<String>> {
        self.read_inputs(&[])?
            .into_iter()
            .enumerate()
            .map(|(i, input)| match input {
                TextInput::Item { text_pair: Some(_), .. } => {
                    bail!("text #{i} has a \"text_pair\": embeddings are of single texts (pairs are for `cairn classify` with a cross-encoder or NLI bundle)")
                }
                other => Ok(other.text().to_string()),
            })
            .collect()
    }

    /// The texts from --text (each with its `pairs` entry, when given: one per --text) or
    /// --input, refused when there are none or the batch size is 0.
    fn read_inputs(&self, pairs: &[String]) -> Result<Vec<TextInput>> {
        let inputs = match (&self.input, pairs.is_empty()) {
            (Some(_), false) => bail!("--pair goes with --text; in an --input file give {{\"text\": ..., \"text_pair\": ...}} lines"),
            (Some(path), true) => read_texts(path)?,
            (None, _) => texts_with_pairs(&self.text, pairs)?,
        };
        if inputs.is_empty() {
            bail!("no texts: give --text \"...\" or --input texts.jsonl");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        Ok(inputs)
    }
}

/// Classify texts with a text-classification bundle (a label per text) or a
/// token-classification bundle (a label per token, with its character span).
///
/// Texts come from --text (repeatable) or --input (as `cairn embed` reads them). Prints a
/// line per text (per token for token classification); --json prints the results as the
/// browser runtime's `model.classify` returns them; -o writes JSON lines, one per text.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn classify dist/models/sentiment --text \"I love it\" --text \"never again\"\n  cairn classify dist/models/ner --text \"Lunch in Lyon\" --json\n  cairn classify dist/models/sentiment --input reviews.jsonl -o labels.jsonl"
)]
pub struct ClassifyArgs {
    /// A text-classification or token-classification bundle (cairn pack ... --task ... --labels FILE).
    bundle: PathBuf,
    #[command(flatten)]
    texts: TextsArgs,
    /// The second text of a pair, one per --text in order (a cross-encoder's passage for a
    /// query, an NLI hypothesis for a premise): the tokenizer joins them by its pair template.
    #[arg(long, value_name = "TEXT")]
    pair: Vec<String>,
    /// Write one JSON object per line and text ({"text": ..., "label": ..., ...}).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Token classification: `simple` merges adjacent tokens of one entity type into entities
    /// (a `B-` label starts a new one, `O` is dropped), as Hugging Face's "simple" aggregation.
    #[arg(long, default_value = "none", value_name = "none|simple")]
    aggregate: String,
    /// Print JSON: {"results": [...], "truncated": [...], "max_length": N}.
    #[arg(long)]
    json: bool,
}

pub fn classify_main(args: ClassifyArgs) -> Result<()> {
    let inputs = args.texts.read_inputs(&args.pair)?;
    let aggregation = Aggregation::parse(&args.aggregate)
        .with_context(|| format!("--aggregate '{}' must be one of {}", args.aggregate, Aggregation::NAMES.join(", ")))?;
    let (session, model) = load_text_model(&args.bundle)?;
    if model.task().task == TaskKind::FeatureExtraction {
        bail!(
            "{} is a feature-extraction bundle: it embeds texts (cairn embed), it does not classify them (hint: pack a classifier with --task text-classification --labels FILE)",
            args.bundle.display()
        );
    }
    let mut results = Vec::with_capacity(inputs.len());
    in_batches(&inputs, args.texts.batch_size, "classifying", |_, chunk| {
        let refs: Vec<(&str, Option<&str>)> = chunk.iter().map(TextInput::as_refs).collect();
        results.extend(model.classify_inputs(&session, &refs, aggregation)?);
        Ok(())
    })?;
    let truncated: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.truncated).map(|(i, _)| i).collect();
    note_truncated(&truncated, inputs.len(), model.task().max_length);
    if let Some(path) = &args.output {
        let mut out = String::new();
        for (input, r) in inputs.iter().zip(&results) {
            let mut line = serde_json::to_value(r)?;
            line["text"] = input.text().into();
            if let Some(pair) = input.pair() {
                line["text_pair"] = pair.into();
            }
            out.push_str(&serde_json::to_string(&line)?);
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            println!("wrote {} classifications to {}", inputs.len(), path.display());
        }
    }
    if args.json {
        let max_length = model.task().max_length;
        println!("{}", serde_json::to_string(&serde_json::json!({"results": results, "truncated": truncated, "max_length": max_length}))?);
    } else if args.output.is_none() {
        for (input, r) in inputs.iter().zip(&results) {
            print_classification(input, r);
        }
    }
    Ok(())
}

/// A text's (or pair's) label and score, or for token classification each token's.
fn print_classification(input: &TextInput, r: &cairn_text::Classification) {
    let cut = if r.truncated { " (truncated)" } else { "" };
    let text = input.text();
    let Some(tokens) = &r.tokens else {
        match input.pair() {
            Some(pair) => println!("{text:?} / {pair:?}: {} {:.3}{cut}", r.best.label, r.best.score),
            None => println!("{text:?}: {} {:.3}{cut}", r.best.label, r.best.score),
        }
        return;
    };
    println!("{:?}:{cut}", text);
    if let Some(entities) = &r.entities {
        for e in entities {
            println!("  {:>4}..{:<4} {:<24} {:<12} {:.3}", e.start, e.end, format!("{:?}", e.text), e.label, e.score);
        }
        return;
    }
    let chars: Vec<char> = text.chars().collect();
    for (label, (start, end)) in tokens {
        let piece: String = chars.get(*start..*end).map(|c| c.iter().collect()).unwrap_or_default();
        println!("  {start:>4}..{end:<4} {:<16} {:<12} {:.3}", format!("{piece:?}"), label.label, label.score);
    }
}

/// The --text values, each with its --pair when pairs are given (one per --text, in order).
fn texts_with_pairs(texts: &[String], pairs: &[String]) -> Result<Vec<TextInput>> {
    if pairs.is_empty() {
        return Ok(texts.iter().cloned().map(TextInput::Text).collect());
    }
    if pairs.len() != texts.len() {
        bail!("{} --pair for {} --text: give one --pair per --text, in order", pairs.len(), texts.len());
    }
    Ok(texts.iter().zip(pairs).map(|(t, p)| TextInput::Item { text: t.clone(), text_pair: Some(p.clone()) }).collect())
}

/// Texts from a file: JSON lines (a string, or an object with "text" and maybe "text_pair")
/// or plain lines.
fn read_texts(path: &Path) -> Result<Vec<TextInput>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut texts = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{} line {}: not UTF-8 text", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let text = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::String(s)) => TextInput::Text(s),
            Ok(object @ serde_json::Value::Object(_)) => {
                let text = object.get("text").and_then(serde_json::Value::as_str);
                let pair = object.get("text_pair").filter(|p| !p.is_null());
                match (text, pair.map(serde_json::Value::as_str)) {
                    (Some(text), None) => TextInput::Text(text.to_string()),
                    (Some(text), Some(Some(pair))) => TextInput::Item { text: text.to_string(), text_pair: Some(pair.to_string()) },
                    _ => bail!(
                        "{} line {}: a JSON object needs a \"text\" string (and \"text_pair\", if any, a string)",
                        path.display(),
                        n + 1
                    ),
                }
            }
            _ => TextInput::Text(line),
        };
        texts.push(text);
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_lines_objects_and_plain_lines() {
        let dir = std::env::temp_dir().join(format!("cairn-texts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.jsonl");
        std::fs::write(
            &path,
            "\"a string\"\n{\"text\": \"an object\", \"id\": 3}\n\nplain line\n{\"text\": \"q\", \"text_pair\": \"p\"}\n",
        )
        .unwrap();
        let read: Vec<_> = read_texts(&path).unwrap();
        let refs: Vec<_> = read.iter().map(TextInput::as_refs).collect();
        assert_eq!(refs, [("a string", None), ("an object", None), ("plain line", None), ("q", Some("p"))]);
        for bad in ["{\"id\": 3}\n", "{\"text\": \"q\", \"text_pair\": 4}\n"] {
            std::fs::write(&path, bad).unwrap();
            assert!(read_texts(&path).unwrap_err().to_string().contains("\"text\""), "{bad}");
        }
    }
}
