// Which of Cairn's wasm builds a service worker precaches (docs/adr/0034). An app ships every
// CPU build (relaxed SIMD, simd128, scalar, and their threaded twins) because the browser
// that will run it is not known when it is built; each browser runs one of them. The precache
// list keeps the builds this browser's worker can pick — the single-threaded one the engine
// validates and its threaded twin — so a visit downloads one engine (two on an isolated page
// with threads), not five, and the app still starts offline.
//
//   precacheAndRoute(withoutUnusedBuilds(self.__WB_MANIFEST));
//
// A build asked for by name (`backend: 'simd'`) is fetched when first used.

import { pickBackend, threadedBuild, threadsAvailable } from '../src/backend.js';

// `cairn_web_<build>.wasm`, or as a bundler names the asset: `cairn_web_<build>-<hash>.wasm`
// (Vite). 'threads-relaxed' is tried before 'threads', whose name it extends.
const CPU_BUILD = /(?:^|\/)cairn_web_(threads-relaxed|threads|relaxed|simd|scalar)(?:-[\w-]+)?\.wasm$/;

/**
 * The CPU builds this engine's worker can start with `backend: 'auto'`: the threaded twin only
 * where the service worker itself is cross-origin isolated (its script served with the COEP
 * header the pages get), since pages of an origin that is not isolated never run it. If an
 * isolated page runs it anyway, the app's runtime route caches it on first use.
 */
export function buildsForThisBrowser(scope = globalThis) {
  const single = pickBackend('auto');
  return single === 'scalar' || !threadsAvailable(scope) ? [single] : [single, threadedBuild(single)];
}

/** `manifest` (Workbox's precache entries, or URLs) without the CPU builds this browser never picks. */
export function withoutUnusedBuilds(manifest, builds = buildsForThisBrowser()) {
  return manifest.filter((entry) => {
    const url = typeof entry === 'string' ? entry : entry.url;
    const build = CPU_BUILD.exec(url.split(/[?#]/)[0])?.[1];
    return build == null || builds.includes(build);
  });
}
