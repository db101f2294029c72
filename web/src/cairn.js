// Cairn's page-side API. The page never runs inference: a dedicated Web Worker
// (worker.js) owns the wasm instance and the models; this module sends it requests
// and turns its answers into promises, progress callbacks and typed errors.
//
//   const cairn = await Cairn.start();
//   const model = await cairn.load('/models/mobilenetv2/manifest.json', { onProgress });
//   const { outputs, level, where, timings } = await model.run(imageBitmap);
//   const text = await cairn.load('/models/minilm/manifest.json');   // a bundle with a tokenizer
//   const { embeddings, dim } = await text.embed(['offline notes', 'where is my invoice']);

import { WidthPolicy } from './width-policy.js';
import { Latency } from './latency.js';
import { packTensors } from './tensors.js';
import { textList as checkedTextList, wellFormed, expectedTokens } from './texts.js';

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
  'bad-tokenizer': 'The model\'s tokenizer is missing or damaged: the text model cannot run. Reload the page, or re-pack the model.',
};

// Texts per worker request: the scheduler batches up to 8 requests (<= 256 texts, the
// most one padded batch may hold), and a long list becomes several requests.
const TEXTS_PER_REQUEST = 32;

// Cairn dtype of each typed array class. Uint8Array is u8 unless `dtype: 'bool'` says
// otherwise; Uint16Array holding f16 bits needs `dtype: 'f16'`.
const DTYPE_OF = [
  [Float32Array, 'f32'], [Float64Array, 'f64'], [Int8Array, 'i8'], [Uint8Array, 'u8'], [Int16Array, 'i16'], [Uint16Array, 'u16'],
  [Int32Array, 'i32'], [Uint32Array, 'u32'], [BigInt64Array, 'i64'], [BigUint64Array, 'u64'],
];
const BYTES_OF = { f32: 4, f64: 8, f16: 2, bf16: 2, i8: 1, u8: 1, i16: 2, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8, bool: 1 };

