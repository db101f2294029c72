#!/usr/bin/env node
// Builds the npm package of Cairn's browser side, @cairn-ml/web, from the repository's
// sources (nothing is moved: web/src, web/sw and the wasm builds stay where they are):
//
//   dist/cairn.js, cairn.d.ts         the page API (web/src), types
//   dist/width-policy.js              the page API's deadline policy, which cairn.js imports
//   dist/tensors.js                   the packed tensor layout, which cairn.js imports
//   dist/latency.js                   the placement's latency estimates, which cairn.js imports
//   dist/texts.js                     the text calls' input checks, which cairn.js imports
//   dist/worker.js                    the worker (web/src/worker.js) bundled by esbuild with
//                                     the wasm-bindgen glue; each wasm build is an asset it
//                                     names by `new URL('./cairn_web_<build>.wasm', import.meta.url)`
//   dist/cairn_web_{simd,relaxed,scalar}.wasm
//   dist/cairn_web_threads{,-relaxed}.wasm, cairn_web_threads.js, pool-worker.js
//                                     the threaded builds (docs/adr/0019, 0034) with their own glue
//                                     (shared memory is imported), loaded only on cross-origin
//                                     isolated pages, and the pool's worker, which imports that glue
//   dist/cairn_web_webgpu.{js,wasm}   the WebGPU build (docs/adr/0022) with its own glue, which the
//                                     worker imports only where navigator.gpu gives an adapter
//   dist/cairn_web_text.wasm          the tokenizer module, fetched only for text bundles (ADR 0026)
//   dist/sw/*.js, dist/sw.d.ts        Cairn's Workbox routes and plugins (web/sw), as ES modules
//                                     importing workbox-* by name (the app's bundler dedupes them)
//   bin/cairn-web-sw.mjs              bundles an app's service worker, injects the precache list
//   README.md, package.json           version = the Rust workspace's
//
// then `npm pack` into target/npm/. Prints the tarball's path, files and sizes.
//
//   node web/package/build.mjs [--wasm target/web-pkg] [--out target/npm]

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, transform } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i > 0 ? path.resolve(process.argv[i + 1]) : fallback; };
const wasmDir = arg('--wasm', path.join(root, 'target/web-pkg'));
const outDir = arg('--out', path.join(root, 'target/npm'));
const stage = path.join(outDir, 'package');

export const NAME = '@cairn-ml/web';
export const WASM_BUILDS = ['simd', 'relaxed', 'scalar'];
// The WebGPU build exports GpuModel and imports the browser's WebGPU API, so its glue differs
// from the CPU builds' one and ships beside it, loaded on demand (a separate file, not in worker.js).
export const GPU_BUILD = 'webgpu';
// The threaded builds import a shared memory and export the pool's entry points, so their glue
// differs from the single-threaded one; the two threaded builds share one (checked).
export const THREADED_BUILDS = ['threads', 'threads-relaxed'];
const WORKBOX = '^7.4.1';

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

function workspaceVersion() {
  const toml = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8');
  const m = toml.match(/\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/);
  if (!m) fail('no [workspace.package] version in Cargo.toml');
  return m[1];
}

/** The wasm-bindgen glue, which must be the same for every build (one copy ships). */
function sharedGlue() {
  const glues = WASM_BUILDS.map((b) => {
    const file = path.join(wasmDir, b, 'cairn_web.js');
    if (!fs.existsSync(file) || !fs.existsSync(path.join(wasmDir, b, 'cairn_web_bg.wasm'))) {
      fail(`no ${b} build at ${path.dirname(file)}; hint: run bench/web/build_wasm.sh (it builds simd, relaxed and scalar)`);
    }
    return fs.readFileSync(file, 'utf8');
  });
  if (glues.some((g) => g !== glues[0])) fail(`the wasm-bindgen glue differs between the builds in ${wasmDir}: rebuild them from one commit (bench/web/build_wasm.sh)`);
  return path.join(wasmDir, WASM_BUILDS[0], 'cairn_web.js');
}

