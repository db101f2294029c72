// Which wasm build the worker picks and which ones a service worker precaches (web/src/backend.js,
// web/sw/builds.js; docs/adr/0034), in Node. The browser tests (bundle, threads, pwa) check the
// same choice in headless Chromium, where relaxed SIMD validates.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickBackend, relaxedSimd, threadedBuild, singleThreadedBuild } from '../src/backend.js';
import { buildsForThisBrowser, withoutUnusedBuilds } from '../sw/builds.js';

test("'auto' takes relaxed SIMD where this engine validates it, else simd128; names force a build", () => {
  assert.equal(pickBackend(), relaxedSimd() ? 'relaxed' : 'simd');
  assert.equal(pickBackend('auto'), pickBackend());
  assert.equal(pickBackend('simd'), 'simd');
  assert.equal(pickBackend('scalar'), 'scalar');
  assert.equal(pickBackend('relaxed'), relaxedSimd() ? 'relaxed' : 'simd');
  console.log(`this Node (${process.version}, flags: ${process.execArgv.join(' ') || 'none'}): relaxed SIMD ${relaxedSimd() ? 'validates' : 'does not validate'}; 'auto' -> ${pickBackend()}`);
});

test('a threaded build keeps the SIMD flavour of the single-threaded one, and falls back to it', () => {
  assert.equal(threadedBuild('relaxed'), 'threads-relaxed');
  assert.equal(threadedBuild('simd'), 'threads');
  assert.equal(singleThreadedBuild('threads-relaxed'), 'relaxed');
  assert.equal(singleThreadedBuild('threads'), 'simd');
  for (const b of ['relaxed', 'simd', 'scalar']) assert.equal(singleThreadedBuild(b), b);
});

test('the precache list keeps the builds this browser picks and every other file', () => {
  const entry = (url) => ({ url, revision: 'r', integrity: 'sha256-x' });
  const manifest = [
    entry('index.html'), entry('cairn/worker.js'), entry('cairn/pool-worker.js'), entry('cairn/cairn_web_text.wasm'),
    entry('cairn/cairn_web_simd.wasm'), entry('cairn/cairn_web_relaxed.wasm'), entry('cairn/cairn_web_scalar.wasm'),
    entry('cairn/cairn_web_threads.wasm'), entry('cairn/cairn_web_threads-relaxed.wasm'),
  ];
  const urls = (builds) => withoutUnusedBuilds(manifest, builds).map((e) => e.url);
  const others = ['index.html', 'cairn/worker.js', 'cairn/pool-worker.js', 'cairn/cairn_web_text.wasm'];
  assert.deepEqual(urls(['relaxed', 'threads-relaxed']), [...others, 'cairn/cairn_web_relaxed.wasm', 'cairn/cairn_web_threads-relaxed.wasm']);
  assert.deepEqual(urls(['simd', 'threads']), [...others, 'cairn/cairn_web_simd.wasm', 'cairn/cairn_web_threads.wasm']);
  assert.deepEqual(urls(['scalar']), [...others, 'cairn/cairn_web_scalar.wasm']);
  // Names a bundler gave the assets (Vite: `<name>-<hash>.wasm`).
  const hashed = ['assets/cairn_web_simd-DpG3q7S8.wasm', 'assets/cairn_web_relaxed-Dpvo_B-F.wasm', 'assets/cairn_web_threads-relaxed-x1.wasm', 'assets/cairn_web_threads-AbC.wasm', 'assets/index-O2.js'];
  assert.deepEqual(withoutUnusedBuilds(hashed, ['relaxed', 'threads-relaxed']), ['assets/cairn_web_relaxed-Dpvo_B-F.wasm', 'assets/cairn_web_threads-relaxed-x1.wasm', 'assets/index-O2.js']);
  assert.deepEqual(withoutUnusedBuilds(hashed, ['simd', 'threads']), ['assets/cairn_web_simd-DpG3q7S8.wasm', 'assets/cairn_web_threads-AbC.wasm', 'assets/index-O2.js']);
  // Plain URLs (precacheAndRoute takes them too), with a query string.
  assert.deepEqual(withoutUnusedBuilds(['/a.js', '/cairn_web_scalar.wasm?v=2', '/cairn_web_simd.wasm'], ['simd']), ['/a.js', '/cairn_web_simd.wasm']);
  // This engine's own choice: its single-threaded build, and its threaded twin where threads can run.
  const single = pickBackend();
  assert.deepEqual(buildsForThisBrowser(), [single, threadedBuild(single)]);
  assert.deepEqual(buildsForThisBrowser({ crossOriginIsolated: false }), [single]);
});
