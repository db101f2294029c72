// Cairn's WebGPU backend in real headless Chromium (docs/adr/0022). `--enable-unsafe-webgpu`
// gives a software adapter (SwiftShader) on http://127.0.0.1. Issue 16, must-show 3:
// MobileNetV2, EfficientNet-Lite0 and the MiniLM-L6 encoder (64 and 128 tokens; its int64 ids
// and mask live on the GPU as checked i32) run on it with no operator falling back to the CPU
// kernels; each output matches the wasm build's within 1e-4 (largest error over the largest
// |output|); every run reports its dispatches, bytes moved and the GPU memory its values take
// with and without liveness pooling (printed as a table); and a GPU device destroyed mid-session (the
// test hook) leaves the request in flight answered, `cairn.backend` at 'simd' and the next
// runs of every model working on the wasm build. Without a hardware adapter, 'auto' never fetches
// the webgpu build; the npm package's own files (its dynamically imported WebGPU glue) do the same.
//
// Needs: target/release/cairn, target/web-pkg/{simd,relaxed,webgpu} (bench/web/build_wasm.sh simd relaxed
// webgpu), target/npm/package (scripts/build-npm.sh), target/models/{mobilenetv2,
// efficientnet_lite0}.onnx (tools/build_mobilenetv2.py, scripts/test.sh) and
// target/text-model/minilm_l6.onnx (tools/convert_minilm.py).

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
let server, browser;

// The three models of the must-show: name -> [source, `cairn pack` arguments, input].
const MODELS = {
  mobilenetv2: ['target/models/mobilenetv2.onnx', ['--image-size', '224'], { image: [1, 3, 224, 224] }],
  efficientnet_lite0: ['target/models/efficientnet_lite0.onnx', ['--image-size', '224', '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5'], { image: [1, 3, 224, 224] }],
  // 64 tokens: long enough for attention to mean something, short enough for a software GPU.
  minilm_l6: ['target/text-model/minilm_l6.onnx', ['--no-progressive'], { tokens: [1, 64] }],
  minilm_l6_128: ['target/text-model/minilm_l6.onnx', ['--no-progressive'], { tokens: [1, 128] }],
};

before(async () => {
  for (const [name, [source, args]] of Object.entries(MODELS)) {
    execFileSync(path.join(root, 'target/release/cairn'), ['pack', path.join(root, source), '-o', path.join(work, 'models', name), ...args], { stdio: 'inherit' });
  }
  server = await startServer({
    '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': path.join(work, 'models'),
    // The npm package as built by scripts/build-npm.sh: its worker and wasm assets as an app serves them.
    '/npm/': path.join(root, 'target/npm/package/dist'),
  }, { isolated: false });
  browser = await launch(undefined, ['--enable-unsafe-webgpu']);
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/**
 * In a fresh page: start Cairn with `options`, load every model of MODELS and run `steps`
 * (in the page): 'run:NAME' runs one model on its seeded input, 'lose-during-run:NAME' runs
 * it while the test hook destroys the GPU device.
 */
async function session(options, steps, { on = browser, names = Object.keys(MODELS), api = null } = {}) {
  const page = await on.newPage();
  const errors = [];
  const requested = [];
  page.on('request', (r) => requested.push(new URL(r.url()).pathname));
  // The worker's fetches (wasm builds, shards) are seen by the context, not the page.
  const onContext = (r) => requested.push(new URL(r.url()).pathname);
  on.on('request', onContext);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && errors.push(`${r.status()} ${r.url()}`));
  try {
    await page.goto(`${server.origin}/web/test/fixture.html`);
    await page.waitForFunction(() => window.fixtureReady);
    const r = await page.evaluate(async ({ options, models, steps, api }) => {
      // `api`: the npm package's page module (its worker and wasm files beside it), else the repository's.
      const cairn = api ? await (await import(api)).Cairn.start(options) : await window.Cairn.start({ wasmBase: '/pkg/', ...options });
      const started = cairn.backend;
      const changes = [];
      cairn.onBackendChange = (b) => changes.push(b);
      const loaded = {};
      for (const name of Object.keys(models)) {
        loaded[name] = await cairn.load(`/models/${name}/manifest.json`);
        await loaded[name].complete;
      }
      // Seeded inputs: uniform [-2, 2) pixels; token ids in [1000, 20000) with a full mask.
      let s = 7;
      const next = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32; };
      const inputs = {};
      for (const [name, { image, tokens }] of Object.entries(models)) {
        if (image) {
          const data = new Float32Array(image.reduce((a, b) => a * b, 1));
          for (let i = 0; i < data.length; i++) data[i] = next() * 4 - 2;
          inputs[name] = { data, shape: image };
        } else {
          const n = tokens[0] * tokens[1];
          const ids = BigInt64Array.from({ length: n }, () => BigInt(1000 + Math.floor(next() * 19000)));
          inputs[name] = {
            input_ids: { data: ids, shape: tokens },
            attention_mask: { data: new BigInt64Array(n).fill(1n), shape: tokens },
            token_type_ids: { data: new BigInt64Array(n), shape: tokens },
          };
        }
      }
      // model.run may take ownership of typed arrays: each run gets copies.
      const copy = (input) => (input.data ? { data: input.data.slice(), shape: input.shape }
        : Object.fromEntries(Object.entries(input).map(([k, t]) => [k, { data: t.data.slice(), shape: t.shape }])));
      const pick = (name, res, extra = {}) => ({ name, backend: res.backend, gpu: res.gpu ?? null, out: Array.from(res.outputs[0].data), ...extra });
      const runs = [];
      for (const step of steps) {
        const [what, name] = step.split(':');
        if (what === 'run') runs.push(pick(name, await loaded[name].run(copy(inputs[name]))));
        // The loss lands while the run awaits its read-back (or just after it finished).
        if (what === 'lose-during-run') {
          const [res, destroyed] = await Promise.all([loaded[name].run(copy(inputs[name])), cairn._loseGpuForTest()]);
          runs.push(pick(name, res, { destroyed, lost: true }));
        }
      }
      return { started, backendAfter: cairn.backend, runs, changes };
    }, { options, models: Object.fromEntries(names.map((k) => [k, MODELS[k][2]])), steps, api });
    return { ...r, errors, requested };
  } finally {
    on.off('request', onContext);
    await page.close();
  }
}

