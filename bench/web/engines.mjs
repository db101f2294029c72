// The three engines under test, behind one interface, usable from Node and from
// a browser page (module specifiers resolve through Node or the page's import map).
//
//   const e = await ENGINES[name](env);   // env: { readBytes(path) -> Uint8Array, paths }
//   await e.load();  e.run(input) -> Promise<Float32Array>;  e.memoryBytes() -> number|null
//
// Every engine gets the same MobileNetV2-1.0 architecture and the same input.
// Cairn and onnxruntime-web load the same ONNX file; TF.js has no ONNX importer,
// so it gets the same architecture built with tfjs-layers in BatchNorm-folded form
// (conv + bias + ReLU6: the form TF.js's converter would produce), random weights.
// A text encoder (a model file named *minilm*) gets token ids and a mask instead.
//
// Threads (docs/adr/0019): `env.threads` (default 1) is what onnxruntime-web and TF.js
// are given; `cairn` is always Cairn's single-threaded build, `cairn-threads` its
// threaded build of the same SIMD flavour (threads-relaxed beside relaxed, threads beside
// simd: what the runtime's 'auto' picks, docs/adr/0034) on `env.threads` threads.

import { startThreadPool, spawnNodeWorker, spawnWebWorker } from '../../web/src/thread-pool.js';
import { threadedBuild } from '../../web/src/backend.js';

export const INPUT_SHAPE_NCHW = [1, 3, 224, 224];
export const TEXT_SEQUENCE = 128;
const TEXT_VOCAB = 8192; // tools/build_bench_models.py's MiniLM-shaped encoder

/** The benchmark input for a model file: an image tensor, or token ids for a text encoder. */
export function inputFor(modelPath) {
  if (!/minilm/i.test(modelPath)) return { kind: 'image', data: makeInput(), shape: INPUT_SHAPE_NCHW };
  const ids = new BigInt64Array(TEXT_SEQUENCE);
  const u = makeInput(7);
  for (let i = 0; i < ids.length; i++) ids[i] = BigInt(Math.floor(u[i] * TEXT_VOCAB));
  return { kind: 'text', ids, mask: new BigInt64Array(TEXT_SEQUENCE).fill(1n), shape: [1, TEXT_SEQUENCE] };
}

const inBrowserPage = typeof window !== 'undefined';

async function cairnEngine(env, build) {
  const pkgUrl = env.paths.cairnJsOf(build);
  const pkg = await import(pkgUrl);
  const wasm = await env.readBytes(env.paths.cairnWasmOf(build));
  const threads = build.startsWith('threads') ? env.threads ?? 1 : 1;
  let model;
  return {
    async load() {
      await pkg.default({ module_or_path: wasm });
      if (threads > 1) await startThreadPool(pkg, pkgUrl, threads, typeof WorkerGlobalScope !== 'undefined' ? spawnWebWorker : spawnNodeWorker);
      model = new pkg.Model(await env.readBytes(env.paths.model));
    },
    async run(x) {
      if (x.kind === 'text') {
        const both = new BigInt64Array(x.ids.length * 2);
        both.set(x.ids);
        both.set(x.mask, x.ids.length);
        return model.runInt64(['input_ids', 'attention_mask'], both, x.shape);
      }
      return model.run(model.inputNames()[0], x.data, x.shape);
    },
    memoryBytes: () => pkg.memoryBytes(),
    describe: () => `cairn ${build} (${pkg.kernelIsa()}, ${pkg.kernelThreads()} thread${pkg.kernelThreads() > 1 ? 's' : ''})`,
  };
}

/**
 * An engine that runs in a dedicated Web Worker (bench/web/engine-worker.mjs): the threaded
 * build blocks while its pool works, which a page's main thread may not do. The input is
 * copied to the worker on every run (~0.6 MB for an image). Each run is timed inside the
 * worker (`lastRunMs`), so that the engine is compared with the ones run in the page on its
 * compute time, not on a message round trip only it pays; `measure` keeps the page's time too.
 */
function workerEngine(name, env) {
  const worker = new Worker(new URL('./engine-worker.mjs', import.meta.url), { type: 'module' });
  let next = 0;
  const waiting = new Map();
  worker.onmessage = ({ data }) => {
    const w = waiting.get(data.id);
    waiting.delete(data.id);
    if (data.error) w.reject(new Error(data.error));
    else w.resolve(data.value);
  };
  const call = (op, arg) => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(id, { resolve, reject });
    worker.postMessage({ id, op, arg });
  });
  let info = {};
  let lastMs = null;
  return {
    async load() {
      await call('start', { name, model: env.paths.model, threads: env.threads, cairnBuild: env.cairnBuild });
      await call('load');
      info = await call('info');
    },
    async run(x) {
      const { output, ms } = await call('run', x);
      lastMs = ms;
      return output;
    },
    lastRunMs: () => lastMs,
    memoryBytes: () => info.memoryBytes,
    describe: () => info.describe,
    async refresh() { info = await call('info'); },
  };
}

/// Which of Cairn's wasm builds this engine runs: the relaxed-SIMD one where the engine
/// validates it (Chromium), else plain SIMD (Node 20 without flags). `CAIRN_WASM=simd`
/// (Node) or `?cairn=simd` (page) forces one.
export async function cairnBuild(env, forced) {
  if (forced) return forced;
  const relaxed = await env.readBytes(env.paths.cairnWasmOf('relaxed')).catch(() => null);
  return relaxed && WebAssembly.validate(relaxed) ? 'relaxed' : 'simd';
}

