// The offline semantic-search demo (examples/notes, built by `cairn app build`) in real
// headless Chromium with the real pretrained all-MiniLM-L6-v2 (PyPI), int8-dynamic:
// 50 notes added online (embedded in the worker while the page stays responsive: no long
// task over 50 ms), then offline (browser context offline and the server dropping every
// connection), reload, and 10 scripted queries each find their note in the top 3.
//
// Needs target/release/cairn, target/web-pkg/{relaxed,simd,scalar} (bench/web/build_wasm.sh) and
// target/text-model/minilm_l6.onnx + tokenizer.json (python3 tools/convert_minilm.py target/text-model).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';
import { root, cairn, buildApp } from './pwa-app.mjs';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-notes-test-'));
const dist = path.join(work, 'dist');
const { notes, queries } = JSON.parse(fs.readFileSync(path.join(root, 'tests/text/retrieval_set.json'), 'utf8'));
let server, context;

/** The demo's model: the pretrained MiniLM, int8-dynamic by `cairn optimize`, packed with its tokenizer. */
function packMiniLm(dir) {
  const model = path.join(root, 'target/text-model');
  if (!fs.existsSync(path.join(model, 'minilm_l6.onnx'))) throw new Error(`${model}/minilm_l6.onnx is missing: run python3 tools/convert_minilm.py ${model}`);
  const int8 = path.join(work, 'minilm_l6_int8.onnx');
  // The 4 weights that quantize worst, measured on calibration texts disjoint from the notes, stay f32
  // (three FFN down projections, whose GELU inputs have the largest outliers, and one up projection):
  // cosine >= 0.99 to f32, 28.6 MiB.
  cairn('optimize', path.join(model, 'minilm_l6.onnx'), '-o', int8, '--quantize', 'int8-dynamic',
    '--calibrate', path.join(root, 'tests/text/calibration_texts.jsonl'), '--tokenizer', path.join(model, 'tokenizer.json'), '--keep-sensitive', '4');
  cairn('pack', int8, '-o', dir, '--name', 'minilm', '--tokenizer', path.join(model, 'tokenizer.json'), '--task', 'feature-extraction',
    '--max-length', '256', '--pooling', 'mean', '--no-progressive');
}

before(async () => {
  packMiniLm(path.join(work, 'minilm'));
  buildApp(path.join(work, 'minilm'), dist, { app: path.join(root, 'examples/notes') });
  server = await startServer({ '/': dist }, { forcedBackend: null }); // its precache pins index.html's SHA-256
  context = await launch();
});

after(async () => {
  await context?.close();
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

const waitEvent = async (page, type, from = 0) => {
  const h = await page.waitForFunction(({ type, from }) => {
    const events = window.notesApp?.events ?? [];
    const i = events.findIndex((e, k) => k >= from && (e.type === type || e.type === 'load-error'));
    return i >= 0 ? events[i] : null;
  }, { type, from }, { timeout: 180_000, polling: 100 });
  const e = await h.jsonValue();
  if (e.type !== type) throw new Error(`waiting for ${type}: ${e.message}`);
  return e;
};

test('50 notes added online, then offline and reloaded: 10 queries find their note in the top 3; no long task while embedding', async () => {
  const page = await context.newPage();
  // What failed to load says why a step failed offline (a file the precache lacks, a wrong URL).
  page.on('requestfailed', (r) => console.log(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on('pageerror', (e) => console.error('page error:', e));
  // Long tasks of the page's main thread, from the first script on.
  await page.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.longTasks.push({ start: e.startTime, ms: e.duration }); })
      .observe({ type: 'longtask', buffered: true });
  });
  await page.goto(`${server.origin}/`);
  const ready = await waitEvent(page, 'model-ready');
  assert.equal(ready.notes, 0);

  // Every note through the page's add(): 50 concurrent requests, batched by the worker's scheduler.
  const added = await page.evaluate(async (notes) => {
    const t0 = performance.now();
    const ticks = [];
    let last = t0;
    // The main thread's own view: gaps between animation frames while the worker embeds.
    let running = true;
    const frame = (t) => { ticks.push(t - last); last = t; if (running) requestAnimationFrame(frame); };
    requestAnimationFrame(frame);
    await Promise.all(notes.map((n) => window.notesApp.add([n])));
    running = false;
    const t1 = performance.now();
    return { ms: t1 - t0, longTasks: window.longTasks.filter((l) => l.start >= t0 && l.start <= t1), maxFrameGap: Math.max(...ticks), frames: ticks.length };
  }, notes);
  console.log(`50 notes embedded on the device in ${added.ms.toFixed(0)} ms; main-thread long tasks meanwhile: ${JSON.stringify(added.longTasks)}; longest frame gap ${added.maxFrameGap.toFixed(1)} ms over ${added.frames} frames`);
  assert.deepEqual(added.longTasks.filter((l) => l.ms > 50), [], 'no long task over 50 ms on the page while embedding');
  assert.equal(await page.textContent('#count'), '50');

  await context.setOffline(true);
  server.setOffline(true);
  const servedBefore = server.served.length;
  const found = [];
  try {
    await page.reload();
    const offlineReady = await waitEvent(page, 'model-ready');
    assert.equal(offlineReady.notes, 50, 'the notes are still on the device');
    for (const q of queries) {
      const from = await page.evaluate(() => window.notesApp.events.length);
      await page.fill('#query', q.query);
      await page.press('#query', 'Enter');
      const { top } = await waitEvent(page, 'searched', from);
      const shown = await page.$$eval('#results li', (lis) => lis.slice(0, 3).map((li) => li.firstChild.textContent));
      found.push({ query: q.query, want: notes[q.relevant], top3: top.slice(0, 3).map((t) => t.text), shown });
    }
  } finally {
    await context.setOffline(false);
    server.setOffline(false);
  }
  assert.deepEqual(server.served.slice(servedBefore), [], 'nothing was served while offline');
  let hits = 0;
  for (const f of found) {
    const hit = f.top3.includes(f.want);
    hits += hit;
    console.log(`${hit ? 'hit ' : 'MISS'} "${f.query}" -> ${f.top3.indexOf(f.want) + 1 || '-'}: ${f.top3[0].slice(0, 50)}`);
    assert.deepEqual(f.shown, f.top3, 'the page shows the ranking');
  }
  console.log(`offline: ${hits}/${found.length} queries have their note in the top 3`);
  assert.equal(hits, queries.length);
});
