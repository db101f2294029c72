// Cairn's Web Worker: owns the wasm instance and all model memory. The page talks
// to it only through cairn.js. Everything numeric (verification, weight placement,
// preprocessing, inference, queueing decisions) happens in Rust; this file moves
// bytes and messages.

import { pickBackend, threadedBuild, singleThreadedBuild, loadWasm, loadTextWasm } from './wasm.js';
import { startThreadPool, threadCount, threadsAvailable } from './thread-pool.js';
import { packTensors } from './tensors.js';
import { textList, wellFormed, sidesOf } from './texts.js';

// The wasm build and where it lives come with the page's first message (`hello`: `backend`,
// `threads`, `wasmBase`), so the page can start this worker with a plain
// `new Worker(new URL('./worker.js', import.meta.url))` that bundlers recognize.
// Backend selection (docs/adr/0019, 0034): 'auto' runs a threaded build where this worker is
// cross-origin isolated with shared wasm memory and more than one thread is wanted; else
// pickBackend's single-threaded choice (relaxed SIMD where validated, else simd128, else
// scalar). The threaded build has the single-threaded choice's SIMD flavour: 'threads-relaxed'
// or 'threads'.
let backend = null;
let wasmMemory = null; // the module's linear memory, for writing downloads into it
let engine = null; // the engine module's exports, once started
let wasmReady = null;
let wasmBaseUrl; // the page's `wasmBase`, if any (the tokenizer module lives beside the builds)
// The tokenizer module (crates/cairn-web-text), loaded the first time a text bundle is, so
// an app without text models never downloads it (docs/adr/0026).
let textWasm = null;
const tokenizerModule = () => (textWasm ??= loadTextWasm(wasmBaseUrl).catch((e) => {
  textWasm = null; // a later load may retry (the network may be back)
  throw Object.assign(new Error(`the tokenizer module could not be loaded: ${e.message ?? e}`), { code: 'network' });
}));
// The WebGPU backend (docs/adr/0022) is its own build, `webgpu` (the simd build plus
// GpuModel; kept apart so apps that never use a GPU do not download wgpu). `webgpu` is true
// while models run on the GPU; a lost device sets it false for good and the worker goes on
// with the simd build it already runs.
let webgpu = false;
// 'auto' takes only a hardware adapter: a software one (SwiftShader, WARP: the adapter's
// `isFallbackAdapter`) runs every kernel on the CPU through a GPU emulator, slower than the wasm
// builds. 'webgpu' takes whatever adapter there is (tests run on SwiftShader on purpose).
async function gpuAdapter(wanted) {
  try {
    const adapter = self.navigator?.gpu && await navigator.gpu.requestAdapter();
    if (!adapter) return false;
    const software = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
    return wanted === 'webgpu' || !software;
  } catch { return false; }
}
function startWasm({ backend: wanted = 'auto', wasmBase, threads: wantedThreads } = {}) {
  wasmBaseUrl = wasmBase ?? undefined;
  wanted = wanted ?? 'auto';
  const threads = threadCount(wantedThreads == null ? null : String(wantedThreads));
  // 'webgpu' and 'wasm' leave the CPU build to the automatic choice; 'threads' and
  // 'threads-relaxed' ask for that threaded build (its single-threaded twin where the page
  // cannot run threads, simd128 where the engine lacks relaxed SIMD).
  const cpuWanted = wanted === 'webgpu' || wanted === 'wasm' ? 'auto' : wanted;
  const threadedWanted = cpuWanted === 'auto' || cpuWanted !== singleThreadedBuild(cpuWanted);
  const single = pickBackend(singleThreadedBuild(cpuWanted));
  backend = threadedWanted && single !== 'scalar' && threads > 1 && threadsAvailable(self) ? threadedBuild(single) : single;
  const load = async (build) => {
    const { wasm, memory, pkgUrl } = await loadWasm(build, wasmBase ?? undefined);
    wasmMemory = memory;
    engine = wasm;
    if (build !== singleThreadedBuild(build)) await startThreadPool(wasm, pkgUrl, threads);
    return wasm;
  };
  const cpu = () => load(backend).catch((e) => {
    if (backend === singleThreadedBuild(backend)) throw e;
    // Isolated, but the pool could not start (no nested workers, memory refused, the build
    // not served): one thread, same SIMD flavour (the build a service worker precached).
    console.warn(`Cairn: the threaded build failed to start (${e.message}); running single-threaded`);
    backend = singleThreadedBuild(backend);
    return load(backend);
  });
  if (wanted !== 'webgpu' && wanted !== 'auto') return cpu();
  return (async () => {
    if (await gpuAdapter(wanted)) {
      // Where the webgpu build is missing (the npm package does not ship it yet), 'auto'
      // goes on with the CPU builds.
      const wasm = await load('webgpu').catch((e) => {
        if (wanted === 'webgpu') throw new Error(`backend 'webgpu': the webgpu build could not be loaded (bench/web/build_wasm.sh webgpu builds it): ${e.message ?? e}`);
        return null;
      });
      if (wasm?.GpuModel) { webgpu = true; backend = 'webgpu'; return wasm; }
      if (wanted === 'webgpu') throw new Error("backend 'webgpu': this build of Cairn has no WebGPU backend (bench/web/build_wasm.sh webgpu builds it)");
      return cpu();
    }
    if (wanted === 'webgpu') throw new Error("backend 'webgpu': no WebGPU adapter here (navigator.gpu.requestAdapter() gave none; WebGPU needs a secure context and a supported GPU)");
    return cpu();
  })();
}

