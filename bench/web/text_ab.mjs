// Two Cairn wasm builds on the MiniLM encoder, in one Node process, runs alternating A, B, A, B
// (as text_bench.mjs alternates Cairn and onnxruntime-web): the before/after of a kernel change
// under the same load. Same models, inputs and timing as text_harness.mjs (1 thread, 128 tokens).
//
//   node --experimental-wasm-relaxed-simd bench/web/text_ab.mjs --a BUILD_A --b BUILD_B [--runs N]
//     [--dtype f32|int8] [--batch 1|8]
//
// BUILD_A and BUILD_B are directories under target/web-pkg (e.g. a copy of an earlier
// `bench/web/build_wasm.sh relaxed` output as target/web-pkg/base, and relaxed).
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cairnEncoder, inputs, timeBoth } from './text_harness.mjs';
import { root } from './text_setup.mjs';

const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : fallback; };
const [a, b] = [arg('--a'), arg('--b')];
if (!a || !b) {
  console.error('usage: text_ab.mjs --a BUILD_A --b BUILD_B [--runs N] [--dtype f32|int8] [--batch 1|8] (builds: directories under target/web-pkg)');
  process.exit(2);
}
const runs = Number(arg('--runs', 15));
const dtypes = arg('--dtype') ? [arg('--dtype')] : ['f32', 'int8'];
const batches = arg('--batch') ? [Number(arg('--batch'))] : [1, 8];
const files = { f32: 'target/text-model/minilm_l6.onnx', int8: 'target/text-model/minilm_l6_int8.onnx' };

async function load(build) {
  const dir = path.join(root, 'target/web-pkg', build);
  const pkg = await import(pathToFileURL(path.join(dir, 'cairn_web.js')).href).catch((e) => {
    throw new Error(`target/web-pkg/${build} could not be loaded (a bench/web/build_wasm.sh output directory): ${e.message}`);
  });
  await pkg.default({ module_or_path: await fs.readFile(path.join(dir, 'cairn_web_bg.wasm')) });
  return pkg;
}

const [pa, pb] = [await load(a), await load(b)];
console.log(`Node ${process.version}; A = target/web-pkg/${a} (${pa.kernelIsa()}), B = target/web-pkg/${b} (${pb.kernelIsa()}); ${runs} runs each after 3 warm-up, alternating; median / min ms\n`);
console.log('| dtype | batch | A | B | B / A, median (min) | max abs diff A vs B |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const dtype of dtypes) {
  const bytes = await fs.readFile(path.join(root, files[dtype]));
  const [ea, eb] = [cairnEncoder(pa, bytes), cairnEncoder(pb, bytes)];
  for (const batch of batches) {
    const feeds = inputs(batch);
    const [ya, yb] = [ea.run(feeds, batch), eb.run(feeds, batch)];
    const diff = ya.reduce((m, x, i) => Math.max(m, Math.abs(x - yb[i])), 0);
    const [ta, tb] = await timeBoth(() => ea.run(feeds, batch), () => eb.run(feeds, batch), runs);
    const f = (t) => `${t.median.toFixed(2)} / ${t.min.toFixed(2)}`;
    console.log(`| ${dtype} | ${batch} | ${f(ta)} | ${f(tb)} | **${(tb.median / ta.median).toFixed(3)}** (${(tb.min / ta.min).toFixed(3)}) | ${diff.toExponential(1)} |`);
  }
  ea.free();
  eb.free();
}
