// How the worker loads Cairn's wasm build. This file is
// the repository's layout (wasm-bindgen output in `<wasmBase><build>/cairn_web.js`, as
// bench/web/build_wasm.sh writes it); the npm package replaces it with one whose wasm files
// are assets a bundler can see (web/package/wasm-assets.js).

export { pickBackend, threadedBuild, singleThreadedBuild } from './backend.js';

/** Loads and instantiates `backend`; resolves with the module's exports and its linear memory. */
export async function loadWasm(backend, wasmBase = '../pkg/') {
  const pkgUrl = new URL(`${backend}/cairn_web.js`, new URL(wasmBase, self.location.href)).href;
  const mod = await import(pkgUrl);
  const exports = await mod.default();
  // The threaded build imports its (shared) memory rather than exporting it.
  return { wasm: mod, memory: exports.memory ?? mod.wasmMemory(), pkgUrl };
}

/** Loads the tokenizer module (crates/cairn-web-text; one build for every browser). */
export async function loadTextWasm(wasmBase = '../pkg/') {
  const mod = await import(new URL('text/cairn_web_text.js', new URL(wasmBase, self.location.href)).href);
  await mod.default();
  return mod;
}
