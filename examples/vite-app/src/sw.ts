/// <reference lib="webworker" />
// The app's Workbox service worker. Cairn's model caching is the marked lines.
import { clientsClaim } from 'workbox-core';
import { precacheAndRoute } from 'workbox-precaching';
import { registerCairnRoutes, handleCairnMessages, withoutUnusedBuilds } from '@cairn-ml/web/sw'; // Cairn

declare const self: ServiceWorkerGlobalScope & { __WB_MANIFEST: Array<{ url: string; revision: string | null }> };

precacheAndRoute(withoutUnusedBuilds(self.__WB_MANIFEST)); // Cairn: only the wasm build this browser runs
registerCairnRoutes(); // Cairn: shards verified and cached, manifests network-first, edge queue
handleCairnMessages(); // Cairn: model-version eviction, Background Sync replays
self.skipWaiting();
clientsClaim();
