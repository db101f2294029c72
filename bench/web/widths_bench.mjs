// Run-time widths in wasm (issue 17, must-show 2's latency column): loads a bundle packed from a
// model with widths (`cairn optimize --widths ...`, then `cairn pack`) the way the browser
// worker does (BundleLoad: manifest, shards verified in Rust, finish), then times one run of
// every width in turn, round after round (widths interleaved, so a change in the machine's
// speed falls on all of them), on a real input. Node, 1 thread, Cairn's relaxed build where
// this Node validates relaxed SIMD (else simd128).
//
//   node --experimental-wasm-relaxed-simd bench/web/widths_bench.mjs BUNDLE_DIR INPUT.npy [--runs 15] [--json OUT]
//
// Needs target/web-pkg/{relaxed,simd} (bench/web/build_wasm.sh). Accuracy per width is
// `cairn eval ORIGINAL WITH_WIDTHS --inputs DIR --widths` (native: the same arithmetic).

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { pickBackend } from '../../web/src/backend.js';
import { readNpy } from '../../web/test/npy.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const flag = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : fallback; };
const runs = Number(flag('--runs', 15));
const jsonOut = flag('--json', null);
const [bundleDir, inputFile] = args;
if (!bundleDir || !inputFile) {
  console.error('usage: widths_bench.mjs BUNDLE_DIR INPUT.npy [--runs 15] [--json OUT]');
  process.exit(2);
}

const build = pickBackend('auto');
const pkg = await import(pathToFileURL(path.join(root, `target/web-pkg/${build}/cairn_web.js`)).href);
const { memory } = await pkg.default({ module_or_path: fs.readFileSync(path.join(root, `target/web-pkg/${build}/cairn_web_bg.wasm`)) });

// The worker's load loop, with files instead of fetches: every shard staged into wasm memory
// and accepted (sha256-verified) in Rust.
const load = new pkg.BundleLoad(fs.readFileSync(path.join(bundleDir, 'manifest.json')));
const manifest = JSON.parse(load.manifestJson());
for (const index of load.missing()) {
  const bytes = fs.readFileSync(path.join(bundleDir, manifest.shards[index].path));
  const ptr = load.stagingBuffer(bytes.length);
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  load.acceptStaged(index, bytes.length);
}
const model = load.finish();
load.free();
// (The fractions come back as f32: 0.9 is 0.8999999761581421; runOutputAt takes them as they are.)
const widths = [1, ...model.widthFractions()];
const label = (w) => String(Math.round(w * 1000) / 1000);
if (widths.length === 1) throw new Error(`${bundleDir} has no run-time widths (cairn optimize --widths ..., then cairn pack)`);

const { data, shape } = readNpy(inputFile);
const inputName = manifest.inputs[0].name;
const runAt = (width) => {
  const t = performance.now();
  const out = model.runOutputAt(inputName, data, Uint32Array.from(shape), width);
  const ms = performance.now() - t;
  const ran = out.width;
  out.free();
  return { ms, ran };
};
// Warm-up: each width is cut and prepared on its first run (kept afterwards).
for (const w of widths) runAt(w);
const times = new Map(widths.map((w) => [w, []]));
for (let r = 0; r < runs; r++) for (const w of widths) times.get(w).push(runAt(w).ms);

const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[s.length >> 1]; };
const full = median(times.get(1));
const rows = widths.map((w) => {
  const v = times.get(w);
  return { width: Number(label(w)), median_ms: median(v), min_ms: Math.min(...v), of_full: median(v) / full };
});
console.log(`${manifest.name}: wasm ${build} build, Node ${process.version}, 1 thread, ${runs} rounds (widths interleaved), input ${path.basename(inputFile)}`);
console.log('width   median ms   min ms   of full (median)');
for (const r of rows) console.log(`${label(r.width).padEnd(6)} ${r.median_ms.toFixed(2).padStart(10)} ${r.min_ms.toFixed(2).padStart(8)} ${(100 * r.of_full).toFixed(1).padStart(9)}%`);
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ build, node: process.version, runs, rows }, null, 2));
