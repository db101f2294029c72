// Bundles in real headless Chromium: the worker streams a packed MobileNetV2,
// verifies every shard, runs the coarse level before the rest arrives, and matches
// native Cairn. Damaged shards are rejected (and never run), then fetched again.
//
// Needs: target/release/cairn, target/web-pkg/{relaxed,simd,scalar} (bench/web/build_wasm.sh)
// and target/models/mobilenetv2.onnx (tools/build_bench_models.py). web/test/run.sh
// builds them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';
import { writeNpy, readNpy } from './npy.mjs';
import { packEfficientNet, expectedBackend } from './pwa-app.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cairnBin = path.join(root, 'target/release/cairn');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-web-test-'));
const bundleDir = path.join(work, 'models/mobilenetv2');
const INPUT_SHAPE = [1, 3, 224, 224];

let server, browser, page, manifest, input, native;

function deterministicInput() {
  const n = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; data[i] = (s / 2 ** 32) * 4 - 2; }
  return data;
}

function relativeError(got, want) {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) { diff = Math.max(diff, Math.abs(got[i] - want[i])); scale = Math.max(scale, Math.abs(want[i])); }
  return diff / scale;
}

/** One real-photo input of the suite's set (tools/make_image_inputs.py), made if missing. */
function realPhotoInput() {
  const dir = path.join(root, 'target/real-inputs');
  if (!fs.existsSync(dir)) execFileSync('python3', [path.join(root, 'tools/make_image_inputs.py'), dir, '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5'], { stdio: 'inherit' });
  return path.join(dir, fs.readdirSync(dir).filter((f) => f.endsWith('.npy')).sort()[0]);
}

const argmax = (v) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);

before(async () => {
  execFileSync(cairnBin, ['pack', path.join(root, 'target/models/mobilenetv2.onnx'), '-o', bundleDir, '--image-size', '224', '--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225'], { stdio: 'inherit' });
  manifest = JSON.parse(fs.readFileSync(path.join(bundleDir, 'manifest.json'), 'utf8'));
  input = deterministicInput();
  writeNpy(path.join(work, 'x.npy'), input, INPUT_SHAPE);
  execFileSync(cairnBin, ['run', bundleDir, '--input', path.join(work, 'x.npy'), '--output', path.join(work, 'y.npy'), '--threads', '1']);
  native = readNpy(path.join(work, 'y.npy')).data;
  server = await startServer({ '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': path.join(work, 'models') });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

async function freshPage() {
  await page?.close();
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.origin}/web/test/fixture.html`);
  await page.waitForFunction(() => window.fixtureReady);
  // Each test starts without cached shards.
  await page.evaluate(async () => Promise.all((await caches.keys()).map((k) => caches.delete(k))));
  return page;
}

/** In the page: start Cairn, load the bundle, record progress; returns what happened. */
async function loadInPage({ runCoarse = false, url = `${server.origin}/models/mobilenetv2/manifest.json` } = {}) {
  return page.evaluate(async ({ url, input, shape, runCoarse }) => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/' });
    window.cairn = cairn;
    const events = [];
    try {
      const model = await cairn.load(url, { onProgress: (p) => events.push({ bytes: p.bytes, level: p.levelName, rejected: p.rejected ?? null, done: p.done ?? false, fromCache: p.fromCache ?? 0 }) });
      window.model = model;
      const first = runCoarse ? await model.run({ data: new Float32Array(input), shape }) : null;
      return { ok: true, backend: cairn.backend, isa: cairn.isa, levelAtLoad: model.level, first: first && { level: first.level, data: Array.from(first.outputs[0].data) }, events };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message, events };
    }
  }, { url, input: Array.from(input), shape: INPUT_SHAPE, runCoarse });
}

async function runFullInPage() {
  return page.evaluate(async ({ input, shape }) => {
    await window.model.complete;
    await window.cairn.memory({ resetPeak: true });
    const r = await window.model.run({ data: new Float32Array(input), shape });
    const after = await window.cairn.memory();
    return { level: r.level, where: r.where, data: Array.from(r.outputs[0].data), loadHeap: window.model.loadHeap, memoryAfterLoad: window.model.memoryBytes, afterRun: after };
  }, { input: Array.from(input), shape: INPUT_SHAPE });
}

test('a packed MobileNetV2 streams into the worker, runs coarse first, then matches native Cairn', async () => {
  await freshPage();
  // Hold back the refinement level so the coarse level is all the page has.
  const holds = manifest.shards.filter((s) => s.level > 0).map((s) => server.fault(s.sha256, 'hold'));
  const loaded = await loadInPage({ runCoarse: true });
  assert.ok(loaded.ok, loaded.message);
  // Auto-selected (docs/adr/0034): relaxed SIMD, which headless Chromium validates; its threaded
  // twin on a cross-origin isolated page (CAIRN_TEST_ISOLATED); or the build a suite run forces.
  assert.equal(loaded.backend, expectedBackend);
  assert.equal(loaded.levelAtLoad, 'coarse');
  assert.equal(loaded.first.level, 'coarse');
  const coarseError = relativeError(loaded.first.data, native);
  assert.ok(coarseError > 0 && coarseError < 0.05, `coarse output should be close to the full model's: ${coarseError}`);
  for (const h of holds) h.release();
  const full = await runFullInPage();
  assert.equal(full.level, 'full');
  assert.equal(full.where, 'device');
  const error = relativeError(full.data, native);
  assert.ok(error < 1e-4, `wasm vs native relative error ${error}`);
  assert.equal(argmax(full.data), argmax(native));
  const coarseBytes = manifest.shards.filter((s) => s.level === 0).reduce((n, s) => n + s.bytes, 0);
  const reachedCoarse = loaded.events.find((e) => e.level === 'coarse');
  assert.ok(reachedCoarse.bytes <= coarseBytes, 'the coarse level was usable after its own bytes only');
  console.log(`coarse-level relative error ${coarseError.toExponential(2)}, full ${error.toExponential(2)}, coarse bytes ${coarseBytes} of ${manifest.shards.reduce((n, s) => n + s.bytes, 0)}`);
  const MiB = (n) => (n / 2 ** 20).toFixed(1) + ' MiB';
  const largestShard = Math.max(...manifest.shards.map((s) => s.bytes));
  console.log(`memory: Rust heap after load ${MiB(full.loadHeap.liveAfterLoad)}, peak during load ${MiB(full.loadHeap.peakDuringLoad)} (largest shard ${MiB(largestShard)}; before the final preparation: live ${MiB(full.loadHeap.liveBeforeFinish)}, peak ${MiB(full.loadHeap.peakBeforeFinish)}); wasm memory after load ${MiB(full.memoryAfterLoad)}, after a run ${MiB(full.afterRun.memoryBytes)} (heap live ${MiB(full.afterRun.heapLive)}, peak during the run ${MiB(full.afterRun.heapPeak)})`);
  assertLoadPeakWithinResidentPlusShard(full, largestShard);
  server.clearFaults();
});

