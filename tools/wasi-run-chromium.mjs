// Runs a wasm32-wasip1 binary (a cargo test harness) inside headless Chromium's V8, the engine
// the relaxed-SIMD build ships to. Node 20's V8 (11.3) lowers some relaxed-SIMD instructions
// differently from Chromium's (`i32x4.relaxed_dot_i8x16_i7x16_add_s`: the saturating
// `pmaddubsw` with a register clobber under pressure in Node, AVX-VNNI `vpdpbusd` in Chromium
// 156), so kernels chosen by what the engine does are tested where they run.
// Used as CARGO_TARGET_WASM32_WASIP1_RUNNER (scripts/test.sh); WASI comes from
// @bjorn3/browser_wasi_shim (stdout/stderr, args, env, clocks, random: what the test harness uses).
//   node tools/wasi-run-chromium.mjs FILE.wasm [test harness args...]
import http from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { argv, exit, stdout, stderr } from 'node:process';

const webRequire = createRequire(new URL('../web/package.json', import.meta.url));
const { chromium } = webRequire('playwright-core');
const esbuild = webRequire('esbuild');

const [, , wasmPath, ...args] = argv;
if (!wasmPath) {
  stderr.write('usage: node tools/wasi-run-chromium.mjs FILE.wasm [args...]\n');
  exit(2);
}

// The shim as one script for the page (it ships as ES modules).
const shim = await esbuild.build({
  stdin: { contents: "import * as s from '@bjorn3/browser_wasi_shim'; globalThis.WasiShim = s;", resolveDir: new URL('../web', import.meta.url).pathname },
  bundle: true,
  format: 'iife',
  write: false,
  logLevel: 'silent',
});
const wasm = await readFile(wasmPath);
const server = http.createServer((req, res) => {
  if (req.url === '/test.wasm') return res.writeHead(200, { 'Content-Type': 'application/wasm' }).end(wasm);
  res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>wasi test</title>');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const profile = await mkdtemp(path.join(tmpdir(), 'cairn-wasi-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
});
let code = 1;
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  // Lines arrive as the harness prints them (a panic's message before the trap).
  page.on('console', (msg) => {
    const text = msg.text();
    if (text.startsWith('\u0001out ')) stdout.write(text.slice(5) + '\n');
    else if (text.startsWith('\u0001err ')) stderr.write(text.slice(5) + '\n');
  });
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.addScriptTag({ content: shim.outputFiles[0].text });
  code = await page.evaluate(async ({ args, env }) => {
    const { WASI, File, OpenFile, ConsoleStdout } = globalThis.WasiShim;
    const fds = [
      new OpenFile(new File([])),
      ConsoleStdout.lineBuffered((line) => console.log('\u0001out ' + line)),
      ConsoleStdout.lineBuffered((line) => console.log('\u0001err ' + line)),
    ];
    const wasi = new WASI(args, env, fds);
    const module = await WebAssembly.compileStreaming(fetch('/test.wasm'));
    const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport });
    try {
      return wasi.start(instance);
    } catch (e) {
      // A panic aborts with `unreachable` (its message is already printed): the harness failed.
      console.log('\u0001err ' + String(e));
      return 101;
    }
  }, { args: [wasmPath, ...args], env: Object.entries(process.env).filter(([k]) => k.startsWith('RUST_')).map(([k, v]) => `${k}=${v}`) });
} finally {
  await browser.close();
  server.close();
  await rm(profile, { recursive: true, force: true });
}
exit(code);
