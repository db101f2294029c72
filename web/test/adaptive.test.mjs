// Deadline-driven widths in real headless Chromium (issue 17, must-show 3; docs/adr/0029): the
// real EfficientNet-Lite0 with run-time widths, a camera-like stream (frames at a fixed interval),
// the CPU slowed: the runtime settles on a width that meets the per-frame deadline where the
// full width alone misses it, and comes back to the full width when the CPU recovers.
//
// How the CPU is slowed: DevTools' Emulation.setCPUThrottlingRate slows a page's main thread,
// not the dedicated worker that runs Cairn's models (Chromium refuses it for worker targets;
// the test measures and prints what it does to the worker). So the test slows the whole
// renderer process instead, stopping and continuing it as DevTools' throttler does to the main
// thread (cpu-throttle.mjs). Every time here is measured in the run, none is assumed: the
// deadline sits halfway between the narrowest and the full width's measured throttled times,
// measured in the same stream it is then held to.
//
// Needs: target/release/cairn, target/web-pkg/simd (bench/web/build_wasm.sh simd),
// target/models/efficientnet_lite0.onnx (tools/build_bench_models.py); builds the bundle.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';
import { rendererPids, throttle } from './cpu-throttle.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cairnBin = path.join(root, 'target/release/cairn');
const adaptiveDir = path.join(root, 'target/adaptive');
// The suite's widths (scripts/test.sh, "adaptive") stop at 0.8, whose run takes ~85% of the
// full width's: on a loaded 2-core machine runs vary more than that gap. This bundle is built
// the same way with widths down to half the MACs, so the deadline can sit clear of both ends.
const WIDTHS = '0.9,0.8,0.7,0.6,0.5';
const bundleDir = path.join(adaptiveDir, 'b_deadline');
const RATE = 4; // CPU slowdown, as DevTools' "4x slowdown"
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-adaptive-chromium-'));

let server, browser, page, stopThrottle = null;

/**
 * The bundle with widths, built as scripts/test.sh's "adaptive" step builds its own; reused
 * when its widths match and it is newer than the `cairn` binary and the model it comes from.
 */
function buildBundle() {
  const manifest = path.join(bundleDir, 'manifest.json');
  const model = path.join(root, 'target/models/efficientnet_lite0.onnx');
  const widthsOf = (m) => m.widths?.widths.map((w) => w.fraction).join(',');
  const fresh = fs.existsSync(manifest) && [cairnBin, model].every((f) => fs.statSync(f).mtimeMs < fs.statSync(manifest).mtimeMs);
  if (fresh && widthsOf(JSON.parse(fs.readFileSync(manifest, 'utf8'))) === WIDTHS) return;
  const calib = path.join(root, 'target/calib-inputs');
  if (!fs.existsSync(calib)) execFileSync('python3', [path.join(root, 'tools/make_calibration_inputs.py'), calib], { stdio: 'inherit' });
  const onnx = path.join(adaptiveDir, 'effnet_deadline.onnx');
  fs.mkdirSync(adaptiveDir, { recursive: true });
  execFileSync(cairnBin, ['optimize', model, '-o', onnx, '--widths', WIDTHS, '--calibrate', calib], { stdio: 'inherit' });
  fs.rmSync(bundleDir, { recursive: true, force: true });
  execFileSync(cairnBin, ['pack', onnx, '-o', bundleDir, '--image-size', '224', '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5'], { stdio: 'inherit' });
}

