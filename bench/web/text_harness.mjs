// The text benchmark's measurements, one copy for both places it runs: Node
// (text_bench.mjs) and a headless Chromium page (text_browser_bench.mjs, text_bench.html).
// Everything that differs between the two — where bytes and modules come from, how
// onnxruntime-web and Transformers.js are set up for local files and 1 thread — is the
// `host` the caller passes; the measurement loop, the checks and the tables live here only.
//
// Measured, 1 thread, 128 tokens: the MiniLM encoder (Cairn vs onnxruntime-web, the same ONNX
// file per dtype, int64 inputs, batch 1 and 8), and end to end (one text -> mean-pooled,
// normalized embedding, tokenization included: Cairn's bundle path as the worker runs it vs
// Transformers.js on onnxruntime-web's wasm backend, the same two ONNX files).

import { pickBackend } from '../../web/src/backend.js';
import { packTensors as packWebTensors } from '../../web/src/tensors.js';

export const SEQ = 128;

// A text of exactly 128 MiniLM tokens ([CLS] + 126 + [SEP]), checked in `endToEnd`.
const WORDS = 'offline notes are searched on the device by meaning while the network is away and nothing leaves the phone'.split(' ');
const TEXT = Array.from({ length: 126 }, (_, i) => WORDS[i % WORDS.length]).join(' ');

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
// Two engines timed in alternation (a, b, a, b, ...) after 3 warm-up runs each: on a shared,
// loaded machine a burst of load then falls on both sides instead of on whichever ran second.
export async function timeBoth(a, b, runs) {
  for (let i = 0; i < 3; i++) { await a(); await b(); }
  const ms = [[], []];
  for (let i = 0; i < runs; i++) {
    for (const [k, fn] of [a, b].entries()) { const t0 = performance.now(); await fn(); ms[k].push(performance.now() - t0); }
  }
  return ms.map((xs) => ({ median: median(xs), min: Math.min(...xs), runs: xs }));
}
async function time(fn, runs) { return (await timeBoth(fn, async () => {}, runs))[0]; }

export function inputs(batch) {
  const ids = new BigInt64Array(batch * SEQ);
  let s = 7;
  for (let i = 0; i < ids.length; i++) { s = (s * 1103515245 + 12345) >>> 0; ids[i] = BigInt(1000 + (s % 28000)); }
  for (let b = 0; b < batch; b++) { ids[b * SEQ] = 101n; ids[b * SEQ + SEQ - 1] = 102n; }
  return { input_ids: ids, attention_mask: new BigInt64Array(batch * SEQ).fill(1n), token_type_ids: new BigInt64Array(batch * SEQ) };
}

/**
 * Cairn's engine module and its tokenizer module. The engine build is the one the runtime picks
 * when asked for relaxed SIMD (web/src/backend.js: relaxed where this engine validates it, else
 * simd128, else scalar) unless `forced` names one.
 */
async function cairnWasm(host, forced) {
  const build = forced || pickBackend('relaxed');
  const pkg = await import(host.moduleUrl(`target/web-pkg/${build}/cairn_web.js`)).catch((e) => {
    throw new Error(`Cairn's ${build} build could not be loaded (bench/web/build_wasm.sh ${build} text builds it): ${e.message}`);
  });
  await pkg.default({ module_or_path: await host.readBytes(`target/web-pkg/${build}/cairn_web_bg.wasm`) });
  // The tokenizer is its own module (crates/cairn-web-text), as in the worker.
  const text = await import(host.moduleUrl('target/web-pkg/text/cairn_web_text.js'));
  await text.default({ module_or_path: await host.readBytes('target/web-pkg/text/cairn_web_text_bg.wasm') });
  // (An ES module namespace is not extensible: hand back a plain object with both.)
  return { ...pkg, text, build };
}

/** Tensors as `Model.runTensors` takes them: a JSON list of specs and one buffer (the worker's layout). */
export function packTensors(tensors) {
  const { specs, buffer } = packWebTensors(tensors);
  return { spec: JSON.stringify(specs), buffer };
}

