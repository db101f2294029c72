// Types of @cairn-ml/web/build-sw (Node): bundle a service worker and inject its precache list.
export function buildServiceWorker(options: {
  /** The service worker's source (imports workbox-* and @cairn-ml/web/sw; TypeScript is fine). */
  swSource: string;
  /** The built app: every file in it but models/** is precached. */
  appDir: string;
  /** Output name inside appDir (default 'sw.js'). */
  dest?: string;
  /** More globs to leave out of the precache. */
  ignore?: string[];
}): Promise<{ swDest: string; count: number; size: number; warnings: string[] }>;
