// Download size: what an app installs and what a page loads before its first prediction,
// Cairn's npm package beside onnxruntime-web's and TF.js's wasm backend (the peers installed
// in bench/web/node_modules from npm, the versions bench/run.sh measures).
//
//   node bench/web/size.mjs            (after scripts/build-npm.sh and examples/vite-app/test.sh)
//
// Tarball: the npm tarball(s) an app installs (`npm pack --dry-run --json` for the peers:
// the registry's packed size). Loaded before the first prediction, gzip -9 of each file
// (what a server sends compressed): Cairn, the JS and wasm of the Vite example's production
// build (its entry chunk, the worker chunk, the simd wasm the browser runs); the peers, the
// minified browser builds a page loads for their wasm backends (1 thread, SIMD). Neither
// counts the model.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const modules = path.join(here, 'node_modules');
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;

function loaded(files) {
  return files.map((f) => {
    const bytes = fs.readFileSync(f);
    return { file: path.relative(root, f), raw: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length };
  });
}

function registryTarball(name) {
  const version = JSON.parse(fs.readFileSync(path.join(modules, name, 'package.json'), 'utf8')).version;
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', `${name}@${version}`], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  return { name: `${name}@${version}`, size: info.size };
}

function cairn() {
  const version = JSON.parse(fs.readFileSync(path.join(root, 'target/npm/package/package.json'), 'utf8')).version;
  const tarball = path.join(root, `target/npm/cairn-ml-web-${version}.tgz`);
  const assets = path.join(root, 'examples/vite-app/dist/assets');
  if (!fs.existsSync(tarball) || !fs.existsSync(assets)) throw new Error('build the package and the Vite example first: scripts/build-npm.sh && examples/vite-app/test.sh');
  const pick = (re) => { const f = fs.readdirSync(assets).find((n) => re.test(n)); if (!f) throw new Error(`no ${re} in ${assets}`); return path.join(assets, f); };
  return {
    engine: 'Cairn (@cairn-ml/web, Vite production build)',
    tarballs: [{ name: `@cairn-ml/web@${version}`, size: fs.statSync(tarball).size }],
    files: loaded([pick(/^index-.*\.js$/), pick(/^worker-.*\.js$/), pick(/^cairn_web_simd-.*\.wasm$/)]),
  };
}

function ort() {
  const dist = path.join(modules, 'onnxruntime-web/dist');
  return {
    engine: 'onnxruntime-web (wasm EP)',
    tarballs: [registryTarball('onnxruntime-web')],
    files: loaded(['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'].map((f) => path.join(dist, f))),
  };
}

function tfjs() {
  return {
    engine: 'TF.js (tfjs-core + tfjs-backend-wasm; converter/layers not counted)',
    tarballs: [registryTarball('@tensorflow/tfjs-core'), registryTarball('@tensorflow/tfjs-backend-wasm')],
    files: loaded([
      path.join(modules, '@tensorflow/tfjs-core/dist/tf-core.min.js'),
      path.join(modules, '@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js'),
      path.join(modules, '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'),
    ]),
  };
}

const rows = [cairn(), ort(), tfjs()];
const base = rows[0].files.reduce((n, f) => n + f.gzip, 0);
console.log('| engine | npm tarball(s) | loaded before the first prediction: JS + wasm, gzip -9 (raw) | vs Cairn |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) {
  const gz = r.files.reduce((n, f) => n + f.gzip, 0);
  const raw = r.files.reduce((n, f) => n + f.raw, 0);
  const tar = r.tarballs.reduce((n, t) => n + t.size, 0);
  console.log(`| ${r.engine} | ${kib(tar)} (${r.tarballs.map((t) => t.name).join(' + ')}) | ${kib(gz)} (${kib(raw)}) | ${(gz / base).toFixed(2)}x |`);
}
console.log('\nfiles (gzip -9 / raw):');
for (const r of rows) for (const f of r.files) console.log(`  ${f.file.padEnd(86)} ${kib(f.gzip).padStart(9)} / ${kib(f.raw).padStart(9)}`);
