// Where splitting a layer over threads starts to pay in Cairn's threaded wasm build
// (docs/adr/0019): jobs of one task per thread, each task a fixed amount of dependent
// arithmetic, run split over the pool and on the calling thread alone, in Node.
//
//   node bench/web/fork_join.mjs [--threads 2] [--jobs 2000]
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
const jobs = arg('jobs', 2000);
const pkgUrl = pathToFileURL(path.join(root, 'target/web-pkg/threads/cairn_web.js')).href;
const pkg = await import(pkgUrl);
await pkg.default({ module_or_path: await readFile(path.join(root, 'target/web-pkg/threads/cairn_web_bg.wasm')) });
await startThreadPool(pkg, pkgUrl, threads, spawnNodeWorker);

/** Median over 5 rounds of the time per job, in microseconds. */
function perJob(spins, split) {
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    pkg.forkJoinSpinJobs(jobs, spins, split);
    rounds.push(((performance.now() - t0) * 1000) / jobs);
  }
  return rounds.sort((a, b) => a - b)[2];
}

console.log(`${pkg.kernelThreads()} threads, ${jobs} jobs per point; one job = one task per thread`);
console.log('work per task (us, alone)   one thread us/job   split us/job   split / one thread');
for (const spins of [0, 100, 1000, 3000, 10000, 30000, 100000]) {
  perJob(spins, true); // warm-up
  const alone = perJob(spins, false);
  const split = perJob(spins, true);
  console.log(`${(alone / threads).toFixed(2).padStart(25)} ${alone.toFixed(2).padStart(19)} ${split.toFixed(2).padStart(14)} ${(split / alone).toFixed(2).padStart(20)}`);
}
process.exit(0);
