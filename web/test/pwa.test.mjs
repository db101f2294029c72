// The demo PWA in real headless Chromium, built by `cairn app build` around the real
// pretrained EfficientNet-Lite0 and served over HTTP: it works offline after one visit,
// repairs (or clearly reports) a damaged cached shard, and meets the installability basics.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';
import { root, packEfficientNet, buildApp, appEvent, cacheUrls, photo, appPath, expectedBackend } from './pwa-app.mjs';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pwa-test-'));
const dist = path.join(work, 'dist');
const shots = path.join(root, 'target/screenshots');
let server, context, manifest, build;

before(async () => {
  manifest = packEfficientNet(path.join(work, 'efficientnet_lite0'));
  build = buildApp(path.join(work, 'efficientnet_lite0'), dist);
  fs.mkdirSync(shots, { recursive: true });
  server = await startServer({ '/': dist }, { forcedBackend: null }); // the app takes its build from appPath
  context = await launch();
});

after(async () => {
  await context?.close();
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** A new page, online (a failed test must not leave the next one offline). */
async function onlinePage() {
  await context.setOffline(false);
  server.setOffline(false);
  return context.newPage();
}

const shardRequests = (from) => server.served.slice(from).filter((r) => r.url.includes('/shards/'));

test('first visit online, then offline: after a reload the app shell, the model and a classification all work', async () => {
  const page = await onlinePage();
  page.on('pageerror', (e) => console.error('page error:', e));
  // Hold back the last shard a moment, to see the page while the model streams in.
  const holds = manifest.shards.slice(-1).map((s) => server.fault(s.sha256, 'hold'));
  await page.goto(`${server.origin}${appPath}`);
  const controlled = await appEvent(page, 'sw-controlled');
  assert.equal(controlled.controlled, true, 'the service worker controls the page before the model loads');
  assert.equal((await appEvent(page, 'engine')).backend, expectedBackend);
  await page.waitForFunction(() => /MB of .* MB/.test(document.getElementById('load-text').textContent));
  await page.screenshot({ path: path.join(shots, 'first-visit-loading.png'), fullPage: true });
  for (const h of holds) h.release();
  server.clearFaults();
  assert.equal((await appEvent(page, 'model-usable')).level, manifest.levels[0].name);
  const first = await appEvent(page, 'load-done');
  assert.equal(first.fromCache, 0);
  await appEvent(page, 'model-active');
  assert.equal((await cacheUrls(page, 'cairn-shards-v1')).length, manifest.shards.length, 'every shard is cached once');
  // The precache holds one engine build, the one this browser runs (docs/adr/0034): relaxed SIMD,
  // which headless Chromium validates; not simd128 nor scalar, which the app also ships; and
  // on a cross-origin isolated origin (the service worker too) its threaded twin.
  const builds = (await cacheUrls(page, 'cairn-precache-v1')).map((u) => u.match(/cairn_web_([\w-]+)\.wasm/)?.[1]).filter(Boolean).sort();
  console.log(`precached engine builds: ${builds.join(', ')} (the app ships ${fs.readdirSync(path.join(dist, 'cairn')).filter((f) => /^cairn_web_.*\.wasm$/.test(f)).join(', ')})`);
  assert.deepEqual(builds, process.env.CAIRN_TEST_ISOLATED ? ['relaxed', 'text', 'threads-relaxed'] : ['relaxed', 'text']);

  await context.setOffline(true);
  server.setOffline(true);
  const servedBefore = server.served.length;
  let done, top, level, where, pill;
  try {
    await page.reload();
    done = await appEvent(page, 'load-done');
    await page.setInputFiles('#file', photo('chelsea.png'));
    ({ top, level, where } = await appEvent(page, 'classified'));
    await page.screenshot({ path: path.join(shots, 'offline-classified.png'), fullPage: true });
    pill = await page.textContent('#network');
  } finally {
    await context.setOffline(false);
    server.setOffline(false);
  }
  assert.deepEqual(server.served.slice(servedBefore), [], 'nothing was served while offline');
  console.log(`while offline the browser tried the network only for its service worker update check: ${JSON.stringify(server.refused)}`);
  assert.ok(server.refused.every((u) => u === '/sw.js' || u.startsWith('/sw/')), JSON.stringify(server.refused));
  assert.equal(done.fromCache, done.bytes, 'every model byte came from the cache');
  assert.equal(pill, 'Offline');
  assert.equal(where, 'device');
  assert.equal(level, 'full');
  console.log(`offline: app shell ${build.precache} files from the precache, model ${(done.bytes / 2 ** 20).toFixed(1)} MiB from the shard cache; chelsea.png -> ${top.map((t) => `${t.label} ${(t.p * 100).toFixed(1)}%`).join(', ')}`);
  // ImageNet's domestic cats are classes 281-285 (tabby, tiger cat, Persian, Siamese, Egyptian cat).
  assert.ok(top[0].index >= 281 && top[0].index <= 285, `a real photo of a tabby cat is classified as a cat: ${JSON.stringify(top[0])}`);
  assert.ok(top[0].p > 0.2, `confident: ${top[0].p}`);
  await page.close();
});

/** Flips one byte of a cached shard, in the shared shard cache. */
async function damageCachedShard(page, url) {
  await page.evaluate(async (url) => {
    const cache = await caches.open('cairn-shards-v1');
    const bytes = new Uint8Array(await (await cache.match(url)).arrayBuffer());
    bytes[bytes.length >> 1] ^= 1;
    await cache.put(url, new Response(bytes));
  }, url);
}

/** Whether the cached copy of `url` hashes to its name (waits up to 10 s: the service worker stores in the background). */
async function cachedShardIsSound(page, url) {
  for (let waited = 0; ; waited += 250) {
    const sound = await page.evaluate(async (url) => {
      const r = await (await caches.open('cairn-shards-v1')).match(url);
      if (!r) return false;
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await r.arrayBuffer()));
      return url.endsWith(`${Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')}.safetensors`);
    }, url);
    if (sound || waited >= 10_000) return sound;
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('a corrupted cached shard is detected, evicted and refetched online; offline the app says so clearly', async () => {
  const page = await onlinePage();
  await page.goto(`${server.origin}${appPath}`);
  await appEvent(page, 'model-active');
  const victim = manifest.shards[2];
  const url = `${server.origin}/models/${manifest.name}/${victim.path}`;

  // Online: the worker's check rejects the cached copy, evicts it, and the service worker
  // fetches, verifies and stores a sound one.
  await damageCachedShard(page, url);
  assert.equal(await page.evaluate(async (url) => Boolean(await (await caches.open('cairn-shards-v1')).match(url)), url), true);
  let servedFrom = server.served.length;
  await page.reload();
  const rejected = await appEvent(page, 'shard-rejected', { from: 0 });
  await appEvent(page, 'model-complete');
  assert.equal(rejected.fromCache, true);
  assert.match(rejected.reason, /sha256/);
  assert.deepEqual(shardRequests(servedFrom).map((r) => r.url), [`/models/${manifest.name}/${victim.path}`], 'only the damaged shard was fetched again');
  assert.equal(await cachedShardIsSound(page, url), true, 'the cache holds a sound copy again');

  // Offline: the damaged copy is evicted and the failure is reported, not a broken page.
  await damageCachedShard(page, url);
  await context.setOffline(true);
  server.setOffline(true);
  await page.reload();
  const failed = await appEvent(page, 'load-error');
  assert.equal(failed.code, 'network');
  assert.match(failed.message, /cached copy of shards\/[0-9a-f]{64}\.safetensors was damaged and has been removed; fetching it again failed/);
  assert.ok(await page.isVisible('#alert'), 'the message is shown on the page');
  assert.match(await page.textContent('#alert'), /damaged, so it was removed\. Connect to the network once/);
  await page.screenshot({ path: path.join(shots, 'offline-damaged-shard.png'), fullPage: true });
  console.log(`offline with a damaged shard, the page says: ${await page.textContent('#alert')}`);

  // Back online, a reload repairs it.
  await context.setOffline(false);
  server.setOffline(false);
  servedFrom = server.served.length;
  await page.reload();
  await appEvent(page, 'model-complete');
  assert.equal(shardRequests(servedFrom).length, 1);
  assert.equal(await cachedShardIsSound(page, url), true);
  await page.close();
});

test('a shard damaged on the wire is never stored: the service worker checks its sha256 first', async () => {
  const page = await onlinePage();
  await page.goto(`${server.origin}${appPath}`);
  await appEvent(page, 'model-active');
  const victim = manifest.shards.at(-1);
  const url = `${server.origin}/models/${manifest.name}/${victim.path}`;
  await page.evaluate(async (url) => (await caches.open('cairn-shards-v1')).delete(url), url);
  server.fault(victim.sha256, 'corrupt', 1);
  await page.reload();
  await appEvent(page, 'model-complete');
  const events = await page.evaluate(() => window.cairnApp.events);
  const swRejected = events.filter((e) => e.type === 'sw:shard-rejected');
  const workerRejected = events.filter((e) => e.type === 'shard-rejected');
  assert.equal(swRejected.length, 1, 'the service worker refused to store the damaged copy');
  assert.equal(workerRejected.length, 1, 'the worker refused to use it');
  assert.equal(await cachedShardIsSound(page, url), true, 'the refetched, sound copy is what was stored');
  server.clearFaults();
  await page.close();
});

test('installability basics: manifest fields, icons, a service worker controlling the page, an offline start URL', async () => {
  const page = await onlinePage();
  await page.goto(`${server.origin}${appPath}`);
  await appEvent(page, 'sw-controlled');
  const manifestUrl = await page.evaluate(() => document.querySelector('link[rel=manifest]')?.href);
  assert.ok(manifestUrl, 'the page links a web app manifest');
  const res = await page.request.get(manifestUrl);
  assert.equal(res.headers()['content-type'], 'application/manifest+json');
  const m = await res.json();
  for (const field of ['name', 'short_name', 'start_url', 'display', 'theme_color', 'background_color']) assert.ok(m[field], `manifest has ${field}`);
  assert.ok(['standalone', 'fullscreen', 'minimal-ui'].includes(m.display));
  // Icons: PNGs whose real size is what the manifest says, 192 and 512 among them, one maskable.
  const sizes = [];
  for (const icon of m.icons) {
    const bytes = Buffer.from(await (await page.request.get(new URL(icon.src, manifestUrl).href)).body());
    assert.equal(bytes.subarray(1, 4).toString(), 'PNG', `${icon.src} is a PNG`);
    const [w, h] = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
    assert.equal(`${w}x${h}`, icon.sizes, `${icon.src} is ${w}x${h}`);
    sizes.push(w);
  }
  assert.ok(sizes.includes(192) && sizes.includes(512));
  assert.ok(m.icons.some((i) => i.purpose?.includes('maskable')));
  // A service worker controls the page, and its scope covers the start URL.
  const sw = await page.evaluate(async () => ({ script: navigator.serviceWorker.controller?.scriptURL, scope: (await navigator.serviceWorker.ready).scope }));
  const startUrl = new URL(m.start_url, manifestUrl).href;
  assert.equal(sw.script, `${server.origin}/sw.js`);
  assert.ok(startUrl.startsWith(sw.scope), `${startUrl} is inside ${sw.scope}`);
  // Chromium's own installability check (what Lighthouse reports).
  const cdp = await context.newCDPSession(page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  console.log(`Chromium installability errors: ${JSON.stringify(installabilityErrors)}`);
  assert.deepEqual(installabilityErrors, []);
  // The start URL opens with the network gone.
  await context.setOffline(true);
  server.setOffline(true);
  const offline = await context.newPage();
  const response = await offline.goto(startUrl);
  assert.equal(response.status(), 200);
  assert.equal(await offline.textContent('h1'), ' Cairn classifier');
  await appEvent(offline, 'sw-controlled');
  await context.setOffline(false);
  server.setOffline(false);
  await offline.close();
  await page.close();
});

test('a full storage quota: the user is told clearly, and the app still loads the model and classifies', async () => {
  // A fresh browser whose quota for this origin is 6 MB: the 2.3 MB app shell fits, the 18 MB model does not.
  const small = await launch();
  try {
    const page = await small.newPage();
    const cdp = await small.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.origin, quotaSize: 6e6 });
    await page.goto(`${server.origin}${appPath}`);
    const full = await appEvent(page, 'sw:quota-full');
    await appEvent(page, 'model-complete');
    await page.setInputFiles('#file', photo('chelsea.png'));
    const { top } = await appEvent(page, 'classified');
    assert.ok(top[0].index >= 281 && top[0].index <= 285, JSON.stringify(top[0]));
    const alert = await page.textContent('#alert');
    assert.ok(await page.isVisible('#alert'));
    assert.match(alert, /Storage is full .* could not be saved for offline use\. The app still works while online/);
    await page.screenshot({ path: path.join(shots, 'quota-full.png'), fullPage: true });
    console.log(`quota ${full.quota} bytes, usage ${full.usage}: the page says "${alert}"`);
  } finally {
    await small.close();
  }
});

test('keyboard and screen readers: named controls, a skip link, the drop zone opens the file picker with Enter, text contrast >= 4.5:1', async () => {
  const page = await onlinePage();
  await page.goto(`${server.origin}${appPath}`);
  await appEvent(page, 'sw-controlled');
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, [role=button], input, a, progress, meter, video')]
    .filter((el) => el.getClientRects().length > 0 || el.type === 'file')
    .filter((el) => !(el.getAttribute('aria-label') || el.labels?.[0]?.textContent.trim() || el.textContent.trim() || document.getElementById(el.getAttribute('aria-describedby') ?? '')?.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, [], 'every control has an accessible name');
  // Listen for the file picker before any key is pressed (Playwright then intercepts it).
  const chooser = page.waitForEvent('filechooser', { timeout: 15_000 });
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip', 'the first Tab stop is the skip link');
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.id === 'drop');
  }
  assert.ok(reached, 'the drop zone is reachable with Tab');
  await page.keyboard.press('Enter');
  assert.ok(await chooser, 'Enter on the drop zone opens the file picker');
  const contrasts = await page.evaluate(() => {
    const rgb = (c) => c.match(/[\d.]+/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor; if (!c.startsWith('rgba(0, 0, 0, 0)')) return c; } return 'rgb(255, 255, 255)'; };
    return [...document.querySelectorAll('h1, h2, p, label, button, .button, #drop span, footer, .note')]
      .filter((el) => el.getClientRects().length > 0 && el.textContent.trim())
      .map((el) => { const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(rgb(background(el)))]; return { what: el.id || el.className || el.tagName, ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) }; });
  });
  const low = contrasts.filter((c) => c.ratio < 4.5);
  console.log(`contrast: ${contrasts.length} text elements, lowest ratio ${Math.min(...contrasts.map((c) => c.ratio)).toFixed(1)}:1`);
  assert.deepEqual(low, []);
  await page.close();
});
