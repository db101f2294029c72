// Runs one engine of engines.mjs inside a dedicated Web Worker, for the page's benchmark
// harness (engines.mjs `workerEngine`): Cairn's threaded build blocks while its pool
// works, which the page's main thread may not do. Messages: { id, op, arg } -> { id, value | error }.
import { ENGINES } from './engines.mjs';

let engine = null;
const ops = {
  async start({ name, model, threads, cairnBuild }) {
    engine = await ENGINES[name]({
      threads,
      cairnBuild,
      readBytes: async (p) => new Uint8Array(await (await fetch(p)).arrayBuffer()),
      paths: {
        model,
        cairnJsOf: (build) => new URL(`/target/web-pkg/${build}/cairn_web.js`, self.location.href).href,
        cairnWasmOf: (build) => `/target/web-pkg/${build}/cairn_web_bg.wasm`,
      },
    });
  },
  load: () => engine.load(),
  // Timed here, where the engine runs: the page's clock would add the message round trip
  // and the input's copy, which the single-threaded engines run in the page never pay.
  async run(x) {
    const t0 = performance.now();
    const output = await engine.run(x);
    return { output, ms: performance.now() - t0 };
  },
  info: () => ({ describe: engine.describe(), memoryBytes: engine.memoryBytes() }),
};

self.onmessage = async ({ data: { id, op, arg } }) => {
  try {
    self.postMessage({ id, value: await ops[op](arg) });
  } catch (e) {
    self.postMessage({ id, error: String(e?.stack ?? e) });
  }
};
