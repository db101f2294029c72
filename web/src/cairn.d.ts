// Type declarations for cairn.js, Cairn's page-side API.

export type ErrorCode = 'shard-corrupt' | 'bad-manifest' | 'bad-tokenizer' | 'network' | 'dropped' | 'aborted' | 'not-loaded' | 'bad-input' | 'bad-output' | 'runtime';

/** Every failure: `code` for programs, `message` for people. */
export class CairnError extends Error {
  readonly code: ErrorCode;
}

export interface LoadProgress {
  /** Verified bytes received so far (a rejected shard's bytes are taken back). */
  bytes: number;
  totalBytes: number;
  /** Highest complete level: -1 before the first, 0 = coarse, ... */
  level: number;
  levelName: string | null;
  /** Set when a shard failed verification and is fetched again. */
  rejected?: { shard: string; attempt: number; reason: string };
  done?: boolean;
}

export interface Preprocess {
  size: [number, number];
  layout: 'nchw' | 'nhwc';
  color: 'rgb' | 'bgr';
  mean: [number, number, number];
  std: [number, number, number];
}

/** The bundle's manifest.json (the fields a page uses). */
export interface Manifest {
  format: 'cairn-bundle/1';
  name: string;
  version: string;
  inputs: { name: string; dtype: string; dims: (number | string)[]; preprocess?: Preprocess }[];
  outputs: { name: string; dtype: string; dims?: (number | string)[]; labels?: string[] }[];
  levels: { name: string; bytes: number; fidelity?: { top1_agreement: number; max_relative_error: number; inputs: number; input_source: string; decisive_inputs?: number; decisive_top1_agreement?: number; mean_kl?: number } }[];
  shards: { path: string; sha256: string; bytes: number; level: number }[];
  /** Text bundles (`cairn pack --tokenizer ... --task ...`): the tokenizer file and task config. */
  text?: TextTask;
}

export interface TextTask {
  task: 'feature-extraction' | 'text-classification' | 'token-classification';
  tokenizer: { path: 'tokenizer.json'; sha256: string; bytes: number };
  /** Longer texts are truncated to this many tokens (special tokens included). */
  max_length: number;
  pooling: 'mean' | 'cls' | 'max';
  normalize: boolean;
  output?: string;
  labels?: string[];
}

/** Cairn's dtype names. f16/bf16 travel as their 16-bit patterns in a Uint16Array; bool as 0/1 bytes. */
export type DType = 'f32' | 'f64' | 'f16' | 'bf16' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64' | 'bool';

export type TypedArray = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** A tensor of any dtype. `dtype` defaults to the array's own (Uint8Array: 'u8'); say 'bool', 'f16' or 'bf16' when meant. */
export interface TypedTensor {
  data: TypedArray;
  shape: number[];
  dtype?: DType;
}