/// `run(entry.gpu)` when the model has a GPU copy: `{ out, gpu }` (the GPU's counters), or
/// null when it has none or the device was lost during the run — the caller then runs the
/// request on the CPU build, so a device loss does not fail it. Other errors are thrown.
async function runOnGpu(entry, run) {
  if (!entry.gpu) return null;
  try {
    const out = await run(entry.gpu);
    return { out, gpu: JSON.parse(entry.gpu.statsJson()) };
  } catch (e) {
    const message = String(e.message ?? e);
    if (!message.startsWith('device-lost')) throw e;
    loseGpu(message);
    return null;
  }
}

/// The GPU is gone (device lost): every model drops its GPU copy and runs on the simd build.
function loseGpu(reason) {
  if (!webgpu) return;
  webgpu = false;
  backend = 'simd';
  for (const entry of models.values()) { entry.gpu?.free(); entry.gpu = null; }
  console.warn(`Cairn: ${reason}; running on the CPU build from now on`);
  post({ type: 'backend', backend, reason });
}

const SHARD_ATTEMPTS = 3;
const MAX_TEXT_BYTES = 1 << 20; // as cairn_text::MAX_TEXT_BYTES
const MAX_BATCH = 8;
const models = new Map(); // handle -> { load, final, manifest, level, inputName }
const pending = new Map(); // request id -> { handle, input, streamKey, started }
const loads = new Map(); // request id -> AbortController
let scheduler = null;
let draining = false;
let nextHandle = 1;

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
const fail = (id, code, message) => post({ type: 'error', id, code, message });

function errorCode(e) {
  const m = String(e?.message ?? e);
  if (/tokenizer/.test(m)) return 'bad-tokenizer';
  if (/^input '|^invalid input: |texts must be|texts; one call|pooling '|aggregate '|more than the \d+ bytes one text/.test(m)) return 'bad-input';
  if (/sha256|bytes, the manifest says|safetensors|has no entry|holds bytes/.test(m)) return 'shard-corrupt';
  if (/manifest/.test(m)) return 'bad-manifest';
  return 'runtime';
}

// Verified shards, kept across page loads and model versions (Cache Storage).
const SHARD_CACHE = 'cairn-shards-v1';
async function openShardCache() {
  try { return self.caches ? await caches.open(SHARD_CACHE) : null; } catch { return null; }
}

/// Downloads `url` straight into a staging buffer of exactly `expected` bytes inside wasm
/// memory (`ptr`), reporting each chunk; returns how many bytes arrived and whether the
/// service worker already stored them.
async function fetchInto(url, ptr, expected, signal, onBytes) {
  const response = await fetch(url, { signal }).catch((e) => {
    if (e.name === 'AbortError') throw e;
    throw Object.assign(new Error(`${url} could not be fetched (offline?): ${e.message}`), { code: 'network' });
  });
  if (!response.ok) throw Object.assign(new Error(`${url}: HTTP ${response.status}`), { code: 'network' });
  // Under Cairn's service worker the shard cache has one writer: the service worker
  // stores what it served after checking its sha256 (web/sw/shards.js).
  const storedBySw = response.headers.get('x-cairn-shard-cache') === 'stored-by-sw';
  let at = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > expected) {
      await reader.cancel();
      throw Object.assign(new Error(`${url} is longer than the ${expected} bytes the manifest says`), { code: 'shard-corrupt' });
    }
    new Uint8Array(wasmMemory.buffer, ptr + at, value.length).set(value); // a fresh view: memory may have grown
    at += value.length;
    onBytes(value.length);
  }
  return { received: at, storedBySw }; // short: the loader rejects it by size
}

