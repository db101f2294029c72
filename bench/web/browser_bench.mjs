// Headless Chromium side of the web benchmark: serves the repository over HTTP on
// loopback (cross-origin isolated, as a PWA would be), opens one fresh page per
// engine and runs the same harness as Node.
//
//   node bench/web/browser_bench.mjs [--model target/models/mobilenetv2.onnx] [--runs 30]
//     [--engines cairn,cairn-threads,ort-web,tfjs-wasm] [--threads 2] [--ort-model FILE] [--out NAME]
//     [--rounds R]
// With --rounds R the engines take turns R times, each turn a fresh page with runs/R timed
// runs, and the timings are pooled (report.mjs mergeRounds).
// Cairn runs its relaxed-SIMD build where Chromium validates it; CAIRN_WASM=simd forces
// the plain SIMD one.
// (The server and the browser launch are chromium.mjs's, shared with text_browser_bench.mjs.)
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { report, mergeRounds } from './report.mjs';
import { root, startChromium, urlOf } from './chromium.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const model = path.resolve(arg('model', path.join(root, 'target/models/mobilenetv2.onnx')));
const runs = Number(arg('runs', 30));
const engines = arg('engines', 'cairn,ort-web,tfjs-wasm').split(',');
const threads = Number(arg('threads', 1));
const ortModel = arg('ort-model', null);
const rounds = Math.max(1, Number(arg('rounds', 1)));

const chromium = await startChromium();
const { browser, origin, version } = chromium;
const all = [];
try {
  for (let round = 0; round < rounds; round++) {
    const results = [];
    for (const name of engines) {
      const page = await browser.newPage();
      page.on('pageerror', (e) => console.error(`[${name}] ${e.message}`));
      await page.goto(`${origin}/bench/web/bench.html${process.env.CAIRN_WASM ? `?cairn=${process.env.CAIRN_WASM}` : ''}`);
      await page.waitForFunction(() => window.benchReady === true);
      const options = { threads, ortModel: ortModel && urlOf(ortModel) };
      results.push(await page.evaluate(([n, r, m, o]) => window.runBenchmark(n, r, m, o), [name, Math.ceil(runs / rounds), urlOf(model), options]));
      await page.close();
    }
    all.push(results);
  }
} finally {
  await chromium.close();
}
const results = mergeRounds(all);
const out = report(`headless Chromium ${version}`, model, results, { sameFile: !ortModel });
console.log(out.table);
await mkdir(path.join(root, 'target/bench'), { recursive: true });
await writeFile(path.join(root, `target/bench/${arg('out', 'web-chromium')}.json`), JSON.stringify(out.json, null, 2));
