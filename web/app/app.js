// The demo: an offline image classifier. Loads the model named in app-config.json
// (written by `cairn app build`) into Cairn's worker, classifies picked, dropped or
// camera images on the device, can ask the edge server too (queued while offline),
// and shows load progress, storage use, and app updates.

import { Cairn } from './cairn/cairn.js';
import { ServiceWorkerClient } from './sw-client.js';
import { requestPersistence, showStorage } from './storage-status.js';
import { wireImageInputs } from './image-input.js';
import { askEdge, topOfAnswer } from './edge.js';
import { drawHeatmap } from './heatmap.js';

const $ = (id) => document.getElementById(id);
const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;
// State the browser tests read (and a person can inspect in the console).
const app = (window.cairnApp = { events: [], model: null, lastResult: null, edgeResults: [], explanations: [] });
const log = (type, detail = {}) => app.events.push({ type, ...detail, t: performance.now() });

function alertUser(text) {
  $('alert').textContent = text;
  $('alert').hidden = !text;
}

// --- network status -------------------------------------------------------------
function showNetwork() {
  $('network').textContent = navigator.onLine ? 'Online' : 'Offline';
  $('network').classList.toggle('offline', !navigator.onLine);
}
addEventListener('online', () => { showNetwork(); sw.supported && sw.ask({ type: 'replay', trigger: 'online' }); });
addEventListener('offline', showNetwork);
showNetwork();

// --- service worker: updates and announcements --------------------------------------
const sw = new ServiceWorkerClient({
  onUpdateWaiting(apply) {
    log('update-waiting');
    $('update').hidden = false;
    $('update-now').onclick = apply;
  },
  onAnnouncement(msg) {
    const { type, ...detail } = msg;
    log(`sw:${type}`, detail);
    if (msg.type === 'edge-result') showEdgeResult(msg);
    if (msg.type === 'quota-full') alertUser(`Storage is full (this app uses ${MB(msg.usage)}), so part of the model could not be saved for offline use. The app still works while online; free some space in the browser's site settings to use it offline.`);
    if (msg.type === 'model-version-evicted' || msg.type === 'quota-full') refreshStorage();
  },
});

// --- storage --------------------------------------------------------------------
let persisted;
const refreshStorage = () => showStorage({ meter: $('storage-meter'), text: $('storage-text'), persist: $('persist') }, persisted);

// --- classification ---------------------------------------------------------------
function showTop(top, { level, where, ms }) {
  const list = $('top5');
  list.replaceChildren(...top.map(({ label, p }) => {
    const li = document.createElement('li');
    const pct = `${(p * 100).toFixed(1)}%`;
    li.innerHTML = '<span class="label"><span></span><span></span></span><div class="bar-p" aria-hidden="true"></div>';
    li.querySelector('.label span').textContent = label;
    li.querySelector('.label span:last-child').textContent = pct;
    li.querySelector('.bar-p').style.width = pct;
    return li;
  }));
  const int8 = app.config?.model.weights === 'i8' && (where === 'device' || !app.config.edgeModel);
  const levelText = level === 'full' ? (int8 ? 'int8 model' : 'full precision') : `${level} level (refining)`;
  // How far a coarse level's answers can be trusted: its agreement with the full model,
  // measured by `cairn pack` on real photos and stored in the manifest.
  const fidelity = level !== 'full' && where === 'device' ? app.model?.manifest.levels.find((l) => l.name === level)?.fidelity : null;
  const agree = fidelity ? ` <span class="tag">agrees with the full model on ${(100 * (fidelity.decisive_top1_agreement ?? fidelity.top1_agreement)).toFixed(0)}% of ${fidelity.decisive_top1_agreement != null ? 'clear-cut ' : ''}test images</span>` : '';
  $('meta').innerHTML = `<span class="tag">${where === 'edge' ? 'on the edge server' : 'on this device'}</span> <span class="tag">${levelText}</span>${agree}${ms ? ` in ${ms.toFixed(0)} ms` : ''}`;
}