/// Stages `bytes` (from the cache) in wasm memory the same way.
function stageBytes(bundle, bytes) {
  const ptr = bundle.stagingBuffer(bytes.length);
  new Uint8Array(wasmMemory.buffer, ptr, bytes.length).set(bytes);
}

async function load(id, url, signal) {
  const wasm = await wasmReady;
  const manifestUrl = new URL(url, self.location.href);
  const response = await fetch(manifestUrl, { signal, cache: 'no-cache' });
  if (!response.ok) throw Object.assign(new Error(`${manifestUrl}: HTTP ${response.status}`), { code: 'network' });
  const bundle = new wasm.BundleLoad(new Uint8Array(await response.arrayBuffer()));
  const [liveAtStart] = wasm.heapStats();
  const manifest = JSON.parse(bundle.manifestJson());
  wasm.resetHeapPeak();
  // A text bundle's tokenizer.json comes first: a missing or damaged one fails the load
  // before any shard is downloaded (checked against the manifest's sha256 in Rust).
  const tokenizerJson = manifest.text ? await fetchTokenizer(bundle, manifest, manifestUrl, signal) : null;
  const tokenizer = tokenizerJson ? await makeTokenizer(tokenizerJson, manifest.text.max_length) : null;
  const handle = nextHandle++;
  const entry = { load: bundle, final: null, manifest, level: -1, inputName: manifest.inputs[0]?.name, tokenizer };
  const totalBytes = manifest.shards.reduce((n, s) => n + s.bytes, 0);
  let bytes = 0;
  const progress = (extra = {}) => post({ type: 'progress', id, bytes, totalBytes, level: entry.level, levelName: manifest.levels[entry.level]?.name ?? null, ...extra });
  progress();
  const cache = await openShardCache();
  let fromCache = 0;
  for (const index of bundle.missing()) {
    const shard = manifest.shards[index];
    const shardUrl = new URL(shard.path, manifestUrl).href;
    // Shards are content-addressed: a cached copy from any version is good if it verifies.
    const cached = await cache?.match(shardUrl).catch(() => undefined);
    if (cached) {
      try {
        const stored = new Uint8Array(await cached.arrayBuffer());
        stageBytes(bundle, stored);
        bundle.acceptStaged(index, stored.length);
        bytes += shard.bytes;
        fromCache += shard.bytes;
      } catch (e) {
        await cache.delete(shardUrl);
        progress({ rejected: { shard: shard.path, attempt: 0, fromCache: true, reason: String(e.message ?? e) } });
      }
    }
    for (let attempt = 1; !cached || bundle.missing().includes(index); attempt++) {
      let got = 0;
      const ptr = bundle.stagingBuffer(shard.bytes);
      const { storedBySw } = await fetchInto(shardUrl, ptr, shard.bytes, signal, (n) => { got += n; bytes += n; progress(); }).catch((e) => {
        if (cached && e.code === 'network') e.message = `the cached copy of ${shard.path} was damaged and has been removed; fetching it again failed: ${e.message}`;
        throw e;
      });
      // Cache Storage wants its own copy; take it before the staged bytes are consumed.
      const data = cache && !storedBySw ? new Uint8Array(wasmMemory.buffer, ptr, got).slice() : null;
      try {
        bundle.acceptStaged(index, got); // verified in Rust; on failure nothing was written
      } catch (e) {
        bytes -= got;
        progress({ rejected: { shard: shard.path, attempt, reason: String(e.message ?? e) } });
        if (attempt >= SHARD_ATTEMPTS) throw Object.assign(new Error(`${shard.path} failed verification ${attempt} times: ${e.message ?? e}`), { code: 'shard-corrupt' });
        continue;
      }
      // Only verified bytes are cached. A full quota costs the cache, never the load.
      if (data) await cache.put(shardUrl, new Response(data, { headers: { 'content-type': 'application/octet-stream' } })).catch((e) => progress({ cacheError: String(e.message ?? e) }));
      break;
    }
    const level = bundle.levelReached();
    if (level !== entry.level) {
      entry.level = level;
      if (level === 0 || models.get(handle) === undefined) {
        models.set(handle, entry);
        post({ type: 'loaded', id, handle, manifest, level, backend });
      }
      progress();
    }
  }
  const [liveBeforeFinish, peakBeforeFinish] = wasm.heapStats();
  if (webgpu) bundle.keepGpuGraph();
  entry.final = bundle.finish();
  const gpuGraph = webgpu ? bundle.takeGpuGraph() : undefined;
  bundle.free();
  if (gpuGraph) {
    // A model the GPU cannot take (no device, a planning error) runs on the CPU build.
    try { entry.gpu = await wasm.GpuModel.create(gpuGraph); } catch (e) {
      console.warn(`Cairn: ${manifest.name} stays on the CPU build: ${e.message ?? e}`);
      if (/device-lost|lost/.test(String(e.message ?? e))) loseGpu(String(e.message ?? e));
    }
  }
  if (tokenizer) {
    try { entry.final.enableText(); } catch (e) { throw Object.assign(new Error(String(e.message ?? e)), { code: 'bad-tokenizer' }); }
  }
  entry.load = null;
  entry.level = manifest.levels.length - 1;
  models.set(handle, entry);
  post({ type: 'loaded', id, handle, manifest, level: entry.level, backend });
  progress({ done: true, fromCache });
  entry.lastUsed = performance.now();
  enforceBudget(wasm, handle);
  const [liveAfterLoad, peakDuringLoad] = wasm.heapStats();
  post({ type: 'complete', id, handle, memoryBytes: wasm.memoryBytes(), heap: { liveAtStart, liveAfterLoad, peakDuringLoad, liveBeforeFinish, peakBeforeFinish } });
}

