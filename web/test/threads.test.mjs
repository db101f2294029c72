// Cairn's threaded builds in real headless Chromium (docs/adr/0019, 0034): a cross-origin
// isolated page gets the threaded build of the SIMD flavour the engine validates
// (`cairn.backend === 'threads-relaxed'` here: Chromium validates relaxed SIMD) with the thread
// count asked for, and `backend: 'threads'` the simd128 one; each threaded build's output is
// bit-identical to its single-threaded twin's (the kernels split work on output tiles and
// channels, never inside a sum); its wasm memory stays within 1.3x of the twin's for
// MobileNetV2; a page that is not isolated gets the single-threaded build without an error.
//
// Needs: target/release/cairn, target/web-pkg/{simd,relaxed,threads,threads-relaxed}
// (bench/web/build_wasm.sh) and target/models/mobilenetv2.onnx (tools/build_mobilenetv2.py).

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
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-threads-test-'));
const INPUT_SHAPE = [1, 3, 224, 224];
let isolated, plain, browser;

before(async () => {
  execFileSync(path.join(root, 'target/release/cairn'), ['pack', path.join(root, 'target/models/mobilenetv2.onnx'), '-o', path.join(work, 'models/mobilenetv2'), '--image-size', '224'], { stdio: 'inherit' });
  const roots = { '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': path.join(work, 'models') };
  isolated = await startServer(roots, { isolated: true });
  plain = await startServer(roots, { isolated: false });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await isolated?.close();
  await plain?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** In a fresh page of `server`: start Cairn with `options`, load MobileNetV2, run it once. */
async function runOnce(server, options) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Failed loads by URL (the browser's own favicon request is not the page's).
  page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && errors.push(`${r.status()} ${r.url()}`));
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));
  try {
    await page.goto(`${server.origin}/web/test/fixture.html`);
    await page.waitForFunction(() => window.fixtureReady);
    const r = await page.evaluate(async ({ options, shape }) => {
      const cairn = await window.Cairn.start({ wasmBase: '/pkg/', ...options });
      const model = await cairn.load('/models/mobilenetv2/manifest.json');
      await model.complete;
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0, s = 7; i < n; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; data[i] = (s / 2 ** 32) * 4 - 2; }
      const out = await model.run({ data, shape });
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await model.run({ data, shape });
      const runMs = (performance.now() - t0) / 3;
      const memory = await cairn.memory();
      return { isolated: self.crossOriginIsolated, backend: cairn.backend, threads: cairn.threads, out: Array.from(out.outputs[0].data), memoryBytes: memory.memoryBytes, runMs };
    }, { options, shape: INPUT_SHAPE });
    return { ...r, errors };
  } finally {
    await page.close();
  }
}

/** Runs `threadedOptions` and `singleOptions` on the isolated page: same output bit for bit, memory within 1.3x. */
async function compareWithSingleThreaded(threadedOptions, expected, singleOptions, expectedSingle) {
  const threaded = await runOnce(isolated, { threads: 2, ...threadedOptions });
  assert.deepEqual(threaded.errors, []);
  assert.equal(threaded.isolated, true);
  assert.equal(threaded.backend, expected);
  assert.equal(threaded.threads, 2);
  const single = await runOnce(isolated, singleOptions);
  assert.equal(single.backend, expectedSingle);
  assert.equal(single.threads, 1);
  assert.equal(threaded.out.length, 1000);
  assert.ok(threaded.out.every((v, i) => Object.is(v, single.out[i])), `the ${expected} build must give the ${expectedSingle} build's output bit for bit`);
  const ratio = threaded.memoryBytes / single.memoryBytes;
  const MiB = (n) => (n / 2 ** 20).toFixed(1);
  console.log(`MobileNetV2 wasm memory: ${expected} (2) ${MiB(threaded.memoryBytes)} MiB, ${expectedSingle} ${MiB(single.memoryBytes)} MiB, ratio ${ratio.toFixed(2)}; run ${threaded.runMs.toFixed(1)} ms vs ${single.runMs.toFixed(1)} ms`);
  assert.ok(ratio <= 1.3, `threaded wasm memory ${ratio.toFixed(2)}x the ${expectedSingle} build's (goal <= 1.3x)`);
  return { threaded, single };
}

test("an isolated page runs the relaxed threaded build by default: outputs identical to 'relaxed', memory within 1.3x", async () => {
  await compareWithSingleThreaded({}, 'threads-relaxed', { backend: 'relaxed' }, 'relaxed');
});

test("backend 'threads' runs the simd128 threaded build: outputs identical to 'simd', memory within 1.3x", async () => {
  const { threaded, single } = await compareWithSingleThreaded({ backend: 'threads' }, 'threads', { backend: 'simd' }, 'simd');
  // The two flavours differ only by the f32 kernels' fused multiply-adds: a rounding per product.
  const relaxed = await runOnce(isolated, { backend: 'relaxed' });
  const scale = Math.max(...single.out.map(Math.abs));
  const worst = Math.max(...relaxed.out.map((v, i) => Math.abs(v - threaded.out[i])));
  console.log(`relaxed vs simd128 outputs: max |diff| / max |output| = ${(worst / scale).toExponential(2)}`);
  assert.ok(worst / scale < 1e-4, `relaxed and simd128 builds differ by ${worst / scale} of the output scale`);
});

test('threads: 1 on an isolated page runs the single-threaded build of the same flavour', async () => {
  const one = await runOnce(isolated, { threads: 1 });
  assert.deepEqual(one.errors, []);
  assert.equal(one.backend, 'relaxed');
  assert.equal(one.threads, 1);
});

test('a page that is not cross-origin isolated gets the single-threaded build without an error', async () => {
  const r = await runOnce(plain, {});
  assert.equal(r.isolated, false);
  assert.deepEqual(r.errors, []);
  assert.equal(r.backend, 'relaxed');
  assert.equal(r.out.length, 1000);
  // Asked for a threaded build where threads cannot run: its single-threaded twin, no error.
  const asked = await runOnce(plain, { backend: 'threads' });
  assert.deepEqual(asked.errors, []);
  assert.equal(asked.backend, 'simd');
});
