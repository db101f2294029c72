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

/** Plugin for the manifest route: records each version that reaches the cache. */
export const recordVersion = {
  async cacheDidUpdate({ request, bytes }) {
    let m;
    try { m = JSON.parse(new TextDecoder().decode(bytes)); } catch { return; }
    if (!Array.isArray(m?.shards) || typeof m.version !== 'string') return;
    const manifestUrl = request.url;
    await put(STORES.versions, {
      id: `${manifestUrl}#${m.version}`, manifestUrl, name: m.name, version: m.version,
      shards: m.shards.map((s) => new URL(s.path, manifestUrl).href),
      bytes: m.shards.reduce((n, s) => n + s.bytes, 0), lastUsed: Date.now(),
    });
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

/** Plugin for the shard route: a full quota first costs old versions, then (if still full) the page is told. */
export const quotaGuard = {
  async cachePutFailed({ request, bytes, final }) {
    if (!final && (await evictForQuota(bytes.length, request.url))) return true;
    const { usage = 0, quota = 0 } = await navigator.storage.estimate();
    announce('quota-full', { url: request.url, usage, quota, needBytes: bytes.length });
    return false;
  },
};

export async function listVersions() {
  return { versions: await getAll(STORES.versions), active: await getAll(STORES.active) };
}
