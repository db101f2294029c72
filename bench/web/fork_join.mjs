// The fork-join round trip of Cairn's threaded wasm build (docs/adr/0019): what one split
// layer pays for synchronization, timed in Node over empty jobs (one task per thread).
//
//   node bench/web/fork_join.mjs [--threads 2] [--jobs 20000]
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startThreadPool, spawnNodeWorker } from '../../web/src/thread-pool.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const threads = arg('threads', 2);
const jobs = arg('jobs', 20000);
const pkgUrl = pathToFileURL(path.join(root, 'target/web-pkg/threads/cairn_web.js')).href;
const pkg = await import(pkgUrl);
await pkg.default({ module_or_path: await readFile(path.join(root, 'target/web-pkg/threads/cairn_web_bg.wasm')) });
await startThreadPool(pkg, pkgUrl, threads, spawnNodeWorker);
pkg.forkJoinEmptyJobs(1000); // warm-up
const rounds = [];
for (let r = 0; r < 5; r++) {
  const t0 = performance.now();
  pkg.forkJoinEmptyJobs(jobs);
  rounds.push(((performance.now() - t0) * 1000) / jobs);
}
rounds.sort((a, b) => a - b);
console.log(`fork-join round trip, ${pkg.kernelThreads()} threads: median ${rounds[2].toFixed(2)} us, min ${rounds[0].toFixed(2)} us per job (${jobs} empty jobs x 5 rounds)`);
process.exit(0);
