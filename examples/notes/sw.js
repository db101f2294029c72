// The notes app's service worker: Workbox precaching of the app shell plus Cairn's routes
// from the npm package (model manifests revalidated, shards checked against their SHA-256
// and cached as they stream, quota errors reported to the page). `cairn app build --app
// examples/notes` bundles it with esbuild and injects the precache list as OUT/sw.js.
//
// The notes themselves never pass through here: they live in IndexedDB (notes-db.js).

import { clientsClaim, setCacheNameDetails } from 'workbox-core';
import { precacheAndRoute } from 'workbox-precaching';
import { registerCairnRoutes, handleCairnMessages, withoutUnusedBuilds } from '@cairn-ml/web/sw';

setCacheNameDetails({ prefix: 'cairn-notes', precache: 'precache', suffix: 'v1' });
// The engine's wasm builds: only the one this browser runs (docs/adr/0034).
precacheAndRoute(withoutUnusedBuilds(self.__WB_MANIFEST));
registerCairnRoutes();
handleCairnMessages();
// A new version takes over at once: the notes are in IndexedDB, and notes.js embeds again
// every note that an older model version embedded.
self.skipWaiting();
clientsClaim();
