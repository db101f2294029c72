// Cairn's page-side API. The page never runs inference: a dedicated Web Worker
// (worker.js) owns the wasm instance and the models; this module sends it requests
// and turns its answers into promises, progress callbacks and typed errors.
//
//   const cairn = await Cairn.start();
//   const model = await cairn.load('/models/mobilenetv2/manifest.json', { onProgress });
//   const { outputs, level, where, timings } = await model.run(imageBitmap);

/** An error with a `code` a program can switch on and a message a person can read. */
export class CairnError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'CairnError';
    this.code = code;
  }
}

const HINTS = {
  'shard-corrupt': 'A model file arrived damaged and was rejected (it never ran). Check the connection and try again.',
  'bad-manifest': 'The model description could not be read. The app may be mid-update: reload the page.',
  network: 'The model could not be downloaded. Check the connection and try again.',
  dropped: 'A newer request replaced this one.',
  aborted: 'Cancelled.',
};

export class Cairn {
  #worker;
  #nextId = 1;
  #waiting = new Map(); // id -> { resolve, reject, onProgress, onMessage }
  /** 'simd' or 'scalar': which wasm build the worker runs. */
  backend = null;
  /** The kernels' instruction set, e.g. 'wasm32-simd128'. */
  isa = null;

  /**
   * Starts the worker. `workerUrl` and `wasmBase` default to the files next to this module.
   * `backend: 'scalar'` forces the build without SIMD (otherwise chosen by feature detection).
   * `memoryBudget` (bytes): past it, idle models are unloaded, least recently used first.
   * `edge`: the origin of a `cairn serve` that runs the same bundles; `model.run` then
   * places each request on the device or the edge (see `run`'s `prefer`).
   * @param {{ workerUrl?: string|URL, wasmBase?: string|URL, queueBound?: number, backend?: 'auto'|'scalar', memoryBudget?: number, edge?: string, edgeTimeoutMs?: number }} [options]
   */
  static async start(options = {}) {
    const cairn = new Cairn();
    const workerUrl = new URL(options.workerUrl ?? './worker.js', import.meta.url);
    if (options.wasmBase) workerUrl.searchParams.set('wasm', new URL(options.wasmBase, location.href).href);
    if (options.backend === 'scalar') workerUrl.searchParams.set('backend', 'scalar');
    cairn.#worker = new Worker(workerUrl, { type: 'module', name: 'cairn' });
    cairn.#worker.onmessage = ({ data }) => cairn.#dispatch(data);
    cairn.#worker.onerror = (e) => {
      for (const [, w] of cairn.#waiting) w.reject(new CairnError('runtime', `the Cairn worker failed: ${e.message}`));
      cairn.#waiting.clear();
    };
    cairn.queueBound = options.queueBound ?? 16;
    // An edge server (`cairn serve`) that can run the models too: its origin, e.g. location.origin.
    cairn.edge = options.edge ?? null;
    cairn.edgeTimeoutMs = options.edgeTimeoutMs ?? 3000;
    cairn.battery = null;
    navigator.getBattery?.().then((b) => { cairn.battery = b; }, () => {});
    const hello = await cairn.#request({ type: 'hello', queueBound: cairn.queueBound, memoryBudget: options.memoryBudget });
    cairn.backend = hello.backend;
    cairn.isa = hello.isa;
    return cairn;
  }

