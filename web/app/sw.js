// The demo's service worker: plain Workbox plus Cairn's routes from the npm package.
// `cairn app build` bundles it (esbuild) and injects the precache list (workbox-build's
// injectManifest: every app file with its revision and SHA-256 integrity) as OUT/sw.js.
//
// A new version installs next to the old one and waits until the page asks it to take over
// ({ type: 'skip-waiting' }, the user's "Update now"); activation then drops the old revisions.

import { clientsClaim, setCacheNameDetails } from 'workbox-core';
import { precacheAndRoute } from 'workbox-precaching';
import { registerRoute } from 'workbox-routing';
import { StaleWhileRevalidate } from 'workbox-strategies';
import { ExpirationPlugin } from 'workbox-expiration';
import { registerCairnRoutes, handleCairnMessages, quotaGuard, withoutUnusedBuilds } from '@cairn-ml/web/sw';

setCacheNameDetails({ prefix: 'cairn', precache: 'precache', suffix: 'v1' });
// The app ships every CPU build of the engine; this browser precaches the one it runs.
// `?backend=` (app.js: run another engine build) names the same page: offline, `/?backend=simd`
// is the precached index.html (Workbox's default ignores only utm_* and fbclid).
precacheAndRoute(withoutUnusedBuilds(self.__WB_MANIFEST), { ignoreURLParametersMatching: [/^utm_/, /^fbclid$/, /^backend$/] });
// `cairn app build --edge-api-key KEY` prepends `self.__CAIRN_APP__ = { edgeApiKey }` to sw.js.
registerCairnRoutes({ apiKey: self.__CAIRN_APP__?.edgeApiKey });
handleCairnMessages();
// Other same-origin GETs (not the edge API): stale-while-revalidate, at most 200 entries.
registerRoute(
  ({ url }) => url.origin === self.location.origin && !url.pathname.startsWith('/v1/'),
  new StaleWhileRevalidate({ cacheName: 'cairn-assets-v1', plugins: [quotaGuard, new ExpirationPlugin({ maxEntries: 200 })] }),
);
clientsClaim();
