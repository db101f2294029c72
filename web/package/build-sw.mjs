#!/usr/bin/env node
// cairn-web-sw: builds an app's service worker the way Workbox's docs describe, for apps
// without a bundler plugin of their own (`cairn app build` uses it, and so can anyone):
//   1. bundles SW_SOURCE (which imports workbox-* and @cairn-ml/web/sw) with esbuild;
//   2. injects the precache list into it with workbox-build's injectManifest: every file of
//      APP_DIR (models excepted: their manifests are revalidated and their shards cached as
//      they stream) with a revision and the SHA-256 integrity the browser checks on install.
//
//   cairn-web-sw SW_SOURCE APP_DIR [--dest sw.js] [--ignore GLOB]... [--json]
//
// Needs the optional peer dependencies esbuild and workbox-build.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const USAGE = 'usage: cairn-web-sw SW_SOURCE APP_DIR [--dest sw.js] [--ignore GLOB]... [--json]';

/**
 * Bundles `swSource` and injects the precache manifest of `appDir`; returns
 * { swDest, count, size, warnings }.
 */
export async function buildServiceWorker({ swSource, appDir, dest = 'sw.js', ignore = [] }) {
  const [{ build }, { injectManifest }] = await Promise.all([importPeer('esbuild'), importPeer('workbox-build')]);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-web-sw-'));
  try {
    const bundled = path.join(tmp, 'sw.js');
    await build({
      // Bare imports resolve from the app's node_modules, else from where this package is installed.
      nodePaths: installedIn(),
      entryPoints: [swSource], bundle: true, format: 'esm', outfile: bundled, minify: true, legalComments: 'none', logLevel: 'warning',
      // Workbox's modules log in development builds; this is a production service worker.
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    const result = await injectManifest({
      swSrc: bundled,
      swDest: path.join(appDir, dest),
      globDirectory: appDir,
      globPatterns: ['**/*'],
      globIgnores: ['models/**', dest, `${dest}.map`, 'precache-manifest.json', ...ignore],
      // The wasm builds are larger than Workbox's 2 MiB default.
      maximumFileSizeToCacheInBytes: 32 * 1024 * 1024,
      // Subresource Integrity: the browser checks each file's SHA-256 as it precaches it.
      manifestTransforms: [async (entries) => ({
        manifest: entries.map((e) => ({ ...e, integrity: `sha256-${crypto.createHash('sha256').update(fs.readFileSync(path.join(appDir, e.url))).digest('base64')}` })),
        warnings: [],
      })],
    });
    return { swDest: path.join(appDir, dest), count: result.count, size: result.size, warnings: result.warnings };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The node_modules directory this package is installed in, if it is. */
function installedIn() {
  const parts = path.dirname(fs.realpathSync(new URL(import.meta.url).pathname)).split(path.sep);
  const at = parts.lastIndexOf('node_modules');
  return at < 0 ? [] : [parts.slice(0, at + 1).join(path.sep)];
}

async function importPeer(name) {
  try {
    return await import(name);
  } catch (e) {
    throw new Error(`cairn-web-sw needs ${name} (npm install --save-dev ${name}): ${e.message}`);
  }
}

async function main(argv) {
  const positional = [];
  const options = { ignore: [] };
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dest') options.dest = argv[++i];
    else if (argv[i] === '--ignore') options.ignore.push(argv[++i]);
    else if (argv[i] === '--json') json = true;
    else if (argv[i].startsWith('-')) throw new Error(`unknown option ${argv[i]}\n${USAGE}`);
    else positional.push(argv[i]);
  }
  if (positional.length !== 2) throw new Error(USAGE);
  const [swSource, appDir] = positional;
  if (!fs.existsSync(swSource)) throw new Error(`no service worker source at ${swSource}\n${USAGE}`);
  if (!fs.statSync(appDir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${appDir} is not a directory (the built app)\n${USAGE}`);
  const r = await buildServiceWorker({ swSource, appDir, ...options });
  if (json) console.log(JSON.stringify(r));
  else console.log(`${r.swDest}: precaches ${r.count} files, ${(r.size / 1024).toFixed(0)} KiB${r.warnings.length ? `\nwarnings: ${r.warnings.join('; ')}` : ''}`);
}

if (import.meta.url === `file://${fs.realpathSync(process.argv[1] ?? '')}`) {
  main(process.argv.slice(2)).catch((e) => { console.error(`error: ${e.message}`); process.exit(1); });
}
