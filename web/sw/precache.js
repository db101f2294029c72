// Precaching of the app shell: a list of { url, revision } written by `cairn app build`
// (the revision is the file's sha256). Each entry is cached under a key that carries its
// revision, so a new service worker installs the new files next to the old ones while
// the old worker keeps serving its own; `activate` then drops what the new list lacks.

import { sha256Hex, storedHeaders } from './digest.js';

export const PRECACHE = 'cairn-precache-v1';
const REVISION_PARAM = '__cairn_rev';

export class Precache {
  #keys = new Map(); // absolute URL (no search) -> cache key

  constructor(entries, { base = self.location.href, indexFile = 'index.html' } = {}) {
    this.entries = entries.map(({ url, revision }) => {
      const abs = new URL(url, base);
      const key = new URL(abs);
      key.searchParams.set(REVISION_PARAM, revision);
      this.#keys.set(abs.href, key.href);
      return { url: abs.href, revision, key: key.href };
    });
    this.indexFile = indexFile;
  }

  /** Fetches every entry not cached at its revision; fails (so the install fails) if any does not match. */
  async install(onProgress = () => {}) {
    const cache = await caches.open(PRECACHE);
    let done = 0;
    for (const entry of this.entries) {
      if (!(await cache.match(entry.key))) {
        // `reload`: the HTTP cache could hold a copy older than this revision.
        const response = await fetch(entry.url, { cache: 'reload' });
        if (!response.ok) throw new Error(`precache: ${entry.url}: HTTP ${response.status}`);
        const bytes = new Uint8Array(await response.arrayBuffer());
        const hash = await sha256Hex(bytes);
        if (!hash.startsWith(entry.revision)) throw new Error(`precache: ${entry.url} has sha256 ${hash.slice(0, 16)}, the manifest says ${entry.revision}: the server holds another build`);
        await cache.put(entry.key, new Response(bytes, { headers: storedHeaders(response.headers) }));
      }
      onProgress(++done, this.entries.length);
    }
  }

  /** Deletes cached entries this list no longer names (files of older app versions). */
  async cleanup() {
    const cache = await caches.open(PRECACHE);
    const wanted = new Set(this.entries.map((e) => e.key));
    let removed = 0;
    for (const request of await cache.keys()) {
      if (!wanted.has(request.url)) { await cache.delete(request); removed++; }
    }
    return removed;
  }

  /** The cache key for a request, if it is precached ('/dir/' means '/dir/index.html'). */
  keyFor(url) {
    const plain = new URL(url);
    plain.search = '';
    plain.hash = '';
    if (plain.pathname.endsWith('/')) plain.pathname += this.indexFile;
    return this.#keys.get(plain.href) ?? null;
  }

  /** A route handler: the precached copy, else the network. */
  handler() {
    return {
      handle: async ({ request }) => (await caches.match(this.keyFor(request.url), { cacheName: PRECACHE })) ?? fetch(request),
    };
  }
}
