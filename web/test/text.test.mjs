// Text and typed tensors in real headless Chromium:
//   - Cairn's wasm tokenizer gives the Python `tokenizers` package's ids, type ids, masks,
//     offsets and truncation on the 233 fixture texts of three tokenizers (WordPiece of the
//     real all-MiniLM-L6-v2, byte-level BPE, Unigram);
//   - a text bundle streamed into the worker embeds like native `cairn embed`, and text and
//     token classifiers label like native `cairn classify`;
//   - int64 / int32 / bool / f16 / uint8 / int8 tensors in and out of the worker;
//   - bad input (missing or damaged tokenizer.json, over-long, empty, oversized and
//     ill-formed UTF-16 texts) gives clear errors or the documented behaviour, and the
//     worker keeps working.
//
// Needs target/release/cairn and target/web-pkg/{relaxed,simd,scalar} (bench/web/build_wasm.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';
import { root, cairn } from './pwa-app.mjs';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-text-test-'));
const fixtures = path.join(root, 'crates/cairn-text/tests/fixtures');
const MAX_LENGTH = 16;
let server, browser, page;

/** A bundle of the tiny text encoder (an embedding table over the BPE fixture's vocabulary). */
function packTiny(dir) {
  cairn('pack', path.join(root, 'crates/cairn-cli/tests/data/tiny_text_encoder.onnx'), '-o', dir, '--tokenizer', path.join(fixtures, 'bpe.tokenizer.json'),
    '--task', 'feature-extraction', '--max-length', String(MAX_LENGTH), '--no-progressive');
}

/** An ONNX model with one input and output per dtype the worker protocol carries. */
function typedModel(file) {
  execFileSync('python3', ['-c', `
import onnx, sys
from onnx import helper as h, TensorProto as T
nodes = [h.make_node('Add', ['ids', 'ids'], ['ids2']), h.make_node('Cast', ['ids'], ['ids32'], to=T.INT32),
         h.make_node('Not', ['m'], ['not_m']), h.make_node('Cast', ['h'], ['hf'], to=T.FLOAT),
         h.make_node('Add', ['hf', 'hf'], ['h2f']), h.make_node('Cast', ['h2f'], ['h2'], to=T.FLOAT16),
         h.make_node('Cast', ['u'], ['u_as_i8'], to=T.INT8), h.make_node('Neg', ['i'], ['neg_i'])]
io = lambda n, t: h.make_tensor_value_info(n, t, ['n'])
g = h.make_graph(nodes, 'typed', [io('ids', T.INT64), io('m', T.BOOL), io('h', T.FLOAT16), io('u', T.UINT8), io('i', T.INT32)],
                 [io('ids2', T.INT64), io('ids32', T.INT32), io('not_m', T.BOOL), io('h2', T.FLOAT16), io('u_as_i8', T.INT8), io('neg_i', T.INT32)])
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid('', 17)]), sys.argv[1])
`, file]);
}

/** A bundle of one of the CLI tests' tiny classifiers (crates/cairn-cli/tests/data/make.py). */
function packClassifier(dir, model, task, labels) {
  const data = path.join(root, 'crates/cairn-cli/tests/data');
  cairn('pack', path.join(data, `${model}.onnx`), '-o', dir, '--tokenizer', path.join(fixtures, 'bpe.tokenizer.json'), '--task', task,
    '--labels', path.join(data, labels), '--max-length', String(MAX_LENGTH), '--no-progressive');
}