  /**
   * Loads a bundle. Resolves as soon as the model can run (after the coarse level of a
   * progressive bundle); `model.complete` resolves when every level has arrived.
   * @param {string|URL} manifestUrl
   * @param {{ onProgress?: (p: LoadProgress) => void, signal?: AbortSignal }} [options]
   */
  load(manifestUrl, { onProgress, signal } = {}) {
    return new Promise((resolve, reject) => {
      let model = null;
      let completeResolve, completeReject;
      const complete = new Promise((res, rej) => { completeResolve = res; completeReject = rej; });
      complete.catch(() => {}); // reported through load() or model.complete, never unhandled
      const id = this.#send({ type: 'load', url: new URL(manifestUrl, location.href).href }, {
        onMessage: (msg) => {
          if (msg.type === 'progress') onProgress?.(msg);
          if (msg.type === 'loaded') {
            if (!model) { model = new Model(this, msg, new URL(manifestUrl, location.href)); resolve(model); }
            model.level = msg.manifest.levels[msg.level].name;
          }
          if (msg.type === 'complete') { model.memoryBytes = msg.memoryBytes; model.loadHeap = msg.heap; completeResolve(model); return true; }
          if (msg.type === 'error') {
            const err = new CairnError(msg.code, `${msg.message}${HINTS[msg.code] ? ` (${HINTS[msg.code]})` : ''}`);
            model ? completeReject(err) : reject(err);
            return true;
          }
          return false;
        },
      });
      this.#completions.set(id, complete);
      const abort = () => this.#worker.postMessage({ type: 'abort', target: id });
      if (signal?.aborted) abort();
      else signal?.addEventListener('abort', abort, { once: true });
    });
  }

  /** Load id -> promise of the load's completion (every level in). */
  #completions = new Map();

  /** Bytes of wasm memory the worker holds (it only grows). */
  async memoryBytes() {
    return (await this.#request({ type: 'memory' })).memoryBytes;
  }

  /**
   * Wasm memory size, and the bytes Rust has allocated now and at peak (since the worker
   * started, or since the last call with `resetPeak`, which starts a new peak measurement).
   * @param {{ resetPeak?: boolean }} [options]
   */
  async memory(options = {}) {
    const m = await this.#request({ type: 'memory', resetPeak: !!options.resetPeak });
    return { memoryBytes: m.memoryBytes, heapLive: m.heapLive, heapPeak: m.heapPeak };
  }

  /** Stops the worker and frees everything it held. */
  terminate() {
    this.#worker.terminate();
  }

  _completeOf(model) {
    return this.#completions.get(model._loadId);
  }

  _run(msg, signal) {
    return new Promise((resolve, reject) => {
      const id = this.#send(msg, {
        onMessage: (m) => {
          if (m.type === 'result' || m.type === 'tensor') resolve(m);
          else if (m.type === 'error') reject(new CairnError(m.code, m.message));
          else return false;
          return true;
        },
      }, msg.transfer);
      const abort = () => this.#worker.postMessage({ type: 'abort', target: id });
      if (signal?.aborted) abort();
      else signal?.addEventListener('abort', abort, { once: true });
    });
  }

  _post(msg) {
    return this.#request(msg);
  }

  #request(msg) {
    return new Promise((resolve, reject) => {
      this.#send(msg, {
        onMessage: (m) => {
          if (m.type === 'error') reject(new CairnError(m.code, m.message));
          else resolve(m);
          return true;
        },
      });
    });
  }

  #send(msg, handler, transfer = []) {
    const id = this.#nextId++;
    this.#waiting.set(id, handler);
    const { transfer: _, ...rest } = msg;
    this.#worker.postMessage({ ...rest, id }, transfer);
    return id;
  }

  #dispatch(msg) {
    if (msg.type === 'queue') { this.onQueue?.(msg); return; }
    if (msg.type === 'evicted') { this.onEvicted?.(msg); return; }
    const handler = this.#waiting.get(msg.id);
    if (handler && handler.onMessage(msg)) this.#waiting.delete(msg.id);
  }
}

// Running averages (exponential, this weight for the newest sample) feeding the placement policy.
const EWMA = 0.3;
const ewma = (avg, x) => (avg == null ? x : avg + EWMA * (x - avg));

class Model {
  #placement = { deviceMs: null, edgeMs: null, edgeFailures: 0, lastEdgeFailure: null };