export function cairnEncoder(pkg, bytes) {
  const model = new pkg.Model(bytes);
  const run = (feeds, batch) => {
    const { spec: specJson, buffer } = packTensors(Object.entries(feeds).map(([name, data]) => ({ name, dtype: 'i64', shape: [batch, SEQ], data })));
    const out = model.runTensors(specJson, buffer);
    const { bytes: outBytes, spec } = out;
    out.free();
    const s = JSON.parse(spec)[0];
    return new Float32Array(outBytes.buffer, s.offset, s.bytes / 4);
  };
  return { run, free: () => model.free() };
}

/** A bundle streamed into Cairn's wasm loader as the worker does, with its tokenizer. */
async function cairnBundle(host, pkg, dir) {
  const manifestBytes = await host.readBytes(`${dir}/manifest.json`);
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  const load = new pkg.BundleLoad(manifestBytes);
  for (const i of load.missing()) load.accept(i, await host.readBytes(`${dir}/${manifest.shards[i].path}`));
  const model = load.finish();
  model.enableText();
  const tokenizer = new pkg.text.Tokenizer(await host.readBytes(`${dir}/tokenizer.json`), manifest.text.max_length);
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
  const tokens = (text) => JSON.parse(tokenizer.encode(JSON.stringify([text])))[0].ids.length;
  return { embed, tokens, free: () => { model.free(); tokenizer.free(); } };
}

/** onnxruntime-web (the host's import, 1 thread, wasm) on the same ONNX file. */
async function ortWebSession(ort, bytes) {
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
  return { run, level, release: () => session.release() };
}

const cosine = (a, b) => { let d = 0, na = 0, nb = 0; for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; } return d / Math.sqrt(na * nb); };

/**
 * Runs the benchmark. `host`: { where, moduleUrl(repoPath), readBytes(pathOrUrl) -> Uint8Array,
 * ortWeb() -> onnxruntime-web set to 1 thread, transformers() -> { tjs, device, describe }
 * (Transformers.js configured for local files only and 1 thread), log(line) }.
 * `opts`: { runs, files: { f32, int8 }, bundles: { f32, int8 }, cairnBuild, encoder, endToEnd,
 * transformers } (files and bundle directories as host.readBytes takes them).
 * Returns a plain object (JSON, and what `tables` prints).
 */
export async function runTextBench(host, opts) {
  const pkg = await cairnWasm(host, opts.cairnBuild);
  const results = { where: host.where, seq: SEQ, runs: opts.runs, cairnBuild: pkg.build, isa: pkg.kernelIsa(), encoder: {}, endToEnd: {} };
  host.log(`Cairn build: ${pkg.build} (${pkg.kernelIsa()})`);
  if (opts.encoder) {
    const ort = await host.ortWeb();
    results.ortWeb = `onnxruntime-web ${ort.env.versions?.web ?? '?'} (wasm, ${ort.env.wasm.numThreads} thread)`;
    for (const dtype of ['f32', 'int8']) {
      const bytes = await host.readBytes(opts.files[dtype]);
      const cairn = cairnEncoder(pkg, bytes);
      const peer = await ortWebSession(ort, bytes);
      for (const batch of [1, 8]) {
        const feeds = inputs(batch);
        const a = cairn.run(feeds, batch), b = await peer.run(feeds, batch);
        const rel = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0) / b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        const [tc, to] = await timeBoth(() => cairn.run(feeds, batch), () => peer.run(feeds, batch), opts.runs);
        const row = { dtype, batch, cairn: tc, ortWeb: to, ortLevel: peer.level, maxRelDiff: rel };
        results.encoder[`${dtype}-b${batch}`] = row;
        host.log(encoderRow(row));
      }
      cairn.free();
      await peer.release();
    }
  }
  if (opts.endToEnd) {
    const tjs = opts.transformers ? await host.transformers() : null;
    if (tjs) results.transformersJs = tjs.describe;
    for (const dtype of ['f32', 'int8']) {
      const model = await cairnBundle(host, pkg, opts.bundles[dtype]);
      // The longest prefix of TEXT with at most 128 tokens (specials included).
      const words = TEXT.split(' ');
      let n = words.length;
      while (model.tokens(words.slice(0, n).join(' ')) > SEQ) n--;
      const text = words.slice(0, n).join(' ');
      results.endToEnd.tokens = model.tokens(text);
      const cairnEmbed = () => model.embed([text]);
      const row = { dtype };
      if (tjs) {
        const extractor = await tjs.tjs.pipeline('feature-extraction', 'minilm', {
          dtype: dtype === 'f32' ? 'fp32' : 'q8', device: tjs.device, local_files_only: true,
          session_options: { graphOptimizationLevel: 'basic' }, // as onnxruntime-web above
        });
        const embed = async () => (await extractor([text], { pooling: 'mean', normalize: true })).data;
        [row.cairn, row.transformersJs] = await timeBoth(cairnEmbed, embed, opts.runs);
        row.cosine = cosine(cairnEmbed(), await embed());
        await extractor.dispose();
      } else {
        row.cairn = await time(cairnEmbed, opts.runs);
      }
      model.free();
      results.endToEnd[dtype] = row;
      host.log(endToEndRow(row));
    }
  }
  return results;
}

