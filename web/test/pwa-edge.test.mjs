// A request to the edge made offline, end to end with the real edge server (`cairn serve`)
// and real headless Chromium: the demo app asks the edge while the network is gone, the
// service worker queues the request in IndexedDB (202), the browser is closed and opened
// again (same profile), and once the network is back the request is replayed; the server
// computed it exactly once (its Idempotency-Key), and the page shows the edge's answer.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { launch } from './browser.mjs';
import { root, cairnBin, packEfficientNet, packEfficientNetForEdge, buildApp, appEvent, eventCount, photo, appPath } from './pwa-app.mjs';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pwa-edge-'));
const dist = path.join(work, 'dist');
const profile = path.join(work, 'profile');
let serve, relay, origin, edge, serveLog = '';
const EDGE_KEY = 'ck_pwa_test_0b6f2d';

/**
 * A TCP relay between the browser and the edge: the browser's network. Cutting it is the
 * network going away (connections reset), for every request the browser makes, including
 * those DevTools' offline emulation does not see (Background Sync, service-worker starts
 * in a fresh browser). The edge server behind it is the real `cairn serve`.
 */
function startRelay(targetPort) {
  let cut = false;
  const sockets = new Set();
  const relay = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => relay.listen(0, '127.0.0.1', () => resolve({
    port: relay.address().port,
    setOffline(value) { cut = value; if (value) for (const s of sockets) s.destroy(); },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); relay.close(r); }),
  })));
}

const freePort = () => new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });

before(async () => {
  const model = path.join(work, 'efficientnet_lite0');
  packEfficientNet(model);
  const edgeModel = path.join(work, 'efficientnet_lite0_f32');
  packEfficientNetForEdge(edgeModel);
  // The edge wants an API key (stored as its SHA-256); the service worker sends the one it was built with.
  buildApp(model, dist, { edgeModel, edgeApiKey: EDGE_KEY });
  const port = await freePort();
  edge = `http://127.0.0.1:${port}`;
  const keys = `pwa ${createHash('sha256').update(EDGE_KEY).digest('hex')}`;
  serve = spawn(cairnBin, ['serve', dist, '--addr', `127.0.0.1:${port}`, '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CAIRN_API_KEYS: keys } });
  serve.stdout.on('data', (d) => { serveLog += d; });
  serve.stderr.on('data', (d) => { serveLog += d; });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${edge}/healthz`)).ok) break; } catch { /* not up yet */ }
    if (i > 200 || serve.exitCode !== null) throw new Error(`cairn serve did not start: ${serveLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await fetch(`${edge}/v1/models`)).status, 401, 'the edge API needs the key');
  assert.equal((await fetch(`${edge}/v1/models`, { headers: { authorization: `Bearer ${EDGE_KEY}` } })).status, 200);
  relay = await startRelay(port);
  origin = `http://127.0.0.1:${relay.port}`;
  fs.mkdirSync(profile);
});

after(async () => {
  await relay?.close();
  serve?.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
});

/** Sum of a Prometheus counter's samples whose labels contain `labelPart`. */
async function metric(name, labelPart = '') {
  const text = await (await fetch(`${edge}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name) && l.includes(labelPart)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}
const inferRequests = () => metric('cairn_http_requests_total{', 'infer');
const inferBatches = () => metric('cairn_infer_batch_size_count');

const askSw = (page, msg) => page.evaluate(async (msg) => {
  const reg = await navigator.serviceWorker.ready;
  return new Promise((resolve) => { const c = new MessageChannel(); c.port1.onmessage = ({ data }) => resolve(data); reg.active.postMessage(msg, [c.port2]); });
}, msg);

let context;
after(() => context?.close());

test('an edge request made offline is queued, survives a browser restart, and is replayed once online; the server computes it once', async () => {
  context = await launch(profile);
  let page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${origin}${appPath}`);
  await appEvent(page, 'model-active');
  await page.setInputFiles('#file', photo('chelsea.png'));
  const onDevice = await appEvent(page, 'classified');
  assert.equal(onDevice.where, 'device');
  const requestsBefore = await inferRequests();

  await context.setOffline(true);
  relay.setOffline(true);
  await page.click('#ask-edge');
  const asked = await appEvent(page, 'edge');
  assert.equal(asked.state, 'queued');
  assert.match(await page.textContent('#edge-status'), /queued on this device/);
  const { queued } = await askSw(page, { type: 'queued' });
  assert.deepEqual(queued.map((q) => q.key), [asked.key]);
  assert.equal(await inferRequests(), requestsBefore, 'nothing reached the edge while offline');
  await context.close();

  // The browser comes back (same profile), still offline at first: the request is still queued.
  context = await launch(profile);
  await context.setOffline(true);
  page = await context.newPage();
  await page.goto(`${origin}${appPath}`);
  await appEvent(page, 'sw-controlled');
  assert.deepEqual((await askSw(page, { type: 'queued' })).queued.map((q) => q.key), [asked.key], 'the queue survived the restart');

  // Online again: the page says so, the service worker replays the queue.
  await context.setOffline(false);
  relay.setOffline(false);
  await page.evaluate(() => dispatchEvent(new Event('online')));
  const result = await appEvent(page, 'sw:edge-result');
  assert.equal(result.key, asked.key);
  assert.equal(result.status, 200);
  await page.waitForFunction(() => window.cairnApp.edgeResults.length > 0);
  assert.match(await page.textContent('#meta'), /on the edge server/);
  const edgeTop = (await page.evaluate(() => window.cairnApp.edgeResults[0].top));
  assert.equal(edgeTop[0].index, onDevice.top[0].index, 'the edge (native, full precision) agrees with the device on the top class');
  await page.screenshot({ path: path.join(root, 'target/screenshots/edge-replayed.png'), fullPage: true });
  assert.deepEqual((await askSw(page, { type: 'queued' })).queued, [], 'the queue is empty');

  // Other triggers (Background Sync, a later start) find nothing left to send.
  await askSw(page, { type: 'replay', trigger: 'test' });
  await page.reload();
  await appEvent(page, 'replayed');
  assert.equal(await inferRequests(), requestsBefore + 1, 'the server saw the request exactly once');
  assert.equal(await inferBatches(), 1, 'and computed it once');
  console.log(`edge queue: key ${asked.key} queued offline, kept across a browser restart, replayed (trigger: ${result.trigger}) -> HTTP ${result.status}, edge top-1 ${edgeTop[0].label} ${(edgeTop[0].p * 100).toFixed(1)}% (device: ${onDevice.top[0].label} ${(onDevice.top[0].p * 100).toFixed(1)}%); the server answered ${await inferRequests() - requestsBefore} infer request and computed ${await inferBatches()} batch`);
  await context.close();
});

test('Background Sync: a request queued while the edge is unreachable is replayed by the sync event', async () => {
  context = await launch(profile);
  const page = await context.newPage();
  await page.goto(`${origin}${appPath}`);
  await appEvent(page, 'model-active');
  await page.setInputFiles('#file', photo('coffee.png'));
  await appEvent(page, 'classified');
  const requestsBefore = await inferRequests();
  // The page still believes it is online (no 'online' event will come); only the edge is unreachable.
  relay.setOffline(true);
  await page.click('#ask-edge');
  const asked = await appEvent(page, 'edge');
  assert.equal(asked.state, 'queued');
  relay.setOffline(false);
  // Chromium fires `sync` when it sees connectivity; here the test makes it fire now, through DevTools.
  const cdp = await context.newCDPSession(page);
  const registrations = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: r }) => registrations.push(...r));
  await cdp.send('ServiceWorker.enable');
  for (let i = 0; i < 50 && registrations.length === 0; i++) await page.waitForTimeout(100);
  const { registrationId } = registrations.find((r) => !r.isDeleted);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin, registrationId, tag: 'cairn-edge-queue', lastChance: false });
  const result = await appEvent(page, 'sw:edge-result');
  assert.equal(result.key, asked.key);
  assert.equal(result.trigger, 'sync');
  assert.equal(result.status, 200);
  assert.equal(await inferRequests(), requestsBefore + 1, 'sent once');
  console.log(`background sync: key ${asked.key} replayed by the sync event -> HTTP ${result.status}`);
  await context.close();
});

