// Hybrid inference in real headless Chromium against a real `cairn serve`: the page, the
// worker, the wasm and the bundle all come from the edge server (with its COOP/COEP and CSP
// headers), requests forced to the edge run there, and when the edge is stopped mid-session
// inference continues on the device: only `where` and `placement` change. Text pipelines
// (`embed`, `classify`) take the same placement (the edge's /embed and /classify).
//
// Needs: target/release/cairn, target/web-pkg/{relaxed,simd,scalar} (bench/web/build_wasm.sh),
// target/models/mobilenetv2.onnx.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './browser.mjs';
import { expectedTokens } from '../src/texts.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cairnBin = path.join(root, 'target/release/cairn');
const app = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-edge-test-'));
let server, origin, browser, page;

function startEdge() {
  const child = spawn(cairnBin, ['serve', app, '--addr', '127.0.0.1:0', '--max-batch', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve({ child, origin: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`cairn serve exited (${code}): ${out}`)));
  });
}

before(async () => {
  // The app directory the edge serves: the client API, the wasm builds, a page without
  // inline script (the CSP forbids it), and the bundle.
  fs.cpSync(path.join(root, 'web/src'), path.join(app, 'web/src'), { recursive: true });
  fs.cpSync(path.join(root, 'target/web-pkg'), path.join(app, 'pkg'), { recursive: true });
  fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><title>edge test</title><script type="module" src="/fixture.js"></script>\n');
  fs.writeFileSync(path.join(app, 'fixture.js'), "import { Cairn } from '/web/src/cairn.js';\nwindow.Cairn = Cairn;\nwindow.fixtureReady = true;\n");
  execFileSync(cairnBin, ['pack', path.join(root, 'target/models/mobilenetv2.onnx'), '-o', path.join(app, 'models/mobilenetv2'), '--image-size', '224', '--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225'], { stdio: 'ignore' });
  // Text bundles: the CLI tests' tiny encoder and token classifier over the BPE fixture.
  const data = path.join(root, 'crates/cairn-cli/tests/data');
  const tokenizer = path.join(root, 'crates/cairn-text/tests/fixtures/bpe.tokenizer.json');
  execFileSync(cairnBin, ['pack', path.join(data, 'tiny_text_encoder.onnx'), '-o', path.join(app, 'models/encoder'), '--tokenizer', tokenizer, '--task', 'feature-extraction', '--max-length', '16'], { stdio: 'ignore' });
  execFileSync(cairnBin, ['pack', path.join(data, 'tiny_text_classifier.onnx'), '-o', path.join(app, 'models/sentiment'), '--tokenizer', tokenizer, '--task', 'text-classification', '--labels', path.join(data, 'text_labels.txt'), '--max-length', '16'], { stdio: 'ignore' });
  execFileSync(cairnBin, ['pack', path.join(data, 'tiny_token_classifier.onnx'), '-o', path.join(app, 'models/ner'), '--tokenizer', tokenizer, '--task', 'token-classification', '--labels', path.join(data, 'token_labels.txt'), '--max-length', '16'], { stdio: 'ignore' });
  ({ child: server, origin } = await startEdge());
  browser = await launch();
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.fixtureReady);
});

after(async () => {
  await browser?.close();
  if (server?.exitCode === null) server.kill('SIGTERM');
  fs.rmSync(app, { recursive: true, force: true });
});

const relativeError = (got, want) => {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) { diff = Math.max(diff, Math.abs(got[i] - want[i])); scale = Math.max(scale, Math.abs(want[i])); }
  return diff / scale;
};

test('served by cairn serve, the page is cross-origin isolated and runs on device and edge', async () => {
  assert.equal(await page.evaluate(() => window.crossOriginIsolated), true, 'COOP + COEP from cairn serve');
  const r = await page.evaluate(async () => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/', edge: location.origin });
    const model = await cairn.load('/models/mobilenetv2/manifest.json');
    await model.complete;
    window.model = model;
    const n = 3 * 224 * 224;
    const data = new Float32Array(n);
    let s = 7;
    for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; data[i] = (s / 2 ** 32) * 4 - 2; }
    window.input = { data, shape: [1, 3, 224, 224] };
    const device = await model.run(window.input, { prefer: 'device' });
    const edge = await model.run(window.input, { prefer: 'edge' });
    return {
      device: { where: device.where, rule: device.placement.rule, data: Array.from(device.outputs[0].data) },
      edge: { where: edge.where, rule: edge.placement.rule, level: edge.level, data: Array.from(edge.outputs[0].data) },
    };
  });
  assert.equal(r.device.where, 'device');
  assert.equal(r.device.rule, 'forced');
  assert.equal(r.edge.where, 'edge');
  assert.equal(r.edge.level, 'full');
  const err = relativeError(r.edge.data, r.device.data);
  assert.ok(err < 1e-4, `edge (native) and device (wasm) full-precision outputs agree: ${err}`);
});

const TEXTS = ['Lunch in Lyon', '', 'budget music '.repeat(10), 'lone \ud800 surrogate'];

