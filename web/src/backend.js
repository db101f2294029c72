// Which of Cairn's wasm builds this engine runs (shared by the repository's loader, wasm.js,
// and the npm package's, web/package/wasm-assets.js).

// A module holding one `v128.const` and nothing else: valid where wasm SIMD is.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
// Three `v128.const` and one `f32x4.relaxed_madd`: valid where relaxed SIMD is.
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 133, 2, 11]);

/**
 * The build to run: `wanted` 'scalar' forces the build without SIMD (for testing it, or to work
 * around a browser bug); 'relaxed' asks for the relaxed-SIMD build where the engine has it;
 * otherwise ('auto') the simd128 build where the engine validates it, else scalar.
 */
export function pickBackend(wanted = 'auto') {
  if (wanted === 'scalar' || !WebAssembly.validate(SIMD_PROBE)) return 'scalar';
  if (wanted === 'relaxed' && WebAssembly.validate(RELAXED_PROBE)) return 'relaxed';
  return 'simd';
}
