// Which run-time width to run under a deadline (issue 17; docs/adr/0029). Pure logic, no
// browser APIs: cairn.js feeds it each run's measured times and the battery and memory
// signals, and asks it for a width before each run. Unit tests: web/test/width-policy.test.mjs.
//
// The estimate is one speed and a cost per width: `speed` is what the full width would take
// now (ms, an exponentially weighted average of every run, whatever width ran, divided by that
// width's cost), `cost[w]` the share of the full width's run time that width w takes (its MACs
// share until measured; learned when the runtime switches to it, since only a run next to runs
// of another width tells the two apart from a change of CPU speed). So a width not run for a
// while is still estimated from what the current width measures now: when the CPU slows or
// recovers, every width's estimate moves with it, and the runtime steps down or probes back up.

const ALPHA = 0.3; // weight of the newest sample in the averages
const COST_ALPHA = 0.1; // weight of one neighbouring pair in a width's learned cost
const SHIFT = 1.6; // a change of speed by more than this factor may be a new speed (runs on a loaded machine vary by up to ~1.5x)
const JITTER_PRIOR = 0.1; // relative jitter assumed before any run (10% of the estimate)
// How many standard-ish deviations of headroom a width must leave under the deadline: the mean
// absolute deviation of the residuals times this covers ~90% of runs for a normal spread.
const HEADROOM = 2;
const LOW_BATTERY = 0.2; // at or below this level, not charging: save power
const LOW_MEMORY_GB = 1; // navigator.deviceMemory at or below: prepare at most two widths

const fmt = (w) => String(Math.round(w * 1000) / 1000);
const ms = (x) => `${Math.round(x)} ms`;

export class WidthPolicy {
  /**
   * @param {{ width: number, macs?: number }[]} widths the model's narrower widths (manifest
   *   `widths.widths`: `fraction` and `macs`); the full width (1) is added.
   * @param {{ probeEvery?: number }} [options] `probeEvery`: runs a width stays capped below
   *   one that missed the deadline before the estimate may choose it again.
   */
  constructor(widths, { probeEvery = 8 } = {}) {
    // MACs of the full model: each width's MACs over its fraction (they agree to ~1%).
    const withMacs = widths.filter((w) => w.macs > 0 && w.width > 0);
    const fullMacs = withMacs.length ? withMacs.reduce((n, w) => n + w.macs / w.width, 0) / withMacs.length : null;
    this.widths = [1, ...widths.map((w) => w.width).filter((w) => w > 0 && w < 1)].sort((a, b) => b - a);
    /** Each width's share of the full model's MACs (the fraction where the manifest has no MACs). */
    this.macsShare = new Map(this.widths.map((w) => {
      const macs = widths.find((x) => x.width === w)?.macs;
      return [w, w === 1 ? 1 : (fullMacs && macs ? macs / fullMacs : w)];
    }));
    this.cost = new Map(this.macsShare);
    this.speed = null; // ms the full width's run would take now
    this.overhead = null; // ms a request spends outside the run (preprocessing, messages)
    this.deviation = null; // ms: average |total - predicted total|
    this.lastWidth = null; // the width of the last run
    this.lastSample = null; // { width, runMs, typical } of the last run learned from
    this.outOfLine = 0; // the last run was far above (1) or below (-1) the estimate, or not (0)
    this.runs = 0;
    this.cap = null; // { width, until, missed: { width, totalMs } } after a miss
    this.probeEvery = probeEvery;
  }

  /** Predicted run and total ms for width `w` now, and the headroom it must leave. */
  estimate(w) {
    if (this.speed == null) return null;
    const runMs = this.cost.get(w) * this.speed;
    const totalMs = runMs + (this.overhead ?? 0);
    const headroom = HEADROOM * (this.deviation ?? JITTER_PRIOR * totalMs);
    return { runMs, totalMs, headroom };
  }

  /**
   * The width to run next and why.
   * @param {{ deadlineMs: number, battery?: { level?: number, charging?: boolean }, deviceMemory?: number }} signals
   * @returns {{ width: number, reason: string }}
   */
  choose({ deadlineMs, battery, deviceMemory }) {
    const prefix = `deadline ${ms(deadlineMs)}`;
    let candidates = this.widths;
    const notes = [];
    if (deviceMemory != null && deviceMemory <= LOW_MEMORY_GB && candidates.length > 2) {
      // Each width used is a prepared copy of the weights (docs/adr/0018): keep two.
      candidates = [candidates[0], candidates.at(-1)];
      notes.push(`memory low (${deviceMemory} GB): only widths ${candidates.map(fmt).join(' and ')}`);
    }
    if (battery && battery.charging === false && battery.level != null && battery.level <= LOW_BATTERY) {
      const w = candidates.at(-1);
      return { width: w, reason: `battery low (${Math.round(battery.level * 100)}%, not charging): narrowest width ${fmt(w)} to save power${notes.length ? `; ${notes.join('; ')}` : ''}` };
    }
    if (this.speed == null) {
      // Nothing measured yet: the full width, whose time then calibrates every estimate.
      return { width: candidates[0], reason: `${prefix}: ${fmt(candidates[0])}, no run measured yet${notes.length ? `; ${notes.join('; ')}` : ''}` };
    }
    if (this.cap && this.runs >= this.cap.until) this.cap = null;
    const allowed = this.cap ? candidates.filter((w) => w <= this.cap.width) : candidates;
    const fits = allowed.find((w) => { const e = this.estimate(w); return e.totalMs + e.headroom <= deadlineMs; });
    const width = fits ?? allowed.at(-1) ?? candidates.at(-1);
    const e = this.estimate(width);
    let reason = fits != null
      ? `${prefix}: ${fmt(width)} estimated ${ms(e.totalMs)}`
      : `${prefix}: none fits, narrowest ${fmt(width)} estimated ${ms(e.totalMs)}`;
    if (this.cap && this.cap.width < candidates[0] && width === this.cap.width) {
      reason += ` (${fmt(this.cap.missed.width)} missed it at ${ms(this.cap.missed.totalMs)}; wider again in ${this.cap.until - this.runs} runs if the estimate fits)`;
    } else if (this.lastWidth != null && width > this.lastWidth) {
      reason += ` (probing up from ${fmt(this.lastWidth)})`;
    }
    if (notes.length) reason += `; ${notes.join('; ')}`;
    return { width, reason };
  }