/** Largest |a - b| over the largest |b|. */
function scaledError(a, b) {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  return err / scale;
}

const NAMES = Object.keys(MODELS);

test('MobileNetV2, EfficientNet-Lite0 and MiniLM-L6 on WebGPU match the wasm build, report their counters, survive a device loss', async () => {
  // The reference is the simd128 build: the webgpu build's CPU side, which answers after a
  // device loss ('auto' would run relaxed SIMD here, whose sums round differently).
  const wasm = await session({ backend: 'simd' }, NAMES.map((n) => `run:${n}`));
  assert.deepEqual(wasm.errors, []);
  assert.equal(wasm.started, 'simd');
  const reference = Object.fromEntries(wasm.runs.map((r) => [r.name, r.out]));
  for (const r of wasm.runs) assert.equal(r.backend, 'wasm', r.name);

  // Each model twice (the second run shows the weights stayed on the GPU), then MobileNetV2
  // while the device is destroyed, then every model again.
  const steps = [...NAMES.flatMap((n) => [`run:${n}`, `run:${n}`]), 'lose-during-run:mobilenetv2', ...NAMES.map((n) => `run:${n}`)];
  const gpu = await session({ backend: 'webgpu' }, steps);
  assert.deepEqual(gpu.errors, []);
  assert.equal(gpu.started, 'webgpu', "'webgpu' runs on whatever adapter navigator.gpu gives");
  const firsts = NAMES.map((n) => gpu.runs.find((r) => r.name === n));
  const seconds = NAMES.map((n) => gpu.runs.filter((r) => r.name === n)[1]);
  const lostAt = gpu.runs.findIndex((r) => r.lost);
  const lost = gpu.runs[lostAt];
  const afterLoss = gpu.runs.slice(lostAt + 1);

  const rows = [];
  for (const [i, name] of NAMES.entries()) {
    const [first, second] = [firsts[i], seconds[i]];
    assert.equal(first.backend, 'webgpu', `${name} ran on the GPU`);
    const g = first.gpu;
    assert.equal(g.readBacks, 1, `${name}: one read-back per run`);
    assert.equal(g.bytesReadBack, reference[name].length * 4, `${name}: only the output comes back`);
    assert.ok(g.bytesUploadedAtBuild > 1e6, `${name}: the weights went up with the first run`);
    assert.equal(second.gpu.bytesUploadedAtBuild, 0, `${name}: and stayed on the GPU`);
    assert.deepEqual(second.gpu, { ...g, bytesUploadedAtBuild: 0 }, `${name}: the same work every run`);
    const err = scaledError(first.out, reference[name]);
    rows.push({ model: name, dispatches: g.dispatches, uploadedPerRun: g.bytesUploaded, readBackPerRun: g.bytesReadBack, readBacks: g.readBacks,
      weightsOnce: g.bytesUploadedAtBuild, valueBytes: g.valueBytes, valueBytesUnpooled: g.valueBytesUnpooled,
      fallbackOps: g.fallbackOps.join(', ') || '-', errVsWasm: err.toExponential(2) });
    // Every model runs wholly on the GPU: its input up, its output down.
    assert.deepEqual(g.fallbackOps, [], `every operator of ${name} runs on the GPU`);
    const { image, tokens } = MODELS[name][2];
    const inputBytes = image ? image.reduce((a, b) => a * b, 1) * 4 : 3 * tokens[0] * tokens[1] * 4; // ids, mask, types as i32
    assert.equal(g.bytesUploaded, inputBytes, `${name}: only the input goes up per run`);
    assert.ok(g.valueBytes * 2 < g.valueBytesUnpooled, `${name}: pooling by liveness at least halves the value buffers`);
    assert.ok(err <= 1e-4, `${name}: WebGPU and wasm differ by ${err} of the output's scale`);
  }
  console.log('WebGPU (SwiftShader) vs the wasm build; errVsWasm = max |gpu - wasm| / max |wasm|; valueBytes = GPU memory of run-time values, pooled by liveness (unpooled: one buffer each):');
  console.table(rows);

  // The request in flight when the device was destroyed is answered (by the GPU if it had
  // finished, else by the wasm build); the session is on the wasm build afterwards.
  assert.equal(lost.destroyed, NAMES.length, 'every model had a GPU copy to lose');
  console.log(`the run in flight at the device loss was answered by: ${lost.backend}`);
  assert.ok(scaledError(lost.out, reference.mobilenetv2) <= 1e-4);
  assert.equal(afterLoss.length, NAMES.length);
  for (const r of afterLoss) {
    assert.equal(r.backend, 'wasm', `${r.name} after the loss`);
    assert.deepEqual(r.out, reference[r.name], `${r.name}: after the loss the simd build answers, as in the wasm session`);
  }
  assert.equal(gpu.backendAfter, 'simd');
  assert.deepEqual(gpu.changes.map((c) => c.backend), ['simd'], 'the page is told once');
  console.log(`the page was told: ${gpu.changes[0].reason}`);
});

