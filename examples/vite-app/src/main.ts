// A Vite app that classifies images on the device with Cairn, offline after one visit.
import { Cairn, CairnError, type Model, type RunResult } from '@cairn-ml/web';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = (text: string) => { $('status').textContent = text; };
// What the example's browser test reads.
const state: { model: Model | null; results: RunResult[]; events: string[]; announcements: { type: string }[] } = { model: null, results: [], events: [], announcements: [] };
(window as unknown as { cairnExample: typeof state }).cairnExample = state;
// The service worker's news: verified/rejected shards, evicted versions, queued and replayed edge requests.
new BroadcastChannel('cairn').onmessage = ({ data }) => state.announcements.push(data);
// Back online: queued edge requests go out now (Background Sync may come later, or not at all).
addEventListener('online', () => navigator.serviceWorker?.controller?.postMessage({ type: 'replay', trigger: 'online' }));

async function controlled(): Promise<void> {
  if (!('serviceWorker' in navigator)) return;
  await navigator.serviceWorker.register('/sw.js', { type: 'module' });
  // Cairn's worker must start under the service worker, so its downloads are kept offline.
  if (!navigator.serviceWorker.controller) await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
}

async function main(): Promise<void> {
  await controlled();
  const cairn = await Cairn.start();
  const model = await cairn.load('/models/efficientnet_lite0/manifest.json', {
    onProgress: (p) => status(`Model: ${(p.bytes / 1e6).toFixed(1)} of ${(p.totalBytes / 1e6).toFixed(1)} MB`),
  });
  await model.complete;
  state.model = model;
  // Tell the service worker which version runs: shards only older versions used are evicted.
  navigator.serviceWorker?.controller?.postMessage({ type: 'model-active', manifestUrl: model.url.href, version: model.version });
  status(`Ready: ${model.name} ${model.version} on ${cairn.backend}`);
  state.events.push('ready');
  $<HTMLInputElement>('file').addEventListener('change', async (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (!file) return;
    const result = await model.run(await createImageBitmap(file));
    state.results.push(result);
    $('top').replaceChildren(...(result.top ?? []).map(({ label, p }) => Object.assign(document.createElement('li'), { textContent: `${label} ${(p * 100).toFixed(1)}%` })));
  });
}

main().catch((e: unknown) => {
  status(e instanceof CairnError ? `${e.code}: ${e.message}` : String(e));
  state.events.push(`error: ${String(e)}`);
});
