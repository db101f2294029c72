// Per-operator profile of one of Cairn's wasm builds in Node (issue 16; docs/adr/0019):
// every step of every run timed with performance.now around the op (Model.profileTensors),
// for the threaded builds on 1 thread (no pool) or N (pool of N-1 workers plus the caller).
// Prints, per op type, the median over runs of its summed time per run; and the time of a
// run outside the ops (input copy-in, planning lookup, output copy-out).
//
//   node [--experimental-wasm-relaxed-simd] bench/web/profile_ops.mjs --model M.onnx
//     [--build threads-relaxed] [--threads 2] [--runs 50] [--json out.json]
// A model whose first input is int64 (a text encoder, e.g. target/text-model/minilm_l6.onnx)
// gets the text benchmark's 128-token batch of one (text_harness.mjs's `inputs`).
import { readFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startThreadPool, spawnNodeWorker } from '../../web/src/thread-pool.js';
import { makeInput, INPUT_SHAPE_NCHW } from './engines.mjs';
import { inputs as textInputs, packTensors, SEQ } from './text_harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const build = arg('build', 'threads-relaxed');
const threads = Number(arg('threads', 2));
const runs = Number(arg('runs', 50));
const modelPath = path.resolve(arg('model', path.join(root, 'target/models/mobilenetv2.onnx')));
const pkgUrl = pathToFileURL(path.join(root, `target/web-pkg/${build}/cairn_web.js`)).href;
const pkg = await import(pkgUrl);
await pkg.default({ module_or_path: await readFile(path.join(root, `target/web-pkg/${build}/cairn_web_bg.wasm`)) });
if (threads > 1) await startThreadPool(pkg, pkgUrl, threads, spawnNodeWorker);
const model = new pkg.Model(new Uint8Array(await readFile(modelPath)));
const isText = model.inputNames().includes('input_ids');
const feeds = isText ? Object.entries(textInputs(1)).filter(([n]) => model.inputNames().includes(n)) : [[model.inputNames()[0], makeInput()]];
const { spec, buffer: bytes } = packTensors(feeds.map(([name, data]) => ({ name, dtype: isText ? 'i64' : 'f32', shape: isText ? [1, SEQ] : INPUT_SHAPE_NCHW, data })));

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const perRun = []; // [{ wall, steps: [[node, op, ms]] }]
pkg.poolCounters?.(); // from here on: the runs' jobs only (loading may split work too)
for (let r = 0; r < runs + 5; r++) {
  const t0 = performance.now();
  const steps = JSON.parse(model.profileTensors(spec, bytes));
  const wall = performance.now() - t0;
  if (r >= 5) perRun.push({ wall, steps });
}
const counters = pkg.poolCounters ? Array.from(pkg.poolCounters(), (c) => c / (runs + 5)) : null; // per run, warm-up included
const byOp = new Map();
const byNode = new Map();
for (const { steps } of perRun) {
  const sums = new Map();
  for (const [node, op, ms] of steps) {
    sums.set(op, (sums.get(op) ?? 0) + ms);
    if (!byNode.has(node)) byNode.set(node, { op, ms: [] });
    byNode.get(node).ms.push(ms);
  }
  for (const [op, ms] of sums) {
    if (!byOp.has(op)) byOp.set(op, []);
    byOp.get(op).push(ms);
  }
}
const wall = median(perRun.map((r) => r.wall));
const inOps = median(perRun.map((r) => r.steps.reduce((s, [, , ms]) => s + ms, 0)));
const result = {
  build: `${build} (${pkg.kernelIsa()}, ${pkg.kernelThreads()} threads)`,
  model: path.basename(modelPath),
  runs,
  wall_ms: wall,
  pool_per_run: counters && Object.fromEntries(['jobs', 'caller_tasks', 'worker_tasks', 'worker_parks', 'caller_parks'].map((k, i) => [k, counters[i]])),
  in_ops_ms: inOps,
  by_op: Object.fromEntries([...byOp].map(([op, v]) => [op, median(v)])),
  by_node: Object.fromEntries([...byNode].map(([node, { op, ms }]) => [node, { op, ms: median(ms) }])),
};
console.log(`${result.build}, ${result.model}, median of ${runs} runs: wall ${wall.toFixed(2)} ms, in ops ${inOps.toFixed(2)} ms, outside ${(wall - inOps).toFixed(2)} ms`);
if (counters) console.log(`pool per run: ${Object.entries(result.pool_per_run).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
for (const [op, ms] of Object.entries(result.by_op).sort((a, b) => b[1] - a[1])) console.log(`${ms.toFixed(3).padStart(9)} ms  ${op}`);
const out = arg('json', null);
// Synchronously: with the pool's workers alive, the promise form had written an empty file
// by the time the process exits.
if (out) writeFileSync(out, JSON.stringify(result, null, 1));
process.exit(0);
