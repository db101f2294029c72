// Model versions and their shards. Every manifest the service worker fetches is recorded
// (URL, version, shard URLs, last use); the page says which version it runs ("active").
// After a new version is activated, the shards only older versions use are evicted; when
// the quota is short, whole versions are evicted least recently used first — never the
// version the app runs now.

import { STORES, getAll, put, remove } from './db.js';
import { SHARD_CACHE } from './shards.js';
import { announce } from './broadcast.js';

export const MANIFEST_CACHE = 'cairn-manifests-v1';
export const isManifest = ({ url }) => url.pathname.endsWith('/manifest.json');
/** A text bundle's tokenizer.json (beside its manifest; the worker checks its sha256 against it). */
export const isTokenizer = ({ url }) => url.pathname.endsWith('/tokenizer.json');

/** Workbox plugin for the manifest route: records each version that reaches the cache. */
export const recordVersion = {
  async cacheDidUpdate({ request, newResponse }) {
    let m;
    try { m = JSON.parse(await newResponse.clone().text()); } catch { return; }
    if (!Array.isArray(m?.shards) || typeof m.version !== 'string') return;
    const manifestUrl = request.url;
    await put(STORES.versions, {
      id: `${manifestUrl}#${m.version}`, manifestUrl, name: m.name, version: m.version,
      shards: m.shards.map((s) => new URL(s.path, manifestUrl).href),
      bytes: m.shards.reduce((n, s) => n + s.bytes, 0), lastUsed: Date.now(),
    });
  },
};

/**
 * Workbox plugin: a 5xx from the server counts as the network failing, so NetworkFirst
 * answers with the cached manifest (Workbox would pass the error page through).
 */
export const serverErrorsAsOffline = {
  async fetchDidSucceed({ request, response }) {
    if (response.status >= 500) throw new Error(`${request.url}: HTTP ${response.status}`);
    return response;
  },
};

/** The page runs `version` of the model at `manifestUrl`: protect it, drop what it replaced. */
export async function activate(manifestUrl, version) {
  await put(STORES.active, { name: manifestUrl, manifestUrl, version, lastUsed: Date.now() });
  const versions = await getAll(STORES.versions);
  const current = versions.find((v) => v.manifestUrl === manifestUrl && v.version === version);
  if (current) await put(STORES.versions, { ...current, lastUsed: Date.now() });
  const superseded = versions.filter((v) => v.manifestUrl === manifestUrl && v.version !== version);
  const evicted = [];
  for (const v of superseded) evicted.push(await evictVersion(v, 'superseded'));
  return evicted;
}

/** Deletes the shards of `victim` that no other recorded version uses, and its record. */
async function evictVersion(victim, reason) {
  const others = (await getAll(STORES.versions)).filter((v) => v.id !== victim.id);
  const kept = new Set(others.flatMap((v) => v.shards));
  const cache = await caches.open(SHARD_CACHE);
  let freedBytes = 0, shards = 0;
  for (const url of victim.shards) {
    if (kept.has(url)) continue;
    const cached = await cache.match(url);
    if (!cached) continue;
    freedBytes += Number(cached.headers.get('content-length')) || (await cached.arrayBuffer()).byteLength;
    await cache.delete(url);
    shards++;
  }
  await remove(STORES.versions, victim.id);
  const summary = { manifestUrl: victim.manifestUrl, version: victim.version, shards, freedBytes, reason };
  announce('model-version-evicted', summary);
  return summary;
}

/**
 * Frees space until `needBytes` more fit under the quota: inactive versions first, then
 * other models' active versions, least recently used first. Never a candidate: the most
 * recently used active version (the model the app runs now), nor any version that holds
 * `forUrl` (the shard being stored: its model is loading). Returns whether it fits.
 */
export async function evictForQuota(needBytes = 0, forUrl = null) {
  const fits = async () => {
    const { usage = 0, quota = Infinity } = await navigator.storage.estimate();
    return usage + needBytes <= quota * 0.95;
  };
  if (await fits()) return true;
  const actives = await getAll(STORES.active);
  const isActive = (v) => actives.some((a) => a.manifestUrl === v.manifestUrl && a.version === v.version);
  const newest = actives.sort((a, b) => b.lastUsed - a.lastUsed)[0];
  const protectedVersion = (v) => (newest && v.manifestUrl === newest.manifestUrl && v.version === newest.version) || v.shards.includes(forUrl);
  const versions = (await getAll(STORES.versions)).filter((v) => !protectedVersion(v));
  const byAge = (a, b) => a.lastUsed - b.lastUsed;
  const candidates = [...versions.filter((v) => !isActive(v)).sort(byAge), ...versions.filter(isActive).sort(byAge)];
  for (const victim of candidates) {
    await evictVersion(victim, 'quota');
    if (await fits()) return true;
  }
  return false;
}

/**
 * Workbox plugin for every route that stores: before a response is cached, if it would not
 * fit under the quota, old model versions are evicted (never the one the app runs, nor the
 * one loading); if it still would not fit, the page is told (`quota-full`) and the response
 * is served but not stored. (Workbox only reports a failed put after the fact, through
 * `registerQuotaErrorCallback`, and its ExpirationPlugin would empty the whole shard cache.)
 */
export const quotaGuard = {
  async cacheWillUpdate({ request, response }) {
    if (!response || response.status !== 200) return null;
    const needBytes = Number(response.headers.get('content-length')) || (await response.clone().arrayBuffer()).byteLength;
    if (await evictForQuota(needBytes, request.url)) return response;
    const { usage = 0, quota = 0 } = await navigator.storage.estimate();
    announce('quota-full', { url: request.url, usage, quota, needBytes });
    return null;
  },
};

export async function listVersions() {
  return { versions: await getAll(STORES.versions), active: await getAll(STORES.active) };
}
