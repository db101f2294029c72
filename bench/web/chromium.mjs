// Headless Chromium for the web benchmarks (browser_bench.mjs, text_browser_bench.mjs): the
// repository served over HTTP on loopback, cross-origin isolated as a PWA would be, and a
// fresh browser profile (a new empty --user-data-dir) so no cache or earlier state leaks in.
import http from 'node:http';
import { readFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The server's URL path of a file in the repository. */
export const urlOf = (file) => '/' + path.relative(root, path.resolve(file)).split(path.sep).join('/');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.json': 'application/json' };

/** Serves the repository on 127.0.0.1 (a free port) and starts Chromium; `close()` stops both. */
export async function startChromium() {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const file = path.join(root, path.normalize(decodeURIComponent(url.pathname)));
    if (!file.startsWith(root + path.sep)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  let browser;
  try {
    browser = await chromium.launchPersistentContext(await mkdtemp(path.join(tmpdir(), 'cairn-chromium-')), {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-precise-memory-info', ...(process.env.CHROMIUM_FLAGS ? process.env.CHROMIUM_FLAGS.split(' ') : [])],
    });
  } catch (e) {
    server.close();
    throw new Error(`Chromium did not start (${e.message.split('\n')[0]}); set CHROMIUM to its executable (default /usr/bin/chromium; scripts/setup.sh installs it)`);
  }
  return {
    origin,
    browser,
    version: browser.browser()?.version() ?? 'Chromium',
    async close() {
      await browser.close();
      server.close();
    },
  };
}
