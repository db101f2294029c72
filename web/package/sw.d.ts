// Types of @cairn-ml/web/sw: Cairn's parts of a Workbox service worker.

import type { WorkboxPlugin, RouteHandlerObject, RouteMatchCallback } from 'workbox-core/types.js';

/** Cache Storage names Cairn's routes use (the worker reads the shard cache too). */
export const SHARD_CACHE: 'cairn-shards-v1';
export const MANIFEST_CACHE: 'cairn-manifests-v1';
/** The value of `x-cairn-shard-cache` on a shard the service worker stores. */
export const STORED_BY_SW: 'stored-by-sw';
/** Background Sync tag of the edge queue. */
export const SYNC_TAG: 'cairn-edge-queue';
/** BroadcastChannel on which the service worker announces what happened. */
export const CHANNEL: 'cairn';

export interface CairnRouteOptions {
  /** NetworkFirst timeout for bundle manifests (default 3). */
  manifestTimeoutSeconds?: number;
  /** Sent as `Authorization: Bearer` with every edge request, queued or not. */
  apiKey?: string;
  /** More headers for every edge request. */
  edgeHeaders?: Record<string, string>;
  /** `false`: leave POST /v1/* to the app. */
  edge?: boolean;
}

/** The CPU wasm builds this browser's worker can start with `backend: 'auto'` (the single-threaded one the engine validates, and its threaded twin). */
export function buildsForThisBrowser(): Array<'relaxed' | 'simd' | 'scalar' | 'threads' | 'threads-relaxed'>;
/** Precache entries (or URLs) without the `cairn_web_<build>.wasm` files this browser never picks: `precacheAndRoute(withoutUnusedBuilds(self.__WB_MANIFEST))`. */
export function withoutUnusedBuilds<T extends string | { url: string }>(manifest: T[], builds?: string[]): T[];

/** Registers the shard, manifest and edge routes with workbox-routing. */
export function registerCairnRoutes(options?: CairnRouteOptions): void;
/** The page's requests (skip-waiting, replay, model-active, queued, result, versions, evict-for-quota), Background Sync, replays on start. */
export function handleCairnMessages(): void;

export const isShard: RouteMatchCallback;
export const isManifest: RouteMatchCallback;
/** A text bundle's tokenizer.json (cached with the manifests by registerCairnRoutes). */
export const isTokenizer: RouteMatchCallback;
export const isEdgeRequest: RouteMatchCallback;

/** Marks shard responses and stores a shard only if its bytes hash to its name. */
export const shardVerification: WorkboxPlugin;
/** Records each bundle manifest version that reaches the cache. */
export const recordVersion: WorkboxPlugin;
/** A 5xx counts as the network failing (NetworkFirst then answers from the cache). */
export const serverErrorsAsOffline: WorkboxPlugin;
/** Evicts old model versions when a response would not fit; tells the page (`quota-full`) when it still does not. */
export const quotaGuard: WorkboxPlugin;

/** A route handler for POST /v1/*: the network, else an IndexedDB queue replayed with the same Idempotency-Key. */
export function edgeQueue(options?: { apiKey?: string; headers?: Record<string, string> }): RouteHandlerObject;
export const edgeQueueHandler: RouteHandlerObject;

export interface EvictedVersion { manifestUrl: string; version: string; shards: number; freedBytes: number; reason: 'superseded' | 'quota' }
export interface ModelVersion { id: string; manifestUrl: string; name: string; version: string; shards: string[]; bytes: number; lastUsed: number }
export interface EdgeResult { key: string; url: string; status: number; contentType: string | null; body: string; queuedAt: number; doneAt: number; trigger: string }

/** The page runs `version` of the model at `manifestUrl`: protect it, evict the shards only older versions used. */
export function activate(manifestUrl: string, version: string): Promise<EvictedVersion[]>;
/** Frees space until `needBytes` more fit, never touching the active model nor the one holding `forUrl`; resolves whether it fits. */
export function evictForQuota(needBytes?: number, forUrl?: string | null): Promise<boolean>;
export function listVersions(): Promise<{ versions: ModelVersion[]; active: { name: string; manifestUrl: string; version: string; lastUsed: number }[] }>;
/** Sends queued edge requests oldest first; resolves with the keys sent. */
export function replay(trigger: string): Promise<string[]>;
export function queued(): Promise<{ key: string; url: string; queuedAt: number }[]>;
export function resultOf(key: string): Promise<EdgeResult | undefined>;
export function announce(type: string, detail?: Record<string, unknown>): void;