  /**
   * One finished run. `runMs`: the worker's compute time; `totalMs`: from the request to its
   * answer on the page. `first`: the width's first run in this worker (it included preparing
   * the width's weights, so it says nothing about the speed and is not learned from).
   * @param {{ width: number, runMs: number, totalMs: number, deadlineMs?: number, first?: boolean }} run
   */
  record({ width, runMs, totalMs, deadlineMs, first = false }) {
    if (!this.cost.has(width) || !(runMs > 0) || !(totalMs >= runMs) || !Number.isFinite(totalMs)) return;
    this.runs++;
    this.lastWidth = width;
    if (first) return;
    const before = this.estimate(width);
    const residual = before ? Math.abs(totalMs - before.totalMs) : 0;
    // Typical: within the jitter seen so far (a run at a new CPU speed, or a stall, is not).
    const typical = !before || residual <= Math.max(3 * (this.deviation ?? 0), JITTER_PRIOR * before.totalMs);
    // A typical run right after a typical run of another width tells this width's cost relative to
    // that one (the full width's cost is 1 by definition). Two neighbouring runs, not the
    // averaged speed, so that a change of CPU speed at the same moment is not taken for a cost.
    const prev = this.lastSample;
    this.lastSample = { width, runMs, typical };
    if (prev?.typical && typical && prev.width !== width && width !== 1) {
      const observed = (this.cost.get(prev.width) * runMs) / prev.runMs;
      const c = this.cost.get(width);
      // One pair is noisy (on a loaded machine a narrower width may even measure slower): a
      // small step, kept between the width's MACs share (less is not plausible) and 1; and a
      // wider width never costs less than a narrower one.
      const learned = Math.min(1, Math.max(this.macsShare.get(width), c + COST_ALPHA * (observed - c)));
      this.cost.set(width, learned);
      for (const w of this.widths) if (w > width && this.cost.get(w) < learned) this.cost.set(w, learned);
    }
    const fullEquivalent = runMs / this.cost.get(width);
    // A change of speed by a factor past SHIFT and past twice the jitter seen (a throttled or
    // recovered CPU: a factor, whatever the width) is taken at once, but only when a second
    // run confirms it: one run out of line may be a stall or a lucky slice of CPU, and is then
    // left out of the averages.
    const far = this.speed != null && Math.abs(Math.log(fullEquivalent / this.speed)) > Math.max(Math.log(SHIFT), 2 * (this.deviation ?? 0) / before.totalMs);
    const out = far ? Math.sign(fullEquivalent - this.speed) : 0;
    const jump = out !== 0 && out === this.outOfLine;
    this.outOfLine = jump ? 0 : out;
    if (jump) {
      // The work around the run (preprocessing, messages: CPU work too) scales with the new
      // speed. The jitter seen at the old speed is another regime's (a loaded machine's spikes,
      // say): it starts again from the prior. Neither the jump nor the old jitter is taken for
      // the new jitter: either would keep every width but the narrowest out for many runs.
      const ratio = fullEquivalent / this.speed;
      if (this.overhead != null) this.overhead *= ratio;
      this.deviation = null;
      // A miss at the old speed says nothing once the CPU got faster: wider widths may run again.
      if (fullEquivalent < this.speed) this.cap = null;
      this.speed = fullEquivalent;
    } else if (!far) {
      if (before) {
        const d = this.deviation ?? JITTER_PRIOR * before.totalMs; // the prior counts as a first sample
        this.deviation = d + ALPHA * (residual - d);
      }
      this.speed = this.speed == null ? fullEquivalent : this.speed + ALPHA * (fullEquivalent - this.speed);
    }
    if (!far || jump) {
      const over = totalMs - runMs;
      this.overhead = this.overhead == null ? over : this.overhead + ALPHA * (over - this.overhead);
    }
    if (deadlineMs != null && totalMs > deadlineMs) {
      // Missed: nothing at this width or wider until `probeEvery` runs have passed.
      const narrower = this.widths.find((w) => w < width) ?? width;
      if (!this.cap || narrower <= this.cap.width) this.cap = { width: narrower, until: this.runs + this.probeEvery, missed: { width, totalMs } };
    }
  }
}
