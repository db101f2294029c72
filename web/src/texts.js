// The texts of `embed`, `classify` and `tokenize` as the page gives them, checked and made
// sendable once, for both places a text call can run: the worker (the device) and the page's
// edge request. One module so that the two cannot drift apart on what a pair is or which
// texts were replaced.

/**
 * `texts` as a non-empty list: a string, or with `pairs` a pair `{ text, textPair }`
 * (classify), stands for a list of one.
 * @param {unknown} texts
 * @param {{ pairs?: boolean }} [options]
 * @returns {(string | { text: string, textPair: string })[]}
 * @throws {Error} with `code: 'bad-input'`
 */
export function textList(texts, { pairs = false } = {}) {
  const isPair = (t) => pairs && typeof t?.text === 'string' && typeof t?.textPair === 'string';
  const list = typeof texts === 'string' || isPair(texts) ? [texts] : texts;
  if (!Array.isArray(list) || list.length === 0 || !list.every((t) => typeof t === 'string' || isPair(t))) {
    const what = pairs ? 'a string, a { text, textPair } pair, or a non-empty array of them' : 'a string or a non-empty array of strings (text pairs are for classify)';
    throw Object.assign(new Error(`texts must be ${what}`), { code: 'bad-input' });
  }
  return list;
}

/** The text of a list item, or a pair's two texts, in order. */
export function sidesOf(t) {
  return typeof t === 'string' ? [t] : [t.text, t.textPair];
}

/**
 * `list` (from `textList`) as UTF-8 can carry it, in the wire form of the tokenizer module
 * and the edge (a pair is `{ text, text_pair }`, Hugging Face's names). A lone UTF-16
 * surrogate (a broken emoji from a cut string, say) has no UTF-8 form: it becomes U+FFFD,
 * and `replaced` lists the indices of the texts where that happened. `pairs`: whether any
 * item is a pair.
 * @param {(string | { text: string, textPair: string })[]} list
 * @returns {{ texts: (string | { text: string, text_pair: string })[], replaced: number[], pairs: boolean }}
 */
export function wellFormed(list) {
  const replaced = [];
  const texts = list.map((t, i) => {
    const sides = sidesOf(t);
    const fixed = sides.map((s) => (s.isWellFormed() ? s : s.toWellFormed()));
    if (fixed.some((s, k) => s !== sides[k])) replaced.push(i);
    return fixed.length === 1 ? fixed[0] : { text: fixed[0], text_pair: fixed[1] };
  });
  return { texts, replaced, pairs: texts.some((t) => typeof t !== 'string') };
}

/**
 * The tokens a text call is expected to run, before the tokenizer (which is in the worker)
 * has seen the texts: the placement policy's measure of a call's size. A call's cost is its
 * padded batches, so each batch of `perRequest` texts counts as its length times its longest
 * text's tokens (at most `maxLength`, where the tokenizer cuts). A text's tokens are guessed
 * from its characters: a word piece per four ASCII characters, one per other code point (a
 * CJK character or an emoji is one token or more; an accented letter counts high), plus the
 * special tokens. A guess, not a count: tokenizing on the page would load a second tokenizer
 * for a number that only weighs one place against the other.
 * @param {(string | { text: string, textPair: string })[]} list
 * @param {number} maxLength
 * @param {number} perRequest
 */
export function expectedTokens(list, maxLength, perRequest) {
  let total = 0;
  for (let at = 0; at < list.length; at += perRequest) {
    const part = list.slice(at, at + perRequest);
    const longest = Math.max(...part.map((t) => guessTokens(t, maxLength)));
    total += part.length * longest;
  }
  return total;
}

/** A text's or pair's tokens as `expectedTokens` guesses them, at most `maxLength`. */
function guessTokens(t, maxLength) {
  const sides = sidesOf(t);
  // [CLS] text [SEP], or [CLS] a [SEP] b [SEP]: about one more per side.
  let tokens = 1 + sides.length;
  for (const side of sides) {
    let ascii = 0;
    for (const ch of side) {
      if (ch.codePointAt(0) < 0x80) ascii++;
      else tokens++;
      // A long document is cut at maxLength: no need to read the rest of it.
      if (tokens + ascii / 4 >= maxLength) return maxLength;
    }
    tokens += Math.ceil(ascii / 4);
  }
  return Math.min(tokens, maxLength);
}