test('text pipelines take the same placement: embed and classify on the edge answer as on the device', async () => {
  const r = await page.evaluate(async (texts) => {
    const cairn = await window.Cairn.start({ wasmBase: '/pkg/', edge: location.origin });
    window.encoder = await cairn.load('/models/encoder/manifest.json');
    window.ner = await cairn.load('/models/ner/manifest.json');
    const pick = (e) => ({ where: e.where, rule: e.placement?.rule, truncated: e.truncated, replaced: e.replaced, maxLength: e.maxLength });
    const device = await window.encoder.embed(texts, { prefer: 'device' });
    const edge = await window.encoder.embed(texts, { prefer: 'edge' });
    const nerDevice = await window.ner.classify(texts, { prefer: 'device', aggregate: 'simple' });
    const nerEdge = await window.ner.classify(texts, { prefer: 'edge', aggregate: 'simple' });
    // Text pairs (a cross-encoder's query and passage) go to the edge as { text, text_pair }.
    const sentiment = await cairn.load('/models/sentiment/manifest.json');
    const pairs = [{ text: 'is the pizza good', textPair: texts[2] }, texts[0], { text: texts[3], textPair: 'ok' }];
    const pairsDevice = await sentiment.classify(pairs, { prefer: 'device' });
    const pairsEdge = await sentiment.classify(pairs, { prefer: 'edge' });
    return {
      pairs: [pairsDevice, pairsEdge].map((p) => ({ where: p.where, replaced: p.replaced, results: p.results.map((x) => ({ scores: x.scores, truncated: x.truncated })) })),
      device: { ...pick(device), rows: device.embeddings.map((e) => Array.from(e)) },
      edge: { ...pick(edge), rows: edge.embeddings.map((e) => Array.from(e)) },
      nerDevice: { ...pick(nerDevice), results: nerDevice.results },
      nerEdge: { ...pick(nerEdge), results: nerEdge.results },
    };
  }, TEXTS);
  assert.deepEqual([r.device.where, r.device.rule, r.edge.where, r.edge.rule], ['device', 'forced', 'edge', 'forced']);
  assert.deepEqual([r.edge.truncated, r.edge.replaced, r.edge.maxLength], [r.device.truncated, r.device.replaced, r.device.maxLength]);
  assert.deepEqual(r.device.truncated, [2]);
  assert.deepEqual(r.device.replaced, [3], 'a lone surrogate is replaced on both paths (the edge needs valid Unicode)');
  r.edge.rows.forEach((row, i) => assert.ok(row.every((x, k) => Math.abs(x - r.device.rows[i][k]) <= 1e-5), `text ${i}: edge vs device`));
  assert.deepEqual([r.nerDevice.where, r.nerEdge.where], ['device', 'edge']);
  const [pairsDevice, pairsEdge] = r.pairs;
  assert.deepEqual([pairsDevice.where, pairsEdge.where, pairsEdge.replaced], ['device', 'edge', pairsDevice.replaced]);
  assert.deepEqual(pairsDevice.replaced, [2], 'a lone surrogate in a pair, replaced on both paths');
  pairsEdge.results.forEach((got, i) => {
    const want = pairsDevice.results[i];
    assert.ok(got.scores.every((x, k) => Math.abs(x - want.scores[k]) <= 1e-5), `pair ${i}: edge ${got.scores} vs device ${want.scores}`);
    assert.equal(got.truncated, want.truncated);
  });
  r.nerEdge.results.forEach((got, i) => {
    const want = r.nerDevice.results[i];
    assert.deepEqual(got.tokens.map(([l, span]) => [l.label, span]), want.tokens.map(([l, span]) => [l.label, span]), `text ${i}: token labels`);
    assert.deepEqual(got.entities.map((e) => [e.label, e.start, e.end, e.text]), want.entities.map((e) => [e.label, e.start, e.end, e.text]), `text ${i}: entities`);
  });
});


