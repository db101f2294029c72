// MiniLM-class text encoder in wasm, Node, 1 thread: Cairn vs onnxruntime-web (same ONNX
// file, same dtype, int64 inputs of 128 tokens; batch 1 and 8), and end to end (text ->
// normalized embedding, tokenization included) vs Transformers.js running onnxruntime-web's
// wasm backend on the same files, local only. The measurements are text_harness.mjs's (the
// same code runs in headless Chromium: text_browser_bench.mjs).
//
//   node --experimental-wasm-relaxed-simd bench/web/text_bench.mjs [--runs N] [--int8 FILE]
//     [--encoder-only | --e2e-only] [--no-transformers] [--out target/bench/text-node.json]
//
// Cairn runs the build the runtime picks when asked for relaxed SIMD (web/src/backend.js's
// probe): the relaxed-SIMD build (fused multiply-add) where this Node validates it, else the
// simd128 one; CAIRN_WASM=simd (or relaxed, scalar) forces one. Node >= 22 validates relaxed
// SIMD by default; Node 20 only with --experimental-wasm-relaxed-simd (without it the simd128
// build runs, and the first line printed says so). onnxruntime-web and Transformers.js run in
// this same process, so they get the same flag.
//
// Needs target/web-pkg/{relaxed,simd,text} (bench/web/build_wasm.sh relaxed simd text),
// target/text-model/minilm_l6.onnx (tools/convert_minilm.py), target/text-model/minilm_l6_int8.onnx
// and the two bundles target/text-model/bundle_{f32,int8} (scripts/test-extra.sh's text step
// makes them), and `npm ci --ignore-scripts` in bench/web.

import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { runTextBench } from './text_harness.mjs';
import { root, options, transformersModelDir, finish } from './text_setup.mjs';

const require = createRequire(import.meta.url);
const opts = options('target/bench/text-node.json');

const host = {
  where: `Node ${process.version}`,
  moduleUrl: (p) => pathToFileURL(path.resolve(root, p)).href,
  readBytes: (p) => fs.readFile(path.resolve(root, p)),
  async ortWeb() {
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.simd = true;
    return ort;
  },
  async transformers() {
    // In Node, Transformers.js runs onnxruntime-node unless an onnxruntime is injected through
    // globalThis[Symbol.for('onnxruntime')]: give it its own onnxruntime-web, so it runs the
    // wasm backend it runs in browsers (1 thread, wasm files from node_modules, no CDN).
    const fromTjs = createRequire(require.resolve('@huggingface/transformers'));
    const ortWebPath = fromTjs.resolve('onnxruntime-web');
    const ort = await import(pathToFileURL(ortWebPath).href);
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = pathToFileURL(path.dirname(ortWebPath) + '/').href;
    globalThis[Symbol.for('onnxruntime')] = ort;
    const tjs = await import('@huggingface/transformers');
    tjs.env.allowRemoteModels = false;
    tjs.env.allowLocalModels = true;
    tjs.env.localModelPath = transformersModelDir(opts.files) + '/';
    // (With an injected onnxruntime it lists no devices: 'auto' gives it no EP list, so
    // onnxruntime-web's default, wasm.)
    return { tjs, device: 'auto', describe: `Transformers.js ${tjs.env.version} on onnxruntime-web ${ort.env.versions?.web} (${path.basename(ortWebPath)}, wasm, 1 thread)` };
  },
  log: (line) => console.log(line),
};

runTextBench(host, opts).then((results) => finish(results, opts.out)).catch((e) => { console.error(e); process.exit(1); });
