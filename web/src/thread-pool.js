// Threads for Cairn's threaded wasm build (docs/adr/0019): which build a context can run,
// how many threads to use, and starting the pool workers that share the module's memory.

// (Defined beside the build choice, which a service worker shares without this module's Node paths.)
export { threadsAvailable } from './backend.js';

/** Default cap on threads: past 4, a MobileNet-sized model gains little and phones heat up. */
export const THREAD_CAP = 4;

/** Threads to run on: `requested` if given, else the machine's cores up to THREAD_CAP. */
export function threadCount(requested, cores = globalThis.navigator?.hardwareConcurrency ?? 1) {
  const n = Number(requested);
  if (requested != null && requested !== '' && !(Number.isInteger(n) && n >= 1)) {
    throw new Error(`threads must be a whole number >= 1, got '${requested}'`);
  }
  return requested != null && requested !== '' ? n : Math.max(1, Math.min(cores, THREAD_CAP));
}

/** Starts a pool worker as a Web Worker and resolves once it is parked in the pool. */
export function spawnWebWorker(init) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./pool-worker.js', import.meta.url), { type: 'module', name: 'cairn-pool' });
    worker.onmessage = ({ data }) => (data === 'ready' ? resolve(worker) : reject(new Error(`a Cairn pool worker failed to start: ${data.error}`)));
    worker.onerror = (e) => reject(new Error(`a Cairn pool worker failed to start: ${e.message ?? 'script error'}`));
    worker.postMessage(init);
  });
}

/** The same as a Node worker thread (Node has no Web Workers); it does not keep Node alive. */
export async function spawnNodeWorker(init) {
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(new URL('./pool-worker.js', import.meta.url));
  worker.unref();
  return new Promise((resolve, reject) => {
    worker.once('message', (data) => (data === 'ready' ? resolve(worker) : reject(new Error(`a Cairn pool worker failed to start: ${data.error}`))));
    worker.once('error', reject);
    worker.postMessage(init);
  });
}

/**
 * Starts `threads - 1` pool workers for an initialised threaded build (`pkg`, loaded from
 * `pkgUrl`; null where the pool worker imports its glue by name, as in the npm package): the
 * calling thread is the pool's first thread. Resolves with the workers.
 */
export async function startThreadPool(pkg, pkgUrl, threads, spawn = spawnWebWorker) {
  const init = { pkgUrl: pkgUrl == null ? null : String(pkgUrl), module: pkg.wasmModule(), memory: pkg.wasmMemory() };
  const workers = await Promise.all(Array.from({ length: threads - 1 }, () => spawn(init)));
  // 'ready' is posted just before a worker enters the pool: wait until all have, so the
  // first run already splits its work over every thread.
  for (let waited = 0; pkg.kernelThreads() < threads; waited += 5) {
    if (waited > 5000) throw new Error(`only ${pkg.kernelThreads()} of ${threads} Cairn threads joined the pool`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return workers;
}