/** The WebGPU build's glue (its own: GpuModel and the WebGPU bindings). */
function gpuGlue() {
  const file = path.join(wasmDir, GPU_BUILD, 'cairn_web.js');
  if (!fs.existsSync(file) || !fs.existsSync(path.join(wasmDir, GPU_BUILD, 'cairn_web_bg.wasm'))) {
    fail(`no ${GPU_BUILD} build at ${path.dirname(file)}; hint: run bench/web/build_wasm.sh webgpu`);
  }
  return file;
}

/** The threaded builds' wasm-bindgen glue, the same for both (one copy ships). */
function threadedGlue() {
  const glues = THREADED_BUILDS.map((b) => {
    const file = path.join(wasmDir, b, 'cairn_web.js');
    if (!fs.existsSync(file) || !fs.existsSync(path.join(wasmDir, b, 'cairn_web_bg.wasm'))) {
      fail(`no ${b} build at ${path.dirname(file)}; hint: run bench/web/build_wasm.sh threads threads-relaxed`);
    }
    return fs.readFileSync(file, 'utf8');
  });
  if (glues.some((g) => g !== glues[0])) fail(`the wasm-bindgen glue differs between the threaded builds in ${wasmDir}: rebuild them from one commit (bench/web/build_wasm.sh threads threads-relaxed)`);
  return path.join(wasmDir, THREADED_BUILDS[0], 'cairn_web.js');
}

/** A glue with its `new URL('<name>_bg.wasm', import.meta.url)` fallback, which names a file the package does not ship (a bundler would look for it), replaced by an error: the loader always passes the URL. */
function withoutWasmFallback(file) {
  const source = fs.readFileSync(file, 'utf8');
  const fallback = `new URL('${path.basename(file, '.js')}_bg.wasm', import.meta.url)`;
  if (!source.includes(fallback)) fail(`${file} has no ${fallback}: the wasm-bindgen glue changed; update web/package/build.mjs`);
  return source.replace(fallback, "(() => { throw new Error('@cairn-ml/web: the wasm URL must be given'); })()");
}

/** The tokenizer module's glue (crates/cairn-web-text; one build). */
function textGlue() {
  const file = path.join(wasmDir, 'text', 'cairn_web_text.js');
  if (!fs.existsSync(file) || !fs.existsSync(path.join(wasmDir, 'text', 'cairn_web_text_bg.wasm'))) {
    fail(`no tokenizer build at ${path.dirname(file)}; hint: run bench/web/build_wasm.sh (it builds it with the others)`);
  }
  return file;
}

/** esbuild plugin: the worker's './wasm.js' becomes the package's asset loader, its './cairn_web.js' the shared glue. */
const packageWasm = (glue, text) => ({
  name: 'cairn-package-wasm',
  setup(b) {
    b.onResolve({ filter: /^\.\/wasm\.js$/ }, (a) => (a.importer.endsWith(path.join('web', 'src', 'worker.js')) ? { path: path.join(here, 'wasm-assets.js') } : undefined));
    b.onResolve({ filter: /^\.\/backend\.js$/ }, (a) => (a.importer === path.join(here, 'wasm-assets.js') ? { path: path.join(root, 'web/src/backend.js') } : undefined));
    b.onResolve({ filter: /^\.\/cairn_web\.js$/ }, (a) => (a.importer === path.join(here, 'wasm-assets.js') ? { path: glue } : undefined));
    b.onResolve({ filter: /^\.\/cairn_web_text\.js$/ }, (a) => (a.importer === path.join(here, 'wasm-assets.js') ? { path: text } : undefined));
    // The WebGPU and threaded glues stay files of their own (dist/cairn_web_webgpu.js,
    // dist/cairn_web_threads.js), imported on demand.
    b.onResolve({ filter: /^\.\/cairn_web_(webgpu|threads)\.js$/ }, (a) => ({ path: a.path, external: true }));
    b.onLoad({ filter: /cairn_web(_text)?\.js$/ }, (a) => ({ contents: withoutWasmFallback(a.path), loader: 'js' }));
  },
});

