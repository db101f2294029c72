// Shared by the PWA tests: builds the demo app with `cairn app build` around a bundle,
// and waits for what the app reports in `window.cairnApp.events`.
//
// Needs target/release/cairn and @cairn-ml/web installed in web/node_modules (scripts/build-npm.sh).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cairnBin = path.join(root, 'target/release/cairn');
export const cairn = (...args) => execFileSync(cairnBin, args, { encoding: 'utf8' });

/**
 * The demo's model as scripts/run.sh makes it: the real pretrained EfficientNet-Lite0,
 * int8-quantized by `cairn optimize`, packed progressive into `dir`.
 */
/**
 * The demo's address: `/`, or `/?backend=X` when the suite runs on one engine build
 * (CAIRN_TEST_BACKEND, as for the runtime tests: scripts/test-extra.sh's `builds`), which the
 * app passes to Cairn.start (web/app/app.js).
 */
export const appPath = process.env.CAIRN_TEST_BACKEND ? `/?backend=${encodeURIComponent(process.env.CAIRN_TEST_BACKEND)}` : '/';

/** The engine build a test page (the demo, or the runtime tests' fixture) should report: the forced one, else what 'auto' picks in headless Chromium. */
export const expectedBackend = process.env.CAIRN_TEST_BACKEND ?? (process.env.CAIRN_TEST_ISOLATED ? 'threads-relaxed' : 'relaxed');

export function packEfficientNet(dir) {
  const onnx = path.join(root, 'target/models/efficientnet_lite0.onnx');
  if (!fs.existsSync(onnx)) throw new Error(`${onnx} is missing: run python3 tools/convert_efficientnet_lite0.py ${onnx} --labels target/models/imagenet_labels.txt`);
  const calibration = path.join(root, 'target/calib-inputs');
  if (!fs.existsSync(calibration)) execFileSync('python3', [path.join(root, 'tools/make_calibration_inputs.py'), calibration], { stdio: 'inherit' });
  const int8 = path.join(path.dirname(dir), 'efficientnet_lite0_int8.onnx');
  cairn('optimize', onnx, '-o', int8, '--quantize', 'int8', '--calibrate', calibration);
  // Packed progressive (the default for int8: high nibbles first), each level's fidelity
  // measured on real photos disjoint from the calibration set.
  const photos = path.join(root, 'target/real-inputs');
  if (!fs.existsSync(photos)) execFileSync('python3', [path.join(root, 'tools/make_image_inputs.py'), photos, '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5'], { stdio: 'inherit' });
  cairn('pack', int8, '-o', dir, '--name', 'efficientnet_lite0', '--image-size', '224', '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5', '--labels', path.join(root, 'target/models/imagenet_labels.txt'), '--fidelity-inputs', photos);
  return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
}

/** The full-precision EfficientNet-Lite0, packed into `dir` for the edge server. */
export function packEfficientNetForEdge(dir) {
  const onnx = path.join(root, 'target/models/efficientnet_lite0.onnx');
  cairn('pack', onnx, '-o', dir, '--name', 'efficientnet_lite0_f32', '--image-size', '224', '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5', '--labels', path.join(root, 'target/models/imagenet_labels.txt'));
  return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
}

/** `cairn app build`; returns its JSON summary. */
export function buildApp(model, out, { app = path.join(root, 'web/app'), edgeModel, edgeApiKey } = {}) {
  const edge = [...(edgeModel ? ['--edge-model', edgeModel] : []), ...(edgeApiKey ? ['--edge-api-key', edgeApiKey] : [])];
  // The app consumes @cairn-ml/web installed from its packed tarball (scripts/build-npm.sh).
  return JSON.parse(cairn('app', 'build', '--model', model, ...edge, '-o', out, '--app', app, '--package', path.join(root, 'web/node_modules/@cairn-ml/web'), '--json'));
}

/** Resolves with the first app event of `type` after index `from` (events are never removed). */
export async function appEvent(page, type, { from = 0, timeout = 120_000 } = {}) {
  const handle = await page.waitForFunction(({ type, from }) => {
    const events = window.cairnApp?.events ?? [];
    const i = events.findIndex((e, k) => k >= from && (e.type === type || e.type === 'load-error' || e.type === 'start-error'));
    return i >= 0 ? { ...events[i], index: i } : null;
  }, { type, from }, { timeout, polling: 100 });
  const event = await handle.jsonValue();
  if (event.type !== type) throw new Error(`waiting for '${type}', the app reported ${event.type}: ${event.message}`);
  return event;
}

export const eventCount = (page) => page.evaluate(() => window.cairnApp?.events.length ?? 0);

/** The URLs held in a Cache Storage cache, seen from the page. */
export const cacheUrls = (page, name) => page.evaluate(async (name) => (await (await caches.open(name)).keys()).map((r) => r.url), name);

/** A real photo shipped with scikit-image (a tabby cat). */
export function photo(name = 'chelsea.png') {
  const dir = execFileSync('python3', ['-c', 'import skimage; print(skimage.data.data_dir)'], { encoding: 'utf8' }).trim();
  return path.join(dir, name);
}