let lastImage = null;
async function classify(bitmap, previewUrl) {
  lastImage = bitmap;
  $('preview').src = previewUrl;
  $('preview').alt = 'The image being classified';
  $('preview').hidden = false;
  if (!app.model) { $('meta').textContent = 'The model is still loading; the image will be classified when it is ready.'; await modelReady; }
  const r = await app.model.run(bitmap);
  app.lastResult = { top: r.top, level: r.level, where: r.where };
  log('classified', app.lastResult);
  showTop(r.top, { level: r.level, where: r.where, ms: r.timings.runMs });
  $('ask-edge').disabled = false;
  $('explain').disabled = false;
}

// --- the edge --------------------------------------------------------------------
// The edge runs the full-precision bundle where the app was built with one (--edge-model).
const edgeModel = () => app.config.edgeModel ?? app.model.name;

function showEdgeResult(msg) {
  if (msg.status >= 400) { $('edge-status').textContent = `The edge refused the queued request (${msg.status}).`; return; }
  if (new URL(msg.url).pathname.endsWith('/explain')) {
    try { showExplanation(JSON.parse(msg.body), msg.key); } catch (e) { $('edge-status').textContent = `The edge's explanation could not be read: ${e.message}`; return; }
    $('edge-status').textContent = `The queued explanation arrived (sent ${msg.trigger === 'sync' ? 'by Background Sync' : 'when back online'}).`;
    return;
  }
  let top;
  try { top = topOfAnswer(msg.body); } catch (e) { $('edge-status').textContent = `The edge's answer could not be read: ${e.message}`; return; }
  app.edgeResults.push({ key: msg.key, top });
  $('edge-status').textContent = `The queued request reached the edge (sent ${msg.trigger === 'sync' ? 'by Background Sync' : 'when back online'}).`;
  showTop(top, { level: 'full', where: 'edge' });
}

$('ask-edge').addEventListener('click', async () => {
  $('edge-status').textContent = 'Asking the edge…';
  const tensor = await app.model.preprocess(lastImage);
  const r = await askEdge(edgeModel(), tensor);
  log('edge', { state: r.state, key: r.key });
  if (r.state === 'queued') $('edge-status').textContent = 'Offline: the request is queued on this device and will be sent once, when the network is back.';
  else if (r.state === 'failed') $('edge-status').textContent = r.message;
  else {
    const top = topOfAnswer(r.answer);
    app.edgeResults.push({ key: r.key, top });
    $('edge-status').textContent = '';
    showTop(top, { level: 'full', where: 'edge' });
  }
});

// An occlusion heatmap from the edge, drawn over the image the model saw.
function showExplanation(doc, key) {
  const { target, heatmap } = doc;
  drawHeatmap($('heatmap'), lastImage, heatmap);
  const label = target.label ?? `class ${target.index}`;
  $('explain-caption').textContent = `Warm regions are where covering the picture lowered "${label}" (${(target.probability * 100).toFixed(1)}%) the most: ${doc.forward_passes} runs on the edge server.`;
  $('heatmap').setAttribute('aria-label', `Heatmap of the image regions the answer "${label}" depends on`);
  $('explanation').hidden = false;
  app.explanations.push({ key, target, rows: heatmap.rows, cols: heatmap.cols });
  log('explained', { key, target });
}

$('explain').addEventListener('click', async () => {
  $('edge-status').textContent = 'Asking the edge server to explain the answer…';
  const tensor = await app.model.preprocess(lastImage);
  const r = await askEdge(edgeModel(), tensor, 'explain');
  log('explain', { state: r.state, key: r.key });
  if (r.state === 'queued') $('edge-status').textContent = 'Offline: the explanation is queued on this device and will be asked for once, when the network is back.';
  else if (r.state === 'failed') $('edge-status').textContent = r.message;
  else {
    $('edge-status').textContent = '';
    showExplanation(r.answer, r.key);
  }
});

// --- start ----------------------------------------------------------------------
let modelReadyResolve;
const modelReady = new Promise((r) => { modelReadyResolve = r; });

