// Content-addressed bundle shards (`shards/<sha256>.safetensors`) share one cache with
// the Cairn worker (web/src/worker.js reads it before fetching and evicts a copy that
// fails its Rust check). The service worker is the only writer while it controls the
// page: a shard is stored only after its bytes hash to the name in its URL, and the
// response tells the worker so (`x-cairn-shard-cache: stored-by-sw`), so the worker
// does not store it a second time.

import { sha256Hex, storedHeaders } from './digest.js';
import { announce } from './broadcast.js';

export const SHARD_CACHE = 'cairn-shards-v1'; // the name worker.js uses
export const STORED_BY_SW = 'stored-by-sw';
const SHARD_PATH = /\/shards\/([0-9a-f]{64})\.safetensors$/;

/** Workbox route match for bundle shards. */
export const isShard = ({ url }) => SHARD_PATH.test(url.pathname);

/**
 * Workbox plugin for the shard route: marks network responses as stored by the service
 * worker, and lets a shard into the cache only if its bytes hash to its name.
 */
export const shardVerification = {
  async fetchDidSucceed({ response }) {
    if (!response.ok) return response;
    const headers = new Headers(response.headers);
    headers.set('x-cairn-shard-cache', STORED_BY_SW);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  },
  async cacheWillUpdate({ request, response }) {
    if (!response || response.status !== 200) return null;
    const want = new URL(request.url).pathname.match(SHARD_PATH)?.[1];
    const bytes = new Uint8Array(await response.arrayBuffer());
    const got = await sha256Hex(bytes);
    if (got === want) return new Response(bytes, { status: 200, headers: storedHeaders(response.headers) });
    announce('shard-rejected', { url: request.url, reason: `sha256 ${got.slice(0, 12)}… does not match its name` });
    return null;
  },
};