test("'auto' places a text call by the latencies expected for its number of texts and their length", async () => {
  const r = await page.evaluate(async () => {
    const one = ['a note on Lyon'];
    const many = (n) => Array.from({ length: n }, (_, i) => `note ${i} on budget music`);
    const forced = [];
    // Calls of 1 and 24 texts on each side, so each side's fit has two sizes.
    for (let round = 0; round < 3; round++) {
      for (const prefer of ['device', 'edge']) {
        for (const texts of [one, many(24)]) forced.push((await window.encoder.embed(texts, { prefer })).placement);
      }
    }
    const auto = [];
    for (const texts of [one, many(60)]) {
      const e = await window.encoder.embed(texts, { prefer: 'auto' });
      auto.push({ where: e.where, ...e.placement, rows: e.embeddings.length });
    }
    // As many texts, longer: the size is the tokens expected, not the number of texts. Both
    // calls start together, so both estimates come from the same measurements (one after the
    // other, the first call's own time entered the fit in between, and on a busy machine that
    // could tilt it below the first estimate).
    const [short, long] = [Array(4).fill('a'), Array(4).fill('word '.repeat(40))];
    const lengths = (await Promise.all([short, long].map((texts) => window.encoder.embed(texts, { prefer: 'auto' })))).map((e) => e.placement);
    const ner = await window.ner.classify(many(5), { prefer: 'auto' });
    return { forced, auto, lengths, ner: { where: ner.where, ...ner.placement } };
  });
  const many = (n) => Array.from({ length: n }, (_, i) => `note ${i} on budget music`);
  const tokens = (texts) => expectedTokens(texts, 16, 32); // the encoder's max length (16); a request's texts
  // Forced calls carry the estimates too (what 'auto' would have weighed).
  assert.deepEqual(r.forced.map((p) => p.estimate.items), [1, 24, 1, 24, 1, 24, 1, 24, 1, 24, 1, 24]);
  const [small, large] = r.auto;
  assert.deepEqual(r.forced.map((p) => p.estimate.tokens), [1, 2, 3, 4, 5, 6].flatMap(() => [tokens(['a note on Lyon']), tokens(many(24))]));
  assert.deepEqual([small.estimate.items, large.estimate.items, large.rows], [1, 60, 60]);
  assert.deepEqual([small.estimate.tokens, large.estimate.tokens], [tokens(['a note on Lyon']), tokens(many(60))]);
  const [fewTokens, manyTokens] = r.lengths;
  assert.deepEqual([fewTokens.estimate.items, manyTokens.estimate.items, fewTokens.estimate.tokens, manyTokens.estimate.tokens], [4, 4, 12, 64]);
  assert.ok(manyTokens.estimate.deviceMs > fewTokens.estimate.deviceMs && manyTokens.estimate.edgeMs >= fewTokens.estimate.edgeMs, `4 long texts are expected to take longer than 4 short ones: ${JSON.stringify(r.lengths)}`);
  for (const p of r.auto) {
    assert.ok(p.estimate.deviceMs > 0 && p.estimate.edgeMs > 0, `both sides measured: ${JSON.stringify(p)}`);
    // The policy's rules (crates/cairn-web/src/policy.rs) for a cached model on a good network:
    // the edge when it answers in under half the device's time for this many texts (rule 8),
    // else the device; its reason quotes the estimates for this request.
    const edgeFaster = p.estimate.edgeMs * 2 < p.estimate.deviceMs;
    assert.deepEqual([p.where, p.rule], edgeFaster ? ['edge', 'edge-faster'] : ['device', 'device'], JSON.stringify(p));
    const quoted = [Math.floor(p.estimate.deviceMs), Math.ceil(p.estimate.deviceMs)];
    assert.ok(quoted.some((ms) => p.reason.includes(`${ms} ms`)), `the reason quotes the device's estimate: ${JSON.stringify(p)}`);
  }
  assert.ok(large.estimate.deviceMs > small.estimate.deviceMs, `60 texts are expected to take longer than 1 on the device: ${JSON.stringify(r.auto)}`);
  assert.ok(large.estimate.edgeMs >= small.estimate.edgeMs, `... and on the edge: ${JSON.stringify(r.auto)}`);
  // The token classifier ran once on the device (the previous test): a first run is a warm-up
  // (JIT, weights) and no estimate, so the policy has no device time to weigh and keeps the
  // model on the device, saying what the first run took.
  assert.deepEqual([r.ner.estimate.items, r.ner.estimate.deviceMs, r.ner.where, r.ner.rule], [5, null, 'device', 'device'], JSON.stringify(r.ner));
  assert.match(r.ner.reason, /first run .* took \d+ ms/);
});
test('with the edge stopped mid-session, inference continues on the device', async () => {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  const r = await page.evaluate(async () => {
    const results = [];
    for (const prefer of ['edge', 'edge', 'auto']) {
      const out = await window.model.run(window.input, { prefer });
      results.push({ prefer, where: out.where, rule: out.placement.rule, reason: out.placement.reason, first: out.outputs[0].data[0] });
    }
    const device = await window.model.run(window.input, { prefer: 'device' });
    // Texts too: forced to the stopped edge, they are embedded on the device.
    const text = await window.encoder.embed('offline notes', { prefer: 'edge' });
    const textDevice = await window.encoder.embed('offline notes', { prefer: 'device' });
    return { results, device: device.outputs[0].data[0], text: { where: text.where, rule: text.placement.rule, first: text.embeddings[0][0], device: textDevice.embeddings[0][0] } };
  });
  assert.deepEqual([r.text.where, r.text.rule], ['device', 'edge-error']);
  assert.equal(r.text.first, r.text.device);
  // Forced to the edge, the request fails over to the device without an error to the caller.
  assert.deepEqual(r.results.slice(0, 2).map((x) => [x.where, x.rule]), [['device', 'edge-error'], ['device', 'edge-error']]);
  assert.match(r.results[0].reason, /the edge failed/);
  // After two failures in a row the policy stops trying the edge.
  assert.deepEqual([r.results[2].where, r.results[2].rule], ['device', 'edge-failing']);
  for (const x of r.results) assert.equal(x.first, r.device, 'same answer as the device');
});
