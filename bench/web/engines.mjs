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

export const INPUT_SHAPE_NCHW = [1, 3, 224, 224];

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
    const build = await cairnBuild(env, env.cairnBuild);
    const pkg = await import(env.paths.cairnJsOf(build));
    const wasm = await env.readBytes(env.paths.cairnWasmOf(build));
    let model;
    return {
      async load() {
        await pkg.default({ module_or_path: wasm });
        model = new pkg.Model(await env.readBytes(env.paths.model));
      },
      async run(x) {
        return model.run(model.inputNames()[0], x, INPUT_SHAPE_NCHW);
      },
      memoryBytes: () => pkg.memoryBytes(),
      describe: () => `cairn (${pkg.kernelIsa()})`,
    };
  },

  async 'ort-web'(env) {
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.simd = true;
    if (env.paths.ortWasmDir) ort.env.wasm.wasmPaths = env.paths.ortWasmDir;
    let session;
    return {
      async load() {
        session = await ort.InferenceSession.create(await env.readBytes(env.paths.model), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      },
      async run(x) {
        const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, INPUT_SHAPE_NCHW) };
        const out = await session.run(feeds);
        return out[session.outputNames[0]].data;
      },
      memoryBytes: () => null,
      describe: () => `onnxruntime-web ${ort.env.versions?.web ?? ''} (wasm, 1 thread, simd)`,
    };
  },

  async 'tfjs-wasm'(env) {
    const tf = await import('@tensorflow/tfjs-core');
    const tfl = await import('@tensorflow/tfjs-layers');
    const wasmBackend = await import('@tensorflow/tfjs-backend-wasm');
    wasmBackend.setWasmPaths(env.paths.tfjsWasmDir);
    if (wasmBackend.setThreadsCount) wasmBackend.setThreadsCount(1);
    let model;
    return {
      async load() {
        await tf.setBackend('wasm');
        await tf.ready();
        model = buildTfjsMobileNetV2(tf, tfl);
        // TF.js compiles kernels lazily; the first predict is part of warm-up.
      },
      async run(x) {
        // NCHW -> NHWC, TF.js's native layout; the transpose is part of its cost.
        const out = tf.tidy(() => model.predict(tf.transpose(tf.tensor(x, INPUT_SHAPE_NCHW), [0, 2, 3, 1])));
        const data = await out.data();
        out.dispose();
        return data;
      },
      memoryBytes: () => tf.memory().numBytes,
      describe: () => `tfjs-backend-wasm ${tf.version_core} (1 thread, simd)`,
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
  let output;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    output = await engine.run(input);
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median_ms: times[Math.floor(times.length / 2)], min_ms: times[0], p90_ms: times[Math.floor(times.length * 0.9)], times, runs, output };
}