/** `{ data: TypedArray, shape, dtype? }` -> `{ name, dtype, shape, data }` with the dtype checked against the array. */
function typedTensor(name, t) {
  const data = t?.data;
  if (!ArrayBuffer.isView(data) || data instanceof DataView || !Array.isArray(t.shape)) {
    throw new CairnError('bad-input', `input '${name}' must be { data: TypedArray, shape: number[] } (BigInt64Array for int64, Int32Array, Uint8Array for uint8/bool, ...)`);
  }
  const f16 = typeof Float16Array !== 'undefined' && data instanceof Float16Array;
  const natural = f16 ? 'f16' : DTYPE_OF.find(([C]) => data instanceof C)?.[1];
  const dtype = t.dtype ?? natural;
  if (!BYTES_OF[dtype] || BYTES_OF[dtype] !== data.BYTES_PER_ELEMENT || (t.dtype && t.dtype !== natural && !['bool', 'f16', 'bf16'].includes(t.dtype))) {
    throw new CairnError('bad-input', `input '${name}': a ${data.constructor.name} cannot hold dtype '${dtype}'`);
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new CairnError('bad-input', `input '${name}': shape [${t.shape}] has ${n} elements, the array ${data.length}`);
  return { name, dtype, shape: t.shape, data: data.slice() };
}

// The edge's typed arrays by dtype (f16/bf16 as their 16-bit patterns, as the worker gives them).
const EDGE_ARRAYS = {
  f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i8: Int8Array, u8: Uint8Array, i16: Int16Array,
  u16: Uint16Array, i32: Int32Array, u32: Uint32Array, i64: BigInt64Array, u64: BigUint64Array, bool: Uint8Array,
};

/**
 * Typed tensors as the body of a `/v1/models/NAME/infer` request (the packed binary form:
 * every tensor's bytes at an 8-byte offset, described by the `Cairn-Tensors` header), so
 * int64 ids and the rest reach the edge exactly, as they are.
 * @param {{ name: string, dtype: string, shape: number[], data: ArrayBufferView }[]} tensors
 * @returns {{ body: Uint8Array, headers: Record<string, string> }}
 */
export function edgeRequest(tensors) {
  const { specs, buffer } = packTensors(tensors, 8);
  return { body: buffer, headers: { 'content-type': 'application/octet-stream', 'cairn-tensors': JSON.stringify(specs) } };
}

/**
 * The `outputs` of an edge answer (`{ NAME: { dtype, shape, data } }`, JSON) as typed arrays,
 * the way a run on the device gives them: int64 as BigInt64Array (the edge writes values past
 * 2^53 as decimal strings, so none is rounded), bool as 0/1 bytes, f16/bf16 as bit patterns,
 * NaN and the infinities (strings in JSON) as themselves.
 * @returns {{ name: string, dtype: string, shape: number[], data: ArrayBufferView }[]}
 */
export function edgeOutputs(outputs) {
  return Object.entries(outputs).map(([name, o]) => {
    const Array = EDGE_ARRAYS[o.dtype];
    if (!Array) throw new CairnError('bad-output', `the edge answered output '${name}' with dtype '${o.dtype}', which has no typed array here`);
    let read = Number;
    if (o.dtype === 'i64' || o.dtype === 'u64') read = BigInt;
    else if (o.dtype === 'bool') read = (x) => (x === true || x === 1 ? 1 : 0);
    else if (o.dtype === 'f16') read = (x) => f16Bits(Number(x));
    else if (o.dtype === 'bf16') read = (x) => new Uint32Array(new Float32Array([Number(x)]).buffer)[0] >>> 16;
    return { name, dtype: o.dtype, shape: o.shape, data: Array.from(o.data, read) };
  });
}

/** The f16 bit pattern nearest to `x` (round half to even), for browsers without Float16Array. */
function f16Bits(x) {
  if (typeof Float16Array !== 'undefined') return new Uint16Array(new Float16Array([x]).buffer)[0];
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  // Normal: keep 10 of 23 mantissa bits; subnormal: shift the implicit 1 in as well.
  const [m, shift, base] = e > 0 ? [mant, 13, e << 10] : [mant | 0x800000, 14 - e, 0];
  if (shift > 24) return sign;
  let h = base | (m >>> shift);
  const rem = m & ((1 << shift) - 1);
  const mid = 1 << (shift - 1);
  if (rem > mid || (rem === mid && (h & 1))) h++; // a carry into the exponent is right
  return sign | h;
}

/** What `Cairn.start`'s `backend` accepts (docs/adr/0019, 0022, 0034). */
const BACKEND_OPTIONS = ['auto', 'webgpu', 'wasm', 'threads-relaxed', 'threads', 'relaxed', 'simd', 'scalar'];

export class Cairn {
  #worker;
  #nextId = 1;
  #waiting = new Map(); // id -> { resolve, reject, onProgress, onMessage }
  /** 'webgpu' (models run on the GPU; docs/adr/0022), or the wasm build the worker runs: 'threads-relaxed', 'threads', 'relaxed', 'simd' or 'scalar' (docs/adr/0019, 0034). A lost GPU device switches it to 'simd'. */
  backend = null;
  /** Threads the kernels run on (1 unless `backend` is a threaded build). */
  threads = 1;
  /** The kernels' instruction set, e.g. 'wasm32-simd128'. */
  isa = null;

  /**
   * Starts the worker. `workerUrl` and `wasmBase` default to the files next to this module.
   * `backend`: 'auto' (default) runs a threaded build where the page is cross-origin
   * isolated (COOP + COEP, as `cairn serve` sends) and shared wasm memory exists, else a
   * single-threaded one: relaxed SIMD where the engine validates it, else simd128, else
   * scalar (the threaded build has the same SIMD flavour: 'threads-relaxed' or 'threads');
   * 'relaxed', 'simd' or 'scalar' forces that single-threaded build ('relaxed' runs simd128
   * where the engine lacks relaxed SIMD); 'threads-relaxed' or 'threads' that threaded build
   * (its single-threaded twin where the page cannot run threads).
   * 'webgpu' runs models on the GPU (an error where `navigator.gpu` gives no adapter); 'auto'
   * does too where it gives one; 'wasm' never does. A GPU lost mid-session (device loss)
   * falls back to the simd build without failing the request in flight.
   * `threads`: how many threads the threaded build uses (default: the device's cores, at most 4).
   * `memoryBudget` (bytes): past it, idle models are unloaded, least recently used first.
   * `edge`: the origin of a `cairn serve` that runs the same bundles; `model.run` then
   * places each request on the device or the edge (see `run`'s `prefer`).
   * @param {{ workerUrl?: string|URL, wasmBase?: string|URL, queueBound?: number, backend?: 'auto'|'webgpu'|'wasm'|'threads-relaxed'|'threads'|'relaxed'|'simd'|'scalar', threads?: number, memoryBudget?: number, edge?: string, edgeTimeoutMs?: number }} [options]
   */
  static async start(options = {}) {
    if (options.threads != null && !(Number.isInteger(options.threads) && options.threads >= 1)) {
      throw new CairnError('bad-input', `threads must be a whole number >= 1, got ${options.threads}`);
    }
    if (options.backend != null && !BACKEND_OPTIONS.includes(options.backend)) {
      throw new CairnError('bad-input', `backend must be one of ${BACKEND_OPTIONS.map((b) => `'${b}'`).join(', ')}; got '${options.backend}'`);
    }
    const cairn = new Cairn();
    // The literal `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })` is
    // the form Vite, webpack and Parcel recognize: they bundle the worker and its wasm assets.
    cairn.#worker = options.workerUrl
      ? new Worker(new URL(options.workerUrl, import.meta.url), { type: 'module', name: 'cairn' })
      : new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'cairn' });
    cairn.#worker.onmessage = ({ data }) => cairn.#dispatch(data);
    cairn.#worker.onerror = (e) => {
      // Every waiting request fails with the reason (handlers take worker messages).
      for (const [, w] of cairn.#waiting) w.onMessage({ type: 'error', code: 'runtime', message: `the Cairn worker failed: ${e.message}` });
      cairn.#waiting.clear();
    };
    cairn.queueBound = options.queueBound ?? 16;
    // An edge server (`cairn serve`) that can run the models too: its origin, e.g. location.origin.
    cairn.edge = options.edge ?? null;
    cairn.edgeTimeoutMs = options.edgeTimeoutMs ?? 3000;
    cairn.battery = null;
    navigator.getBattery?.().then((b) => { cairn.battery = b; }, () => {});
    const wasmBase = options.wasmBase ? new URL(options.wasmBase, location.href).href : undefined;
    const hello = await cairn.#request({ type: 'hello', queueBound: cairn.queueBound, memoryBudget: options.memoryBudget, backend: options.backend, threads: options.threads, wasmBase });
    cairn.backend = hello.backend;
    cairn.threads = hello.threads;
    cairn.isa = hello.isa;
    return cairn;
  }

  /**
   * Loads a bundle. Resolves as soon as the model can run (after the coarse level of a
   * progressive bundle); `model.complete` resolves when every level has arrived.
   * @param {string|URL} manifestUrl
   * @param {{ onProgress?: (p: LoadProgress) => void, signal?: AbortSignal }} [options]
   */
  load(manifestUrl, { onProgress, signal, deadlineMs } = {}) {
    if (deadlineMs != null) checkDeadline(deadlineMs);
    return new Promise((resolve, reject) => {
      let model = null;
      let completeResolve, completeReject;
      const complete = new Promise((res, rej) => { completeResolve = res; completeReject = rej; });
      complete.catch(() => {}); // reported through load() or model.complete, never unhandled
      const id = this.#send({ type: 'load', url: new URL(manifestUrl, location.href).href }, {
        onMessage: (msg) => {
          if (msg.type === 'progress') onProgress?.(msg);
          if (msg.type === 'loaded') {
            if (!model) {
              model = new Model(this, msg, new URL(manifestUrl, location.href));
              if (deadlineMs != null) model.setDeadline(deadlineMs);
              resolve(model);
            }
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
  /** Test hook: destroys the GPU device of every model, as a driver reset would; resolves to how many. */
  async _loseGpuForTest() {
    return (await this.#request({ type: 'debug-lose-gpu' })).destroyed;
  }

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
    // Cancelled before it was sent (the caller awaited placement or input preparation first):
    // it never reaches the worker. Sent and then aborted, it races the worker's scheduler,
    // which may already have started it.
    if (signal?.aborted) return Promise.reject(new CairnError('aborted', 'Cancelled.'));
    return new Promise((resolve, reject) => {
      const id = this.#send(msg, {
        onMessage: (m) => {
          if (m.type === 'result' || m.type === 'tensor' || m.type === 'tokens') resolve(m);
          else if (m.type === 'error') reject(new CairnError(m.code, m.message));
          else return false;
          return true;
        },
      }, msg.transfer);
      const abort = () => this.#worker.postMessage({ type: 'abort', target: id });
      signal?.addEventListener('abort', abort, { once: true });
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
    if (msg.type === 'backend') { this.backend = msg.backend; this.onBackendChange?.(msg); return; }
    const handler = this.#waiting.get(msg.id);
    if (handler && handler.onMessage(msg)) this.#waiting.delete(msg.id);
  }
}

/** A deadline must be a positive number of milliseconds. */
function checkDeadline(ms) {
  if (!(typeof ms === 'number' && ms > 0 && Number.isFinite(ms))) {
    throw new CairnError('bad-input', `deadlineMs must be a positive number of milliseconds, got ${ms}`);
  }
}

class Model {
  // The device's latency is kept per backend (a lost GPU falls back to wasm, whose times
  // differ), with each backend's first run apart: it compiles GPU pipelines and uploads
  // weights (or JIT-compiles the wasm), and says nothing of the runs after it. Latencies are
  // per request size (latency.js): a run is one item, a text call as many as it has texts.
  #placement = { device: {}, lastBuild: null, edge: new Latency(), edgeFailures: 0, lastEdgeFailure: null };
  /** Chooses widths under a deadline from measured run times (null: the bundle has no widths). */
  #widthPolicy = null;
  /** The model's default deadline per run (ms), or null: `setDeadline`. */
  deadlineMs = null;

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
    const widths = loaded.manifest.widths?.widths ?? [];
    /** The run-time widths this model offers, widest first (1 = the full model). */
    this.widths = [1, ...widths.map((w) => w.fraction)];
    if (widths.length) this.#widthPolicy = new WidthPolicy(widths.map((w) => ({ width: w.fraction, macs: w.macs })));
  }

  /**
   * A deadline for every run that does not set its own (`run`'s `deadlineMs`), or null for
   * none: the runtime then picks the widest width expected to answer within it.
   * @param {number | null} ms
   */
  setDeadline(ms) {
    if (ms != null) checkDeadline(ms);
    this.deadlineMs = ms ?? null;
  }

  /** The width to ask the worker for, and why: asked, or the deadline policy's choice. */
  #chooseWidth(width, deadlineMs) {
    if (width != null) {
      if (!(typeof width === 'number' && width > 0 && width <= 1)) throw new CairnError('bad-input', `width must be a number in (0, 1], got ${width}`);
      // The worker says which it ran ('width 0.9 as asked', or why not).
      return { width, reason: width >= 1 ? 'full width as asked' : null };
    }
    if (deadlineMs == null) return { width: 1, reason: null };
    if (!this.#widthPolicy) return { width: 1, reason: `deadline ${Math.round(deadlineMs)} ms: full width, this model has no run-time widths (cairn optimize --widths)` };
    const b = this.cairn.battery;
    return this.#widthPolicy.choose({ deadlineMs, battery: b ? { level: b.level, charging: b.charging } : undefined, deviceMemory: navigator.deviceMemory });
  }

  /** Resolves when every level has arrived (the model then runs at full precision). */
  get complete() {
    return this.cairn._completeOf(this);
  }

  /**
   * Runs the model. `input` is an ImageBitmap, ImageData, canvas or image element
   * (preprocessed as the manifest says), `{ data: Float32Array, shape: number[] }` (a model
   * with integer input, e.g. a full-integer TFLite model taking uint8, takes the integers'
   * values in the Float32Array: whole numbers in range, else an error, and gives its outputs
   * the same way), a tensor of another dtype (`{ data: BigInt64Array | Int32Array | Uint8Array
   * | ..., shape, dtype? }`, `dtype: 'bool'` or `'f16'` for a Uint8Array / Uint16Array of those),
   * or named inputs (`{ input_ids: { data, shape }, attention_mask: { data, shape } }`). Typed
   * inputs give every output with its dtype (`{ name, dtype, shape, data }`, int64 as BigInt64Array).
   * `stream`: a name for a latest-wins stream (camera frames): a newer frame replaces a
   * waiting one, whose promise rejects with code 'dropped'.
   * @param {RunInput} input
   * `prefer`: 'auto' (the placement policy decides, when an edge is configured), 'device' or
   * 'edge'. An edge error or timeout falls back to the device; `where` says where it ran and
   * `placement` why ({ where, rule, reason }).
   * `width`: a run-time width, the share of the full model's MACs to spend (bundles packed
   * with widths, `cairn optimize --widths`); the nearest width the model has runs, and the
   * result's `width` and `widthReason` say which and why. Default 1 (the full model).
   * `deadlineMs` (default: the model's, `setDeadline`): without `width`, the runtime runs the
   * widest width expected to answer within it, from the run times it measured (per width,
   * following the CPU's speed as it changes), stepping down after a miss and back up when a
   * wider width fits again; a low battery (not charging) runs the narrowest width, a device
   * with little memory (navigator.deviceMemory <= 1) only the full and the narrowest.
   * `widthReason` then says why, e.g. 'deadline 40 ms: 0.9 estimated 35 ms'.
   * @param {{ priority?: number, stream?: string, signal?: AbortSignal, prefer?: 'auto'|'device'|'edge', width?: number, deadlineMs?: number }} [options]
   */
  async run(input, { priority = 0, stream = '', signal, prefer = 'auto', width, deadlineMs } = {}) {
    if (signal?.aborted) throw new CairnError('aborted', 'Cancelled.');
    if (deadlineMs != null) checkDeadline(deadlineMs);
    const deadline = deadlineMs ?? this.deadlineMs;
    const { result, placement } = await this.#tryEdge(prefer, signal, { items: 1 }, (p) => this.#runOnEdge(input, p, signal));
    if (result) return result;
    const t0 = performance.now();
    const chosen = this.#chooseWidth(width, deadline);
    const { payload, transfer } = await this.#prepare(input);
    const msg = await this.cairn._run({ type: 'run', handle: this.handle, input: payload, priority, stream, width: chosen.width, transfer }, signal);
    const totalMs = performance.now() - t0;
    this.#measured(msg.backend === 'webgpu' ? 'webgpu' : this.#cpuBuild(), totalMs);
    if (msg.width != null) {
      this.#widthPolicy?.record({ width: msg.width, runMs: msg.timings.runMs, totalMs, deadlineMs: deadline ?? undefined, first: msg.timings.firstAtWidth });
    }
    // The policy's reason when its width ran; else the worker's (e.g. widths run only once
    // every level has arrived).
    const widthReason = chosen.reason && msg.width === chosen.width ? chosen.reason : msg.widthReason;
    const outputs = msg.outputs;
    const top = this.labels && outputs[0].data.length === this.labels.length ? topK(outputs[0].data, this.labels, 5) : null;
    return { outputs, top, level: msg.level, where: msg.where, backend: msg.backend, gpu: msg.gpu ?? null, placement, width: msg.width, widthReason, timings: { ...msg.timings, totalMs } };
  }

  /**
   * Sentence embeddings of `texts` (a string or an array of strings), computed in the
   * worker (tokenizer, model, pooling, normalization: all Rust) and batched by its scheduler.
   * `embeddings[i]` is text i's vector (a view of `data`, row-major `[texts, dim]`).
   * `truncated`: indices of texts longer than the bundle's max length (cut to it);
   * `replaced`: indices of texts with lone UTF-16 surrogates, replaced by U+FFFD.
   * An empty string embeds as the special tokens alone.
   * @param {string | string[]} texts
   * `prefer`: 'auto' (the placement policy decides, when an edge is configured), 'device' or
   * 'edge', as for `run`: on the edge the texts go to its `/v1/models/NAME/embed`; an edge
   * error falls back to the device, and `where` and `placement` say where it ran and why.
   * @param {{ pooling?: 'mean'|'cls'|'max', normalize?: boolean, priority?: number, signal?: AbortSignal, prefer?: 'auto'|'device'|'edge' }} [options]
   */
  async embed(texts, { pooling, normalize, priority = 0, signal, prefer = 'auto' } = {}) {
    const list = textList(texts);
    const size = this.#textSize(list);
    const t0 = performance.now();
    const { result: edge, placement } = await this.#tryEdge(prefer, signal, size, async (p) => {
      const { texts: sent, replaced } = wellFormed(list);
      const parts = await this.#textsOnEdge('embed', sent, { pooling, normalize }, size, signal);
      const dim = parts[0].dim;
      const embeddings = parts.flatMap((a) => a.embeddings);
      const data = new Float32Array(list.length * dim);
      embeddings.forEach((row, i) => data.set(row, i * dim));
      const truncated = parts.flatMap((a, k) => a.truncated.map((i) => i + k * TEXTS_PER_REQUEST));
      return this.#embedded(data, dim, { truncated, replaced, maxLength: parts[0].max_length, where: 'edge', placement: p, timings: { totalMs: performance.now() - t0 } });
    });
    if (edge) return edge;
    await this.complete; // the tokenizer is set when the last level is in
    const parts = await Promise.all(chunks(list, TEXTS_PER_REQUEST).map(({ texts: part }) =>
      this.cairn._run({ type: 'embed', handle: this.handle, texts: part, pooling, normalize, priority }, signal)));
    const dim = parts[0].dim;
    const data = new Float32Array(list.length * dim);
    const result = this.#embedded(data, dim, { truncated: [], replaced: [], maxLength: parts[0].maxLength, where: 'device', placement, timings: { totalMs: 0, runMs: 0 } });
    let at = 0;
    for (const p of parts) {
      data.set(p.data, at * dim);
      result.truncated.push(...p.truncated.map((i) => i + at));
      result.replaced.push(...p.replaced.map((i) => i + at));
      result.timings.runMs += p.timings.runMs;
      at += p.data.length / dim;
    }
    result.timings.totalMs = performance.now() - t0;
    this.#measured(this.#cpuBuild(), result.timings.totalMs, size.tokens);
    return result;
  }

  /** An embedding result over `data` ([texts, dim]): `embeddings[i]` is a view of row i. */
  #embedded(data, dim, fields) {
    const embeddings = [];
    for (let i = 0; i < data.length / dim; i++) embeddings.push(data.subarray(i * dim, (i + 1) * dim));
    return { data, dim, embeddings, ...fields };
  }

  /**
   * Labels for `texts` (text-classification: one per text; token-classification: one per
   * token with its character span), from a bundle packed with `--task ... --labels`.
   * `aggregate: 'simple'` also merges a token classifier's labels into `entities`.
   * `prefer`: as for `embed` (the edge's `/v1/models/NAME/classify`).
   * A text may be a pair, `{ text, textPair }` (a query and a passage for a cross-encoder
   * reranker, a premise and a hypothesis for NLI), for a text-classification bundle: the
   * tokenizer joins the two by its pair template, as Python's `tokenizer(text, text_pair)`.
   * @param {string | TextPair | (string | TextPair)[]} texts
   * @param {{ priority?: number, signal?: AbortSignal, aggregate?: 'none'|'simple', prefer?: 'auto'|'device'|'edge' }} [options]
   */
  async classify(texts, { priority = 0, signal, aggregate, prefer = 'auto' } = {}) {
    const list = textList(texts, { pairs: true });
    const size = this.#textSize(list);
    const t0 = performance.now();
    const { result: edge, placement } = await this.#tryEdge(prefer, signal, size, async (p) => {
      const { texts: sent, replaced } = wellFormed(list);
      const parts = await this.#textsOnEdge('classify', sent, aggregate ? { aggregate } : {}, size, signal);
      return { results: parts.flatMap((a) => a.results), replaced, maxLength: parts[0].max_length, where: 'edge', placement: p, timings: { totalMs: performance.now() - t0 } };
    });
    if (edge) return edge;
    await this.complete;
    const parts = await Promise.all(chunks(list, TEXTS_PER_REQUEST).map(({ texts: part }) =>
      this.cairn._run({ type: 'classify', handle: this.handle, texts: part, priority, aggregate }, signal)));
    let at = 0;
    const replaced = [];
    for (const p of parts) { replaced.push(...p.replaced.map((i) => i + at)); at += p.results.length; }
    const totalMs = performance.now() - t0;
    this.#measured(this.#cpuBuild(), totalMs, size.tokens);
    return { results: parts.flatMap((p) => p.results), replaced, maxLength: parts[0].maxLength, where: 'device', placement, timings: { totalMs } };
  }

  /**
   * Token ids, attention mask, offsets (in characters) and tokens of each text, as the model
   * sees it. A pair `{ text, textPair }` is joined by the tokenizer's pair template, as
   * `classify` joins it: `sequence_ids` says which text each token came from (0, 1; null for
   * special tokens), and a token's offsets are in that text.
   * @param {string | TextPair | (string | TextPair)[]} texts
   */
  async tokenize(texts) {
    const list = textList(texts, { pairs: true });
    await this.complete;
    const m = await this.cairn._run({ type: 'tokenize', handle: this.handle, texts: list });
    return { encodings: m.encodings, replaced: m.replaced };
  }

  /** The wasm build a CPU run uses (the webgpu build's CPU side is the simd engine). */
  #cpuBuild() {
    const b = this.cairn.backend;
    return b === 'webgpu' ? 'simd' : b;
  }

  /**
   * A text call's size for the latency estimates: its texts (`items`) and the tokens its padded
   * batches are expected to hold (`tokens`, what the time grows with: a 60-text search and 60
   * long documents differ, web/src/texts.js).
   */
  #textSize(list) {
    return { items: list.length, tokens: expectedTokens(list, this.manifest.text?.max_length ?? 512, TEXTS_PER_REQUEST) };
  }

  /** One device request's time (`work`: 1 for a run, a text call's expected tokens), into the latency of the build it ran on. */
  #measured(build, ms, work = 1) {
    this.#placement.lastBuild = build;
    const d = (this.#placement.device[build] ??= { warmupMs: null, latency: new Latency() });
    if (d.warmupMs == null) d.warmupMs = ms;
    else d.latency.record(work, ms);
  }

  /**
   * Where the policy (or `prefer`) places a request on the edge, runs `onEdge(placement)` there
   * and returns its `result`. Otherwise, or when the edge fails (an error or a timeout: counted,
   * so that the policy stops trying a failing edge), returns the `placement` a device run
   * reports: the policy's decision, or why the edge was left. Without an edge: null.
   * `size`: the request's size for the latency estimates (`{ items: 1 }` for a run,
   * `#textSize` for a text call).
   */
  async #tryEdge(prefer, signal, size, onEdge) {
    const placement = this.cairn.edge ? await this.#decide(prefer, size) : null;
    if (placement?.where !== 'edge') return { placement };
    try {
      return { result: await onEdge(placement) };
    } catch (e) {
      if (signal?.aborted) throw new CairnError('aborted', 'Cancelled.');
      this.#placement.edgeFailures++;
      this.#placement.lastEdgeFailure = performance.now();
      return { placement: { where: 'device', rule: 'edge-error', reason: `the edge failed (${e.message}): ran on the device`, estimate: placement.estimate } };
    }
  }

  /** The bundle's name on the edge: its directory (`/models/NAME/manifest.json`). */
  #edgeName() {
    return encodeURIComponent(this.url.pathname.split('/').slice(-2)[0]);
  }

  /** An edge request's time (`work` as for #measured), into the edge's latency; the edge works again. */
  #edgeMeasured(ms, work = 1) {
    this.#placement.edge.record(work, ms);
    this.#placement.edgeFailures = 0;
  }

  /**
   * POSTs well-formed `texts` to the edge's `/v1/models/NAME/{task}` (embed or classify) in
   * requests of `TEXTS_PER_REQUEST`, with `options` in each body; the JSON answers in order.
   * `size`: the call's (`#textSize`), for the edge's latency.
   */
  async #textsOnEdge(task, texts, options, size, signal) {
    const t0 = performance.now();
    const url = new URL(`/v1/models/${this.#edgeName()}/${task}`, this.cairn.edge);
    const answers = await Promise.all(chunks(texts, TEXTS_PER_REQUEST).map(async ({ texts: part }) => {
      const timeout = AbortSignal.timeout(this.cairn.edgeTimeoutMs);
      const res = await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts: part, ...options }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      const answer = await res.json();
      if (!res.ok) throw new Error(answer.error ?? `HTTP ${res.status}`);
      return answer;
    }));
    this.#edgeMeasured(performance.now() - t0, size.tokens);
    return answers;
  }

  /**
   * Where the next request (of `size`, as for #tryEdge) goes, by the Rust policy in the
   * worker, from what the browser tells and the latencies expected for a request of that
   * size; the decision carries those estimates (`estimate`).
   */
  async #decide(prefer, { items, tokens }) {
    // What the latency fits measure: a run's one item, a text call's expected tokens.
    const work = tokens ?? items;
    const c = navigator.connection;
    const b = this.cairn.battery;
    const p = this.#placement;
    // The build the next device run would use: on a GPU session, this model's last run
    // says whether it runs on the GPU; a lost device makes cairn.backend a wasm build.
    const backend = this.cairn.backend === 'webgpu' ? (p.lastBuild ?? 'webgpu') : this.cairn.backend;
    const dev = p.device[backend] ?? {};
    const signals = {
      online: navigator.onLine, edgeAvailable: true, effectiveType: c?.effectiveType, rtt: c?.rtt, downlink: c?.downlink,
      saveData: c?.saveData ?? false, batteryLevel: b?.level, charging: b?.charging, deviceMemory: navigator.deviceMemory,
      hardwareConcurrency: navigator.hardwareConcurrency, cachedLevel: this.level, backend,
      deviceMs: dev.latency?.estimate(work) ?? undefined, deviceWarmupMs: dev.warmupMs ?? undefined,
      edgeMs: p.edge.estimate(work) ?? undefined, edgeFailures: p.edgeFailures,
      sinceEdgeFailureMs: p.lastEdgeFailure == null ? undefined : performance.now() - p.lastEdgeFailure, prefer,
    };
    const { decision } = await this.cairn._post({ type: 'decide', signals });
    return { ...decision, estimate: { items, ...(tokens != null && { tokens }), deviceMs: signals.deviceMs ?? null, edgeMs: signals.edgeMs ?? null } };
  }

  /**
   * POSTs the input to the edge's /v1/models/NAME/infer (NAME: the bundle's directory):
   * typed tensors in the packed binary form (every output comes back with its dtype), f32
   * tensors and images (preprocessed by the worker's Rust code, exactly as for a run on the
   * device) as the raw f32 bytes.
   */
  async #runOnEdge(input, placement, signal) {
    const t0 = performance.now();
    const typed = this.#typedTensors(input);
    let request;
    if (typed) {
      request = edgeRequest(typed);
    } else {
      const { data, shape } = input?.data instanceof Float32Array ? input : await this.preprocess(input);
      request = { body: data, headers: { 'content-type': 'application/octet-stream', 'cairn-shape': shape.join(',') } };
    }
    const timeout = AbortSignal.timeout(this.cairn.edgeTimeoutMs);
    const res = await fetch(new URL(`/v1/models/${this.#edgeName()}/infer`, this.cairn.edge), {
      method: 'POST', body: request.body, signal: signal ? AbortSignal.any([signal, timeout]) : timeout, headers: request.headers,
    });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error ?? `HTTP ${res.status}`);
    let outputs;
    if (typed) {
      outputs = edgeOutputs(answer.outputs);
    } else {
      const [outName, out] = Object.entries(answer.outputs)[0];
      outputs = [{ name: outName, shape: out.shape, data: Float32Array.from(out.data, Number) }];
    }
    const ms = performance.now() - t0;
    this.#edgeMeasured(ms);
    const top = !typed && this.labels && outputs[0].data.length === this.labels.length ? topK(outputs[0].data, this.labels, 5) : null;
    return { outputs, top, level: answer.level, where: 'edge', timings: { edgeMs: ms, queueMs: answer.timings.queue_ms, runMs: answer.timings.compute_ms, batch: answer.batch_rows }, placement };
  }

  /** Typed inputs (`{ data: BigInt64Array, shape }` or named ones) as checked tensors; null for images and plain f32. */
  #typedTensors(input) {
    // Named inputs of any dtype: { input_ids: { data: BigInt64Array, shape }, attention_mask: ... },
    // or one typed tensor that is not f32 ({ data: Int32Array, shape, dtype? }).
    const single = ArrayBuffer.isView(input?.data) && !(input.data instanceof Float32Array && !input.dtype);
    // (A plain object of { data, shape } entries; a wrong `data` then gets typedTensor's error.)
    const named = !single && input?.constructor === Object && !('data' in input) && Object.values(input).length > 0
      && Object.values(input).every((t) => Array.isArray(t?.shape));
    if (!single && !named) return null;
    const entries = single ? [[this.manifest.inputs[0]?.name, input]] : Object.entries(input);
    return entries.map(([name, t]) => typedTensor(name, t));
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
    const tensors = this.#typedTensors(input);
    if (tensors) return { payload: { tensors }, transfer: tensors.map((t) => t.data.buffer) };
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

/** `texts` as a list (web/src/texts.js), refused as a CairnError. */
function textList(texts, options) {
  try {
    return checkedTextList(texts, options);
  } catch (e) {
    throw new CairnError(e.code, e.message);
  }
}

function chunks(list, n) {
  const out = [];
  for (let i = 0; i < list.length; i += n) out.push({ at: i, texts: list.slice(i, i + n) });
  return out;
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