// Loading never needs more memory than the loaded model at work (prepared weights, its
// working arena and one input: the heap's peak during a full-precision run) plus one shard
// in flight. Measured on the Rust heap, where the weights, the staged shard and the arenas
// live; the worker's JS heap holds at most one shard besides (the copy for Cache Storage).
function assertLoadPeakWithinResidentPlusShard(full, largestShard) {
  const resident = full.afterRun.heapPeak;
  assert.ok(full.loadHeap.peakDuringLoad <= resident + largestShard, `peak heap during load ${full.loadHeap.peakDuringLoad} > resident ${resident} + one shard ${largestShard}`);
}

test('a corrupted shard is rejected, never run, and fetched again', async () => {
  await freshPage();
  const victim = manifest.shards[1];
  server.fault(victim.sha256, 'corrupt', 1);
  server.fault(manifest.shards[2].sha256, 'truncate', 1);
  const loaded = await loadInPage();
  assert.ok(loaded.ok, loaded.message);
  const rejected = loaded.events.filter((e) => e.rejected).map((e) => e.rejected);
  assert.equal(rejected.length, 2, JSON.stringify(rejected));
  assert.match(rejected[0].reason, /sha256/);
  assert.match(rejected[1].reason, /bytes, the manifest says/);
  const full = await runFullInPage();
  assert.ok(relativeError(full.data, native) < 1e-4, 'the refetched shard, not the damaged one, is what ran');
  const MiB = (n) => (n / 2 ** 20).toFixed(1) + ' MiB';
  assertLoadPeakWithinResidentPlusShard(full, Math.max(...manifest.shards.map((s) => s.bytes)));
  console.log(`memory without interim runs: Rust heap after load ${MiB(full.loadHeap.liveAfterLoad)}, peak during load ${MiB(full.loadHeap.peakDuringLoad)}, before the final preparation live ${MiB(full.loadHeap.liveBeforeFinish)} peak ${MiB(full.loadHeap.peakBeforeFinish)}; wasm memory after load ${MiB(full.memoryAfterLoad)}, after a run ${MiB(full.afterRun.memoryBytes)} (heap live ${MiB(full.afterRun.heapLive)}, peak ${MiB(full.afterRun.heapPeak)})`);
  server.clearFaults();
});