export const ENGINES = {
  async cairn(env) {
    return cairnEngine(env, await cairnBuild(env, env.cairnBuild));
  },

  async 'cairn-threads'(env) {
    if (inBrowserPage) return workerEngine('cairn-threads', env);
    return cairnEngine(env, threadedBuild(await cairnBuild(env, env.cairnBuild)));
  },

  async 'ort-web'(env) {
    const ort = await import('onnxruntime-web');
    const threads = env.threads ?? 1;
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.simd = true;
    if (env.paths.ortWasmDir) ort.env.wasm.wasmPaths = env.paths.ortWasmDir;
    let session;
    return {
      async load() {
        session = await ort.InferenceSession.create(await env.readBytes(env.paths.ortModel ?? env.paths.model), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      },
      async run(x) {
        const feeds = x.kind === 'text'
          ? { input_ids: new ort.Tensor('int64', x.ids, x.shape), attention_mask: new ort.Tensor('int64', x.mask, x.shape) }
          : { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
        const out = await session.run(feeds);
        return out[session.outputNames[0]].data;
      },
      memoryBytes: () => null,
      // onnxruntime-web writes back 1 when it cannot run threads here.
      describe: () => `onnxruntime-web ${ort.env.versions?.web ?? ''} (wasm, ${ort.env.wasm.numThreads} thread(s), simd)`,
    };
  },

  async 'tfjs-wasm'(env) {
    const tf = await import('@tensorflow/tfjs-core');
    const tfl = await import('@tensorflow/tfjs-layers');
    const wasmBackend = await import('@tensorflow/tfjs-backend-wasm');
    wasmBackend.setWasmPaths(env.paths.tfjsWasmDir);
    wasmBackend.setThreadsCount(env.threads ?? 1);
    let model;
    return {
      async load() {
        await tf.setBackend('wasm');
        await tf.ready();
        model = buildTfjsMobileNetV2(tf, tfl);
        // TF.js compiles kernels lazily; the first predict is part of warm-up.
      },
      async run(x) {
        if (x.kind !== 'image') throw new Error('the TF.js engine builds MobileNetV2 only');
        // NCHW -> NHWC, TF.js's native layout; the transpose is part of its cost.
        const out = tf.tidy(() => model.predict(tf.transpose(tf.tensor(x.data, INPUT_SHAPE_NCHW), [0, 2, 3, 1])));
        const data = await out.data();
        out.dispose();
        return data;
      },
      memoryBytes: () => tf.memory().numBytes,
      // The thread count TF.js actually runs (its threaded binary needs SharedArrayBuffer).
      describe: () => `tfjs-backend-wasm ${tf.version_core} (${wasmBackend.getThreadsCount?.() ?? 1} thread(s), simd)`,
    };
  },
};

/// MobileNetV2-1.0 (same blocks as tools/build_mobilenetv2.py), BatchNorm folded.
function buildTfjsMobileNetV2(tf, tfl) {
  const blocks = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
  const input = tfl.input({ shape: [224, 224, 3] });
  const conv = (x, filters, k, stride, act) => tfl.layers.conv2d({ filters, kernelSize: k, strides: stride, padding: 'same', useBias: true, activation: act, kernelInitializer: 'heNormal' }).apply(x);
  const dw = (x, stride) => tfl.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: true, activation: 'relu6', depthwiseInitializer: 'heNormal' }).apply(x);
  let x = conv(input, 32, 3, 2, 'relu6');
  let cin = 32;
  for (const [t, c, n, s] of blocks) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      let y = t === 1 ? x : conv(x, cin * t, 1, 1, 'relu6');
      y = dw(y, stride);
      y = conv(y, c, 1, 1, 'linear');
      if (stride === 1 && cin === c) y = tfl.layers.add().apply([x, y]);
      x = y;
      cin = c;
    }
  }
  x = conv(x, 1280, 1, 1, 'relu6');
  x = tfl.layers.globalAveragePooling2d({}).apply(x);
  x = tfl.layers.dense({ units: 1000 }).apply(x);
  return tfl.model({ inputs: input, outputs: x });
}

/// Deterministic input in [0, 1).
export function makeInput(seed = 1) {
  const n = INPUT_SHAPE_NCHW.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s >>> 8) / (1 << 24);
  }
  return x;
}

/// Warm-up, then timed runs; returns latency statistics in ms.
export async function measure(engine, input, { warmup = 5, runs = 30, now }) {
  for (let i = 0; i < warmup; i++) await engine.run(input);
  const times = [];
  const callerTimes = []; // as the caller saw them, message round trips included (worker engines)
  let output;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    output = await engine.run(input);
    const t = now() - t0;
    callerTimes.push(t);
    times.push(engine.lastRunMs?.() ?? t);
  }
  const byValue = (a, b) => a - b;
  times.sort(byValue);
  callerTimes.sort(byValue);
  const stats = { median_ms: times[Math.floor(times.length / 2)], min_ms: times[0], p90_ms: times[Math.floor(times.length * 0.9)], times, runs, output };
  if (engine.lastRunMs) Object.assign(stats, { timed_in: 'worker', caller_median_ms: callerTimes[Math.floor(callerTimes.length / 2)], caller_min_ms: callerTimes[0] });
  return stats;
}
