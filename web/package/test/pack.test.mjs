// The packed @cairn-ml/web tarball (web/package/build.mjs): exactly the files it should hold,
// sizes within bounds, an exports map whose targets exist, a worker whose wasm builds are
// bundler-visible assets, service-worker modules that import only Workbox and each other,
// and declarations that type-check a typed consumer (tsc --noEmit).
//
//   node web/package/build.mjs && node --test web/package/test/*.test.mjs

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const version = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8').match(/\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/)[1];
const tarball = path.join(root, `target/npm/cairn-ml-web-${version}.tgz`);
const BUILDS = ['simd', 'relaxed', 'scalar', 'threads', 'threads-relaxed'];
// The WebGPU build (docs/adr/0022): the simd engine plus GpuModel, with its own glue file.
const GPU = 'webgpu';
const EXPECTED = [
  'package/README.md', 'package/package.json', 'package/bin/cairn-web-sw.mjs',
  'package/dist/cairn.js', 'package/dist/width-policy.js', 'package/dist/tensors.js', 'package/dist/latency.js', 'package/dist/texts.js', 'package/dist/cairn.d.ts', 'package/dist/worker.js', 'package/dist/pool-worker.js', 'package/dist/sw.d.ts', 'package/dist/build-sw.d.ts',
  ...BUILDS.map((b) => `package/dist/cairn_web_${b}.wasm`),
  'package/dist/cairn_web_webgpu.wasm', 'package/dist/cairn_web_webgpu.js',
  // The threaded builds' own glue (shared memory imported), which dist/pool-worker.js imports too.
  'package/dist/cairn_web_threads.js',
  'package/dist/cairn_web_text.wasm',
  ...fs.readdirSync(path.join(root, 'web/sw')).filter((f) => f.endsWith('.js')).map((f) => `package/dist/sw/${f}`),
  // web/src/backend.js, beside web/sw/builds.js which picks builds as the worker does.
  'package/dist/sw/backend.js',
].sort();
// Bounds: each engine build is ~1.0 MiB gzipped (3.4 MiB raw on 2026-12-05, grown with the
// operators of issue 13); the tokenizer module (fetched only for text bundles, docs/adr/0026)
// ~0.9 MiB gzipped; five builds in all. 5,111 KiB with the WebGPU build on 2026-12-06; the two
// threaded builds (docs/adr/0019, 0034) add ~2.5 MiB (7,697 KiB in all that day), so the bound
// is 8.25 MiB: room for the engine's growth by operators (each one lands in seven builds), not
// for another build. (On 2026-12-04 every engine build also linked the tokenizers crate:
// +2.7 MB raw each.) An image app's first prediction loads one engine build and no tokenizer.
const MAX_TARBALL = 8.25 * 1024 * 1024;
const MAX_ENGINE_GZIP = 1.25 * 1024 * 1024;
// The WebGPU build is the simd engine plus wgpu's calls into the browser's WebGPU: +90 KiB
// gzipped on 2026-12-06 (1,119 vs 1,029 KiB); fetched only where an adapter exists.
const MAX_GPU_EXTRA_GZIP = 128 * 1024;
// (dist/worker.js, the largest, holds the engine's and the tokenizer module's wasm-bindgen glue: ~80 KiB.)
const MAX_TEXT_FILE = 96 * 1024;

let unpacked;
before(() => {
  assert.ok(fs.existsSync(tarball), `${tarball} is missing: run node web/package/build.mjs`);
  unpacked = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-npm-pack-'));
  execFileSync('tar', ['-xzf', tarball, '-C', unpacked]);
});

const read = (rel) => fs.readFileSync(path.join(unpacked, 'package', rel), 'utf8');

test('the tarball holds exactly the package files, within size bounds', () => {
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(files, EXPECTED, 'no stray files, none missing');
  const size = fs.statSync(tarball).size;
  assert.ok(size < MAX_TARBALL, `tarball ${size} bytes >= ${MAX_TARBALL}`);
  for (const f of files.filter((f) => !f.endsWith('.wasm'))) {
    const bytes = fs.statSync(path.join(unpacked, f)).size;
    assert.ok(bytes < MAX_TEXT_FILE, `${f}: ${bytes} bytes`);
  }
  for (const b of [...BUILDS, GPU, 'text']) {
    const wasm = fs.readFileSync(path.join(unpacked, `package/dist/cairn_web_${b}.wasm`));
    assert.deepEqual([...wasm.subarray(0, 4)], [0, 0x61, 0x73, 0x6d], `${b}: a wasm module`);
    assert.ok(wasm.length > 100_000, `${b}: the engine, not a placeholder (${wasm.length} bytes)`);
    const built = path.join(root, b === 'text' ? 'target/web-pkg/text/cairn_web_text_bg.wasm' : `target/web-pkg/${b}/cairn_web_bg.wasm`);
    if (fs.existsSync(built)) assert.ok(wasm.equals(fs.readFileSync(built)), `${b}: the build in target/web-pkg`);
    const gzip = zlib.gzipSync(wasm, { level: 9 }).length;
    console.log(`cairn_web_${b}.wasm: ${(wasm.length / 1024).toFixed(0)} KiB raw, ${(gzip / 1024).toFixed(0)} KiB gzip`);
    if (BUILDS.includes(b)) assert.ok(gzip < MAX_ENGINE_GZIP, `${b}: ${gzip} bytes gzipped; the engine alone (no tokenizer) should stay under ${MAX_ENGINE_GZIP}`);
    if (b === GPU) assert.ok(gzip < MAX_ENGINE_GZIP + MAX_GPU_EXTRA_GZIP, `${b}: ${gzip} bytes gzipped; the simd engine plus wgpu's WebGPU calls should stay under ${MAX_ENGINE_GZIP + MAX_GPU_EXTRA_GZIP}`);
  }
  console.log(`tarball ${(size / 1024).toFixed(1)} KiB, ${files.length} files`);
});

