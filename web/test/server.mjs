// A static file server for the browser tests, with fault injection: it can corrupt,
// truncate or hold back the responses for a path, and counts the bytes it served.
// (The product's server is `cairn serve`; this one exists to break things on purpose.)
// Like `cairn serve` and any CDN, it compresses what the browser accepts (brotli or gzip),
// shards included: an int8 bundle's coarse level (high nibbles) shrinks to a fraction.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html', '.safetensors': 'application/octet-stream', '.css': 'text/css', '.png': 'image/png', '.webmanifest': 'application/manifest+json' };

/**
 * CAIRN_TEST_BACKEND (a whole suite on one wasm build: `simd`, `scalar`, ...): every page names
 * it as `window.cairnTestBackend`, which the test fixtures pass to `Cairn.start` unless a test
 * asks for a build itself.
 */
function withForcedBackend(html, backend) {
  return Buffer.from(`<script>window.cairnTestBackend = ${JSON.stringify(backend)};</script>\n${html}`);
}

/**
 * @param {Record<string, string>} roots URL prefix -> directory, e.g. { '/web/': 'web' }
 * @param {{ isolated?: boolean, compression?: boolean, forcedBackend?: string | null }} [options]
 *   `isolated`: send COOP + COEP, as `cairn serve` does, so pages are cross-origin isolated and
 *   get Cairn's threaded build. Default: the CAIRN_TEST_ISOLATED environment variable (set to
 *   run a whole suite on that build). `compression` (default on): brotli or gzip per
 *   Accept-Encoding. `forcedBackend` (default CAIRN_TEST_BACKEND): named in every .html served;
 *   null for an app whose precache list pins each file's SHA-256 (the demo PWA takes its
 *   build from its address instead: web/test/pwa-app.mjs appPath).
 */
export async function startServer(roots, { isolated = !!process.env.CAIRN_TEST_ISOLATED, compression = true, forcedBackend = process.env.CAIRN_TEST_BACKEND ?? null } = {}) {
  const isolation = isolated ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
  const faults = []; // { match, mode, times, released }
  const served = []; // { url, bytes }
  const refused = []; // requests that arrived while `offline`
  let offline = false;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (offline) { refused.push(url.pathname); return req.socket.destroy(); }
    const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
    if (!prefix) return res.writeHead(404).end();
    const rel = decodeURIComponent(url.pathname.slice(prefix.length)) + (url.pathname.endsWith('/') ? 'index.html' : '');
    const file = path.resolve(roots[prefix], rel);
    if (!file.startsWith(path.resolve(roots[prefix]))) return res.writeHead(403).end();
    let body;
    try { body = fs.readFileSync(file); } catch { return res.writeHead(404).end(); }
    if (forcedBackend && path.extname(file) === '.html') body = withForcedBackend(body, forcedBackend);
    const fault = faults.find((f) => f.times !== 0 && url.pathname.includes(f.match));
    if (fault) {
      if (fault.times > 0) fault.times--;
      if (fault.mode === 'corrupt') { body = Buffer.from(body); body[body.length >> 1] ^= 0x55; }
      if (fault.mode === 'truncate') body = body.subarray(0, body.length - 100);
      if (fault.mode === 'hold') await fault.released;
    }
    // `bytes`: the file's bytes (what a client gets); `wireBytes`: what crossed the network.
    const { wire, encoding } = compress(body, req.headers['accept-encoding'] ?? '', compression);
    served.push({ url: url.pathname, bytes: body.length, wireBytes: wire.length, encoding });
    const encodingHeaders = encoding ? { 'content-encoding': encoding, vary: 'accept-encoding' } : {};
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': wire.length, 'cache-control': 'no-store', ...encodingHeaders, ...isolation });
    res.end(wire);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    served,
    refused,
    /**
     * Network gone, as far as this server goes: every request is dropped (connection reset).
     * DevTools' offline emulation (Playwright's `setOffline`) does not cover the browser's
     * own service-worker update checks; with this, those fail as they would offline.
     */
    setOffline(value) { offline = value; if (value) server.closeAllConnections(); },
    /** Applies `mode` to the next `times` responses whose path contains `match` (-1: all). */
    fault(match, mode, times = 1) {
      const f = { match, mode, times };
      if (mode === 'hold') f.released = new Promise((r) => { f.release = r; });
      faults.push(f);
      return f;
    },
    clearFaults() { for (const f of faults) f.release?.(); faults.length = 0; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/**
 * The body as sent: brotli (quality 5, as `cairn serve`) or gzip when the client accepts
 * it and it saves at least 1/16, else as is. Bodies under 256 bytes are sent as is.
 */
function compress(body, acceptEncoding, enabled) {
  const accepts = (name) => acceptEncoding.split(',').some((e) => e.trim().split(';')[0] === name);
  if (!enabled || body.length < 256) return { wire: body, encoding: null };
  let wire = null;
  let encoding = null;
  if (accepts('br')) {
    wire = zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } });
    encoding = 'br';
  } else if (accepts('gzip')) {
    wire = zlib.gzipSync(body, { level: 6 });
    encoding = 'gzip';
  }
  if (!wire || wire.length > body.length - (body.length >> 4)) return { wire: body, encoding: null };
  return { wire, encoding };
}