test('explain: online the edge heatmap is drawn over the image; offline the request is queued and the heatmap arrives once online', async () => {
  const explainRequests = () => metric('cairn_http_requests_total{', 'explain');
  context = await launch(profile);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${origin}${appPath}`);
  await appEvent(page, 'model-active');
  await page.setInputFiles('#file', photo('coffee.png'));
  const onDevice = await appEvent(page, 'classified');
  const before = await explainRequests();

  await page.click('#explain');
  const online = await appEvent(page, 'explained');
  assert.equal(online.target.index, onDevice.top[0].index, 'the edge explains the class the device answered');
  assert.equal(await page.isVisible('#heatmap'), true);
  assert.match(await page.textContent('#explain-caption'), /Warm regions/);
  const grid = await page.evaluate(() => window.cairnApp.explanations.at(-1));
  assert.ok(grid.rows > 1 && grid.cols > 1, JSON.stringify(grid));

  // Offline: the same button queues the request in the service worker; online, it is replayed once.
  relay.setOffline(true);
  await context.setOffline(true);
  const from = await eventCount(page);
  await page.click('#explain');
  const asked = await appEvent(page, 'explain', { from });
  assert.equal(asked.state, 'queued');
  assert.match(await page.textContent('#edge-status'), /queued on this device/);
  await context.setOffline(false);
  relay.setOffline(false);
  await page.evaluate(() => dispatchEvent(new Event('online')));
  await page.waitForFunction((key) => window.cairnApp.explanations.some((e) => e.key === key), asked.key);
  assert.match(await page.textContent('#edge-status'), /queued explanation arrived/);
  assert.equal(await explainRequests(), before + 2, 'one explanation online, one replayed: each reached the edge once');
  await page.screenshot({ path: path.join(root, 'target/screenshots/explained.png'), fullPage: true });
  console.log(`explain: edge heatmap ${grid.rows}x${grid.cols} for '${online.target.label}' (device top-1 '${onDevice.top[0].label}'); the offline request was queued and replayed (key ${asked.key})`);
  await context.close();
});
