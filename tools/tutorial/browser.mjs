// The tutorial's browser step: the packed bundles run in headless Chromium by Cairn's demo
// runtime (web/src/cairn.js + its worker and the wasm build), on the evaluation inputs.
//   node tools/tutorial/browser.mjs OUT_DIR [--bench RUNS]
// Reads OUT_DIR/models/<name>/ (cairn pack) and OUT_DIR/inputs/<name>.npy ([N, 224, 224, 3]
// float32; the uint8 model's input holds its integer values); writes OUT_DIR/browser/<name>.npy
// ([N, 1000]). With --bench: one page, one worker, 1 thread each: the int8 TFLite bundle in
// Cairn vs TF.js's wasm backend running the TF.js layers export of the same Keras model,
// interleaved, minimum and median over RUNS runs each; OUT_DIR/browser/bench.json.
// Needs target/web-pkg/simd (bench/web/build_wasm.sh), web/node_modules (playwright-core) and
// bench/web/node_modules (TF.js wasm).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../web/test/server.mjs';
import { launch } from '../../web/test/browser.mjs';
import { readNpy, writeNpy } from '../../web/test/npy.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [outArg, ...rest] = process.argv.slice(2);
if (!outArg) {
  console.error('usage: node tools/tutorial/browser.mjs OUT_DIR [--bench RUNS]');
  process.exit(2);
}
const out = path.resolve(outArg);
const benchRuns = rest[0] === '--bench' ? Number(rest[1] ?? 20) : 0;
const MODELS = ['tfjs_keras2', 'tfjs_keras3', 'tflite_int8'];

const server = await startServer({
  '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': path.join(out, 'models'),
  '/tutorial/': path.join(root, 'tools/tutorial'), '/bench/': path.join(root, 'bench'), '/out/': out,
});
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  page.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await page.goto(`${server.origin}/tutorial/page.html`);
  await page.waitForFunction(() => window.pageReady);
  fs.mkdirSync(path.join(out, 'browser'), { recursive: true });
  const backend = await page.evaluate(async () => { window.cairn = await window.Cairn.start({ wasmBase: '/pkg/' }); return `${window.cairn.backend} (${window.cairn.isa})`; });
  for (const name of MODELS) {
    const input = readNpy(path.join(out, 'inputs', `${name}.npy`));
    const [n, ...one] = input.shape;
    const per = one.reduce((a, b) => a * b, 1);
    const rows = await page.evaluate(async ({ url, data, n, per, shape }) => {
      const model = await window.cairn.load(url);
      await model.complete;
      const rows = [];
      for (let i = 0; i < n; i++) {
        const r = await model.run({ data: new Float32Array(data.slice(i * per, (i + 1) * per)), shape: [1, ...shape] });
        rows.push(Array.from(r.outputs[0].data));
      }
      window.models = { ...window.models, [url]: model };
      return rows;
    }, { url: `/models/${name}/manifest.json`, data: Array.from(input.data), n, per, shape: one });
    writeNpy(path.join(out, 'browser', `${name}.npy`), rows.flat(), [n, rows[0].length]);
    console.log(`${name}: ${n} inputs run in Chromium by the demo runtime (${backend}), outputs in ${path.join(out, 'browser', name + '.npy')}`);
  }
  if (benchRuns > 0) {
    const input = readNpy(path.join(out, 'inputs', 'tflite_int8.npy'));
    const floatInput = readNpy(path.join(out, 'inputs', 'tfjs_keras2.npy'));
    const per = input.data.length / input.shape[0];
    const result = await page.evaluate(async ({ q, f, runs }) => {
      const shape = [1, 224, 224, 3];
      const cairnModel = window.models['/models/tflite_int8/manifest.json'];
      const tf = await import('@tensorflow/tfjs-core');
      const tfl = await import('@tensorflow/tfjs-layers');
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths('/bench/web/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
      wasm.setThreadsCount?.(1);
      await tf.setBackend('wasm');
      await tf.ready();
      const tfjsModel = await tfl.loadLayersModel('/out/tfjs_keras2/model.json');
      const x = tf.tensor(new Float32Array(f), shape);
      const times = { cairnRun: [], cairnCall: [], tfjs: [] };
      const cairnOnce = async () => {
        const t0 = performance.now();
        const r = await cairnModel.run({ data: new Float32Array(q), shape });
        times.cairnCall.push(performance.now() - t0);
        times.cairnRun.push(r.timings.runMs);
      };
      const tfjsOnce = async () => {
        const t0 = performance.now();
        const y = tfjsModel.predict(x);
        await y.data();
        times.tfjs.push(performance.now() - t0);
        y.dispose();
      };
      for (let i = 0; i < 3; i++) { await cairnOnce(); await tfjsOnce(); } // warm-up (TF.js compiles lazily)
      for (const k of Object.keys(times)) times[k].length = 0;
      // Interleaved halves: a burst of load from other processes hits both engines.
      for (let half = 0; half < 2; half++) {
        for (let i = 0; i < runs / 2; i++) await cairnOnce();
        for (let i = 0; i < runs / 2; i++) await tfjsOnce();
      }
      const stats = (v) => { const s = [...v].sort((a, b) => a - b); return { min_ms: s[0], median_ms: s[Math.floor(s.length / 2)] }; };
      return {
        runs, tfjs: { version: tf.version_core, backend: tf.getBackend(), threads: wasm.getThreadsCount?.() ?? 1, ...stats(times.tfjs) },
        cairn_run: stats(times.cairnRun), cairn_call: stats(times.cairnCall),
      };
    }, { q: Array.from(input.data.slice(0, per)), f: Array.from(floatInput.data.slice(0, per)), runs: benchRuns });
    result.cairn_backend = backend;
    result.ratio_min = result.cairn_run.min_ms / result.tfjs.min_ms;
    result.ratio_median = result.cairn_run.median_ms / result.tfjs.median_ms;
    fs.writeFileSync(path.join(out, 'browser', 'bench.json'), JSON.stringify(result, null, 1));
    const f = (s) => `${s.min_ms.toFixed(2)} / ${s.median_ms.toFixed(2)}`;
    console.log(`speed in Chromium, 1 thread, ${benchRuns} runs each (min / median ms):`);
    console.log(`  Cairn ${backend}, int8 TFLite bundle: run ${f(result.cairn_run)}; whole call from the page ${f(result.cairn_call)}`);
    console.log(`  TF.js ${result.tfjs.version} ${result.tfjs.backend} (${result.tfjs.threads} thread), float32 layers export: ${f(result.tfjs)}`);
    console.log(`  ratio Cairn / TF.js: ${result.ratio_min.toFixed(2)}x (min), ${result.ratio_median.toFixed(2)}x (median)`);
  }
} finally {
  await browser.close();
  await server.close();
}
