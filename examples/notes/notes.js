// Offline semantic search over the user's own notes. The sentence-embedding model (a
// Cairn text bundle named in app-config.json, written by `cairn app build`) runs in
// Cairn's worker; notes and their embeddings live in IndexedDB; the service worker keeps
// the app, the model and its tokenizer for offline use. Nothing leaves the device.

import { Cairn } from './cairn/cairn.js';
import { addNotes, allNotes, updateNotes } from './notes-db.js';

const $ = (id) => document.getElementById(id);
// State the browser tests read (and a person can inspect in the console).
const app = (window.notesApp = { events: [], model: null, notes: [] });
const log = (type, detail = {}) => app.events.push({ type, ...detail, t: performance.now() });
const status = (text) => { $('status').textContent = text; };

function showNetwork() {
  $('network').textContent = navigator.onLine ? 'Online' : 'Offline';
  $('network').classList.toggle('offline', !navigator.onLine);
}
addEventListener('online', showNetwork);
addEventListener('offline', showNetwork);
showNetwork();

/** A service worker controls the page before Cairn's worker starts, so its fetches are cached. */
async function serviceWorker() {
  if (!('serviceWorker' in navigator)) return false;
  await navigator.serviceWorker.register('./sw.js', { type: 'module', updateViaCache: 'none' });
  if (navigator.serviceWorker.controller) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 15000);
    navigator.serviceWorker.addEventListener('controllerchange', () => { clearTimeout(timer); resolve(true); }, { once: true });
  });
}

/** Notes embedded by another model version are embedded again: vectors of two models do not compare. */
async function reembedStale(model) {
  const stale = app.notes.filter((n) => n.model !== model.version);
  if (stale.length === 0) return;
  status(`Updating ${stale.length} notes for the new model…`);
  const { embeddings } = await model.embed(stale.map((n) => n.text));
  stale.forEach((n, i) => { n.embedding = embeddings[i].slice(); n.model = model.version; });
  await updateNotes(stale);
  log('notes-reembedded', { count: stale.length });
}

/** Embeds and stores notes. Notes added in the same task (a paste of many, an import) are
 *  embedded together: one `embed` call, which the worker runs as padded batches, instead of
 *  one request per note filling the worker's bounded queue. */
let waitingAdds = [];
function add(texts) {
  return new Promise((resolve, reject) => {
    if (waitingAdds.length === 0) setTimeout(flushAdds, 0);
    waitingAdds.push({ texts, resolve, reject });
  });
}

async function flushAdds() {
  const batch = waitingAdds;
  waitingAdds = [];
  try {
    const model = await ready;
    const texts = batch.flatMap((b) => b.texts);
    const { embeddings, truncated } = await model.embed(texts);
    const notes = texts.map((text, i) => ({ text, embedding: embeddings[i].slice(), model: model.version }));
    const ids = await addNotes(notes);
    notes.forEach((n, i) => { n.id = ids[i]; });
    app.notes.push(...notes);
    $('count').textContent = app.notes.length;
    log('notes-added', { count: texts.length, total: app.notes.length, truncated });
    let at = 0;
    for (const b of batch) { b.resolve(ids.slice(at, at + b.texts.length)); at += b.texts.length; }
  } catch (e) {
    for (const b of batch) b.reject(e);
  }
}

/** The `k` notes closest in meaning to `query` (embeddings are unit vectors: cosine = dot). */
async function search(query, k = 5) {
  const model = await ready;
  const { embeddings: [q] } = await model.embed(query);
  const scored = app.notes.map((n) => {
    let dot = 0;
    for (let i = 0; i < q.length; i++) dot += q[i] * n.embedding[i];
    return { id: n.id, text: n.text, score: dot };
  });
  scored.sort((a, b) => b.score - a.score);
  const top = scored.slice(0, k);
  $('results').replaceChildren(...top.map(({ text, score }) => {
    const li = document.createElement('li');
    li.textContent = text;
    const s = document.createElement('span');
    s.className = 'score';
    s.textContent = score.toFixed(2);
    li.append(s);
    return li;
  }));
  log('searched', { query, top });
  return top;
}

app.add = add;
app.search = search;

$('add-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('note').value.trim();
  if (!text) return;
  $('note').value = '';
  add([text]).catch((err) => status(`Could not add the note: ${err.message}`));
});
$('search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = $('query').value.trim();
  if (q) search(q).catch((err) => status(`Search failed: ${err.message}`));
});

const ready = (async () => {
  const controlled = await serviceWorker();
  log('sw-controlled', { controlled });
  const config = await (await fetch('./app-config.json')).json();
  app.notes = await allNotes();
  $('count').textContent = app.notes.length;
  status(`Loading the ${config.model.name} model…`);
  // The package's worker finds its wasm builds beside itself (./cairn/, copied by `cairn app build`).
  const cairn = await Cairn.start();
  const model = await (await cairn.load(config.model.url)).complete;
  app.model = model;
  await reembedStale(model);
  status(`Ready: ${model.name} runs on this device (${cairn.backend}); ${app.notes.length} notes.`);
  log('model-ready', { notes: app.notes.length, backend: cairn.backend, maxLength: model.manifest.text?.max_length });
  return model;
})();
ready.catch((err) => { status(`The model could not be loaded: ${err.message}`); log('load-error', { code: err.code, message: err.message }); });
