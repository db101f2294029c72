// Cairn's service worker, assembled from one module per concern. `cairn app build`
// writes the entry script (sw.js at the app's root), which only calls
// `startServiceWorker({ precache: [...{ url, revision }] })`.
//
// Routes, first match wins:
//   app shell (precached at install)      precache, else network
//   shards/<sha256>.safetensors           cache-first, stored only after its sha256 checks
//   */manifest.json                       network-first, 3 s timeout, then the cached copy
//   POST /v1/*  (the edge API)            network, else queued in IndexedDB and replayed
//   other same-origin GETs                stale-while-revalidate
//
// Lifecycle: install precaches; the new worker then waits until a page asks it to take
// over ({ type: 'skip-waiting' }, the user's "update" button); activate deletes what the
// new precache list lacks and caches of older formats, then claims the pages.

import { Router } from './router.js';
import { Precache, PRECACHE } from './precache.js';
import { CacheFirst, NetworkFirst, StaleWhileRevalidate } from './strategies.js';
import { SHARD_CACHE, isShard, shardVerification } from './shards.js';
import { MANIFEST_CACHE, isManifest, recordVersion, quotaGuard, activate, listVersions, evictForQuota } from './models.js';
import { SYNC_TAG, isEdgeRequest, edgeQueueHandler, replay, queued, resultOf, setEdgeApiKey } from './edge-queue.js';
import { announce } from './broadcast.js';

const ASSET_CACHE = 'cairn-assets-v1';
const OUR_CACHES = new Set([PRECACHE, SHARD_CACHE, MANIFEST_CACHE, ASSET_CACHE]);

export function startServiceWorker({ precache: entries, manifestTimeoutMs = 3000, edgeApiKey = null }) {
  setEdgeApiKey(edgeApiKey);
  const precache = new Precache(entries);
  const router = new Router()
    .register(({ url }) => precache.keyFor(url.href), precache.handler())
    .register(isShard, new CacheFirst({ cacheName: SHARD_CACHE, plugins: [shardVerification, quotaGuard] }))
    .register(isManifest, new NetworkFirst({ cacheName: MANIFEST_CACHE, networkTimeoutMs: manifestTimeoutMs, plugins: [recordVersion, quotaGuard] }))
    .register(isEdgeRequest, edgeQueueHandler, 'POST')
    .register(({ url }) => url.origin === self.location.origin && !url.pathname.startsWith('/v1/'), new StaleWhileRevalidate({ cacheName: ASSET_CACHE, plugins: [quotaGuard] }));

  self.addEventListener('install', (event) => {
    event.waitUntil(precache.install((done, total) => announce('precache-progress', { done, total })));
  });

  self.addEventListener('activate', (event) => {
    event.waitUntil((async () => {
      const removed = await precache.cleanup();
      for (const name of await caches.keys()) {
        if (name.startsWith('cairn-') && !OUR_CACHES.has(name)) await caches.delete(name);
      }
      await self.clients.claim();
      announce('activated', { removedEntries: removed });
      await replay('activate');
    })());
  });

  self.addEventListener('fetch', (event) => {
    const response = router.handle(event);
    if (response) event.respondWith(response);
  });

  self.addEventListener('sync', (event) => {
    if (event.tag === SYNC_TAG) event.waitUntil(replay('sync'));
  });

  // Pages talk to the worker with { type, ... } and get one answer on the message port.
  self.addEventListener('message', (event) => {
    const msg = event.data ?? {};
    const answer = (value) => event.ports[0]?.postMessage(value);
    const work = (async () => {
      switch (msg.type) {
        case 'skip-waiting': return self.skipWaiting();
        case 'replay': return answer({ sent: await replay(msg.trigger ?? 'page') });
        case 'model-active': return answer({ evicted: await activate(msg.manifestUrl, msg.version) });
        case 'queued': return answer({ queued: await queued() });
        case 'result': return answer({ result: (await resultOf(msg.key)) ?? null });
        case 'versions': return answer(await listVersions());
        case 'evict-for-quota': return answer({ fits: await evictForQuota(msg.needBytes ?? 0) });
      }
    })().catch((e) => answer({ error: String(e?.message ?? e) }));
    event.waitUntil(work);
  });

  // A worker start is a chance to replay where Background Sync is missing.
  replay('start').catch(() => {});
}
