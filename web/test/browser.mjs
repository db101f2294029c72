// Launches the machine's Chromium headless with a fresh profile (Playwright's own
// browser download is not used).
import { chromium } from 'playwright-core';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * `profileDir`: reuse a profile (to reopen the browser with what it stored); default a fresh one.
 * `extraArgs`: more Chromium flags (webgpu.test.mjs adds `--enable-unsafe-webgpu`, which gives
 * headless Chromium a SwiftShader WebGPU adapter; without it `requestAdapter()` gives none).
 */
export async function launch(profileDir, extraArgs = []) {
  const context = await chromium.launchPersistentContext(profileDir ?? await mkdtemp(path.join(tmpdir(), 'cairn-test-chromium-')), {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
  // Playwright's 30 s default wait is too short for a page load (worker start, wasm compile,
  // service worker install) on a 2-core CI machine that is also building: the PWA update test
  // timed out there at load ~10. A real hang still fails, at 90 s.
  context.setDefaultTimeout(90_000);
  return context;
}