function packageJson(version) {
  return {
    name: NAME,
    version,
    description: "Cairn's browser runtime: run ONNX models packed by `cairn pack` in a Web Worker (WebAssembly), offline-first with Workbox.",
    license: 'Apache-2.0',
    type: 'module',
    main: './dist/cairn.js',
    types: './dist/cairn.d.ts',
    exports: {
      '.': { types: './dist/cairn.d.ts', default: './dist/cairn.js' },
      './worker': './dist/worker.js',
      './sw': { types: './dist/sw.d.ts', default: './dist/sw/service-worker.js' },
      './build-sw': { types: './dist/build-sw.d.ts', default: './bin/cairn-web-sw.mjs' },
      './wasm/*': './dist/cairn_web_*.wasm',
      './package.json': './package.json',
    },
    bin: { 'cairn-web-sw': 'bin/cairn-web-sw.mjs' },
    files: ['dist', 'bin'],
    // Importing the page API starts nothing; the service-worker modules open a
    // BroadcastChannel when loaded, which a bundler must keep.
    sideEffects: ['./dist/sw/*.js'],
    dependencies: { 'workbox-core': WORKBOX, 'workbox-routing': WORKBOX, 'workbox-strategies': WORKBOX },
    peerDependencies: { esbuild: '>=0.20', 'workbox-build': WORKBOX },
    peerDependenciesMeta: { esbuild: { optional: true }, 'workbox-build': { optional: true } },
    keywords: ['onnx', 'webassembly', 'wasm', 'inference', 'pwa', 'offline', 'workbox', 'service-worker'],
    engines: { node: '>=18' },
  };
}

