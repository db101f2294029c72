// Slows a Chromium's renderer processes (the page's main thread and its dedicated workers)
// by a factor, for adaptive.test.mjs. DevTools' Emulation.setCPUThrottlingRate slows only a
// page's main thread: Chromium refuses it for worker targets ("Operation is only supported
// for pages, not workers") and a page's throttling leaves its workers at full speed, where
// Cairn runs models. So this does what that throttler does to the main thread, to the whole
// renderer process: it stops the process (SIGSTOP) and lets it run again (SIGCONT), running
// 1/rate of the time. A child process keeps the rhythm, so the test's own event loop
// (Playwright's traffic) does not stretch the pauses, and it lets the renderers run again
// when told to stop or when the test process goes away. Linux (and other POSIX) only.

import { fork } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const PERIOD_MS = 8; // one stop/run cycle: short, so that a run (tens of ms of CPU) spans many

/** Pids of the renderer processes of the Chromium whose profile is `profileDir`. */
export function rendererPids(profileDir) {
  // Chromium rewrites its processes' titles (arguments then joined by spaces, not NULs), and
  // every renderer names the profile: match both flags as words.
  const flag = (f) => new RegExp(`(^|[\\s\\0])${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([\\s\\0]|$)`);
  const wanted = [flag('--type=renderer'), flag(`--user-data-dir=${profileDir}`)];
  const pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
    try { return wanted.every((re) => re.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))); } catch { return false; } // gone meanwhile
  }).map(Number);
  if (pids.length === 0) throw new Error(`no Chromium renderer process with --user-data-dir=${profileDir}`);
  return pids;
}

/**
 * Throttles `pids` to 1/`rate` of the CPU time they would get. Resolves to `stop()`, which
 * lets them run freely again and resolves when they do.
 */
export async function throttle(pids, rate) {
  if (!(rate > 1)) throw new Error(`rate must be > 1, got ${rate}`);
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify({ pids, rate })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve, reject) => { child.once('message', resolve); child.once('error', reject); });
  return () => new Promise((resolve) => { child.once('exit', resolve); child.send('stop'); });
}

// The child: stop and continue the renderers in rhythm, keeping the share of time they run
// at 1/rate over the whole run (a late timer is made up in the next cycle).
if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  const { pids, rate } = JSON.parse(process.argv[2]);
  const signal = (sig) => { for (const pid of pids) try { process.kill(pid, sig); } catch { /* exited */ } };
  let done = false;
  const finish = () => { done = true; signal('SIGCONT'); process.exit(0); };
  process.on('message', (m) => { if (m === 'stop') finish(); });
  process.on('disconnect', finish); // the test process is gone: never leave a renderer stopped
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const start = now();
  let running = 0; // ms the renderers were let run
  const cycle = () => {
    if (done) return;
    const t = now();
    signal('SIGCONT');
    // Run until the running share catches up with 1/rate of the elapsed time.
    const runFor = Math.max(1, (t - start + PERIOD_MS) / rate - running);
    setTimeout(() => {
      if (done) return;
      running += now() - t;
      signal('SIGSTOP');
      const stopFor = Math.max(1, (running * rate) - (now() - start));
      setTimeout(cycle, stopFor);
    }, runFor);
  };
  cycle();
  process.send('started');
}