test('a shard that stays corrupted fails the load with a typed error, and nothing runs', async () => {
  await freshPage();
  server.fault(manifest.shards[0].sha256, 'corrupt', -1);
  const loaded = await loadInPage();
  assert.equal(loaded.ok, false);
  assert.equal(loaded.code, 'shard-corrupt');
  assert.match(loaded.message, /failed verification 3 times/);
  assert.equal(loaded.events.filter((e) => e.rejected).length, 3);
  server.clearFaults();
});

test('a 30 fps camera stream for 10 s: no long task on the page, the queue stays bounded, stale frames are dropped', async () => {
  await freshPage();
  const loaded = await loadInPage();
  assert.ok(loaded.ok, loaded.message);
  const r = await page.evaluate(async () => {
    await window.model.complete;
    // The synthetic camera is test scaffolding: set its canvas up (first raster, first
    // bitmap) before observing, so that only the page's steady-state work is measured.
    const camera = new OffscreenCanvas(640, 480);
    const ctx = camera.getContext('2d');
    ctx.fillRect(0, 0, 640, 480);
    camera.transferToImageBitmap().close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const longTasks = [];
    new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: 'longtask', buffered: false });
    let highWater = 0;
    window.cairn.onQueue = (q) => { highWater = Math.max(highWater, q.highWater); };
    const counts = { sent: 0, done: 0, dropped: 0, other: 0, coarse: 0 };
    const runs = [];
    const start = performance.now();
    await new Promise((resolve) => {
      const timer = setInterval(async () => {
        const t = performance.now() - start;
        if (t > 10_000) { clearInterval(timer); resolve(); return; }
        // A moving synthetic scene.
        ctx.fillStyle = `hsl(${(t / 20) % 360} 70% 50%)`;
        ctx.fillRect(0, 0, 640, 480);
        ctx.fillStyle = '#fff';
        ctx.fillRect((t / 5) % 600, 200, 40, 40);
        const frame = camera.transferToImageBitmap();
        counts.sent++;
        runs.push(window.model.run(frame, { stream: 'camera' }).then(
          (res) => { counts.done++; if (res.level !== 'full') counts.coarse++; },
          (e) => { if (e.code === 'dropped') counts.dropped++; else counts.other++; },
        ));
      }, 1000 / 30);
    });
    await Promise.all(runs);
    return { longTasks, highWater, counts };
  });
  console.log(`camera stream: ${JSON.stringify(r.counts)}, queue high-water ${r.highWater}, long tasks ${JSON.stringify(r.longTasks)}`);
  assert.deepEqual(r.longTasks.filter((d) => d > 50), [], 'no main-thread task over 50 ms');
  assert.ok(r.highWater <= 2, `latest-wins keeps at most the running frame's successor waiting: ${r.highWater}`);
  assert.equal(r.counts.other, 0);
  assert.equal(r.counts.done + r.counts.dropped, r.counts.sent);
  assert.ok(r.counts.sent >= 250 && r.counts.done >= 30, JSON.stringify(r.counts));
});

test('verified shards are cached: a reload fetches none, a corrupted cached shard is evicted and refetched', async () => {
  await freshPage();
  let loaded = await loadInPage();
  assert.ok(loaded.ok, loaded.message);
  await page.evaluate(() => window.model.complete);
  // Reload the page: everything comes from Cache Storage.
  await page.reload();
  await page.waitForFunction(() => window.fixtureReady);
  const servedBefore = server.served.length;
  loaded = await loadInPage();
  assert.ok(loaded.ok, loaded.message);
  assert.deepEqual(loaded.events.filter((e) => e.rejected), [], 'every cached shard verifies');
  await page.evaluate(() => window.model.complete);
  const shardFetches = server.served.slice(servedBefore).filter((r) => r.url.includes('/shards/'));
  assert.equal(shardFetches.length, 0, JSON.stringify(shardFetches));
  // Damage one cached shard in place: it must be detected, evicted and fetched again.
  const victim = manifest.shards[3];
  await page.evaluate(async (url) => {
    const cache = await caches.open('cairn-shards-v1');
    const bytes = new Uint8Array(await (await cache.match(url)).arrayBuffer());
    bytes[bytes.length >> 1] ^= 1;
    await cache.put(url, new Response(bytes));
  }, `${server.origin}/models/mobilenetv2/${victim.path}`);
  await page.reload();
  await page.waitForFunction(() => window.fixtureReady);
  const servedBefore2 = server.served.length;
  loaded = await loadInPage();
  assert.ok(loaded.ok, loaded.message);
  const rejected = loaded.events.filter((e) => e.rejected);
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0].rejected.fromCache, true);
  const refetched = server.served.slice(servedBefore2).filter((r) => r.url.includes('/shards/')).map((r) => r.url);
  assert.deepEqual(refetched, [`/models/mobilenetv2/${victim.path}`]);
  const full = await runFullInPage();
  assert.ok(relativeError(full.data, native) < 1e-4);
});