async function main() {
  const version = workspaceVersion();
  const glue = sharedGlue();
  const text = textGlue();
  const gpu = gpuGlue();
  const threaded = threadedGlue();
  fs.rmSync(stage, { recursive: true, force: true });
  const dist = path.join(stage, 'dist');
  fs.mkdirSync(path.join(dist, 'sw'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'bin'), { recursive: true });

  fs.copyFileSync(path.join(root, 'web/src/cairn.js'), path.join(dist, 'cairn.js'));
  fs.copyFileSync(path.join(root, 'web/src/cairn.d.ts'), path.join(dist, 'cairn.d.ts'));
  // cairn.js imports the deadline policy (docs/adr/0029) by its relative name.
  fs.copyFileSync(path.join(root, 'web/src/width-policy.js'), path.join(dist, 'width-policy.js'));
  // ... and the packed tensor layout of its edge requests.
  fs.copyFileSync(path.join(root, 'web/src/tensors.js'), path.join(dist, 'tensors.js'));
  // ... and the placement's latency estimates.
  fs.copyFileSync(path.join(root, 'web/src/latency.js'), path.join(dist, 'latency.js'));
  // ... and the checks of a text call's texts (the worker bundles its own copy).
  fs.copyFileSync(path.join(root, 'web/src/texts.js'), path.join(dist, 'texts.js'));
  await build({
    entryPoints: [path.join(root, 'web/src/worker.js')], bundle: true, format: 'esm', outfile: path.join(dist, 'worker.js'),
    plugins: [packageWasm(glue, text)], legalComments: 'none', logLevel: 'warning', target: 'es2022',
    // thread-pool.js imports worker_threads only when it runs in Node; browsers never reach it.
    external: ['node:worker_threads'],
    banner: { js: `// @cairn-ml/web ${version}: Cairn's Web Worker with the wasm-bindgen glue (built by web/package/build.mjs).` },
  });
  for (const b of WASM_BUILDS) fs.copyFileSync(path.join(wasmDir, b, 'cairn_web_bg.wasm'), path.join(dist, `cairn_web_${b}.wasm`));
  fs.copyFileSync(path.join(wasmDir, GPU_BUILD, 'cairn_web_bg.wasm'), path.join(dist, `cairn_web_${GPU_BUILD}.wasm`));
  // Minified (74 KiB of glue -> 31 KiB on 2026-12-06): a GPU start fetches it on its own.
  const gpuJs = await transform(withoutWasmFallback(gpu), { format: 'esm', minify: true, legalComments: 'none', target: 'es2022' });
  fs.writeFileSync(path.join(dist, `cairn_web_${GPU_BUILD}.js`), `// @cairn-ml/web ${version}: the wasm-bindgen glue of the WebGPU build (built by web/package/build.mjs).\n${gpuJs.code}`);
  for (const b of THREADED_BUILDS) fs.copyFileSync(path.join(wasmDir, b, 'cairn_web_bg.wasm'), path.join(dist, `cairn_web_${b}.wasm`));
  const threadedJs = await transform(withoutWasmFallback(threaded), { format: 'esm', minify: true, legalComments: 'none', target: 'es2022' });
  fs.writeFileSync(path.join(dist, 'cairn_web_threads.js'), `// @cairn-ml/web ${version}: the wasm-bindgen glue of the threaded builds (built by web/package/build.mjs).\n${threadedJs.code}`);
  fs.copyFileSync(path.join(wasmDir, 'text', 'cairn_web_text_bg.wasm'), path.join(dist, 'cairn_web_text.wasm'));
  for (const f of fs.readdirSync(path.join(root, 'web/sw')).filter((f) => f.endsWith('.js'))) {
    fs.copyFileSync(path.join(root, 'web/sw', f), path.join(dist, 'sw', f));
  }
  // builds.js picks builds as the worker does (web/src/backend.js): in the package the two
  // share dist/sw/backend.js, so its import is renamed to the file beside it.
  const builds = path.join(dist, 'sw', 'builds.js');
  const buildsSource = fs.readFileSync(builds, 'utf8');
  if (!buildsSource.includes("from '../src/backend.js'")) fail("web/sw/builds.js no longer imports '../src/backend.js': update web/package/build.mjs");
  fs.writeFileSync(builds, buildsSource.replace("from '../src/backend.js'", "from './backend.js'"));
  fs.copyFileSync(path.join(root, 'web/src/backend.js'), path.join(dist, 'sw', 'backend.js'));
  // The thread pool's workers (docs/adr/0019): the worker names it with new URL(literal,
  // import.meta.url), so bundlers need the file beside worker.js.
  // In the repository a pool worker imports the glue by the URL it is sent; in the package
  // it imports the threaded glue beside it by name, which bundlers follow.
  const poolWorker = fs.readFileSync(path.join(root, 'web/src/pool-worker.js'), 'utf8');
  const byUrl = 'const pkg = await import(pkgUrl);';
  if (!poolWorker.includes(byUrl)) fail(`web/src/pool-worker.js no longer has '${byUrl}': update web/package/build.mjs`);
  fs.writeFileSync(path.join(dist, 'pool-worker.js'), poolWorker.replace(byUrl, "const pkg = await import('./cairn_web_threads.js');"));
  fs.copyFileSync(path.join(here, 'sw.d.ts'), path.join(dist, 'sw.d.ts'));
  fs.copyFileSync(path.join(here, 'build-sw.d.ts'), path.join(dist, 'build-sw.d.ts'));
  fs.copyFileSync(path.join(here, 'build-sw.mjs'), path.join(stage, 'bin/cairn-web-sw.mjs'));
  fs.chmodSync(path.join(stage, 'bin/cairn-web-sw.mjs'), 0o755);
  fs.copyFileSync(path.join(here, 'README.md'), path.join(stage, 'README.md'));
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(packageJson(version), null, 2)}\n`);

  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', outDir], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  const tarball = path.join(outDir, packed.filename);
  // A stable name for scripts and examples to install from.
  fs.copyFileSync(tarball, path.join(outDir, 'cairn-ml-web.tgz'));
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`${NAME}@${version}: ${tarball} (${kib(packed.size)} packed, ${kib(packed.unpackedSize)} unpacked, ${packed.files.length} files)`);
  for (const f of packed.files) console.log(`  ${f.path.padEnd(34)} ${kib(f.size).padStart(11)}`);
}

await main();
