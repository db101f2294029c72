// Which of Cairn's wasm builds this engine runs (shared by the repository's loader, wasm.js,
// and the npm package's, web/package/wasm-assets.js).

// A module holding one `v128.const` and nothing else: valid where wasm SIMD is.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
// Three `v128.const` and one `f32x4.relaxed_madd`: valid where relaxed SIMD is.
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 133, 2, 11]);

/** True where this engine validates relaxed SIMD (Chromium 114+, Node >= 22; Node 20 with `--experimental-wasm-relaxed-simd`). */
export function relaxedSimd() {
  return WebAssembly.validate(RELAXED_PROBE);
}

/**
 * The single-threaded build to run. 'auto' (the default) takes the fastest the engine
 * validates: relaxed SIMD (fused multiply-add in the f32 kernels), else simd128, else scalar
 * (docs/adr/0034). 'relaxed' asks for relaxed SIMD (simd128 where the engine lacks it);
 * 'simd' and 'scalar' force those builds (for testing, or to work around a browser bug).
 */
export function pickBackend(wanted = 'auto') {
  if (wanted === 'scalar' || !WebAssembly.validate(SIMD_PROBE)) return 'scalar';
  if (wanted === 'simd') return 'simd';
  return relaxedSimd() ? 'relaxed' : 'simd';
}

/** The threaded build of the same SIMD flavour as the single-threaded `build` (docs/adr/0019, 0034). */
export function threadedBuild(build) {
  return build === 'relaxed' ? 'threads-relaxed' : 'threads';
}

/** The single-threaded build a threaded `build` falls back to when its pool cannot start. */
export function singleThreadedBuild(build) {
  return build === 'threads-relaxed' ? 'relaxed' : build === 'threads' ? 'simd' : build;
}

/** True where a threaded build can run: a cross-origin isolated context with shared wasm memory. */
export function threadsAvailable(scope = globalThis) {
  if (scope.crossOriginIsolated === false || typeof SharedArrayBuffer !== 'function') return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}
