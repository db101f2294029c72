// Type declarations for cairn.js, Cairn's page-side API.

export type ErrorCode = 'shard-corrupt' | 'bad-manifest' | 'network' | 'dropped' | 'aborted' | 'not-loaded' | 'bad-input' | 'runtime';

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
  levels: { name: string; bytes: number; fidelity?: { top1_agreement: number; max_relative_error: number; inputs: number; input_source: string } }[];
  shards: { path: string; sha256: string; bytes: number; level: number }[];
}

export type RunInput = ImageBitmap | ImageData | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | { data: Float32Array; shape: number[] };

export interface RunResult {
  outputs: { name: string; shape: number[]; data: Float32Array }[];
  /** For classifiers with labels: the five most likely classes with probabilities. */
  top: { label: string; index: number; p: number }[] | null;
  /** The level the weights were at: 'coarse' or 'full'. */
  level: string;
  where: 'device' | 'edge';
  /** On the edge: `edgeMs` is the round trip, `queueMs`/`runMs` the server's side. */
  timings: { queueMs: number; preprocessMs?: number; runMs: number; edgeMs?: number; batch?: number };
  /** With an edge configured: where the policy placed the request and why (rule 'edge-error': the edge failed and the device answered). */
  placement: Placement | null;
  /** The run-time width that ran (share of the full model's MACs; 1 = full) and why. */
  width?: number;
  widthReason?: string;
}

/** A decision of the placement policy (crates/cairn-web/src/policy.rs). */
export interface Placement {
  where: 'device' | 'edge';
  /** 'forced', 'offline', 'edge-failing', 'not-cached', 'slow-network', 'save-data', 'low-battery', 'edge-faster', 'weak-device', 'device', 'edge-error', ... */
  rule: string;
  /** A sentence a person can read. */
  reason: string;
}

export interface Model {
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
  run(input: RunInput, options?: { priority?: number; stream?: string; signal?: AbortSignal; prefer?: 'auto' | 'device' | 'edge'; width?: number }): Promise<RunResult>;
  /** The input tensor `run` would use for `input` (preprocessed in the worker as the manifest says). */
  preprocess(input: RunInput): Promise<{ name: string; data: Float32Array; shape: number[] }>;
  unload(): Promise<unknown>;
}

export class Cairn {
  /** `backend: 'scalar'` forces the build without wasm SIMD; by default SIMD is used where the browser validates it. */
  static start(options?: { workerUrl?: string | URL; wasmBase?: string | URL; queueBound?: number; backend?: 'auto' | 'scalar'; memoryBudget?: number; edge?: string; edgeTimeoutMs?: number }): Promise<Cairn>;
  /** 'simd' or 'scalar': the wasm build chosen for this browser. */
  readonly backend: 'simd' | 'scalar';
  readonly isa: string;
  /** Called after each run with the queue's length and its high-water mark. */
  onQueue?: (q: { length: number; highWater: number }) => void;
  /** Called when the memory budget made the worker unload an idle model (its runs then fail with 'not-loaded'). */
  onEvicted?: (e: { handle: number; reason: string }) => void;
  load(manifestUrl: string | URL, options?: { onProgress?: (p: LoadProgress) => void; signal?: AbortSignal }): Promise<Model>;
  memoryBytes(): Promise<number>;
  /** `resetPeak` starts a new peak measurement after reading this one. */
  memory(options?: { resetPeak?: boolean }): Promise<{ memoryBytes: number; heapLive: number; heapPeak: number }>;
  terminate(): void;
}