test("'auto' takes a hardware adapter only: on a software one (SwiftShader) it runs the wasm build", async () => {
  const page = await browser.newPage();
  let software;
  try {
    await page.goto(`${server.origin}/web/test/fixture.html`);
    software = await page.evaluate(async () => {
      const a = await navigator.gpu.requestAdapter();
      return a.info?.isFallbackAdapter ?? a.isFallbackAdapter ?? false;
    });
  } finally {
    await page.close();
  }
  const r = await session({ backend: 'auto' }, ['run:mobilenetv2'], { names: ['mobilenetv2'] });
  assert.deepEqual(r.errors, []);
  console.log(`this adapter is ${software ? 'a software (fallback) adapter' : 'a hardware adapter'}: 'auto' started ${r.started}`);
  assert.equal(r.started, software ? 'relaxed' : 'webgpu'); // relaxed SIMD: what 'auto' runs on the CPU here (ADR 0034)
  if (software) assert.ok(!r.requested.some((p) => p.includes('webgpu')), r.requested.join(' '));
});

test("without an adapter 'auto' runs a CPU build and never fetches the webgpu build", async () => {
  const plain = await launch(); // no --enable-unsafe-webgpu: navigator.gpu exists, requestAdapter() gives null
  try {
    const r = await session({ backend: 'auto' }, ['run:mobilenetv2'], { on: plain, names: ['mobilenetv2'] });
    assert.deepEqual(r.errors, []);
    assert.equal(r.started, 'relaxed');
    assert.equal(r.runs[0].backend, 'wasm');
    assert.ok(r.requested.some((p) => p.startsWith('/pkg/relaxed/')), 'the relaxed-SIMD build was loaded');
    assert.deepEqual(r.requested.filter((p) => p.includes('webgpu')), [], 'an image app without a GPU does not download the webgpu build');
  } finally {
    await plain.close();
  }
});

test("the npm package: 'webgpu' runs on the GPU from the package's own files; without an adapter 'auto' fetches none of them", async () => {
  const dist = path.join(root, 'target/npm/package/dist');
  assert.ok(fs.existsSync(path.join(dist, 'cairn_web_webgpu.wasm')), `${dist} lacks the webgpu build: run scripts/build-npm.sh`);
  const gpu = await session({ backend: 'webgpu' }, ['run:mobilenetv2'], { names: ['mobilenetv2'], api: '/npm/cairn.js' });
  assert.deepEqual(gpu.errors, []);
  assert.equal(gpu.started, 'webgpu');
  assert.equal(gpu.runs[0].backend, 'webgpu');
  assert.deepEqual(gpu.runs[0].gpu.fallbackOps, []);
  assert.ok(gpu.requested.includes('/npm/cairn_web_webgpu.js') && gpu.requested.includes('/npm/cairn_web_webgpu.wasm'), 'the package loaded its webgpu glue and wasm');
  assert.ok(!gpu.requested.some((p) => p.startsWith('/pkg/')), 'nothing from the repository build');

  const plain = await launch();
  try {
    const cpu = await session({ backend: 'auto' }, ['run:mobilenetv2'], { on: plain, names: ['mobilenetv2'], api: '/npm/cairn.js' });
    assert.deepEqual(cpu.errors, []);
    assert.equal(cpu.started, 'relaxed');
    assert.equal(cpu.runs[0].backend, 'wasm');
    assert.deepEqual(scaledError(cpu.runs[0].out, gpu.runs[0].out) <= 1e-4, true, 'the package gives the same answer on either build');
    assert.ok(cpu.requested.includes('/npm/cairn_web_relaxed.wasm'), 'the relaxed-SIMD build was loaded, not the webgpu one');
    assert.deepEqual(cpu.requested.filter((p) => p.includes('webgpu')), [], 'an image app without a GPU does not download the webgpu build');
  } finally {
    await plain.close();
  }
});
