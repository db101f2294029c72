// Cairn's parts of a Workbox service worker (the `@cairn-ml/web/sw` entry of the npm
// package). An app's own service worker adds them in a few lines:
//
//   import { precacheAndRoute } from 'workbox-precaching';
//   import { registerCairnRoutes, handleCairnMessages, withoutUnusedBuilds } from '@cairn-ml/web/sw';
//   precacheAndRoute(withoutUnusedBuilds(self.__WB_MANIFEST));  // only the wasm build this browser runs
//   registerCairnRoutes();      // model shards, manifests, the edge queue
//   handleCairnMessages();      // the page's requests, Background Sync, replays
//
// Routes (workbox-routing; first match wins, so register the app's catch-all routes after):
//   shards/<sha256>.safetensors   CacheFirst (workbox-strategies), stored only after its sha256
//                                 checks (shardVerification) and if it fits (quotaGuard)
//   */manifest.json               NetworkFirst with a timeout, then the cached copy; each version
//                                 is recorded (recordVersion) for eviction once superseded
//   POST /v1/*  (the edge API)    network, else queued in IndexedDB with its Idempotency-Key and
//                                 replayed (edgeQueue)

import { registerRoute } from 'workbox-routing';
import { CacheFirst, NetworkFirst } from 'workbox-strategies';
import { registerQuotaErrorCallback } from 'workbox-core';
import { SHARD_CACHE, STORED_BY_SW, isShard, shardVerification } from './shards.js';
import { MANIFEST_CACHE, isManifest, isTokenizer, recordVersion, serverErrorsAsOffline, quotaGuard, activate, listVersions, evictForQuota } from './models.js';
import { SYNC_TAG, isEdgeRequest, edgeQueue, edgeQueueHandler, replay, queued, resultOf } from './edge-queue.js';
import { CHANNEL, announce } from './broadcast.js';
import { buildsForThisBrowser, withoutUnusedBuilds } from './builds.js';

export {
  SHARD_CACHE, STORED_BY_SW, MANIFEST_CACHE, SYNC_TAG, CHANNEL, isShard, isManifest, isTokenizer, isEdgeRequest, shardVerification, recordVersion,
  serverErrorsAsOffline, quotaGuard, edgeQueue, edgeQueueHandler, activate, evictForQuota, listVersions, replay, queued, resultOf, announce,
  buildsForThisBrowser, withoutUnusedBuilds,
};

/**
 * Registers Cairn's routes with workbox-routing.
 * @param {{ manifestTimeoutSeconds?: number, apiKey?: string, edgeHeaders?: Record<string, string>, edge?: boolean }} [options]
 *   `apiKey`/`edgeHeaders`: sent with every edge request, queued or not; `edge: false` leaves
 *   POST /v1/* alone.
 */
export function registerCairnRoutes({ manifestTimeoutSeconds = 3, apiKey, edgeHeaders, edge = true } = {}) {
  registerRoute(isShard, new CacheFirst({ cacheName: SHARD_CACHE, plugins: [shardVerification, quotaGuard] }));
  registerRoute(isManifest, new NetworkFirst({
    cacheName: MANIFEST_CACHE, networkTimeoutSeconds: manifestTimeoutSeconds, plugins: [serverErrorsAsOffline, recordVersion, quotaGuard],
  }));
  // A text bundle's tokenizer is part of the model: kept like its manifest, so a text app
  // loads offline (the worker verifies it against the manifest's sha256 either way).
  registerRoute(isTokenizer, new NetworkFirst({
    cacheName: MANIFEST_CACHE, networkTimeoutSeconds: manifestTimeoutSeconds, plugins: [serverErrorsAsOffline, quotaGuard],
  }));
  if (edge) registerRoute(isEdgeRequest, edgeQueue({ apiKey, headers: edgeHeaders }), 'POST');
  // A put that fails for quota despite quotaGuard's estimate: the page is still told.
  registerQuotaErrorCallback(async () => {
    const { usage = 0, quota = 0 } = await navigator.storage.estimate();
    announce('quota-full', { usage, quota });
  });
}

/**
 * Answers the page's requests ({ type, ... } on a MessageChannel: skip-waiting, replay,
 * model-active, queued, result, versions, evict-for-quota) and replays the edge queue on
 * Background Sync's `sync`, on activation and on every service-worker start.
 */
export function handleCairnMessages() {
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

  self.addEventListener('sync', (event) => {
    if (event.tag === SYNC_TAG) event.waitUntil(replay('sync'));
  });

  self.addEventListener('activate', (event) => {
    event.waitUntil(replay('activate').catch(() => []).then((sent) => announce('activated', { replayed: sent.length })));
  });

  // A worker start is a chance to replay where Background Sync is missing.
  replay('start').catch(() => {});
}
