// The notes and their embeddings, in IndexedDB: they stay on this device and are there
// offline. Each note keeps the model version its embedding came from, so a new model
// version re-embeds the notes instead of comparing vectors of two different models.

const DB = 'cairn-notes';
const STORE = 'notes';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function transaction(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result.result ?? result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the notes transaction was aborted'));
    });
  } finally {
    db.close();
  }
}

/** Stores notes `{ text, embedding: Float32Array, model }`; resolves with their ids. */
export async function addNotes(notes) {
  const reqs = [];
  await transaction('readwrite', (store) => { for (const n of notes) reqs.push(store.put({ ...n, added: Date.now() })); return {}; });
  return reqs.map((r) => r.result);
}

export function allNotes() {
  return transaction('readonly', (store) => store.getAll());
}

/** Replaces the embeddings of existing notes (after a model update). */
export async function updateNotes(notes) {
  await transaction('readwrite', (store) => { for (const n of notes) store.put(n); return {}; });
}