  constructor(cairn, loaded, url) {
    this.url = url;
    this.cairn = cairn;
    this.handle = loaded.handle;
    this._loadId = loaded.id;
    this.manifest = loaded.manifest;
    this.name = loaded.manifest.name;
    this.version = loaded.manifest.version;
    this.backend = loaded.backend;
    /** The level the model runs at now ('coarse' until the rest arrives, then 'full'). */
    this.level = loaded.manifest.levels[loaded.level].name;
    this.labels = loaded.manifest.outputs[0]?.labels ?? null;
  }

  /** Resolves when every level has arrived (the model then runs at full precision). */
  get complete() {
    return this.cairn._completeOf(this);
  }

  /**
   * Runs the model. `input` is an ImageBitmap, ImageData, canvas or image element
   * (preprocessed as the manifest says) or `{ data: Float32Array, shape: number[] }`.
   * `stream`: a name for a latest-wins stream (camera frames): a newer frame replaces a
   * waiting one, whose promise rejects with code 'dropped'.
   * @param {RunInput} input
   * `prefer`: 'auto' (the placement policy decides, when an edge is configured), 'device' or
   * 'edge'. An edge error or timeout falls back to the device; `where` says where it ran and
   * `placement` why ({ where, rule, reason }).
   * `width`: a run-time width, the share of the full model's MACs to spend (bundles packed
   * with widths, `cairn optimize --widths`); the nearest width the model has runs, and the
   * result's `width` and `widthReason` say which and why. Default 1 (the full model).
   * @param {{ priority?: number, stream?: string, signal?: AbortSignal, prefer?: 'auto'|'device'|'edge', width?: number }} [options]
   */
  async run(input, { priority = 0, stream = '', signal, prefer = 'auto', width = 1 } = {}) {
    if (signal?.aborted) throw new CairnError('aborted', 'Cancelled.');
    const placement = this.cairn.edge ? await this.#decide(prefer) : null;
    let fallback = null;
    if (placement?.where === 'edge') {
      try {
        return await this.#runOnEdge(input, placement, signal);
      } catch (e) {
        if (signal?.aborted) throw new CairnError('aborted', 'Cancelled.');
        // Edge errors and timeouts fall back to the device; only `where` (and `placement`) tell.
        this.#placement.edgeFailures++;
        this.#placement.lastEdgeFailure = performance.now();
        fallback = { where: 'device', rule: 'edge-error', reason: `the edge failed (${e.message}): ran on the device` };
      }
    }
    const t0 = performance.now();
    const { payload, transfer } = await this.#prepare(input);
    const msg = await this.cairn._run({ type: 'run', handle: this.handle, input: payload, priority, stream, width, transfer }, signal);
    this.#placement.deviceMs = ewma(this.#placement.deviceMs, performance.now() - t0);
    const outputs = msg.outputs;
    const top = this.labels && outputs[0].data.length === this.labels.length ? topK(outputs[0].data, this.labels, 5) : null;
    return { outputs, top, level: msg.level, where: msg.where, timings: msg.timings, placement: fallback ?? placement, width: msg.width, widthReason: msg.widthReason };
  }

