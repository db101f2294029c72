// A thread of Cairn's threaded wasm build (docs/adr/0019): instantiates the same module on
// the shared memory it is sent, says 'ready', then parks in the kernels' fork-join pool
// for good (Rust's `poolWorkerLoop` never returns). Runs as a Web Worker, or as a Node
// worker thread (for the benchmarks).

async function start({ pkgUrl, module, memory }, reply) {
  try {
    const pkg = await import(pkgUrl);
    pkg.initSync({ module, memory });
    reply('ready');
    pkg.poolWorkerLoop();
  } catch (e) {
    reply({ error: String(e?.message ?? e) });
  }
}

if (typeof WorkerGlobalScope !== 'undefined') {
  self.onmessage = ({ data }) => start(data, (m) => self.postMessage(m));
} else {
  const { parentPort } = await import('node:worker_threads');
  parentPort.once('message', (data) => start(data, (m) => parentPort.postMessage(m)));
}