/// A tokenizer (the separate tokenizer module) for a bundle's verified tokenizer.json.
async function makeTokenizer(json, maxLength) {
  const text = await tokenizerModule();
  try { return new text.Tokenizer(json, maxLength); } catch (e) { throw tokenizerError(e, 'this tokenizer.json'); }
}

/// A tokenizer module error as a `bad-tokenizer` error. A wasm trap (a panic of the
/// tokenizers crate on a file Cairn's checks did not foresee: crates/cairn-text's
/// tokenizer_checks.rs) says so, and the next load instantiates a fresh module: a trap can
/// leave the old instance's memory half-updated. Models already loaded keep theirs.
function tokenizerError(e, what) {
  if (!(e instanceof WebAssembly.RuntimeError)) return Object.assign(new Error(String(e.message ?? e)), { code: 'bad-tokenizer' });
  textWasm = null;
  return Object.assign(new Error(`the tokenizer failed on ${what} (a wasm trap: ${e.message}); hint: check the bundle's tokenizer.json with \`cairn tokenize\``), { code: 'bad-tokenizer' });
}

/// Tokenizes texts with the bundle's tokenizer into the engine's batch input.
function tokenBatch(entry, texts) {
  let b;
  try { b = entry.tokenizer.encodeBatch(JSON.stringify(texts)); } catch (e) { throw e instanceof WebAssembly.RuntimeError ? tokenizerError(e, 'these texts') : e; }
  try {
    return new engine.TokenBatchInput(b.batch, b.seqLen, b.ids, b.typeIds, b.attentionMask, b.offsets, b.truncated);
  } finally { b.free(); }
}

