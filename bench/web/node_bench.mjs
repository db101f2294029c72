// Node side of the web benchmark: each engine runs in its own Node process (so peak
// RSS is its own), on the same model file and input; the parent prints the table.
//
//   node bench/web/node_bench.mjs [--model target/models/mobilenetv2.onnx] [--runs 30]
//     [--engines cairn,cairn-threads,ort-web,tfjs-wasm] [--threads 2] [--ort-model FILE] [--out NAME]
//     [--rounds R]
// With --rounds R the engines take turns R times, each turn a fresh process with runs/R
// timed runs, and the timings are pooled (report.mjs mergeRounds).
// Cairn runs its relaxed-SIMD build if this Node validates it (Node 20 does not without
// --experimental-wasm-relaxed-simd), else the SIMD one; CAIRN_WASM=simd|relaxed forces one.
import { spawnSync } from 'node:child_process';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { ENGINES, inputFor, measure } from './engines.mjs';
import { report, mergeRounds } from './report.mjs';

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
const rounds = Math.max(1, Number(arg('rounds', 1)));

async function child(name) {
  const env = {
    cairnBuild: process.env.CAIRN_WASM,
    threads,
    readBytes: async (p) => new Uint8Array(await readFile(p)),
    paths: {
      model,
      ortModel: ortModel && path.resolve(ortModel),
      cairnJsOf: (build) => pathToFileURL(path.join(root, `target/web-pkg/${build}/cairn_web.js`)).href,
      cairnWasmOf: (build) => path.join(root, `target/web-pkg/${build}/cairn_web_bg.wasm`),
      tfjsWasmDir: path.join(here, 'node_modules/@tensorflow/tfjs-backend-wasm/dist') + '/',
    },
  };
  const result = { engine: name };
  if (name !== 'baseline') {
    const engine = await ENGINES[name](env);
    const t0 = performance.now();
    await engine.load();
    result.load_ms = performance.now() - t0;
    const m = await measure(engine, inputFor(model), { runs, now: () => performance.now() });
    Object.assign(result, { median_ms: m.median_ms, min_ms: m.min_ms, times: m.times, runs: m.runs, output: Array.from(m.output), describe: engine.describe(), engine_memory_bytes: engine.memoryBytes() });
  }
  result.max_rss_bytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify(result));
}

async function parent() {
  const perRound = Math.ceil(runs / rounds);
  const all = [];
  for (let round = 0; round < rounds; round++) {
    const results = [];
    for (const name of ['baseline', ...engines]) {
      const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', name, '--model', model, '--runs', String(perRound), '--threads', String(threads), ...(ortModel ? ['--ort-model', ortModel] : [])], { encoding: 'utf8', maxBuffer: 1 << 26 });
      if (r.status !== 0) {
        console.error(`${name} failed:\n${r.stderr}`);
        process.exit(1);
      }
      results.push(JSON.parse(r.stdout));
    }
    all.push(results);
  }
  const results = mergeRounds(all);
  const text = report('Node ' + process.version, model, results, { sameFile: !ortModel });
  console.log(text.table);
  await mkdir(path.join(root, 'target/bench'), { recursive: true });
  await writeFile(path.join(root, `target/bench/${arg('out', 'web-node')}.json`), JSON.stringify(text.json, null, 2));
}

const childIdx = process.argv.indexOf('--child');
if (childIdx >= 0) await child(process.argv[childIdx + 1]);
else await parent();