const ms = (t) => `${t.median.toFixed(2)} / ${t.min.toFixed(2)}`;
// Medians and, as the loaded machine moves medians more than minimums, the ratio of minimums too.
const ratio = (a, b) => `**${(a.median / b.median).toFixed(2)}** (min ${(a.min / b.min).toFixed(2)})`;
const encoderRow = (r) => `| ${r.dtype} | ${r.batch} | ${ms(r.cairn)} | ${ms(r.ortWeb)} (opt ${r.ortLevel}) | ${ratio(r.cairn, r.ortWeb)} | ${(r.batch * 1000 / r.cairn.median).toFixed(1)} vs ${(r.batch * 1000 / r.ortWeb.median).toFixed(1)} | ${r.maxRelDiff.toExponential(1)} |`;
const endToEndRow = (r) => (r.transformersJs
  ? `| ${r.dtype} | ${ms(r.cairn)} | ${ms(r.transformersJs)} | ${ratio(r.cairn, r.transformersJs)} | ${r.cosine.toFixed(6)} |`
  : `| ${r.dtype} | ${ms(r.cairn)} | (not run: --no-transformers) | | |`);

/** The two Markdown tables of a result (as BENCHMARKS.md shows them). */
export function tables(results) {
  const lines = [`${results.where}, Cairn ${results.cairnBuild} build (${results.isa}), ${results.runs} runs each after 3 warm-up, the two engines alternating run by run, median / min ms`];
  const enc = Object.values(results.encoder);
  if (enc.length) {
    lines.push('', `Encoder, Cairn vs ${results.ortWeb}, same ONNX file per dtype, ${results.seq} tokens:`, '',
      '| dtype | batch | Cairn wasm | onnxruntime-web wasm | Cairn / ort-web, median (min) | texts/s Cairn vs ort-web | max rel diff |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |', ...enc.map(encoderRow));
  }
  const e2e = ['f32', 'int8'].map((d) => results.endToEnd[d]).filter(Boolean);
  if (e2e.length) {
    lines.push('', `End to end, one text of ${results.endToEnd.tokens} tokens -> normalized embedding, vs ${results.transformersJs ?? 'Transformers.js (not run)'}:`, '',
      '| dtype | Cairn text -> embedding | Transformers.js | Cairn / Transformers.js, median (min) | cosine |',
      '| --- | ---: | ---: | ---: | ---: |', ...e2e.map(endToEndRow));
  }
  return lines.join('\n');
}