async function start() {
  wireImageInputs({ file: $('file'), drop: $('drop'), camera: $('camera'), cameraBox: $('camera-box'), video: $('video'), snap: $('snap'), stop: $('camera-stop') },
    (bitmap, url) => classify(bitmap, url).catch((e) => alertUser(e.message)), alertUser);
  let deferredInstall;
  addEventListener('beforeinstallprompt', (e) => { e.preventDefault(); deferredInstall = e; $('install').hidden = false; });
  $('install').addEventListener('click', async () => { $('install').hidden = true; await deferredInstall?.prompt(); });

  try {
    await sw.register('./sw.js');
    log('sw-controlled', { controlled: await sw.controlled() });
  } catch (e) { log('sw-error', { message: e.message }); }
  persisted = await requestPersistence().catch(() => false);
  refreshStorage();
  if (sw.supported && navigator.onLine) sw.ask({ type: 'replay', trigger: 'start' }).then((r) => log('replayed', r));

  const config = await (await fetch('./app-config.json')).json();
  const m = config.model;
  app.config = config;
  $('model-name').textContent = `${m.name} · ${m.classes} ImageNet classes · ${MB(m.bytes)}`;
  $('model-note').textContent = m.weights === 'i8'
    ? 'int8 weights made by cairn optimize.'
    : `${m.weights} weights: the int8 version made by cairn optimize is not in this build yet, so the app downloads the full-precision model.`;
  // `?backend=simd` (or scalar, relaxed, threads, threads-relaxed, webgpu) runs the demo on
  // that engine build instead of the one this browser would pick: to compare them, or to
  // check a build on a browser that supports more. The service worker precaches only the
  // picked build; another one is cached at run time when first fetched, so it works offline too.
  const forced = new URLSearchParams(location.search).get('backend');
  const cairn = await Cairn.start(forced ? { backend: forced } : {});
  log('engine', { backend: cairn.backend, forced: forced ?? null });
  $('engine').textContent = `Engine: ${cairn.backend}${forced ? ' (asked for in the address)' : ''}`;
  const manifestUrl = new URL(m.url, location.href).href;
  const onProgress = (p) => {
    $('load-progress').max = p.totalBytes || 1;
    $('load-progress').value = p.bytes;
    const level = p.levelName ? ` · ${p.levelName} level ready` : '';
    $('load-text').textContent = p.done ? `Ready: ${MB(p.totalBytes)} (${MB(p.fromCache)} from this device's cache)` : `${MB(p.bytes)} of ${MB(p.totalBytes)}${level}`;
    if (p.rejected) log('shard-rejected', p.rejected);
    if (p.done) log('load-done', { bytes: p.bytes, fromCache: p.fromCache });
  };
  const explain = (e) => (/damaged and has been removed/.test(e.message)
    ? 'Part of the model saved on this device was damaged, so it was removed. Connect to the network once to download that part again; nothing else is lost.'
    : e.code === 'network' ? 'The model could not be downloaded. Check the connection and try again.' : e.message);
  try {
    app.model = await cairn.load(manifestUrl, { onProgress });
  } catch (e) {
    log('load-error', { code: e.code, message: e.message });
    $('load-text').textContent = 'The model could not be loaded.';
    alertUser(explain(e));
    return;
  }
  log('model-usable', { level: app.model.level, version: app.model.version });
  modelReadyResolve();
  try {
    await app.model.complete;
  } catch (e) {
    log('load-error', { code: e.code, message: e.message });
    alertUser(explain(e));
    return;
  }
  log('model-complete', { version: app.model.version });
  // The version the app now runs: the service worker protects it and drops the ones it replaced.
  if (sw.supported) log('model-active', await sw.ask({ type: 'model-active', manifestUrl, version: app.model.version }));
  refreshStorage();
  if (lastImage) classify(lastImage, $('preview').src);
}

start().catch((e) => { log('start-error', { message: e.message }); alertUser(`The app could not start: ${e.message}`); });
