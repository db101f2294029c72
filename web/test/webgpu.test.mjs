// Cairn's WebGPU backend in real headless Chromium (docs/adr/0022). `--enable-unsafe-webgpu`
// gives a software adapter (SwiftShader) on http://127.0.0.1: MobileNetV2 runs on it with
// no operator falling back to the CPU kernels, its output matches the wasm build's within 1e-4
// (largest error against the largest logit), the run reports its dispatches and bytes, and a
// GPU device destroyed mid-session (the test hook) leaves the request in flight answered by
// the wasm build, `cairn.backend` at 'simd' and the next runs working.
//
// Needs: target/release/cairn, target/web-pkg/{simd,webgpu}
// (bench/web/build_wasm.sh simd webgpu) and target/models/mobilenetv2.onnx (tools/build_mobilenetv2.py).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-webgpu-test-'));
const SHAPE = [1, 3, 224, 224];
let server, browser;

before(async () => {
  execFileSync(path.join(root, 'target/release/cairn'), ['pack', path.join(root, 'target/models/mobilenetv2.onnx'), '-o', path.join(work, 'models/mobilenetv2'), '--image-size', '224'], { stdio: 'inherit' });
  server = await startServer({ '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': path.join(work, 'models') }, { isolated: false });
  browser = await launch(undefined, ['--enable-unsafe-webgpu']);
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** In a fresh page: start Cairn with `options`, load MobileNetV2 and run `steps` (in the page). */
async function session(options, steps) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && errors.push(`${r.status()} ${r.url()}`));
  try {
    await page.goto(`${server.origin}/web/test/fixture.html`);
    await page.waitForFunction(() => window.fixtureReady);
    const r = await page.evaluate(async ({ options, shape, steps }) => {
      const cairn = await window.Cairn.start({ wasmBase: '/pkg/', ...options });
      const started = cairn.backend;
      const model = await cairn.load('/models/mobilenetv2/manifest.json');
      await model.complete;
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0, s = 7; i < n; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; data[i] = (s / 2 ** 32) * 4 - 2; }
      const pick = (res) => ({ backend: res.backend, gpu: res.gpu ?? null, out: Array.from(res.outputs[0].data) });
      const runs = [];
      for (const step of steps) {
        if (step === 'run') runs.push(pick(await model.run({ data, shape })));
        // The loss lands while the run awaits its read-back (or just after it finished).
        if (step === 'lose-during-run') {
          const [res, destroyed] = await Promise.all([model.run({ data, shape }), cairn._loseGpuForTest()]);
          runs.push({ ...pick(res), destroyed });
        }
      }
      return { started, backendAfter: cairn.backend, runs };
    }, { options, shape: SHAPE, steps });
    return { ...r, errors };
  } finally {
    await page.close();
  }
}

/** Largest |a - b| over the largest |b|. */
function scaledError(a, b) {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  return err / scale;
}

test('MobileNetV2 on WebGPU matches the wasm build, reports its counters, survives a device loss', async () => {
  const wasm = await session({ backend: 'wasm' }, ['run']);
  assert.deepEqual(wasm.errors, []);
  assert.equal(wasm.started, 'simd');
  assert.equal(wasm.runs[0].backend, 'wasm');

  const gpu = await session({ backend: 'auto' }, ['run', 'run', 'lose-during-run', 'run']);
  assert.deepEqual(gpu.errors, []);
  assert.equal(gpu.started, 'webgpu', "'auto' picks WebGPU where navigator.gpu gives an adapter");
  const [first, second, lost, after] = gpu.runs;
  assert.equal(first.backend, 'webgpu');
  assert.deepEqual(first.gpu.fallbackOps, [], 'every operator of MobileNetV2 runs on the GPU');
  assert.equal(first.gpu.readBacks, 1);
  assert.equal(first.gpu.bytesReadBack, 1000 * 4);
  assert.equal(first.gpu.bytesUploaded, 3 * 224 * 224 * 4);
  assert.ok(first.gpu.bytesUploadedAtBuild > 13e6, 'the weights went up with the first run');
  assert.equal(second.gpu.bytesUploadedAtBuild, 0, 'and stayed on the GPU');
  const err = scaledError(first.out, wasm.runs[0].out);
  console.log(`MobileNetV2 on WebGPU (SwiftShader): ${first.gpu.dispatches} dispatches, ${first.gpu.bytesUploaded} bytes uploaded, ${first.gpu.bytesReadBack} read back per run; weights ${first.gpu.bytesUploadedAtBuild} bytes once; max error / max |logit| vs wasm ${err.toExponential(2)}`);
  assert.ok(err <= 1e-4, `WebGPU and wasm differ by ${err} relative`);

  // The request in flight when the device was destroyed is answered (by the GPU if it had
  // finished, else by the wasm build); the session is on the wasm build afterwards.
  assert.equal(lost.destroyed, 1);
  console.log(`the run in flight at the device loss was answered by: ${lost.backend}`);
  assert.equal(lost.out.length, 1000);
  assert.ok(scaledError(lost.out, wasm.runs[0].out) <= 1e-4);
  assert.equal(after.backend, 'wasm');
  assert.deepEqual(after.out, wasm.runs[0].out, 'after the loss the simd build answers, as in the wasm session');
  assert.equal(gpu.backendAfter, 'simd');
});
