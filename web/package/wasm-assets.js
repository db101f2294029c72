// The npm package's wasm loader (web/package/build.mjs puts it in place of web/src/wasm.js
// when it bundles the worker). Each build is named by a literal
// `new URL('./cairn_web_<build>.wasm', import.meta.url)`, the form Vite, webpack, Parcel and
// esbuild's users rely on: the app's bundler copies the wasm files as assets and rewrites
// the URLs. One wasm-bindgen glue serves every build (the build script checks they match).
// The WebGPU build (docs/adr/0022) and the two threaded builds (docs/adr/0019, 0034) have their
// own glues, separate files imported only when the worker picks such a build (an adapter
// exists; a cross-origin isolated page), so other apps download neither glue nor wasm.

import init, * as wasm from './cairn_web.js';
import initText, * as text from './cairn_web_text.js';
export { pickBackend, threadedBuild, singleThreadedBuild } from './backend.js';

const WASM = {
  simd: new URL('./cairn_web_simd.wasm', import.meta.url),
  relaxed: new URL('./cairn_web_relaxed.wasm', import.meta.url),
  scalar: new URL('./cairn_web_scalar.wasm', import.meta.url),
  webgpu: new URL('./cairn_web_webgpu.wasm', import.meta.url),
  threads: new URL('./cairn_web_threads.wasm', import.meta.url),
  'threads-relaxed': new URL('./cairn_web_threads-relaxed.wasm', import.meta.url),
};

/**
 * Instantiates `backend`; `wasmBase`, if given, is a directory holding the
 * `cairn_web_<build>.wasm` files (e.g. a CDN), instead of the bundled assets.
 */
export async function loadWasm(backend, wasmBase) {
  const url = wasmBase ? new URL(`cairn_web_${backend}.wasm`, wasmBase) : WASM[backend];
  if (!url) throw new Error(`@cairn-ml/web has no '${backend}' build (it ships ${Object.keys(WASM).join(', ')})`);
  if (backend === 'webgpu') {
    const gpu = await import('./cairn_web_webgpu.js');
    const { memory } = await gpu.default({ module_or_path: url });
    return { wasm: gpu, memory };
  }
  if (backend.startsWith('threads')) {
    // The pool's workers import this same glue themselves (dist/pool-worker.js): no URL to send.
    const threaded = await import('./cairn_web_threads.js');
    await threaded.default({ module_or_path: url });
    return { wasm: threaded, memory: threaded.wasmMemory(), pkgUrl: null };
  }
  const { memory } = await init({ module_or_path: url });
  return { wasm, memory };
}

/** Instantiates the tokenizer module (text bundles only; docs/adr/0026). */
export async function loadTextWasm(wasmBase) {
  const url = wasmBase ? new URL('cairn_web_text.wasm', wasmBase) : new URL('./cairn_web_text.wasm', import.meta.url);
  await initText({ module_or_path: url });
  return text;
}
