/// <reference lib="webworker" />
// A small typed consumer of @cairn-ml/web, service-worker side (lib WebWorker, as Workbox's
// types need): Cairn's plugins and handlers fit Workbox's types.
import * as sw from '@cairn-ml/web/sw';
import type { buildServiceWorker } from '@cairn-ml/web/build-sw';
import type { WorkboxPlugin, RouteHandlerObject } from 'workbox-core/types.js';

export function serviceWorker(): void {
  sw.registerCairnRoutes({ manifestTimeoutSeconds: 5, apiKey: 'k' });
  sw.handleCairnMessages();
  const plugins: WorkboxPlugin[] = [sw.shardVerification, sw.quotaGuard, sw.recordVersion, sw.serverErrorsAsOffline];
  const handler: RouteHandlerObject = sw.edgeQueue({ headers: { 'x-app': 'demo' } });
  const name: 'cairn-shards-v1' = sw.SHARD_CACHE;
  const precache: Array<{ url: string; revision: string | null }> = sw.withoutUnusedBuilds([{ url: 'cairn/cairn_web_simd.wasm', revision: null }]);
  const builds: string[] = sw.buildsForThisBrowser();
  void [plugins, handler, name, precache, builds];
}

export async function replayed(): Promise<number> {
  const keys: string[] = await sw.replay('test');
  const evicted = await sw.activate('/models/m/manifest.json', '2');
  return keys.length + evicted.reduce((n, e) => n + e.freedBytes, 0);
}

export type Builder = typeof buildServiceWorker;
