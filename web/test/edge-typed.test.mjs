// Typed tensors from the JS client to a real `cairn serve` and back, in Node (no browser):
// the body `model.run` sends to the edge for typed inputs (`edgeRequest`: BigInt64Array ids and
// the rest, packed with `Cairn-Tensors`) and its reading of the answer (`edgeOutputs`: int64
// past 2^53 exact, bool, f16 bits). Checked against the edge's own text pipeline (/embed) and
// against exact arithmetic.
//
// Needs target/release/cairn and python3 with onnx (tools/requirements.txt).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root, cairnBin, cairn } from './pwa-app.mjs';
import { edgeRequest, edgeOutputs } from '../src/cairn.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-edge-typed-'));
let server, origin;

function startEdge(app) {
  const child = spawn(cairnBin, ['serve', app, '--addr', '127.0.0.1:0', '--max-batch', '4'], { stdio: ['ignore', 'pipe', 'ignore'] });
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
  const models = path.join(work, 'app/models');
  cairn('pack', path.join(root, 'crates/cairn-cli/tests/data/tiny_text_encoder.onnx'), '-o', path.join(models, 'tiny'),
    '--tokenizer', path.join(root, 'crates/cairn-text/tests/fixtures/bpe.tokenizer.json'), '--task', 'feature-extraction', '--max-length', '16');
  execFileSync('python3', ['-c', `
import onnx, sys
from onnx import helper as h, TensorProto as T
nodes = [h.make_node('Add', ['ids', 'ids'], ['ids2']), h.make_node('Not', ['m'], ['not_m']),
         h.make_node('Cast', ['h'], ['hf'], to=T.FLOAT), h.make_node('Add', ['hf', 'hf'], ['h2f']),
         h.make_node('Cast', ['h2f'], ['h2'], to=T.FLOAT16)]
io = lambda n, t: h.make_tensor_value_info(n, t, ['n', 3])
g = h.make_graph(nodes, 'typed', [io('ids', T.INT64), io('m', T.BOOL), io('h', T.FLOAT16)], [io('ids2', T.INT64), io('not_m', T.BOOL), io('h2', T.FLOAT16)])
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid('', 17)]), sys.argv[1])
`, path.join(work, 'typed.onnx')]);
  cairn('pack', path.join(work, 'typed.onnx'), '-o', path.join(models, 'typed'));
  ({ child: server, origin } = await startEdge(path.join(work, 'app')));
});

after(() => {
  if (server?.exitCode === null) server.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
});

async function infer(name, tensors) {
  const { body, headers } = edgeRequest(tensors);
  const res = await fetch(`${origin}/v1/models/${name}/infer`, { method: 'POST', body, headers });
  const answer = await res.json();
  assert.equal(res.status, 200, JSON.stringify(answer));
  return edgeOutputs(answer.outputs);
}

test('BigInt64Array ids through the edge give the embedding its own text pipeline computes', async () => {
  const text = 'offline notes search in the browser worker';
  const [enc] = JSON.parse(cairn('tokenize', path.join(work, 'app/models/tiny'), '--text', text, '--json'));
  const shape = [1, enc.ids.length];
  const [hidden] = await infer('tiny', [
    { name: 'input_ids', dtype: 'i64', shape, data: BigInt64Array.from(enc.ids, BigInt) },
    { name: 'attention_mask', dtype: 'i64', shape, data: BigInt64Array.from(enc.attention_mask, BigInt) },
  ]);
  assert.equal(hidden.dtype, 'f32');
  assert.ok(hidden.data instanceof Float32Array);
  const [, n, d] = hidden.shape;
  const mean = new Float64Array(d);
  for (let t = 0; t < n; t++) for (let k = 0; k < d; k++) mean[k] += hidden.data[t * d + k] / n;
  const norm = Math.hypot(...mean);
  const res = await fetch(`${origin}/v1/models/tiny/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
  const embedded = (await res.json()).embeddings[0];
  for (let k = 0; k < d; k++) assert.ok(Math.abs(mean[k] / norm - embedded[k]) < 1e-5, `dim ${k}: ${mean[k] / norm} vs ${embedded[k]}`);
});

test('int64 past 2^53, bool and f16 come back exact, as the typed arrays a device run gives', async () => {
  const big = 2n ** 60n + 3n; // 2x is still an int64, and far past what a double holds
  const f16 = new Uint16Array([0x3800, 0xc500, 0x0001]); // 0.5, -5, the smallest subnormal
  const outs = await infer('typed', [
    { name: 'ids', dtype: 'i64', shape: [1, 3], data: new BigInt64Array([big, -7n, 2n ** 52n + 1n]) },
    { name: 'm', dtype: 'bool', shape: [1, 3], data: new Uint8Array([1, 0, 1]) },
    { name: 'h', dtype: 'f16', shape: [1, 3], data: f16 },
  ]);
  const by = Object.fromEntries(outs.map((o) => [o.name, o]));
  assert.ok(by.ids2.data instanceof BigInt64Array);
  assert.deepEqual(Array.from(by.ids2.data), [2n * big, -14n, 2n ** 53n + 2n]);
  assert.deepEqual([by.not_m.dtype, Array.from(by.not_m.data)], ['bool', [0, 1, 0]]);
  assert.ok(by.h2.data instanceof Uint16Array);
  assert.deepEqual([by.h2.dtype, Array.from(by.h2.data)], ['f16', [0x3c00, 0xc900, 0x0002]]); // 1, -10, 2 x subnormal
});

test('a bool byte that is not 0/1 and a short body are 400s that name the input', async () => {
  const { body, headers } = edgeRequest([
    { name: 'ids', dtype: 'i64', shape: [1, 3], data: new BigInt64Array(3) },
    { name: 'm', dtype: 'bool', shape: [1, 3], data: new Uint8Array([1, 2, 0]) },
    { name: 'h', dtype: 'f16', shape: [1, 3], data: new Uint16Array(3) },
  ]);
  let res = await fetch(`${origin}/v1/models/typed/infer`, { method: 'POST', body, headers });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /input 'm': byte 1 is 2/);
  res = await fetch(`${origin}/v1/models/typed/infer`, { method: 'POST', body: body.slice(0, 20), headers });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /input '(ids|m|h)'.*needs/);
});
