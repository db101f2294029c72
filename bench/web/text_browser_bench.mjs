// The text benchmark of text_bench.mjs in headless Chromium: the same measurements
// (text_harness.mjs) in one page served on http://127.0.0.1, cross-origin isolated, a fresh
// profile (chromium.mjs). Cairn runs the build the runtime picks when asked for relaxed SIMD
// (relaxed where Chromium validates it; CAIRN_WASM=simd forces simd128); onnxruntime-web 1.22.0
// 1 thread on the same ONNX files; Transformers.js (browser build, local files only, its own
// onnxruntime-web's wasm backend from node_modules, 1 thread) end to end.
//
//   node bench/web/text_browser_bench.mjs [--runs N] [--int8 FILE] [--encoder-only | --e2e-only]
//     [--no-transformers] [--out target/bench/text-chromium.json]
// (--int8 FILE: inside the repository, e.g. under target/: the page reads files from the server.)
//
// Needs what text_bench.mjs needs (target/web-pkg/{relaxed,simd,text}, target/text-model,
// `npm ci --ignore-scripts` in bench/web) and Chromium (/usr/bin/chromium, or CHROMIUM=PATH).
import { startChromium, urlOf } from './chromium.mjs';
import { options, transformersModelDir, finish } from './text_setup.mjs';

const opts = options('target/bench/text-chromium.json');
// The page reads every file from the server, which serves only the repository.
for (const f of [...Object.values(opts.files), ...Object.values(opts.bundles)]) {
  if (urlOf(f).startsWith('/..')) {
    console.error(`${f} is outside the repository, which is all the page's server serves; copy it under target/`);
    process.exit(2);
  }
}
const models = opts.endToEnd && opts.transformers ? transformersModelDir(opts.files) : null;
const chromium = await startChromium();
try {
  const page = await chromium.browser.newPage();
  // Local files only: any request off the loopback server is refused and named (none is expected).
  const remote = [];
  await page.route((url) => url.origin !== chromium.origin, (route) => { remote.push(route.request().url()); return route.abort(); });
  page.on('response', (r) => r.status() >= 400 && console.error(`HTTP ${r.status()} ${r.url()}`));
  page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
  page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning' ? console.error : console.log)(m.text()));
  await page.goto(`${chromium.origin}/bench/web/text_bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  const map = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, urlOf(v)]));
  const results = await page.evaluate((o) => window.runTextBench(o), {
    ...opts, files: map(opts.files), bundles: map(opts.bundles), transformersModels: models && `${urlOf(models)}/`, where: `headless Chromium ${chromium.version}`,
  });
  results.remoteRequests = remote;
  if (remote.length) console.error(`refused requests off 127.0.0.1: ${remote.join(', ')}`);
  finish(results, opts.out);
} finally {
  await chromium.close();
}