before(async () => {
  buildBundle();
  server = await startServer({ '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': adaptiveDir });
  browser = await launch(profile);
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.origin}/web/test/fixture.html`);
  await page.waitForFunction(() => window.fixtureReady);
  await page.evaluate(async (url) => {
    window.cairn = await window.Cairn.start({ wasmBase: '/pkg/', backend: 'simd' });
    window.model = await (await window.cairn.load(url)).complete;
    // A synthetic camera: a moving scene drawn at 640x480, one bitmap per frame.
    const camera = new OffscreenCanvas(640, 480);
    const ctx = camera.getContext('2d');
    window.frame = (t) => {
      ctx.fillStyle = `hsl(${(t / 20) % 360} 70% 50%)`;
      ctx.fillRect(0, 0, 640, 480);
      ctx.fillStyle = '#fff';
      ctx.fillRect((t / 5) % 600, 200, 40, 40);
      return camera.transferToImageBitmap();
    };
    // `n` frames one after another (each waits for the last answer) at `width`.
    window.sequential = async (width, n) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const r = await window.model.run(window.frame(performance.now()), { width });
        out.push({ width: r.width, reason: r.widthReason, totalMs: r.timings.totalMs, runMs: r.timings.runMs, first: r.timings.firstAtWidth });
      }
      return out;
    };
    // The camera: a frame every `intervalMs` (latest wins: a frame still waiting when the
    // next arrives is dropped), until `window.stopCamera()`. Each frame's answer, or its drop,
    // goes to `window.frames` with the time from the frame to its answer. `widths`: the
    // width of each frame in turn (one after another), else the runtime's choice.
    window.startCamera = ({ intervalMs, options, widths }) => {
      window.frames = [];
      window.phase = 'start';
      const runs = [];
      const start = performance.now();
      let n = 0;
      const timer = setInterval(() => {
        const bitmap = window.frame(performance.now() - start);
        const t0 = performance.now();
        const phase = window.phase;
        const width = widths?.[n++ % widths.length];
        runs.push(window.model.run(bitmap, { stream: 'camera', ...options, ...(width ? { width } : {}) }).then(
          (r) => window.frames.push({ phase, ms: performance.now() - t0, width: r.width, reason: r.widthReason, first: r.timings.firstAtWidth }),
          (e) => window.frames.push({ phase, dropped: e.code === 'dropped', error: e.code === 'dropped' ? null : String(e.message) }),
        ));
      }, intervalMs);
      window.stopCamera = async () => { clearInterval(timer); await Promise.all(runs); return window.frames; };
    };
  }, `${server.origin}/models/b_deadline/manifest.json`);
});

after(async () => {
  await stopThrottle?.();
  await browser?.close();
  await server?.close();
  fs.rmSync(profile, { recursive: true, force: true });
});

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const round = (x) => Math.round(x);

/** Waits (polling from Node) until the camera has answered or dropped `n` frames in all. */
async function framesAtLeast(n) {
  await page.waitForFunction((n) => window.frames.length >= n, n, { polling: 100, timeout: 180_000 });
}

/** Per-frame stats of `frames` against `deadlineMs`: count, met share, width histogram. */
function stats(frames, deadlineMs) {
  const met = frames.filter((f) => !f.dropped && f.ms <= deadlineMs).length;
  const histogram = {};
  for (const f of frames) { const k = f.dropped ? 'dropped' : String(f.width); histogram[k] = (histogram[k] ?? 0) + 1; }
  return { frames: frames.length, met: met / frames.length, histogram };
}

/** What DevTools' CPU throttling slows here: the page's main thread, and the worker's model runs. */
async function devtoolsThrottling() {
  const busyLoop = () => page.evaluate(() => { const t0 = performance.now(); let x = 0; for (let i = 0; i < 2e7; i++) x += Math.sqrt(i); return performance.now() - t0 + x * 0; });
  const workerRuns = async () => median((await page.evaluate(() => window.sequential(1, 5))).map((r) => r.runMs));
  const plain = { main: median([await busyLoop(), await busyLoop(), await busyLoop()]), worker: await workerRuns() };
  const cdp = await browser.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: RATE });
  const devtools = { main: median([await busyLoop(), await busyLoop(), await busyLoop()]), worker: await workerRuns() };
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
  const workerTarget = (await cdp.send('Target.getTargets')).targetInfos.find((t) => t.type === 'worker');
  let onWorker = 'no worker target listed';
  if (workerTarget) {
    // Asked of the worker's own target (a non-flat session: Playwright's sessions are per page).
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: workerTarget.targetId, flatten: false });
    const answer = new Promise((resolve) => cdp.on('Target.receivedMessageFromTarget', (e) => { const m = JSON.parse(e.message); if (m.id === 1) resolve(m); }));
    await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: 1, method: 'Emulation.setCPUThrottlingRate', params: { rate: RATE } }) });
    const m = await answer;
    onWorker = m.error ? `refused: ${m.error.message}` : 'accepted';
    if (!m.error) await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: 2, method: 'Emulation.setCPUThrottlingRate', params: { rate: 1 } }) });
    await cdp.send('Target.detachFromTarget', { sessionId });
  }
  await cdp.detach();
  return { main: devtools.main / plain.main, worker: devtools.worker / plain.worker, workerMs: [plain.worker, devtools.worker], onWorker };
}

/**
 * One run of the scenario, throttling `pids`: measure, set the deadline, stream. Returns the
 * deadline, the table's rows and the frames.
 */
async function scenario(widths, pids) {
  const narrowest = widths.at(-1);
  // Throttled: each width's time from frame to answer, one frame at a time; then the
  // narrowest and the full width as the camera stream every later phase uses too (a frame
  // every 1.5 full-width runs, so none waits for another): the deadline is measured under the
  // conditions it is held to.
  stopThrottle = await throttle(pids, RATE);
  const throttled = {};
  for (const w of widths) throttled[w] = (await page.evaluate((w) => window.sequential(w, 5), w)).map((r) => r.totalMs);
  console.log(`throttled ${RATE}x, one frame at a time, frame to answer (median/p90 of 5): ${widths.map((w) => `${w}: ${round(median(throttled[w]))}/${round(quantile(throttled[w], 0.9))} ms`).join(', ')}`);
  // Full and narrowest frames alternate, so that both see the same load on the machine.
  const intervalMs = round(1.5 * median(throttled[1]));
  await page.evaluate(({ intervalMs, widths }) => window.startCamera({ intervalMs, widths }), { intervalMs, widths: [1, narrowest] });
  await framesAtLeast(24);
  const measured = (await page.evaluate(() => window.stopCamera())).filter((f) => !f.dropped);
  const fullStream = measured.filter((f) => f.width === 1).map((f) => f.ms);
  const narrowStream = measured.filter((f) => f.width === narrowest).map((f) => f.ms);
  const fullMs = median(fullStream);
  const narrowMs = median(narrowStream);
  console.log(`throttled ${RATE}x, camera stream, frame to answer (median/p90 of ${fullStream.length}): full ${round(fullMs)}/${round(quantile(fullStream, 0.9))} ms, narrowest (${narrowest}) ${round(narrowMs)}/${round(quantile(narrowStream, 0.9))} ms`);
  assert.ok(narrowMs < 0.85 * fullMs, `this machine is too loaded to tell the widths apart: the narrowest width's median (${round(narrowMs)} ms) is not clearly below the full width's (${round(fullMs)} ms)`);
  // Halfway between the two, both measured in the stream the deadline is then held to.
  const deadlineMs = round(narrowMs + DEADLINE_AT * (fullMs - narrowMs));

  // The full width alone against that deadline.
  await page.evaluate(({ intervalMs }) => window.startCamera({ intervalMs, widths: [1] }), { intervalMs });
  await framesAtLeast(20);
  const fullAlone = stats(await page.evaluate(() => window.stopCamera()), deadlineMs);

  // The runtime choosing: 8 frames at full speed, 50 throttled, 20 at full speed again.
  await stopThrottle();
  stopThrottle = null;
  await page.evaluate(({ intervalMs, deadlineMs }) => window.startCamera({ intervalMs, options: { deadlineMs } }), { intervalMs, deadlineMs });
  await framesAtLeast(8);
  await page.evaluate(() => { window.phase = 'throttled'; });
  stopThrottle = await throttle(pids, RATE);
  await page.waitForFunction(() => window.frames.filter((f) => f.phase === 'throttled').length >= 50, null, { polling: 100, timeout: 180_000 });
  await stopThrottle();
  stopThrottle = null;
  await page.evaluate(() => { window.phase = 'recovered'; });
  await page.waitForFunction(() => window.frames.filter((f) => f.phase === 'recovered').length >= 20, null, { polling: 100, timeout: 180_000 });
  const frames = await page.evaluate(() => window.stopCamera());

  const of = (phase) => frames.filter((f) => f.phase === phase);
  const settledFrames = of('throttled').slice(SETTLE);
  const rows = [
    ['full width alone, throttled', fullAlone],
    ['deadline, before throttling', stats(of('start'), deadlineMs)],
    [`deadline, throttled: first ${SETTLE} frames`, stats(of('throttled').slice(0, SETTLE), deadlineMs)],
    ['deadline, throttled: settled', stats(settledFrames, deadlineMs)],
    ['deadline, throttling ended', stats(of('recovered'), deadlineMs)],
  ];
  console.log(`per-frame deadline ${deadlineMs} ms (between the narrowest width's ${round(narrowMs)} ms and the full width's ${round(fullMs)} ms, throttled), a frame every ${intervalMs} ms:`);
  console.log(`  ${'run'.padEnd(40)} ${'frames'.padStart(6)} ${'met'.padStart(6)}  widths`);
  for (const [label, st] of rows) console.log(`  ${label.padEnd(40)} ${String(st.frames).padStart(6)} ${(st.met * 100).toFixed(0).padStart(5)}%  ${JSON.stringify(st.histogram)}`);
  if (process.env.CAIRN_ADAPTIVE_REASONS) for (const f of frames) console.log(f.phase, f.width, round(f.ms), f.reason);
  for (const phase of ['start', 'throttled', 'recovered']) console.log(`  ${phase}: ${of(phase).map((f) => (f.dropped ? 'dropped' : `${f.width}@${round(f.ms)}${f.first ? '(first)' : ''}`)).join(' ')}`);
  const recovered = of('recovered').filter((f) => !f.dropped);
  for (const f of [of('throttled')[SETTLE], of('throttled').at(-1), recovered.at(-1)]) console.log(`  e.g. width ${f?.width}: '${f?.reason}'`);
  // Frames at the narrowest width that missed: no width choice could have met those, so many
  // of them mean the machine itself slowed past what the deadline was measured against.
  const atNarrowest = settledFrames.filter((f) => !f.dropped && f.width === narrowest);
  const narrowestMissed = atNarrowest.filter((f) => f.ms > deadlineMs).length;
  return { deadlineMs, fullAlone, settled: rows[3][1], frames, recovered, narrowestMissed, atNarrowest: atNarrowest.length };
}

const SETTLE = 10; // frames the runtime may take to see the slowdown and step down
const DEADLINE_AT = 0.5; // where the deadline sits from the narrowest width's time (0) to the full one's (1)
const ATTEMPTS = 3; // goes, when the machine itself slowed past the measured times (see below)

test('under a slowed CPU the runtime settles on a width that meets a per-frame deadline the full width misses, and returns to full when the CPU recovers', async () => {
  const widths = await page.evaluate(() => window.model.widths);
  assert.deepEqual(widths, [1, ...WIDTHS.split(',').map(Number)]);
  // Every width once, so that each has prepared its weights before anything is timed; an
  // asked width runs as asked, and says so.
  for (const w of widths) {
    const [r] = await page.evaluate((w) => window.sequential(w, 1), w);
    assert.deepEqual([r.width, r.reason, r.first], [w, w === 1 ? 'full width as asked' : `width ${w} as asked`, true]);
  }

  const d = await devtoolsThrottling();
  console.log(`DevTools CPU throttling ${RATE}x: page main thread ${d.main.toFixed(2)}x slower, the worker's model runs ${d.worker.toFixed(2)}x (median run ${round(d.workerMs[0])} -> ${round(d.workerMs[1])} ms); on the worker's own target: ${d.onWorker}. Slowing the renderer process ${RATE}x instead (SIGSTOP/SIGCONT, cpu-throttle.mjs).`);
  assert.ok(d.main > 1.5, `DevTools throttling slows the page's main thread: ${d.main.toFixed(2)}x`);

  const pids = rendererPids(profile);
  // Another go (at most ATTEMPTS in all) only when the shared machine's speed moved away from
  // what the deadline was measured against: the frames missed at the narrowest width (which no
  // width choice could have met) are what kept the share below 90%, or the full width alone got
  // fast enough to meet the deadline on more than 30% of its frames. Either says the other load
  // on the 2 cores changed, not that the runtime chose badly.
  let r = await scenario(widths, pids);
  const machineChanged = ({ settled, narrowestMissed, fullAlone }) => (settled.met < 0.9 && settled.met + narrowestMissed / settled.frames >= 0.9) || fullAlone.met > 0.3;
  for (let attempt = 2; attempt <= ATTEMPTS && machineChanged(r); attempt++) {
    console.log(`the machine's speed moved from the measured times (the narrowest width missed ${r.narrowestMissed} of its ${r.atNarrowest} settled frames, of ${r.settled.frames}; the full width alone met the deadline on ${(r.fullAlone.met * 100).toFixed(0)}%): measuring and streaming again (go ${attempt} of ${ATTEMPTS})`);
    r = await scenario(widths, pids);
  }
  const { fullAlone, settled, frames, recovered } = r;

  assert.deepEqual(frames.filter((f) => f.error), [], 'no frame failed (dropped frames are counted as missed)');
  for (const f of frames.filter((f) => !f.dropped)) {
    assert.ok(widths.includes(f.width), `every answer says its width: ${JSON.stringify(f)}`);
    assert.match(f.reason, /^deadline \d+ ms: /, 'and why');
  }
  assert.ok(fullAlone.met <= 0.3, `the full width alone should meet the deadline on few frames: ${(fullAlone.met * 100).toFixed(0)}%`);
  assert.ok(settled.met >= 0.9, `settled under throttling, >= 90% of frames should meet the deadline: ${(settled.met * 100).toFixed(0)}%`);
  assert.ok(Object.keys(settled.histogram).some((w) => Number(w) < 1), 'a narrower width ran');
  // Back up: the full width within the first 5 frames after throttling, and most of them at it
  // (on a loaded machine a slow run now and then still steps down for a few frames).
  assert.ok(recovered.slice(0, 5).some((f) => f.width === 1), `back to the full width once the CPU recovered: ${recovered.map((f) => f.width)}`);
  assert.ok(recovered.filter((f) => f.width === 1).length >= 0.5 * recovered.length, `mostly at the full width once the CPU recovered: ${recovered.map((f) => f.width)}`);
});
