// The Vite example in real headless Chromium, built from the packed @cairn-ml/web tarball
// with `vite build` and served statically by the real edge server (`cairn serve dist`, which
// also answers the edge API) behind a TCP relay the test cuts to take the network away:
// it classifies a photo, goes offline, reloads, classifies again from its caches, and an edge
// request made offline is queued and replayed exactly once when the network is back.
//
// Run by examples/vite-app/test.sh (which installs, packs the model and builds first).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from '../../../web/test/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const dist = path.resolve(here, '../dist');
const cairnBin = path.join(root, 'target/release/cairn');
let serve, relay, origin, edge, context, serveLog = '';

/** A TCP relay: the browser's network. Cut, every connection (page, worker, service worker) is reset. */
function startRelay(targetPort) {
  let cut = false;
  const sockets = new Set();
  const attempts = { whileCut: 0 };
  const server = net.createServer((client) => {
    if (cut) { attempts.whileCut++; return client.destroy(); }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    attempts,
    setOffline(value) { cut = value; if (value) for (const s of sockets) s.destroy(); },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(r); }),
  })));
}

const freePort = () => new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });

async function metric(name, labelPart = '') {
  const text = await (await fetch(`${edge}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name) && l.includes(labelPart)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

function photo(name) {
  const dir = execFileSync('python3', ['-c', 'import skimage; print(skimage.data.data_dir)'], { encoding: 'utf8' }).trim();
  return path.join(dir, name);
}

before(async () => {
  assert.ok(fs.existsSync(path.join(dist, 'sw.js')), 'dist/sw.js is missing: run examples/vite-app/test.sh (npm run build)');
  const port = await freePort();
  edge = `http://127.0.0.1:${port}`;
  serve = spawn(cairnBin, ['serve', dist, '--addr', `127.0.0.1:${port}`, '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  serve.stdout.on('data', (d) => { serveLog += d; });
  serve.stderr.on('data', (d) => { serveLog += d; });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${edge}/healthz`)).ok) break; } catch { /* not up yet */ }
    if (i > 300 || serve.exitCode !== null) throw new Error(`cairn serve did not start: ${serveLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  relay = await startRelay(port);
  origin = `http://127.0.0.1:${relay.port}`;
  context = await launch();
});

after(async () => {
  await context?.close();
  await relay?.close();
  serve?.kill('SIGTERM');
});

const ready = (page) => page.waitForFunction(() => {
  const s = window.cairnExample;
  if (s?.events.some((e) => e.startsWith('error'))) throw new Error(s.events.join('; '));
  return s?.events.includes('ready');
}, null, { timeout: 180_000, polling: 100 });

async function classify(page, file) {
  const before = await page.evaluate(() => window.cairnExample.results.length);
  await page.setInputFiles('#file', file);
  await page.waitForFunction((n) => window.cairnExample.results.length > n, before, { timeout: 60_000 });
  return page.evaluate(() => { const r = window.cairnExample.results.at(-1); return { top: r.top, level: r.level, where: r.where }; });
}

test('the Vite example classifies, then offline after a reload classifies again from its caches; an edge request made offline is replayed once', async () => {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${origin}/`);
  await ready(page);
  const online = await classify(page, photo('chelsea.png'));
  assert.equal(online.where, 'device');
  assert.equal(online.level, 'full');
  assert.ok(online.top[0].index >= 281 && online.top[0].index <= 285, `a cat class: ${JSON.stringify(online.top[0])}`);
  const shards = await page.evaluate(async () => (await (await caches.open('cairn-shards-v1')).keys()).length);
  const manifest = JSON.parse(fs.readFileSync(path.join(dist, 'models/efficientnet_lite0/manifest.json'), 'utf8'));
  assert.equal(shards, manifest.shards.length, 'every shard was verified and cached by the service worker');

  // Offline: the relay resets every connection, and DevTools says offline too.
  await context.setOffline(true);
  relay.setOffline(true);
  const inferBefore = await metric('cairn_http_requests_total{', 'infer');
  await page.reload();
  await ready(page);
  const offline = await classify(page, photo('chelsea.png'));
  assert.deepEqual(offline.top.map((t) => t.index), online.top.map((t) => t.index), 'same answer from the caches');
  assert.equal(offline.level, 'full');

  // An edge request made offline: queued by the service worker (202 + its key).
  const asked = await page.evaluate(async () => {
    const t = { data: new Float32Array(3 * 224 * 224).fill(0.25), shape: [1, 3, 224, 224] };
    const res = await fetch('/v1/models/efficientnet_lite0/infer', {
      method: 'POST', body: t.data, headers: { 'content-type': 'application/octet-stream', 'cairn-shape': t.shape.join(',') },
    });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(asked.status, 202);
  assert.equal(asked.body.queued, true);
  assert.equal(await metric('cairn_http_requests_total{', 'infer'), inferBefore, 'nothing reached the edge while offline');

  // Back online: the page says so, the service worker replays the queue once.
  await context.setOffline(false);
  relay.setOffline(false);
  await page.evaluate(() => dispatchEvent(new Event('online')));
  const result = await page.waitForFunction((key) => window.cairnExample.announcements.find((a) => a.type === 'edge-result' && a.key === key), asked.body.key, { timeout: 60_000 });
  const replayed = await result.jsonValue();
  assert.equal(replayed.status, 200);
  // Another replay trigger finds the queue empty; the server computed the request once.
  await page.evaluate(() => new Promise((resolve) => { const c = new MessageChannel(); c.port1.onmessage = resolve; navigator.serviceWorker.controller.postMessage({ type: 'replay', trigger: 'test' }, [c.port2]); }));
  assert.equal(await metric('cairn_http_requests_total{', 'infer'), inferBefore + 1, 'the edge saw the request exactly once');
  assert.equal(await metric('cairn_infer_batch_size_count'), 1, 'and computed it once');
  console.log(`vite example: online ${online.top[0].label} ${(online.top[0].p * 100).toFixed(1)}%; offline after reload ${offline.top[0].label} ${(offline.top[0].p * 100).toFixed(1)}% (${manifest.shards.length} shards from the cache; ${relay.attempts.whileCut} connections refused while offline); edge request ${asked.body.key} queued (202), replayed -> HTTP ${replayed.status}, computed once`);
  await page.close();
});
