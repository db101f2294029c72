// How long a request of `items` inputs takes on one place (this device's build, or the edge),
// from the requests measured there: the placement policy's latency estimates (issue 15:
// `embed`/`classify` take the same device/edge placement as `run`). Pure logic, no browser
// APIs; unit tests: web/test/latency.test.mjs.
//
// Why not one running average per place, as before: a text call carries 1 text or 500, and
// an average of whole calls says a 50-text search costs what the last 1-text note did. Here a
// request costs `fixed + perItem * items` (fixed: the message or network round trip; per item:
// the model's run), fitted by least squares over the last WINDOW requests, newer ones
// weighing more (DECAY per request of age, as the running average's 0.3 for the newest), so
// the estimate follows a CPU that slows down. An image run is one item, a text call's items are
// the tokens its batches are expected to hold (web/src/texts.js `expectedTokens`); with every request of
// one size the fit cannot separate the two terms and the time is taken to grow with the items
// (the larger estimate for a larger request), which for a single size is the weighted average.

const WINDOW = 16;
const DECAY = 0.7;

export class Latency {
  /** [items, ms] of the last WINDOW requests, oldest first. */
  #samples = [];

  /** One request of `items` inputs took `ms`. */
  record(items, ms) {
    if (!(items >= 1 && ms >= 0 && Number.isFinite(ms))) return;
    this.#samples.push([items, ms]);
    if (this.#samples.length > WINDOW) this.#samples.shift();
  }

  /** Requests recorded (at most WINDOW). */
  get count() {
    return this.#samples.length;
  }

  /** The expected time (ms) of a request of `items` inputs, or null before any was measured. */
  estimate(items) {
    const s = this.#samples;
    if (!s.length) return null;
    let w = 0, wn = 0, wms = 0;
    s.forEach(([n, ms], i) => {
      const weight = DECAY ** (s.length - 1 - i);
      w += weight; wn += weight * n; wms += weight * ms;
    });
    const [meanN, meanMs] = [wn / w, wms / w];
    let sxx = 0, sxy = 0;
    s.forEach(([n, ms], i) => {
      const weight = DECAY ** (s.length - 1 - i);
      sxx += weight * (n - meanN) ** 2; sxy += weight * (n - meanN) * (ms - meanMs);
    });
    // Sizes too alike to tell the fixed part from the per-item part (every image run is one
    // item): the time of the average request, scaled by size.
    const proportional = meanMs * (items / meanN);
    if (sxx < 1e-9 * w * meanN * meanN) return proportional;
    const perItem = sxy / sxx;
    const fixed = meanMs - perItem * meanN;
    // Noise can tilt a fit of few requests: a time that falls with size, or a negative fixed
    // part, is not a latency; then the proportional estimate stands.
    if (perItem < 0 || fixed < 0) return proportional;
    return fixed + perItem * items;
  }
}