/// The bundle's tokenizer.json, verified against the manifest.
async function fetchTokenizer(bundle, manifest, manifestUrl, signal) {
  const url = new URL(manifest.text.tokenizer.path, manifestUrl);
  const bad = (why) => Object.assign(new Error(`${url.pathname}: ${why}`), { code: 'bad-tokenizer' });
  const response = await fetch(url, { signal }).catch((e) => {
    if (e.name === 'AbortError') throw e;
    throw Object.assign(new Error(`${url} could not be fetched (offline?): ${e.message}`), { code: 'network' });
  });
  if (!response.ok) throw bad(`HTTP ${response.status}: the bundle's tokenizer is missing (hint: cairn pack copies it beside manifest.json; serve the whole bundle directory)`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  try { bundle.checkTokenizer(bytes); } catch (e) { throw bad(String(e.message ?? e)); }
  return bytes;
}

function tensorFor(entry, input) {
  if (input.bitmap) input = { rgba: bitmapPixels(input.bitmap, input.width, input.height), width: input.width, height: input.height };
  if (!input.rgba) return { data: input.data, shape: input.shape };
  const source = entry.final ?? entry.load; // both preprocess per the manifest, in Rust
  const data = source.imageToInput(entry.inputName, input.rgba, input.width, input.height);
  const [h, w] = entry.manifest.inputs[0].preprocess.size;
  return { data, shape: entry.manifest.inputs[0].preprocess.layout === 'nchw' ? [1, 3, h, w] : [1, h, w, 3] };
}

/// The RGBA pixels of an image the page sent already scaled to the model's size (reading
/// them here keeps that work off the page's main thread). The bitmap is closed.
function bitmapPixels(bitmap, width, height) {
  const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return new Uint8Array(ctx.getImageData(0, 0, width, height).data.buffer);
}

// Runs requests that share a model and input shape as one batch along dim 0 (the
// scheduler only groups them when the model's batch dim is symbolic).
async function runBatch(ids) {
  const reqs = ids.map((id) => { const r = pending.get(id); pending.delete(id); return { id, ...r }; });
  const entry = models.get(reqs[0].handle);
  if (!entry) return reqs.forEach((r) => fail(r.id, 'not-loaded', 'this model is not loaded (it was unloaded or never finished loading)'));
  if (reqs[0].text) return runText(entry, reqs);
  if (reqs[0].input.tensors) return runTyped(entry, reqs[0]);
  const t0 = performance.now();
  entry.lastUsed = t0;
  const tensors = reqs.map((r) => tensorFor(entry, r.input));
  let data = tensors[0].data;
  const shape = [...tensors[0].shape];
  if (reqs.length > 1) {
    data = new Float32Array(tensors.reduce((n, t) => n + t.data.length, 0));
    let at = 0;
    for (const t of tensors) { data.set(t.data, at); at += t.data.length; }
    shape[0] = reqs.length;
  }
  const t1 = performance.now();
  const asked = reqs[0].width ?? 1; // batches share a width (batchGroup)
  const cpuRun = () => (entry.final ? entry.final.runOutputAt(entry.inputName, data, Uint32Array.from(shape), asked) : entry.load.runInterim(entry.inputName, data, Uint32Array.from(shape)));
  const onGpu = asked >= 1 ? await runOnGpu(entry, async (g) => {
    const values = await g.run(entry.inputName, data, Uint32Array.from(shape));
    return { data: values, shape: g.outputShape(), width: 1, free() {} };
  }) : null;
  const gpu = onGpu?.gpu ?? null;
  const out = onGpu?.out ?? cpuRun();
  // The wasm side answers in f32: give the manifest's own number (0.9, not 0.8999999761581421).
  const width = entry.manifest.widths?.widths.find((w) => Math.fround(w.fraction) === Math.fround(out.width))?.fraction ?? out.width;
  // A width's first run prepares its weights (docs/adr/0018): the deadline policy must not
  // take that time for the width's speed.
  const ranAs = gpu ? 'gpu' : entry.final ? `w${width}` : 'interim';
  entry.ranAs ??= new Set();
  const firstAtWidth = !entry.ranAs.has(ranAs);
  entry.ranAs.add(ranAs);
  const widthReason = widthReasonOf(entry, asked, width);
  const t2 = performance.now();
  const outShape = Array.from(out.shape);
  const all = out.data;
  out.free();
  const per = all.length / reqs.length;
  reqs.forEach((r, i) => {
    const result = { name: entry.manifest.outputs[0].name, shape: reqs.length > 1 ? [1, ...outShape.slice(1)] : outShape, data: all.slice(i * per, (i + 1) * per) };
    post({
      type: 'result', id: r.id, outputs: [result], level: entry.manifest.levels[entry.level].name, where: 'device', width, widthReason,
      backend: gpu ? 'webgpu' : 'wasm', gpu,
      timings: { queueMs: t0 - r.queued, preprocessMs: t1 - t0, runMs: t2 - t1, batch: reqs.length, firstAtWidth },
    }, [result.data.buffer]);
  });
}

// Typed arrays by Cairn dtype name (f16 and bf16 travel as their 16-bit patterns).
const ARRAYS = {
  f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i8: Int8Array, u8: Uint8Array, i16: Int16Array,
  u16: Uint16Array, i32: Int32Array, u32: Uint32Array, i64: BigInt64Array, u64: BigUint64Array, bool: Uint8Array,
};

/// One request with named inputs of any dtype: packed into one buffer (each tensor's bytes
/// as they are), run (on the GPU when the model has a GPU copy), and every output sent back
/// as a view of one transferred buffer.
async function runTyped(entry, req) {
  if (!entry.final) return fail(req.id, 'not-loaded', 'tensor inputs need the complete model: wait for `model.complete`');
  const t0 = performance.now();
  entry.lastUsed = t0;
  const { specs, buffer } = packTensors(req.input.tensors);
  const t1 = performance.now();
  const spec = JSON.stringify(specs);
  const onGpu = await runOnGpu(entry, (g) => g.runTensors(spec, buffer));
  const gpu = onGpu?.gpu ?? null;
  const out = onGpu?.out ?? entry.final.runTensors(spec, buffer);
  const t2 = performance.now();
  const bytes = out.bytes;
  const outSpecs = JSON.parse(out.spec);
  out.free();
  const outputs = outSpecs.map((s) => {
    const Array = ARRAYS[s.dtype];
    return { name: s.name, dtype: s.dtype, shape: s.shape, data: new Array(bytes.buffer, s.offset, s.bytes / Array.BYTES_PER_ELEMENT) };
  });
  post({
    type: 'result', id: req.id, outputs, level: entry.manifest.levels[entry.level].name, where: 'device',
    backend: gpu ? 'webgpu' : 'wasm', gpu,
    timings: { queueMs: t0 - req.queued, preprocessMs: t1 - t0, runMs: t2 - t1, batch: 1 },
  }, [bytes.buffer]);
}

/// Text requests of one model and task (embed with the same options, or classify), run
/// as one padded batch: the scheduler grouped them.
function runText(entry, reqs) {
  const { kind, pooling, normalize, aggregate } = reqs[0].text;
  if (!entry.final?.maxLength()) {
    const why = entry.manifest.text ? 'its tokenizer is not loaded yet (wait for `model.complete`)' : 'its bundle has no text task (pack it with --tokenizer tokenizer.json --task ...)';
    return reqs.forEach((r) => fail(r.id, 'bad-input', `this model cannot ${kind}: ${why}`));
  }
  const t0 = performance.now();
  entry.lastUsed = t0;
  const all = reqs.flatMap((r) => r.text.texts);
  const timings = (r, t1) => ({ queueMs: t0 - r.queued, runMs: t1 - t0, batch: reqs.length, texts: all.length });
  const maxLength = entry.final.maxLength();
  let at = 0;
  const batch = tokenBatch(entry, all);
  if (kind === 'embed') {
    let out;
    try { out = entry.final.embed(batch, pooling ?? undefined, normalize ?? undefined); } finally { batch.free(); }
    const t1 = performance.now();
    const { dim, seqLen } = out;
    const data = out.data;
    const truncated = Array.from(out.truncated);
    out.free();
    for (const r of reqs) {
      const n = r.text.texts.length;
      const rows = data.slice(at * dim, (at + n) * dim);
      const mine = truncated.filter((i) => i >= at && i < at + n).map((i) => i - at);
      post({ type: 'result', id: r.id, where: 'device', data: rows, dim, truncated: mine, replaced: r.text.replaced, maxLength, seqLen, timings: timings(r, t1) }, [rows.buffer]);
      at += n;
    }
  } else {
    let results;
    try {
      // (Entities group a token classifier's tokens by the text; pairs only reach text
      // classifiers, which have no tokens, so a pair's first text stands for it.)
      const texts = aggregate ? JSON.stringify(all.map((t) => (typeof t === 'string' ? t : t.text))) : undefined;
      results = JSON.parse(entry.final.classify(batch, aggregate ?? undefined, texts));
    } finally { batch.free(); }
    const t1 = performance.now();
    for (const r of reqs) {
      const n = r.text.texts.length;
      post({ type: 'result', id: r.id, where: 'device', results: results.slice(at, at + n), replaced: r.text.replaced, maxLength, timings: timings(r, t1) });
      at += n;
    }
  }
}

/// The page's texts (web/src/texts.js: a pair only with `pairs`, lone surrogates replaced),
/// each at most MAX_TEXT_BYTES of UTF-8. Refused here, not in the batch, so one oversized
/// text fails only its own request.
function wellFormedTexts(texts, { pairs = false } = {}) {
  const list = textList(texts, { pairs });
  // Measured before the replacement: TextEncoder writes a lone surrogate as U+FFFD, 3 bytes,
  // as the replacement itself would be.
  const big = list.findIndex((t) => sidesOf(t).some((s) => s.length > MAX_TEXT_BYTES / 3 && new TextEncoder().encode(s).length > MAX_TEXT_BYTES));
  if (big >= 0) throw Object.assign(new Error(`text ${big} is more than the ${MAX_TEXT_BYTES} bytes (UTF-8) one text may have (hint: split long documents into passages)`), { code: 'bad-input' });
  return wellFormed(list);
}

function widthReasonOf(entry, asked, ran) {
  if (asked >= 1) return 'full width (none asked for)';
  if (!entry.final) return `full width: width ${asked} was asked for, but narrower widths run once every level has arrived`;
  if (!entry.manifest.widths) return `full width: width ${asked} was asked for, but this model has no run-time widths`;
  return ran === asked ? `width ${ran} as asked` : `width ${ran}: the model's nearest to the ${asked} asked for`;
}

// Memory budget: when Rust's live heap exceeds it, idle models are unloaded, least
// recently used first (never `keep`, the one just loaded). The page is told which.
let memoryBudget = Infinity;
function enforceBudget(wasm, keep) {
  const idle = [...models.entries()].filter(([h, e]) => h !== keep && e.final).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
  for (const [handle, entry] of idle) {
    if (wasm.heapStats()[0] <= memoryBudget) break;
    entry.final.free();
    entry.tokenizer?.free();
    models.delete(handle);
    post({ type: 'evicted', handle, reason: `memory budget of ${memoryBudget} bytes exceeded` });
  }
}

/// Requests that may share a batch: same model and input shape, batch dim symbolic, not a stream.
function batchGroup(msg) {
  const entry = models.get(msg.handle);
  if (!entry || msg.stream || typeof entry.manifest.inputs[0]?.dims[0] !== 'string') return '';
  const image = msg.input.rgba || msg.input.bitmap;
  const shape = image ? 'image' : msg.input.shape.join('x');
  return image || msg.input.shape[0] === 1 ? `${msg.handle}:${shape}:${msg.width ?? 1}` : '';
}

// Runs waiting requests one per macrotask, so that messages that arrived during a
// run are queued (and stale frames dropped) before the next one is picked.
function drain() {
  if (draining) return;
  draining = true;
  setTimeout(async function step() {
    for (const dropped of scheduler.takeDropped()) {
      pending.get(dropped)?.input?.bitmap?.close(); // a stale frame's pixels are freed now, not at GC
      pending.delete(dropped);
      fail(dropped, 'dropped', 'a newer frame of the same stream replaced this one, or the queue was full');
    }
    const ids = scheduler.nextBatch(MAX_BATCH);
    if (ids.length === 0) { draining = false; return; }
    try { await runBatch(Array.from(ids)); } catch (e) { for (const id of ids) fail(id, errorCode(e), String(e.message ?? e)); }
    post({ type: 'queue', length: scheduler.len(), highWater: scheduler.highWater() });
    setTimeout(step, 0);
  }, 0);
}

self.onmessage = async ({ data: msg }) => {
  wasmReady ??= startWasm(msg);
  let wasm;
  // A build that cannot start (e.g. backend 'webgpu' without an adapter) fails the request
  // with its reason instead of leaving it unanswered.
  try { wasm = await wasmReady; } catch (e) { return fail(msg.id, e.code ?? 'bad-input', String(e.message ?? e)); }
  if (!scheduler) {
    scheduler = new wasm.Scheduler(msg.queueBound ?? 16);
    memoryBudget = msg.memoryBudget ?? Infinity;
  }
  switch (msg.type) {
    case 'hello':
      return post({ type: 'hello', id: msg.id, backend, threads: wasm.kernelThreads(), isa: wasm.kernelIsa() });
    case 'load': {
      const controller = new AbortController();
      loads.set(msg.id, controller);
      try { await load(msg.id, msg.url, controller.signal); } catch (e) {
        fail(msg.id, e.name === 'AbortError' ? 'aborted' : (e.code ?? errorCode(e)), String(e.message ?? e));
      } finally { loads.delete(msg.id); }
      return;
    }
    case 'run': {
      pending.set(msg.id, { handle: msg.handle, input: msg.input, width: msg.width ?? 1, queued: performance.now() });
      scheduler.push(msg.id, msg.priority ?? 0, msg.stream ?? '', msg.input.tensors ? '' : batchGroup(msg));
      return drain();
    }
    case 'embed':
    case 'classify': {
      let texts;
      try { texts = wellFormedTexts(msg.texts, { pairs: msg.type === 'classify' }); } catch (e) { return fail(msg.id, e.code, e.message); }
      const task = models.get(msg.handle)?.manifest.text?.task;
      if (texts.pairs && task !== 'text-classification') {
        return fail(msg.id, 'bad-input', `text pairs need a text-classification bundle (a cross-encoder or NLI model); this one is ${task ?? 'not a text model'}`);
      }
      const text = { kind: msg.type, texts: texts.texts, replaced: texts.replaced, pooling: msg.pooling ?? null, normalize: msg.normalize ?? null, aggregate: msg.aggregate ?? null };
      pending.set(msg.id, { handle: msg.handle, text, queued: performance.now() });
      // Same model, task and options: one padded batch.
      scheduler.push(msg.id, msg.priority ?? 0, '', `${msg.handle}:${msg.type}:${text.pooling}:${text.normalize}:${text.aggregate}`);
      return drain();
    }
    case 'tokenize': {
      const entry = models.get(msg.handle);
      if (!entry?.final?.maxLength()) return fail(msg.id, 'bad-input', 'this model has no tokenizer (not a text bundle, or not loaded yet)');
      try {
        const { texts, replaced } = wellFormedTexts(msg.texts, { pairs: true });
        return post({ type: 'tokens', id: msg.id, encodings: JSON.parse(entry.tokenizer.encode(JSON.stringify(texts))), replaced });
      } catch (e) {
        const err = e instanceof WebAssembly.RuntimeError ? tokenizerError(e, 'these texts') : e;
        return fail(msg.id, err.code ?? errorCode(err), String(err.message ?? err));
      }
    }
    case 'preprocess': {
      // The model's input tensor for an image, as the manifest's preprocessing makes it
      // (for sending the same input to the edge).
      const entry = models.get(msg.handle);
      if (!entry) return fail(msg.id, 'not-loaded', 'this model is not loaded');
      const { data, shape } = tensorFor(entry, msg.input);
      return post({ type: 'tensor', id: msg.id, name: entry.inputName, data, shape }, [data.buffer]);
    }
    case 'abort': {
      loads.get(msg.target)?.abort();
      if (scheduler.cancel(msg.target)) {
        pending.delete(msg.target);
        fail(msg.target, 'aborted', 'the request was cancelled');
      }
      return;
    }
    case 'unload': {
      const entry = models.get(msg.handle);
      entry?.final?.free();
      entry?.load?.free();
      entry?.tokenizer?.free();
      models.delete(msg.handle);
      return post({ type: 'unloaded', id: msg.id, memoryBytes: wasm.memoryBytes() });
    }
    case 'decide': // where to run: the placement policy (crates/cairn-web/src/policy.rs)
      return post({ type: 'decision', id: msg.id, decision: JSON.parse(wasm.decidePlacement(JSON.stringify(msg.signals))) });
    case 'debug-lose-gpu': { // test hook: destroys the GPU device as a driver reset would
      let destroyed = 0;
      for (const entry of models.values()) if (entry.gpu) { entry.gpu.destroyDevice(); destroyed++; }
      return post({ type: 'debug', id: msg.id, destroyed });
    }
    case 'memory': {
      const [live, peak] = wasm.heapStats();
      if (msg.resetPeak) wasm.resetHeapPeak();
      return post({ type: 'memory', id: msg.id, memoryBytes: wasm.memoryBytes(), heapLive: live, heapPeak: peak });
    }
  }
};
