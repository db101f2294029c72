// The text calls' input checks and size guess (web/src/texts.js) in Node: what the page and the
// worker both apply to `embed` / `classify` / `tokenize` texts, and the tokens the placement
// policy expects a call to run (docs/adr/0040, amendment).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { textList, wellFormed, expectedTokens } from '../src/texts.js';

test('textList takes a string, a pair (where pairs are allowed) or a non-empty array of them', () => {
  assert.deepEqual(textList('a'), ['a']);
  assert.deepEqual(textList(['a', 'b']), ['a', 'b']);
  assert.deepEqual(textList({ text: 'q', textPair: 'p' }, { pairs: true }), [{ text: 'q', textPair: 'p' }]);
  for (const [bad, options] of [[[], {}], [3, {}], [['a', 3], {}], [{ text: 'q', textPair: 'p' }, {}], [{ text: 'q' }, { pairs: true }], [null, { pairs: true }]]) {
    assert.throws(() => textList(bad, options), (e) => e.code === 'bad-input' && /texts must be/.test(e.message), JSON.stringify(bad));
  }
  assert.throws(() => textList([{ text: 'q', textPair: 'p' }]), /text pairs are for classify/);
});

test('wellFormed replaces lone surrogates, says which texts, and writes pairs as the wire form', () => {
  const r = wellFormed(['ok', 'cut \uD83C', { text: 'q', textPair: 'p \uDC00' }, { text: 'fine', textPair: 'too' }]);
  assert.deepEqual(r.texts, ['ok', 'cut \uFFFD', { text: 'q', text_pair: 'p \uFFFD' }, { text: 'fine', text_pair: 'too' }]);
  assert.deepEqual(r.replaced, [1, 2]);
  assert.equal(r.pairs, true);
  assert.equal(wellFormed(['a']).pairs, false);
});

test('expectedTokens grows with the texts and their length, per padded batch, capped at the max length', () => {
  const short = 'a note on Lyon'; // 14 ASCII characters: 4 word pieces + 2 special tokens
  assert.equal(expectedTokens([short], 128, 32), 6);
  assert.equal(expectedTokens(Array(10).fill(short), 128, 32), 60);
  // A batch pads to its longest text; the next batch pads to its own.
  const long = 'word '.repeat(40); // 200 characters: 50 + 2
  assert.equal(expectedTokens([short, long], 128, 32), 2 * 52);
  assert.equal(expectedTokens([short, long], 128, 1), 6 + 52);
  // Cut where the tokenizer cuts, without reading all of a huge text.
  assert.equal(expectedTokens(['x'.repeat(1 << 20)], 128, 32), 128);
  // CJK and emoji count a token per code point; a pair counts both sides and its separator.
  assert.equal(expectedTokens(['東京 🍕'], 128, 32), 2 + 3 + 1);
  assert.equal(expectedTokens([{ text: short, textPair: short }], 128, 32), 3 + 4 + 4);
  assert.equal(expectedTokens([''], 128, 32), 2);
});