test('an update that changes one layer downloads only the changed shards', async () => {
  const data = path.join(root, 'crates/cairn-cli/tests/data');
  const dir = path.join(work, 'models/classifier');
  const packVersion = (file) => execFileSync(cairnBin, ['pack', path.join(data, file), '-o', dir, '--shard-size', '0.004', '--json']);
  packVersion('classifier_v1.onnx');
  const oldManifest = path.join(work, 'classifier-v1.json');
  fs.copyFileSync(path.join(dir, 'manifest.json'), oldManifest);
  await freshPage();
  const url = `${server.origin}/models/classifier/manifest.json`;
  const classify = () => page.evaluate(async (url) => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/' });
    const model = await cairn.load(url);
    await model.complete;
    const r = await model.run({ data: new Float32Array(3 * 16 * 16).fill(0.5), shape: [1, 3, 16, 16] });
    cairn.terminate();
    return { version: model.version, data: Array.from(r.outputs[0].data) };
  }, url);
  const v1 = await classify();
  packVersion('classifier_v2.onnx');
  const plan = JSON.parse(execFileSync(cairnBin, ['diff', oldManifest, dir, '--json']));
  const before = server.served.length;
  const v2 = await classify();
  const fetched = server.served.slice(before).filter((r) => r.url.includes('/shards/'));
  assert.notEqual(v1.version, v2.version);
  assert.notDeepEqual(v1.data, v2.data);
  assert.deepEqual(fetched.map((r) => r.url.split('/').pop()).sort(), plan.fetch.map((s) => s.path.split('/').pop()).sort());
  assert.equal(fetched.reduce((n, r) => n + r.bytes, 0), plan.fetch_bytes);
  assert.ok(plan.reuse.length > 0, 'some shards were reused');
  console.log(`update: fetched ${fetched.length} shards (${plan.fetch_bytes} bytes), reused ${plan.reuse.length} (${plan.reuse_bytes} bytes)`);
});

/**
 * Loads bundle `name` with DevTools throttling the network to 1.6 Mbps down, 150 ms RTT,
 * and times from `cairn.load` to the first prediction; also sums the bytes that crossed
 * the network per level (the test server compresses as `cairn serve` does).
 */
async function timeToFirstPrediction(name, data, shape) {
  await freshPage();
  const cdp = await browser.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 150, downloadThroughput: 1.6e6 / 8, uploadThroughput: 0.75e6 / 8 });
  const servedFrom = server.served.length;
  const r = await page.evaluate(async ({ url, input, shape }) => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/' });
    const t0 = performance.now();
    const model = await cairn.load(url);
    const result = await model.run({ data: new Float32Array(input), shape });
    const ms = performance.now() - t0;
    await model.complete;
    const full = await model.run({ data: new Float32Array(input), shape });
    const top = (out) => out.outputs[0].data.indexOf(Math.max(...out.outputs[0].data));
    cairn.terminate();
    return { ms, level: result.level, top: top(result), fullTop: top(full) };
  }, { url: `${server.origin}/models/${name}/manifest.json`, input: Array.from(data), shape });
  await cdp.detach();
  const manifest = JSON.parse(fs.readFileSync(path.join(work, 'models', name, 'manifest.json'), 'utf8'));
  const levelOf = new Map(manifest.shards.map((s) => [s.path.split('/').pop(), s.level]));
  const wire = manifest.levels.map(() => 0);
  const stored = manifest.levels.map(() => 0);
  for (const s of server.served.slice(servedFrom).filter((s) => s.url.includes('/shards/'))) {
    const level = levelOf.get(s.url.split('/').pop());
    wire[level] += s.wireBytes;
    stored[level] += s.bytes;
  }
  return { ...r, wire, stored };
}

