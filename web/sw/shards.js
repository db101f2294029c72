// Content-addressed bundle shards (`shards/<sha256>.safetensors`) share one cache with
// the Cairn worker (web/src/worker.js reads it before fetching and evicts a copy that
// fails its Rust check). The service worker is the only writer while it controls the
// page: a shard is stored only after its bytes hash to the name in its URL, and the
// response tells the worker so (`x-cairn-shard-cache: stored-by-sw`), so the worker
// does not store it a second time.

import { sha256Hex } from './digest.js';
import { announce } from './broadcast.js';

export const SHARD_CACHE = 'cairn-shards-v1'; // the name worker.js uses
export const STORED_BY_SW = 'stored-by-sw';
const SHARD_PATH = /\/shards\/([0-9a-f]{64})\.safetensors$/;

export const isShard = ({ url }) => SHARD_PATH.test(url.pathname);

export const shardVerification = {
  async fetchDidSucceed({ response }) {
    if (!response.ok) return response;
    const headers = new Headers(response.headers);
    headers.set('x-cairn-shard-cache', STORED_BY_SW);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  },
  async cacheWillUpdate({ request, bytes }) {
    const want = new URL(request.url).pathname.match(SHARD_PATH)[1];
    const got = await sha256Hex(bytes);
    if (got === want) return true;
    announce('shard-rejected', { url: request.url, reason: `sha256 ${got.slice(0, 12)}… does not match its name` });
    return false;
  },
};
