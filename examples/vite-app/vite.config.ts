import { defineConfig } from 'vite';

export default defineConfig({
  // Cairn's worker is an ES module (it imports its wasm-bindgen glue).
  worker: { format: 'es' },
});