before(async () => {
  const models = path.join(work, 'models');
  packTiny(path.join(models, 'tiny'));
  packClassifier(path.join(models, 'sentiment'), 'tiny_text_classifier', 'text-classification', 'text_labels.txt');
  packClassifier(path.join(models, 'ner'), 'tiny_token_classifier', 'token-classification', 'token_labels.txt');
  // Copies to break: one without its tokenizer, one whose tokenizer the server damages.
  packTiny(path.join(models, 'no-tokenizer'));
  fs.rmSync(path.join(models, 'no-tokenizer', 'tokenizer.json'));
  packTiny(path.join(models, 'damaged'));
  typedModel(path.join(work, 'typed.onnx'));
  cairn('pack', path.join(work, 'typed.onnx'), '-o', path.join(models, 'typed'), '--no-progressive');
  server = await startServer({ '/web/': path.join(root, 'web'), '/pkg/': path.join(root, 'target/web-pkg'), '/models/': models, '/fixtures/': fixtures });
  server.fault('/models/damaged/tokenizer.json', 'corrupt', -1);
  browser = await launch();
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.origin}/web/test/fixture.html`);
  await page.waitForFunction(() => window.fixtureReady);
  await page.evaluate(async () => { window.cairn = await window.Cairn.start({ wasmBase: '/pkg/' }); });
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

test('the wasm tokenizer equals Python tokenizers on 233 texts and 55 pairs x 3 tokenizers (ids, type ids, masks, offsets, truncation)', async () => {
  const report = await page.evaluate(async () => {
    // The tokenizer module the worker loads for text bundles (crates/cairn-web-text).
    const wasm = await import('/pkg/text/cairn_web_text.js');
    await wasm.default();
    const out = {};
    for (const name of ['minilm', 'bpe', 'unigram']) {
      const json = new Uint8Array(await (await fetch(`/fixtures/${name}.tokenizer.json`)).arrayBuffer());
      const { cases } = await (await fetch(`/fixtures/${name}.cases.json`)).json();
      const tok = new wasm.Tokenizer(json, 0);
      const got = JSON.parse(tok.encode(JSON.stringify(cases.map((c) => c.text))));
      tok.free();
      const diffs = [];
      cases.forEach((c, i) => {
        const g = got[i];
        const same = JSON.stringify([g.ids, g.type_ids, g.attention_mask, g.offsets, g.truncated]) === JSON.stringify([c.ids, c.type_ids, c.mask, c.offsets, c.overflowing]);
        if (!same) diffs.push({ i, text: c.text.slice(0, 60) });
      });
      // Text pairs (tools/gen_tokenizer_pairs.py), each as a batch of one.
      const pairs = await (await fetch(`/fixtures/${name}.pairs.json`)).json();
      const pairTok = new wasm.Tokenizer(json, pairs.max_length);
      // ... and all of them at once, unpadded, with their tokens and which text each came from.
      const alone = JSON.parse(pairTok.encode(JSON.stringify(pairs.cases.map((c) => ({ text: c.text, text_pair: c.text_pair })))));
      for (const [i, c] of pairs.cases.entries()) {
        const g = alone[i];
        if (JSON.stringify([g.ids, g.type_ids, g.attention_mask, g.offsets, g.sequence_ids, g.tokens, g.truncated]) !== JSON.stringify([c.ids, c.type_ids, c.mask, c.offsets, c.sequence_ids, c.tokens, c.overflowing])) diffs.push({ pairAlone: i, text: c.text.slice(0, 30) });
      }
      for (const [i, c] of pairs.cases.entries()) {
        const b = pairTok.encodeBatch(JSON.stringify([{ text: c.text, text_pair: c.text_pair }]));
        const got = [Array.from(b.ids), Array.from(b.typeIds), Array.from(b.attentionMask), Array.from(b.truncated).length > 0];
        b.free();
        if (JSON.stringify(got) !== JSON.stringify([c.ids, c.type_ids, c.mask, c.overflowing])) diffs.push({ pair: i, text: c.text.slice(0, 30) });
      }
      pairTok.free();
      cases.pairs = pairs.cases.length;
      out[name] = { cases: cases.length, pairs: cases.pairs, diffs, longest: Math.max(...cases.map((c) => c.ids.length)), truncated: cases.filter((c) => c.overflowing).length };
    }
    // A malformed file is an error with a hint, not a crash.
    try { new wasm.Tokenizer(new TextEncoder().encode('{ not json'), 0); out.malformed = 'accepted'; } catch (e) { out.malformed = String(e.message); }
    // Files the tokenizers crate itself panicked on (a wasm trap; fuzz target load_tokenizer):
    // one cut off inside its decoder, one whose template names an undefined special token
    // (it loaded, and trapped on the first text). Both are errors; the module works on after.
    const bpe = await (await fetch('/fixtures/bpe.tokenizer.json')).text();
    const undefinedToken = JSON.parse(bpe);
    undefinedToken.post_processor.single[0].SpecialToken.id = '<S>';
    out.hostile = [bpe.slice(0, bpe.indexOf('"decoder"') + 30), JSON.stringify(undefinedToken)].map((file) => {
      try { new wasm.Tokenizer(new TextEncoder().encode(file), 0).encode('["a"]'); return 'accepted'; } catch (e) { return `${e.constructor.name}: ${e.message}`; }
    });
    const after = new wasm.Tokenizer(new TextEncoder().encode(bpe), 0);
    out.after = JSON.parse(after.encode('["lunch in Lyon"]'))[0].ids.length;
    after.free();
    return out;
  });
  for (const [name, r] of Object.entries(report).filter(([n]) => !['malformed', 'hostile', 'after'].includes(n))) {
    console.log(`wasm tokenizer in Chromium, ${name}: ${r.cases} texts and ${r.pairs} pairs against Python tokenizers, ${r.diffs.length} differ (longest ${r.longest} tokens, ${r.truncated} truncated)`);
    assert.ok(r.cases >= 200 && r.pairs >= 50, `${name}: ${r.cases} cases, ${r.pairs} pairs`);
    assert.deepEqual(r.diffs, [], name);
  }
  assert.match(report.malformed, /not one the Hugging Face tokenizers library reads.*hint/, report.malformed);
  assert.match(report.hostile[0], /^Error: .*tokenizer\.json/, 'a file cut off inside its decoder');
  assert.match(report.hostile[1], /^Error: .*special token "<S>"/, 'a template naming an undefined special token');
  assert.ok(report.after > 2, 'the tokenizer module works after both');
});

test('a text bundle embeds in the worker like native `cairn embed`; batches, truncation, empty texts', async () => {
  const texts = ['garden recipe', 'offline notes search in the browser worker', '', 'music budget '.repeat(20), 'Déjà vu 🍕 東京'];
  const native = JSON.parse(cairn('embed', path.join(work, 'models/tiny'), ...texts.flatMap((t) => ['--text', t]), '--json'));
  const r = await page.evaluate(async (texts) => {
    const model = await window.cairn.load('/models/tiny/manifest.json');
    // Concurrent calls: the scheduler runs them as one padded batch.
    const [all, ...single] = await Promise.all([model.embed(texts), ...texts.map((t) => model.embed(t))]);
    const tokens = await model.tokenize(texts[3]);
    return { dim: all.dim, rows: all.embeddings.map((e) => Array.from(e)), single: single.map((s) => Array.from(s.embeddings[0])), truncated: all.truncated, maxLength: all.maxLength, tokens: tokens.encodings[0].ids.length };
  }, texts);
  assert.equal(r.dim, native.dim);
  const close = (a, b) => a.every((x, i) => Math.abs(x - b[i]) <= 1e-5);
  r.rows.forEach((row, i) => {
    assert.ok(close(row, native.embeddings[i]), `text ${i}: wasm ${row.slice(0, 3)} vs native ${native.embeddings[i].slice(0, 3)}`);
    assert.ok(close(row, r.single[i]), `text ${i}: alone vs in a batch`);
  });
  assert.deepEqual(r.truncated, [3], 'the over-long text is reported truncated');
  assert.deepEqual(native.truncated, [3]);
  assert.equal(r.maxLength, MAX_LENGTH);
  assert.equal(r.tokens, MAX_LENGTH);
  assert.ok(Math.abs(Math.hypot(...r.rows[2]) - 1) < 1e-5, 'the empty text embeds as its special tokens, normalized');
});

test('model.classify in the worker labels texts and tokens like native `cairn classify`; concurrent calls, truncation', async () => {
  const texts = ['I love pizza', 'never again, awful service', '', 'budget music '.repeat(10), 'Lunch in Lyon: déjà vu 🍕'];
  const args = texts.flatMap((t) => ['--text', t]);
  const native = {
    sentiment: JSON.parse(cairn('classify', path.join(work, 'models/sentiment'), ...args, '--json')),
    ner: JSON.parse(cairn('classify', path.join(work, 'models/ner'), ...args, '--json')),
    entities: JSON.parse(cairn('classify', path.join(work, 'models/ner'), ...args, '--json', '--aggregate', 'simple')),
  };
  const r = await page.evaluate(async (texts) => {
    const sentiment = await window.cairn.load('/models/sentiment/manifest.json');
    const ner = await window.cairn.load('/models/ner/manifest.json');
    // Concurrent calls: the scheduler runs them as one padded batch.
    const [all, ...single] = await Promise.all([sentiment.classify(texts), ...texts.map((t) => sentiment.classify(t))]);
    let wrongTask = null;
    try { await (await window.cairn.load('/models/tiny/manifest.json')).classify('x'); } catch (e) { wrongTask = `${e.code}: ${e.message}`; }
    let badAggregate = null;
    try { await ner.classify('x', { aggregate: 'words' }); } catch (e) { badAggregate = `${e.code}: ${e.message}`; }
    return { all, single: single.map((s) => s.results[0]), ner: await ner.classify(texts), entities: await ner.classify(texts, { aggregate: 'simple' }), wrongTask, badAggregate };
  }, texts);
  assert.equal(r.all.results.length, texts.length);
  assert.equal(r.all.maxLength, MAX_LENGTH);
  const close = (a, b) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= 1e-5);
  r.all.results.forEach((got, i) => {
    const want = native.sentiment.results[i];
    assert.equal(got.label, want.label, `text ${i}`);
    assert.equal(got.index, want.index);
    assert.ok(close(got.scores, want.scores), `text ${i}: wasm ${got.scores} vs native ${want.scores}`);
    assert.ok(close(r.single[i].scores, got.scores), `text ${i}: alone vs in a batch`);
    assert.equal(got.truncated, native.sentiment.truncated.includes(i));
  });
  assert.deepEqual(native.sentiment.truncated, [3, 4].filter((i) => native.sentiment.results[i].truncated));
  assert.ok(r.all.results[3].truncated, 'the over-long text is said to be truncated');
  r.ner.results.forEach((got, i) => {
    const want = native.ner.results[i];
    assert.equal(got.tokens.length, want.tokens.length, `text ${i}: one label per non-special token`);
    got.tokens.forEach(([label, span], t) => {
      assert.deepEqual(span, want.tokens[t][1], `text ${i} token ${t}: span`);
      assert.equal(label.label, want.tokens[t][0].label);
      assert.ok(Math.abs(label.score - want.tokens[t][0].score) <= 1e-5);
    });
  });
  assert.ok(r.ner.results[2].tokens.length === 0, 'the empty text has no tokens to label');
  // aggregate: 'simple' merges the tokens into entities, with their text, as natively.
  r.entities.results.forEach((got, i) => {
    const want = native.entities.results[i].entities;
    assert.equal(got.entities.length, want.length, `text ${i}: entities`);
    got.entities.forEach((e, j) => {
      assert.deepEqual([e.label, e.start, e.end, e.text], [want[j].label, want[j].start, want[j].end, want[j].text]);
      assert.equal(e.text, Array.from(texts[i]).slice(e.start, e.end).join(''), 'the span of the text, in code points');
    });
  });
  assert.ok(r.entities.results.some((res) => res.entities.length > 0), 'the tiny model finds some entity');
  assert.equal(r.ner.results[0].entities, undefined, 'no entities unless asked');
  assert.match(r.badAggregate, /bad-input: .*aggregate 'words'/);
  assert.match(r.wrongTask, /feature-extraction/, 'an embedding model refuses to classify, and says why');
});

test('model.classify takes text pairs (cross-encoders, NLI) like native `cairn classify --pair`; tokenized like `cairn tokenize --pair`; refused where they mean nothing', async () => {
  const pairs = [['is the pizza good', 'awful service, never again'], ['rain', 'sun'], ['budget music '.repeat(8), 'a long pair is cut longest first'], ['lone \ud800 half', 'fine']];
  const args = pairs.flatMap(([t, p]) => ['--text', t.toWellFormed(), '--pair', p]);
  const native = JSON.parse(cairn('classify', path.join(work, 'models/sentiment'), ...args, '--json'));
  const nativeTokens = JSON.parse(cairn('tokenize', path.join(work, 'models/sentiment'), ...args, '--json'));
  const single = JSON.parse(cairn('classify', path.join(work, 'models/sentiment'), '--text', pairs[0][0], '--json'));
  const r = await page.evaluate(async (pairs) => {
    const sentiment = await window.cairn.load('/models/sentiment/manifest.json');
    const items = pairs.map(([text, textPair]) => ({ text, textPair }));
    // A batch mixing pairs and a single text, and each pair alone (concurrent: one padded batch).
    const [mixed, ...alone] = await Promise.all([sentiment.classify([...items, pairs[0][0]]), ...items.map((p) => sentiment.classify(p))]);
    const refused = {};
    const attempt = async (name, f) => { try { await f(); refused[name] = 'accepted'; } catch (e) { refused[name] = `${e.code}: ${e.message}`; } };
    await attempt('ner', async () => (await window.cairn.load('/models/ner/manifest.json')).classify(items[0]));
    await attempt('embed', async () => (await window.cairn.load('/models/tiny/manifest.json')).embed(items[0]));
    await attempt('half', () => sentiment.classify({ text: 'no pair' }));
    const tokens = await sentiment.tokenize([...items, pairs[0][0]]);
    return { mixed, alone: alone.map((a) => a.results[0]), refused, tokens, after: (await sentiment.classify('still works')).results.length };
  }, pairs);
  const close = (a, b) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= 1e-5);
  pairs.forEach((_, i) => {
    const want = native.results[i];
    assert.ok(close(r.mixed.results[i].scores, want.scores), `pair ${i}: wasm ${r.mixed.results[i].scores} vs native ${want.scores}`);
    assert.ok(close(r.alone[i].scores, want.scores), `pair ${i} alone`);
    assert.equal(r.mixed.results[i].truncated, want.truncated, `pair ${i}: truncation`);
  });
  assert.ok(native.results[2].truncated, 'the long pair is cut');
  assert.ok(close(r.mixed.results[4].scores, single.results[0].scores), 'the single text in the same batch is itself');
  assert.ok(!close(r.mixed.results[0].scores, single.results[0].scores), 'the pair is what the model sees');
  assert.deepEqual(r.mixed.replaced, [3], 'a lone surrogate in a pair is replaced, and said');
  // model.tokenize shows a pair as the model sees it: which text each token came from.
  nativeTokens.forEach((want, i) => {
    const got = r.tokens.encodings[i];
    assert.deepEqual([got.ids, got.type_ids, got.offsets, got.sequence_ids, got.truncated], [want.ids, want.type_ids, want.offsets, want.sequence_ids, want.truncated], `pair ${i} tokens`);
  });
  assert.ok(r.tokens.encodings[0].sequence_ids.includes(1) && !r.tokens.encodings[4].sequence_ids.includes(1));
  assert.deepEqual(r.tokens.replaced, [3]);
  assert.match(r.refused.ner, /^bad-input: text pairs need a text-classification bundle/);
  assert.match(r.refused.embed, /^bad-input: texts must be .*text pairs are for classify/);
  assert.match(r.refused.half, /^bad-input: texts must be/);
  assert.equal(r.after, 1, 'the worker keeps working');
});

test('tensors of every dtype go through the worker: int64, int32, bool, f16, uint8 -> int8', async () => {
  const out = await page.evaluate(async () => {
    const model = await (await window.cairn.load('/models/typed/manifest.json')).complete;
    const r = await model.run({
      ids: { data: BigInt64Array.from([1n, -2n, 2n ** 40n]), shape: [3] },
      m: { data: Uint8Array.from([1, 0, 1]), shape: [3], dtype: 'bool' },
      h: { data: Uint16Array.from([0x3c00, 0xc000, 0x3800]), shape: [3], dtype: 'f16' }, // 1, -2, 0.5
      u: { data: Uint8Array.from([0, 127, 200]), shape: [3] },
      i: { data: Int32Array.from([5, -6, 2 ** 31 - 1]), shape: [3] },
    });
    const errors = [];
    for (const bad of [
      { ids: { data: BigInt64Array.from([1n]), shape: [2] } },
      { ids: { data: Float32Array.from([1]), shape: [1], dtype: 'i64' } },
      { ids: { data: [1, 2], shape: [2] } },
    ]) {
      try { await model.run(bad); errors.push('accepted'); } catch (e) { errors.push(`${e.code}: ${e.message}`); }
    }
    // Missing inputs: the engine's check, reported as bad input; the worker carries on.
    try { await model.run({ ids: { data: BigInt64Array.from([1n]), shape: [1] } }); errors.push('accepted'); } catch (e) { errors.push(`${e.code}: ${e.message}`); }
    return { outputs: r.outputs.map((o) => ({ name: o.name, dtype: o.dtype, shape: o.shape, type: o.data.constructor.name, data: Array.from(o.data, String) })), errors };
  });
  const by = Object.fromEntries(out.outputs.map((o) => [o.name, o]));
  assert.deepEqual([by.ids2.dtype, by.ids2.type, by.ids2.data], ['i64', 'BigInt64Array', ['2', '-4', String(2n ** 41n)]]);
  assert.deepEqual([by.ids32.dtype, by.ids32.type, by.ids32.data], ['i32', 'Int32Array', ['1', '-2', '0']]);
  assert.deepEqual([by.not_m.dtype, by.not_m.data], ['bool', ['0', '1', '0']]);
  assert.deepEqual([by.h2.dtype, by.h2.type, by.h2.data], ['f16', 'Uint16Array', [String(0x4000), String(0xc400), String(0x3c00)]]);
  assert.deepEqual([by.u_as_i8.dtype, by.u_as_i8.type, by.u_as_i8.data], ['i8', 'Int8Array', ['0', '127', '-56']]);
  assert.deepEqual([by.neg_i.dtype, by.neg_i.data], ['i32', ['-5', '6', String(-(2 ** 31 - 1))]]);
  assert.match(out.errors[0], /^bad-input: input 'ids': shape \[2\] has 2 elements, the array 1/);
  assert.match(out.errors[1], /^bad-input: input 'ids': a Float32Array cannot hold dtype 'i64'/);
  assert.match(out.errors[2], /^bad-input: input 'ids' must be/);
  assert.match(out.errors[3], /^bad-input: invalid input: missing input '(m|h|u|i)'/);
});

test('bad input: missing or damaged tokenizer.json, ill-formed UTF-16, oversized and non-string texts; the worker keeps working', async () => {
  const r = await page.evaluate(async () => {
    const attempt = async (f) => { try { return { ok: await f() }; } catch (e) { return { code: e.code, message: e.message }; } };
    const missing = await attempt(() => window.cairn.load('/models/no-tokenizer/manifest.json'));
    const damaged = await attempt(() => window.cairn.load('/models/damaged/manifest.json'));
    const model = await window.cairn.load('/models/tiny/manifest.json');
    const lone = await model.embed(['pizza \uD83C', 'pizza \uFFFD', '\uDC00 alone']);
    const tokens = await model.tokenize('\uD83C');
    const huge = await attempt(() => model.embed(['x'.repeat((1 << 20) + 1)]));
    const notText = await attempt(() => model.embed([42]));
    const none = await attempt(() => model.embed([]));
    const after = await model.embed('still here');
    const image = await attempt(() => model.run(new ImageData(4, 4)));
    return {
      missing, damaged, huge, notText, none, image,
      lone: { replaced: lone.replaced, same: Array.from(lone.embeddings[0]).every((x, i) => x === lone.embeddings[1][i]) },
      tokens: tokens.encodings[0].tokens, replacedTok: tokens.replaced,
      after: after.embeddings[0].length,
    };
  });
  console.log('missing tokenizer.json:', r.missing.code, r.missing.message);
  console.log('damaged tokenizer.json:', r.damaged.code, r.damaged.message);
  console.log('text over 1 MiB:', r.huge.code, r.huge.message);
  assert.equal(r.missing.code, 'bad-tokenizer');
  assert.match(r.missing.message, /tokenizer\.json: HTTP 404.*hint/);
  assert.equal(r.damaged.code, 'bad-tokenizer');
  assert.match(r.damaged.message, /does not match the manifest/);
  assert.deepEqual(r.lone.replaced, [0, 2], 'texts with lone surrogates are named');
  assert.ok(r.lone.same, 'a lone surrogate embeds as U+FFFD');
  assert.deepEqual(r.replacedTok, [0]);
  assert.equal(r.huge.code, 'bad-input');
  assert.match(r.huge.message, /more than the 1048576 bytes/);
  assert.equal(r.notText.code, 'bad-input');
  assert.equal(r.none.code, 'bad-input');
  assert.equal(r.image.code, 'bad-input', 'a text model is not given images');
  assert.equal(r.after, 8, 'the worker still embeds after every error');
});
