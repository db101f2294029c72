// Headless Chromium side of the web benchmark: serves the repository over HTTP on
// loopback (cross-origin isolated, as a PWA would be), opens one fresh page per
// engine and runs the same harness as Node.
//
//   node bench/web/browser_bench.mjs [--model target/models/mobilenetv2.onnx] [--runs 30]
//     [--engines cairn,cairn-threads,ort-web,tfjs-wasm] [--threads 2] [--ort-model FILE] [--out NAME]
// Cairn runs its relaxed-SIMD build where Chromium validates it; CAIRN_WASM=simd forces
// the plain SIMD one.
import http from 'node:http';
import { readFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { report } from './report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const model = path.resolve(arg('model', path.join(root, 'target/models/mobilenetv2.onnx')));
const runs = Number(arg('runs', 30));
const engines = arg('engines', 'cairn,ort-web,tfjs-wasm').split(',');
const threads = Number(arg('threads', 1));
const ortModel = arg('ort-model', null);
const urlOf = (file) => '/' + path.relative(root, path.resolve(file)).split(path.sep).join('/');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.json': 'application/json' };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const file = path.join(root, path.normalize(decodeURIComponent(url.pathname)));
  if (!file.startsWith(root + path.sep)) return res.writeHead(403).end();
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launchPersistentContext(await mkdtemp(path.join(tmpdir(), 'cairn-chromium-')), {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-precise-memory-info', ...(process.env.CHROMIUM_FLAGS ? process.env.CHROMIUM_FLAGS.split(' ') : [])],
});
const results = [];
const version = browser.browser()?.version() ?? 'Chromium';
try {
  for (const name of engines) {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`[${name}] ${e.message}`));
    await page.goto(`${origin}/bench/web/bench.html${process.env.CAIRN_WASM ? `?cairn=${process.env.CAIRN_WASM}` : ''}`);
    await page.waitForFunction(() => window.benchReady === true);
    const options = { threads, ortModel: ortModel && urlOf(ortModel) };
    results.push(await page.evaluate(([n, r, m, o]) => window.runBenchmark(n, r, m, o), [name, runs, urlOf(model), options]));
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
const out = report(`headless Chromium ${version}`, model, results, { sameFile: !ortModel });
console.log(out.table);
await mkdir(path.join(root, 'target/bench'), { recursive: true });
await writeFile(path.join(root, `target/bench/${arg('out', 'web-chromium')}.json`), JSON.stringify(out.json, null, 2));
