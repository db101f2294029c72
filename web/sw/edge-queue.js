// The edge request queue. A request to the edge API (POST under /v1/) that fails — the
// network is gone, or the edge answers 5xx — is kept in IndexedDB with its body and an
// Idempotency-Key, and the page gets 202 { queued: true, key }. The queue replays on
// Background Sync's `sync` event, and (where that API is missing or has not fired) when
// the service worker starts and when a page says it is back online. The edge sees the
// same key on every attempt, so a replay that raced a lost answer is answered from its
// idempotency store, never computed twice. Results are kept and announced to pages.

import { STORES, getAll, get, put, remove } from './db.js';
import { announce } from './broadcast.js';

export const SYNC_TAG = 'cairn-edge-queue';
const RETRYABLE = (status) => status >= 500 || status === 408 || status === 429;

export const isEdgeRequest = ({ url }) => url.origin === self.location.origin && url.pathname.startsWith('/v1/');

function keyOf(request) {
  return request.headers.get('idempotency-key') || crypto.randomUUID();
}

async function send(entry) {
  return fetch(entry.url, { method: entry.method, headers: { ...entry.headers, 'idempotency-key': entry.key }, body: entry.body });
}

async function store(entry) {
  await put(STORES.queue, entry);
  announce('edge-queued', { key: entry.key, url: entry.url, queued: (await getAll(STORES.queue)).length });
  try { await self.registration.sync?.register(SYNC_TAG); } catch { /* no Background Sync: start/online replay it */ }
}

/**
 * A Workbox route handler for edge API writes: the network if it answers, else the queue.
 * `apiKey` (sent as `Authorization: Bearer`) and `headers` are added to every attempt and
 * kept with a queued request, so its replay carries them too.
 * @param {{ apiKey?: string, headers?: Record<string, string> }} [options]
 */
export function edgeQueue({ apiKey, headers: extra = {} } = {}) {
  const added = { ...extra, ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) };
  return {
    async handle({ request }) {
      const headers = { ...Object.fromEntries(request.headers.entries()), ...added };
      const entry = { key: keyOf(request), url: request.url, method: request.method, headers, body: await request.arrayBuffer(), queuedAt: Date.now() };
      try {
        const response = await send(entry);
        if (!RETRYABLE(response.status)) return response;
      } catch { /* offline or unreachable: queue it */ }
      await store(entry);
      return new Response(JSON.stringify({ queued: true, key: entry.key }), { status: 202, headers: { 'content-type': 'application/json', 'x-cairn-queued': '1' } });
    },
  };
}

/** The handler without extra headers. */
export const edgeQueueHandler = edgeQueue();

let replaying = null;
let rerun = null;
/**
 * Sends queued requests oldest first; stops at the first that still cannot get through.
 * A trigger that arrives during a pass (the network came back while that pass was failing)
 * gets one more pass after it, never a second pass at the same time.
 */
export function replay(trigger) {
  if (replaying) {
    rerun ??= replaying.catch(() => []).then((first) => { rerun = null; return replay(trigger).then((more) => [...first, ...more]); });
    return rerun;
  }
  replaying = (async () => {
    const sent = [];
    try {
      for (const entry of await getAll(STORES.queue)) {
        let response;
        try { response = await send(entry); } catch { break; }
        if (RETRYABLE(response.status)) break;
        const result = { key: entry.key, url: entry.url, status: response.status, contentType: response.headers.get('content-type'), body: await response.text(), queuedAt: entry.queuedAt, doneAt: Date.now(), trigger };
        await put(STORES.results, result);
        await remove(STORES.queue, entry.seq);
        sent.push(entry.key);
        announce('edge-result', result);
      }
      return sent;
    } finally {
      replaying = null;
    }
  })();
  return replaying;
}

export const queued = () => getAll(STORES.queue).then((q) => q.map(({ key, url, queuedAt }) => ({ key, url, queuedAt })));
export const resultOf = (key) => get(STORES.results, key);