/** An output of a run with typed inputs. */
export interface TypedOutput {
  name: string;
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/** One output of an edge answer as its JSON says it (int64 past 2^53 and NaN/Infinity as strings). */
export interface EdgeJsonTensor {
  dtype: DType;
  shape: number[];
  data: (number | string | boolean)[];
}

/**
 * Typed tensors as the body and headers of a `POST /v1/models/NAME/infer` (the packed binary
 * form, `Cairn-Tensors`): what `model.run` sends to the edge for typed inputs, for callers
 * that talk to the edge directly.
 */
export function edgeRequest(tensors: { name: string; dtype: DType; shape: number[]; data: TypedArray }[]): { body: Uint8Array; headers: Record<string, string> };

/** An edge answer's `outputs` as typed arrays (int64 as BigInt64Array, exact; f16 as bits; bool as 0/1). */
export function edgeOutputs(outputs: Record<string, EdgeJsonTensor>): TypedOutput[];

export interface EmbedResult {
  /** Row-major `[texts, dim]`. */
  data: Float32Array;
  dim: number;
  /** `embeddings[i]`: text i's vector (a view of `data`). */
  embeddings: Float32Array[];
  /** Indices of the texts longer than `maxLength` tokens, truncated to it. */
  truncated: number[];
  /** Indices of the texts whose lone UTF-16 surrogates were replaced by U+FFFD. */
  replaced: number[];
  maxLength: number;
  /** Where it ran: the device (the worker) or the edge (`/v1/models/NAME/embed`). */
  where: 'device' | 'edge';
  /** The placement policy's decision (null without an edge). */
  placement: Placement | null;
  /** `runMs`: the device's model runs (device only). */
  timings: { totalMs: number; runMs?: number };
}

export interface ClassifyResult {
  results: Classification[];
  /** Indices of the texts whose lone UTF-16 surrogates were replaced by U+FFFD. */
  replaced: number[];
  maxLength: number;
  where: 'device' | 'edge';
  placement: Placement | null;
  timings: { totalMs: number };
}

export interface TextLabel {
  label: string;
  index: number;
  score: number;
}

export interface Classification extends TextLabel {
  scores: number[];
  /** Token classification only: a label per non-special token with its character span
   *  `[start, end)` (an empty array for a text without tokens; absent for text classification). */
  tokens?: [TextLabel, [number, number]][];
  /** Token classification with `aggregate: 'simple'`: adjacent tokens of one entity type
   *  merged (a `B-` label starts a new entity; type `O` is dropped). */
  entities?: Entity[];
  truncated: boolean;
}

/** Two texts classified together by a text-classification bundle (a cross-encoder's query
 *  and passage, an NLI premise and hypothesis), joined by the tokenizer's pair template. */
export interface TextPair {
  text: string;
  textPair: string;
}

export interface Entity {
  /** The entity type: the tokens' label without its `B-` / `I-` prefix. */
  label: string;
  /** The mean of its tokens' scores. */
  score: number;
  /** `[start, end)` in characters (code points) of the text. */
  start: number;
  end: number;
  text: string;
}

export interface Encoding {
  ids: number[];
  type_ids: number[];
  attention_mask: number[];
  /** `[start, end)` in characters of the text the token came from; special tokens have `[0, 0]`. */
  offsets: [number, number][];
  tokens: string[];
  /** Which text each token came from: 0, or 1 for a pair's second text; null for special tokens. */
  sequence_ids: (number | null)[];
  truncated: boolean;
}

export type RunInput =
  | ImageBitmap | ImageData | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas
  | { data: Float32Array; shape: number[] }
  | TypedTensor
  /** Named inputs, e.g. `{ input_ids: { data: BigInt64Array, shape: [1, 8] }, attention_mask: ... }`. */
  | Record<string, TypedTensor>;

/** What one GPU run did (docs/adr/0022). */
export interface GpuRunStats {
  dispatches: number;
  bytesUploaded: number;
  bytesReadBack: number;
  readBacks: number;
  /** Weights and parameter blocks uploaded for this input shape (non-zero on its first run only). */
  bytesUploadedAtBuild: number;
  /** "node (OpType)" of each operator that ran on the CPU kernels instead. */
  fallbackOps: string[];
}

export interface RunResult {
  /** f32 for image and f32 inputs; with typed inputs every output, each with its `dtype`. */
  outputs: ({ name: string; shape: number[]; data: Float32Array } | TypedOutput)[];
  /** For classifiers with labels: the five most likely classes with probabilities. */
  top: { label: string; index: number; p: number }[] | null;
  /** The level the weights were at: 'coarse' or 'full'. */
  level: string;
  where: 'device' | 'edge';
  /** On the device: whether the GPU ran it, and then its counters (the operators that fell back to the CPU kernels included). */
  backend?: 'webgpu' | 'wasm';
  gpu?: GpuRunStats | null;
  /** On the edge: `edgeMs` is the round trip, `queueMs`/`runMs` the server's side. */
  timings: {
    queueMs: number; preprocessMs?: number; runMs: number; edgeMs?: number; batch?: number;
    /** On the device: from the call to the answer on the page (what a deadline is held to). */
    totalMs?: number;
    /** On the device: the first run at this width in the worker (it prepared the width's weights). */
    firstAtWidth?: boolean;
  };
  /** With an edge configured: where the policy placed the request and why (rule 'edge-error': the edge failed and the device answered). */
  placement: Placement | null;
  /** The run-time width that ran (share of the full model's MACs; 1 = full) and why. */
  width?: number;
  /** e.g. 'width 0.9 as asked', 'deadline 40 ms: 0.9 estimated 35 ms', 'battery low (15%, not charging): ...'. */
  widthReason?: string;
}

/** A decision of the placement policy (crates/cairn-web/src/policy.rs). */
export interface Placement {
  where: 'device' | 'edge';
  /** 'forced', 'offline', 'edge-failing', 'not-cached', 'slow-network', 'save-data', 'low-battery', 'edge-faster', 'weak-device', 'device', 'edge-error', ... */
  rule: string;
  /** A sentence a person can read. */
  reason: string;
  /**
   * The latencies the policy weighed for this request's size (`items`: 1 for a run, the texts
   * of an embed or classify call; `tokens`, text calls only: the tokens its padded batches are
   * expected to hold, guessed from the characters, which the estimates of a text model scale
   * with), fitted to the recent requests on each side (null: none yet).
   */
  estimate: { items: number; tokens?: number; deviceMs: number | null; edgeMs: number | null };
}

export interface RunOptions {
  priority?: number;
  /** A latest-wins stream (camera frames): a newer frame replaces a waiting one ('dropped'). */
  stream?: string;
  signal?: AbortSignal;
  prefer?: 'auto' | 'device' | 'edge';
  /** A run-time width to run (the nearest the bundle has); overrides any deadline. */
  width?: number;
  /** Answer within this many ms: the runtime picks the width (docs/adr/0029). */
  deadlineMs?: number;
}

export interface Model {
  /** The manifest's URL (absolute): what to tell the service worker in `model-active`. */
  readonly url: URL;
  readonly name: string;
  readonly version: string;
  readonly manifest: Manifest;
  readonly labels: string[] | null;
  /** The level the model runs at now; changes to 'full' when the rest arrives. */
  level: string;
  /** Resolves when every level has arrived. */
  readonly complete: Promise<Model>;
  /** Wasm memory of the worker after the load completed. */
  memoryBytes?: number;
  /** Bytes Rust had allocated when the load completed, and the most it held during the load. */
  loadHeap?: { liveAtStart: number; liveAfterLoad: number; peakDuringLoad: number; liveBeforeFinish: number; peakBeforeFinish: number };
  /** `prefer`: 'auto' (the policy decides; needs `edge` in `Cairn.start`), 'device' or 'edge'. */
  /** `width`: run-time width (share of the full MACs) for bundles packed with widths; the nearest one runs. */
  /** `deadlineMs` (default: `setDeadline`'s): without `width`, the widest width expected to answer within it, from measured run times. */
  run(input: RunInput, options?: RunOptions): Promise<RunResult>;
  /** The run-time widths the bundle offers, widest first (1 = the full model). */
  readonly widths: number[];
  /** The deadline every run without its own `deadlineMs` is held to, or null. */
  readonly deadlineMs: number | null;
  /** Sets (or, with null, clears) the model's default deadline per run, in ms. */
  setDeadline(ms: number | null): void;
  /** The input tensor `run` would use for `input` (preprocessed in the worker as the manifest says). */
  preprocess(input: RunInput): Promise<{ name: string; data: Float32Array; shape: number[] }>;
  /** Text bundles: embeddings computed in the worker, batched by its scheduler (waits for `complete`). */
  embed(texts: string | string[], options?: { pooling?: 'mean' | 'cls' | 'max'; normalize?: boolean; priority?: number; signal?: AbortSignal; prefer?: 'auto' | 'device' | 'edge' }): Promise<EmbedResult>;
  /** Text bundles packed with --task text-classification|token-classification and --labels. */
  classify(texts: string | TextPair | (string | TextPair)[], options?: { priority?: number; signal?: AbortSignal; aggregate?: 'none' | 'simple'; prefer?: 'auto' | 'device' | 'edge' }): Promise<ClassifyResult>;
  /** The model's tokenization of each text or pair (its max length applies). */
  tokenize(texts: string | TextPair | (string | TextPair)[]): Promise<{ encodings: Encoding[]; replaced: number[] }>;
  unload(): Promise<unknown>;
}

/** The build models run on (docs/adr/0019, 0022, 0034): the GPU, a threaded wasm build, or a single-threaded one. */
export type Backend = 'webgpu' | 'threads-relaxed' | 'threads' | 'relaxed' | 'simd' | 'scalar';

export interface StartOptions {
  /** The worker script; default: the package's `worker.js` (next to this module). */
  workerUrl?: string | URL;
  /** Where the wasm builds are; default: next to the worker. */
  wasmBase?: string | URL;
  queueBound?: number;
  /** 'webgpu' runs models on the GPU (an error without an adapter); 'auto' does where `navigator.gpu` gives a hardware adapter (a software one, `isFallbackAdapter`, is slower than wasm); 'wasm' never does. */
  backend?: 'auto' | 'webgpu' | 'wasm' | Exclude<Backend, 'webgpu'>;
  /** Threads of the threaded build (default: navigator.hardwareConcurrency, at most 4). */
  threads?: number;
  /** Bytes of live heap past which idle models are unloaded, least recently used first. */
  memoryBudget?: number;
  /** The origin of a `cairn serve` that runs the same bundles. */
  edge?: string;
  edgeTimeoutMs?: number;
}

export class Cairn {
  /**
   * `backend`: 'auto' (default) picks a threaded build on cross-origin isolated pages with shared wasm
   * memory, else relaxed SIMD where the browser validates it, else SIMD, else scalar (the threaded build has
   * the same SIMD flavour); 'relaxed' | 'simd' | 'scalar' force a single-threaded build, 'threads-relaxed' |
   * 'threads' a threaded one (its single-threaded twin where the page cannot run threads).
   * `threads`: threads of the threaded build (default: cores, at most 4).
   */
  static start(options?: StartOptions): Promise<Cairn>;
  /** 'webgpu', or the wasm build chosen for this browser; a lost GPU device switches it to 'simd'. */
  readonly backend: Backend;
  /** Called when the backend changes (a lost GPU device: `reason` says why). */
  onBackendChange?: (b: { backend: Backend; reason: string }) => void;
  /** Test hook: destroys every model's GPU device; resolves to how many were destroyed. */
  _loseGpuForTest(): Promise<number>;
  /** Threads the kernels run on (1 unless backend is a threaded build). */
  readonly threads: number;
  readonly isa: string;
  /** Called after each run with the queue's length and its high-water mark. */
  onQueue?: (q: { length: number; highWater: number }) => void;
  /** Called when the memory budget made the worker unload an idle model (its runs then fail with 'not-loaded'). */
  onEvicted?: (e: { handle: number; reason: string }) => void;
  /** `deadlineMs`: the model's default deadline per run (`model.setDeadline`). */
  load(manifestUrl: string | URL, options?: { onProgress?: (p: LoadProgress) => void; signal?: AbortSignal; deadlineMs?: number }): Promise<Model>;
  memoryBytes(): Promise<number>;
  /** `resetPeak` starts a new peak measurement after reading this one. */
  memory(options?: { resetPeak?: boolean }): Promise<{ memoryBytes: number; heapLive: number; heapPeak: number }>;
  terminate(): void;
}
