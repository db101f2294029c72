// The service worker's IndexedDB: the edge request queue, the results of replayed
// requests, and the model versions whose shards sit in the shard cache. One small
// promise wrapper, because IndexedDB's request/transaction events are all it needs.

const DB_NAME = 'cairn-sw';
const DB_VERSION = 1;
export const STORES = { queue: 'edge-queue', results: 'edge-results', versions: 'model-versions', active: 'active-models' };

let opening = null;
export function openDb() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      // Queued edge requests replay in the order they were made (autoIncrement keys).
      db.createObjectStore(STORES.queue, { keyPath: 'seq', autoIncrement: true });
      db.createObjectStore(STORES.results, { keyPath: 'key' });
      // One record per model version: its manifest URL, version and shard URLs.
      db.createObjectStore(STORES.versions, { keyPath: 'id' });
      // model name -> the version the app uses now (never evicted).
      db.createObjectStore(STORES.active, { keyPath: 'name' });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => { opening = null; reject(req.error); };
  });
  return opening;
}

const done = (req) => new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });

/** Runs `fn(store)` in one transaction and resolves with its result once committed. */
export async function withStore(name, mode, fn) {
  const db = await openDb();
  const tx = db.transaction(name, mode);
  const result = await fn(tx.objectStore(name), done);
  await new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); tx.onabort = () => reject(tx.error); });
  return result;
}

export const getAll = (name) => withStore(name, 'readonly', (s, d) => d(s.getAll()));
export const get = (name, key) => withStore(name, 'readonly', (s, d) => d(s.get(key)));
export const put = (name, value) => withStore(name, 'readwrite', (s, d) => d(s.put(value)));
export const remove = (name, key) => withStore(name, 'readwrite', (s, d) => d(s.delete(key)));
