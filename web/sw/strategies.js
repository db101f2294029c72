// Caching strategies, Workbox-style: small classes with plugin hooks. A plugin is an
// object with any of these async hooks:
//   fetchDidSucceed({ request, response }) -> Response   (e.g. mark a response)
//   cacheWillUpdate({ request, response, bytes }) -> boolean   (false: do not store; e.g. a hash check)
//   cacheDidUpdate({ request, bytes, cacheName })      (e.g. record a model version)
//   cachePutFailed({ request, error, bytes }) -> boolean   (true: space was freed, try once more)
// Network responses go to the page as they stream in; the copy for the cache is checked
// and stored afterwards (inside event.waitUntil, so the worker stays alive for it).

import { storedHeaders } from './digest.js';
import { announce } from './broadcast.js';

async function runHooks(plugins, hook, arg, init) {
  let value = init;
  for (const p of plugins) if (p[hook]) value = await p[hook]({ ...arg, value });
  return value;
}

class Strategy {
  constructor({ cacheName, plugins = [] }) {
    this.cacheName = cacheName;
    this.plugins = plugins;
  }

  async fetch(request) {
    let response;
    try {
      response = await fetch(request);
    } catch (e) {
      announce('fetch-failed', { url: request.url, message: String(e?.message ?? e) });
      throw e;
    }
    for (const p of this.plugins) if (p.fetchDidSucceed) response = await p.fetchDidSucceed({ request, response });
    return response;
  }

  /** Returns the response for the page now and stores a checked copy in the background. */
  storeInBackground(event, request, response) {
    if (!response.ok || response.status === 206) return response;
    const copy = response.clone();
    event.waitUntil(this.store(request, copy).catch((e) => console.warn(`cairn sw: not cached ${request.url}: ${e.message}`)));
    return response;
  }

  async store(request, response) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    for (const p of this.plugins) {
      if (p.cacheWillUpdate && !(await p.cacheWillUpdate({ request, response, bytes }))) return false;
    }
    const cache = await caches.open(this.cacheName);
    const stored = () => cache.put(request, new Response(bytes, { status: response.status, headers: storedHeaders(response.headers) }));
    try {
      await stored();
    } catch (error) {
      if (error?.name !== 'QuotaExceededError') throw error;
      // Space may be freed (old model versions evicted); one more try, then give up quietly.
      if (!(await runHooks(this.plugins, 'cachePutFailed', { request, error, bytes }, false))) return false;
      try { await stored(); } catch (again) {
        await runHooks(this.plugins, 'cachePutFailed', { request, error: again, bytes, final: true }, false);
        return false;
      }
    }
    for (const p of this.plugins) if (p.cacheDidUpdate) await p.cacheDidUpdate({ request, bytes, cacheName: this.cacheName });
    return true;
  }
}

/** Cache, else network (and store). For content-addressed files: a cached copy never goes stale. */
export class CacheFirst extends Strategy {
  async handle({ request, event }) {
    const cached = await caches.match(request, { cacheName: this.cacheName });
    if (cached) return cached;
    return this.storeInBackground(event, request, await this.fetch(request));
  }
}

/** Network, unless it takes longer than `networkTimeoutMs` or fails: then the cached copy. */
export class NetworkFirst extends Strategy {
  constructor({ networkTimeoutMs = 3000, ...rest }) {
    super(rest);
    this.networkTimeoutMs = networkTimeoutMs;
  }

  async handle({ request, event }) {
    const network = this.fetch(request).then((r) => this.storeInBackground(event, request, r));
    event.waitUntil(network.catch(() => {}));
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(resolve, this.networkTimeoutMs, 'timeout'); });
    const first = await Promise.race([network.catch((error) => ({ error })), timeout]);
    clearTimeout(timer);
    if (first instanceof Response && (first.ok || first.status < 500)) return first;
    const cached = await caches.match(request, { cacheName: this.cacheName });
    if (cached) return cached;
    if (first === 'timeout') return network; // nothing cached: the slow network is all there is
    if (first instanceof Response) return first;
    throw first.error;
  }
}

/** The cached copy at once, refreshed from the network for next time; the network if none. */
export class StaleWhileRevalidate extends Strategy {
  async handle({ request, event }) {
    const cached = await caches.match(request, { cacheName: this.cacheName });
    const network = this.fetch(request).then((r) => this.storeInBackground(event, request, r));
    if (cached) {
      event.waitUntil(network.catch(() => {}));
      return cached;
    }
    return network;
  }
}