const mib = (n) => `${(n / (1 << 20)).toFixed(2)} MiB`;

// The throttled-network measurements take ~4 minutes of real network time, so the suite
// (scripts/test.sh, under 30 minutes on 2 cores) leaves them to `scripts/test-extra.sh
// throttled`, which sets CAIRN_THROTTLED=1. They are timings: a benchmark, run on purpose.
const throttled = { skip: process.env.CAIRN_THROTTLED === '1' ? false : 'throttled: scripts/test-extra.sh throttled' };

test('on a throttled network (1.6 Mbps, 150 ms RTT) the coarse level answers in at most 55% of the time of a one-level bundle', throttled, async () => {
  const whole = path.join(work, 'models/mobilenetv2-whole');
  execFileSync(cairnBin, ['pack', path.join(root, 'target/models/mobilenetv2.onnx'), '-o', whole, '--no-progressive', '--json']);
  const progressive = await timeToFirstPrediction('mobilenetv2', input, INPUT_SHAPE);
  const oneLevel = await timeToFirstPrediction('mobilenetv2-whole', input, INPUT_SHAPE);
  const ratio = progressive.ms / oneLevel.ms;
  console.log(`throttled time to first prediction: progressive ${(progressive.ms / 1000).toFixed(1)} s (level ${progressive.level}), one level ${(oneLevel.ms / 1000).toFixed(1)} s (level ${oneLevel.level}): ratio ${ratio.toFixed(2)}; same top-1: ${progressive.top === oneLevel.top}`);
  assert.equal(progressive.level, 'coarse');
  assert.equal(oneLevel.level, 'full');
  assert.ok(ratio <= 0.55, `ratio ${ratio}`);
});

// Issue 17 asks for <= 0.35x. Measured: 0.51x (level 0, the high nibbles plus the whole
// depthwise filters, is 49% of the brotli wire bytes: these int8 weights are spread wide, 3.25
// bits of entropy in the high nibble), so that target is missed; docs/adr/0023 has the numbers.
// The bound checked here is what this split delivers, with room for a loaded machine.
test('on the same throttled network the demo\'s int8 EfficientNet-Lite0 answers from its coarse level in at most 60% of the time of a one-level bundle', throttled, async () => {
  // The demo's model as scripts/run.sh makes it (int8 by `cairn optimize`, packed
  // progressive by default), and the same int8 model packed as one level.
  const progressiveDir = path.join(work, 'models/effnet-int8');
  const manifest = packEfficientNet(progressiveDir);
  assert.deepEqual(manifest.levels.map((l) => l.name), ['coarse', 'full']);
  assert.ok(manifest.tensors.some((t) => t.parts.some((p) => p.encoding === 'i8-high4')), 'int8 weights are sent as nibbles');
  execFileSync(cairnBin, ['pack', path.join(work, 'models/efficientnet_lite0_int8.onnx'), '-o', path.join(work, 'models/effnet-int8-whole'), '--no-progressive', '--json']);
  const photo = readNpy(realPhotoInput());
  const progressive = await timeToFirstPrediction('effnet-int8', photo.data, photo.shape);
  const oneLevel = await timeToFirstPrediction('effnet-int8-whole', photo.data, photo.shape);
  const ratio = progressive.ms / oneLevel.ms;
  const levels = progressive.wire.map((w, i) => `level ${i} ${mib(progressive.stored[i])} stored, ${mib(w)} on the wire`).join('; ');
  console.log(`int8 EfficientNet-Lite0, throttled time to first prediction: progressive ${(progressive.ms / 1000).toFixed(2)} s (level ${progressive.level}; ${levels}), one level ${(oneLevel.ms / 1000).toFixed(2)} s (${mib(oneLevel.stored[0])} stored, ${mib(oneLevel.wire[0])} on the wire): ratio ${ratio.toFixed(3)}; coarse top-1 ${progressive.top} vs full ${oneLevel.top}`);
  assert.equal(progressive.level, 'coarse');
  assert.equal(oneLevel.level, 'full');
  assert.equal(progressive.fullTop, oneLevel.top, 'once refined, the progressive bundle is the same int8 model');
  assert.ok(ratio <= 0.6, `ratio ${ratio} (issue 17's target is 0.35)`);
});