test('package.json: name, the Rust crates\' version, ES modules, an exports map whose targets exist', () => {
  const pkg = JSON.parse(read('package.json'));
  assert.equal(pkg.name, '@cairn-ml/web');
  assert.equal(pkg.version, version);
  assert.equal(pkg.type, 'module');
  const targets = [];
  for (const [key, value] of Object.entries(pkg.exports)) {
    for (const t of typeof value === 'string' ? [value] : Object.values(value)) {
      if (key.includes('*')) [...BUILDS, GPU, 'text'].forEach((b) => targets.push(t.replace('*', b)));
      else targets.push(t);
    }
  }
  for (const t of targets) assert.ok(fs.existsSync(path.join(unpacked, 'package', t)), `exports target ${t}`);
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './build-sw', './package.json', './sw', './wasm/*', './worker'].sort());
  assert.ok(fs.existsSync(path.join(unpacked, 'package', pkg.bin['cairn-web-sw'])));
});

test('the worker bundles its glue and names every wasm build as an asset: new URL(literal, import.meta.url)', () => {
  const worker = read('dist/worker.js');
  for (const b of [...BUILDS, GPU, 'text']) assert.ok(worker.includes(`new URL("./cairn_web_${b}.wasm", import.meta.url)`), `${b} is a bundler-visible asset`);
  assert.ok(!/^\s*import\s/m.test(worker), 'self-contained: no static imports left');
  // The WebGPU glue is a file of its own, imported on demand (an app without a GPU never fetches it).
  assert.deepEqual([...worker.matchAll(/import\(([^)]*)\)/g)].map((m) => m[1]).sort(), ['"./cairn_web_threads.js"', '"./cairn_web_webgpu.js"'], 'two dynamic imports: the WebGPU and the threaded glue');
  // The threaded glue: the pool's entry points, shared memory imported, nothing else imported.
  const threaded = read('dist/cairn_web_threads.js');
  assert.ok(threaded.includes('poolWorkerLoop') && threaded.includes('wasmMemory'), 'the threaded glue exports the pool entry points');
  assert.ok(!/^\s*import[\s(]/m.test(threaded) && !threaded.includes('_bg.wasm'), 'the threaded glue imports nothing and names no unshipped file');
  // The pool's worker imports that glue by a literal name a bundler follows (not by a URL it is sent).
  const pool = read('dist/pool-worker.js');
  assert.ok(pool.includes("await import('./cairn_web_threads.js')") && !pool.includes('import(pkgUrl)'), 'the pool worker imports the threaded glue beside it');
  const gpuGlue = read('dist/cairn_web_webgpu.js');
  assert.ok(gpuGlue.includes('GpuModel') && gpuGlue.includes('gpumodel_runTensors'), 'the WebGPU glue exports GpuModel');
  assert.ok(!/^\s*import[\s(]/m.test(gpuGlue) && !gpuGlue.includes('_bg.wasm'), 'the WebGPU glue imports nothing and names no unshipped file');
  assert.ok(!worker.includes('gpumodel_'), 'the CPU builds\' glue in worker.js has no GPU bindings');
  assert.ok(!worker.includes('cairn_web_bg.wasm') && !worker.includes('cairn_web_text_bg.wasm'), 'no reference to a file the package does not ship');
  const page = read('dist/cairn.js');
  assert.ok(page.includes("new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'cairn' })"), 'the worker pattern bundlers recognize');
});

test('the service-worker modules import only each other and the Workbox packages the package depends on', () => {
  const pkg = JSON.parse(read('package.json'));
  const dir = path.join(unpacked, 'package/dist/sw');
  for (const f of fs.readdirSync(dir)) {
    for (const [, spec] of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^import .* from '([^']+)';$/gm)) {
      if (spec.startsWith('./')) assert.ok(fs.existsSync(path.join(dir, spec)), `${f}: ${spec}`);
      else assert.ok(pkg.dependencies[spec], `${f} imports ${spec}, which is not a dependency`);
    }
  }
});

test('tsc --noEmit: the declarations type-check a typed consumer (page API, Workbox plugins, build tool)', () => {
  const consumer = path.join(here, 'consumer');
  const link = path.join(consumer, 'node_modules/@cairn-ml/web');
  fs.rmSync(link, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(path.join(unpacked, 'package'), link);
  const tsc = path.join(root, 'web/node_modules/typescript/bin/tsc');
  // Two programs, as in an app: the page (lib DOM) and the service worker (lib WebWorker).
  for (const project of ['tsconfig.json', 'tsconfig.sw.json']) {
    try {
      const out = execFileSync(process.execPath, [tsc, '--noEmit', '-p', path.join(consumer, project)], { encoding: 'utf8' });
      assert.equal(out.trim(), '');
    } catch (e) {
      assert.fail(`tsc --noEmit -p ${project} failed:\n${e.stdout}${e.stderr}`);
    }
  }
});