  /** Where the next run goes, by the Rust policy in the worker, from what the browser tells. */
  async #decide(prefer) {
    const c = navigator.connection;
    const b = this.cairn.battery;
    const p = this.#placement;
    const signals = {
      online: navigator.onLine, edgeAvailable: true, effectiveType: c?.effectiveType, rtt: c?.rtt, downlink: c?.downlink,
      saveData: c?.saveData ?? false, batteryLevel: b?.level, charging: b?.charging, deviceMemory: navigator.deviceMemory,
      hardwareConcurrency: navigator.hardwareConcurrency, cachedLevel: this.level, deviceMs: p.deviceMs ?? undefined,
      edgeMs: p.edgeMs ?? undefined, edgeFailures: p.edgeFailures,
      sinceEdgeFailureMs: p.lastEdgeFailure == null ? undefined : performance.now() - p.lastEdgeFailure, prefer,
    };
    return (await this.cairn._post({ type: 'decide', signals })).decision;
  }

  /** POSTs the input tensor to the edge's /v1/models/NAME/infer (NAME: the bundle's directory). */
  async #runOnEdge(input, placement, signal) {
    const t0 = performance.now();
    // Images are preprocessed by the worker's Rust code, exactly as for a run on the device.
    const { data, shape } = input?.data instanceof Float32Array ? input : await this.preprocess(input);
    const name = this.url.pathname.split('/').slice(-2)[0];
    const timeout = AbortSignal.timeout(this.cairn.edgeTimeoutMs);
    const res = await fetch(new URL(`/v1/models/${encodeURIComponent(name)}/infer`, this.cairn.edge), {
      method: 'POST', body: data, signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      headers: { 'content-type': 'application/octet-stream', 'cairn-shape': shape.join(',') },
    });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error ?? `HTTP ${res.status}`);
    const [outName, out] = Object.entries(answer.outputs)[0];
    const outputs = [{ name: outName, shape: out.shape, data: Float32Array.from(out.data) }];
    const ms = performance.now() - t0;
    this.#placement.edgeMs = ewma(this.#placement.edgeMs, ms);
    this.#placement.edgeFailures = 0;
    const top = this.labels && outputs[0].data.length === this.labels.length ? topK(outputs[0].data, this.labels, 5) : null;
    return { outputs, top, level: answer.level, where: 'edge', timings: { edgeMs: ms, queueMs: answer.timings.queue_ms, runMs: answer.timings.compute_ms, batch: answer.batch_rows }, placement };
  }

  /**
   * The input tensor the model would run on for `input`, preprocessed as the manifest
   * says (in the worker, in Rust): e.g. to send the same input to an edge server.
   * @param {RunInput} input
   * @returns {Promise<{ name: string, data: Float32Array, shape: number[] }>}
   */
  async preprocess(input) {
    const { payload, transfer } = await this.#prepare(input);
    const m = await this.cairn._run({ type: 'preprocess', handle: this.handle, input: payload, transfer });
    return { name: m.name, data: m.data, shape: m.shape };
  }

  /** Frees the model's memory in the worker. */
  unload() {
    return this.cairn._post({ type: 'unload', handle: this.handle });
  }

  async #prepare(input) {
    if (input && input.data instanceof Float32Array && Array.isArray(input.shape)) {
      const data = input.data.slice();
      return { payload: { data, shape: input.shape }, transfer: [data.buffer] };
    }
    const pre = this.manifest.inputs[0]?.preprocess;
    if (!pre) throw new CairnError('bad-input', 'This model takes tensors ({ data, shape }), not images: its bundle has no image preprocessing.');
    const [h, w] = pre.size;
    if (typeof ImageData !== 'undefined' && input instanceof ImageData && input.width === w && input.height === h) {
      const rgba = new Uint8Array(input.data.buffer.slice(0));
      return { payload: { rgba, width: w, height: h }, transfer: [rgba.buffer] };
    }
    // The browser scales a copy asynchronously (the caller's image stays usable) and the
    // worker reads its pixels: a camera stream costs the main thread almost nothing.
    const bitmap = await createImageBitmap(input, { resizeWidth: w, resizeHeight: h, resizeQuality: 'medium' });
    return { payload: { bitmap, width: w, height: h }, transfer: [bitmap] };
  }
}

function topK(scores, labels, k) {
  const max = scores.reduce((m, v) => Math.max(m, v), -Infinity);
  const exps = Array.from(scores, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  // Already probabilities (a softmax output) if they sum to ~1 and lie in [0, 1].
  const isProb = Math.abs(scores.reduce((a, b) => a + b, 0) - 1) < 1e-3 && scores.every((v) => v >= 0 && v <= 1);
  const probs = isProb ? Array.from(scores) : exps.map((e) => e / sum);
  return probs.map((p, i) => ({ label: labels[i], index: i, p })).sort((a, b) => b.p - a.p).slice(0, k);
}