test('the scalar build (for browsers without wasm SIMD) loads the same bundle and matches native Cairn; cancellation works', async () => {
  await freshPage();
  const r = await page.evaluate(async ({ url, input, shape }) => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/', backend: 'scalar' });
    const model = await cairn.load(url);
    await model.complete;
    const out = await model.run({ data: new Float32Array(input), shape });
    // Cancel a request while another one runs: it rejects with code 'aborted'.
    const controller = new AbortController();
    const busy = model.run({ data: new Float32Array(input), shape });
    const cancelled = model.run({ data: new Float32Array(input), shape }, { signal: controller.signal }).then(() => 'ran', (e) => e.code);
    controller.abort();
    await busy;
    // A load aborted mid-way rejects too.
    const loadController = new AbortController();
    const aborted = cairn.load(url + '?again', { signal: loadController.signal }).then(() => 'loaded', (e) => e.code);
    loadController.abort();
    return { backend: cairn.backend, isa: cairn.isa, data: Array.from(out.outputs[0].data), cancelled: await cancelled, aborted: await aborted };
  }, { url: `${server.origin}/models/mobilenetv2/manifest.json`, input: Array.from(input), shape: INPUT_SHAPE });
  assert.equal(r.backend, 'scalar');
  assert.equal(r.isa, 'generic');
  assert.ok(relativeError(r.data, native) < 1e-4);
  assert.equal(r.cancelled, 'aborted');
  assert.equal(r.aborted, 'aborted');
});

test('requests that arrive together are micro-batched and each gets its own answer', async () => {
  await freshPage();
  const loaded = await loadInPage();
  assert.ok(loaded.ok, loaded.message);
  const r = await page.evaluate(async ({ input, shape }) => {
    await window.model.complete;
    const inputs = [0, 1, 2, 3, 4].map((k) => Float32Array.from(input, (v) => v * (1 - k / 10)));
    const results = await Promise.all(inputs.map((data) => window.model.run({ data, shape })));
    const alone = await window.model.run({ data: inputs[3], shape });
    return { batches: results.map((x) => x.timings.batch), outputs: results.map((x) => Array.from(x.outputs[0].data)), alone: Array.from(alone.outputs[0].data), shapes: results.map((x) => x.outputs[0].shape) };
  }, { input: Array.from(input), shape: INPUT_SHAPE });
  console.log(`micro-batching: batch sizes seen ${JSON.stringify(r.batches)}`);
  assert.ok(Math.max(...r.batches) > 1, 'requests waiting together ran as a batch');
  assert.deepEqual(r.shapes[0], [1, 1000]);
  assert.ok(relativeError(r.outputs[0], native) < 1e-4, 'the first request got its own answer');
  assert.ok(relativeError(r.outputs[3], r.alone) < 1e-5, 'a batched answer equals the same input run alone');
});

test('over the memory budget, the least recently used idle model is unloaded', async () => {
  const whole = path.join(work, 'models/mobilenetv2-whole');
  if (!fs.existsSync(whole)) execFileSync(cairnBin, ['pack', path.join(root, 'target/models/mobilenetv2.onnx'), '-o', whole, '--no-progressive', '--json']);
  await freshPage();
  const r = await page.evaluate(async ({ origin, input, shape }) => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/', memoryBudget: 24 << 20 });
    const evicted = [];
    cairn.onEvicted = (e) => evicted.push(e.handle);
    const a = await (await cairn.load(`${origin}/models/mobilenetv2/manifest.json`)).complete;
    await a.run({ data: new Float32Array(input), shape });
    const b = await (await cairn.load(`${origin}/models/mobilenetv2-whole/manifest.json`)).complete;
    const bOut = await b.run({ data: new Float32Array(input), shape });
    const aAfter = await a.run({ data: new Float32Array(input), shape }).then(() => 'ran', (e) => e.code);
    return { evicted, a: a.handle, aAfter, bLevel: bOut.level, memory: await cairn.memory(), threads: cairn.threads };
  }, { origin: server.origin, input: Array.from(input), shape: INPUT_SHAPE });
  assert.deepEqual(r.evicted, [r.a]);
  assert.equal(r.aAfter, 'not-loaded');
  assert.equal(r.bLevel, 'full');
  // Each extra thread of the threaded build keeps its stack (1 MiB) and its kernels' scratch
  // buffers on the heap (docs/adr/0019); the budget evicts models, not those.
  const threadsHeap = (r.threads - 1) * (2 << 20);
  assert.ok(r.memory.heapLive <= (24 << 20) + threadsHeap, `heap ${r.memory.heapLive}`);
});
