// The deadline policy (web/src/width-policy.js) in Node, against a simulated device whose
// speed, per-width costs and jitter the tests set (the browser test, adaptive.test.mjs, runs
// it on the real model under a slowed CPU).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WidthPolicy } from '../src/width-policy.js';

// EfficientNet-Lite0's widths as its manifest gives them (fraction, MACs).
const WIDTHS = [
  { width: 0.95, macs: 365918400 },
  { width: 0.9, macs: 346622837 },
  { width: 0.8, macs: 308141814 },
];

/** A device: full width takes `fullMs` (changeable), width w `trueCost[w]` of that, plus `overheadMs`, with seeded jitter. */
function device({ fullMs = 100, trueCost = { 1: 1, 0.95: 0.97, 0.9: 0.93, 0.8: 0.86 }, overheadMs = 4, jitter = 0.03, seed = 7 } = {}) {
  let s = seed;
  const rand = () => { s = (s * 1103515245 + 12345) >>> 0; return s / 2 ** 32; };
  const seen = new Set();
  return {
    fullMs,
    run(width) {
      const runMs = this.fullMs * trueCost[width] * (1 + jitter * (2 * rand() - 1));
      const first = !seen.has(width);
      seen.add(width);
      // A width's first run also prepares its weights: much slower.
      const prep = first ? 3 * this.fullMs : 0;
      return { runMs: runMs + prep, totalMs: runMs + prep + overheadMs, first };
    },
  };
}

/** Runs `n` frames under `deadlineMs`; returns the widths chosen and how many met the deadline. */
function stream(policy, dev, n, deadlineMs, signals = {}) {
  const frames = [];
  for (let i = 0; i < n; i++) {
    const { width, reason } = policy.choose({ deadlineMs, ...signals });
    const r = dev.run(width);
    policy.record({ width, ...r, deadlineMs });
    frames.push({ width, reason, met: r.totalMs <= deadlineMs, first: r.first });
  }
  return frames;
}

const metShare = (frames) => frames.filter((f) => f.met).length / frames.length;
const last = (frames, n) => frames.slice(-n);

test('before any run the full width runs (its time calibrates the estimates)', () => {
  const p = new WidthPolicy(WIDTHS);
  assert.deepEqual(p.widths, [1, 0.95, 0.9, 0.8]);
  const c = p.choose({ deadlineMs: 50 });
  assert.equal(c.width, 1);
  assert.match(c.reason, /^deadline 50 ms: 1, no run measured yet/);
});

test('widths never run are estimated from the measured one, scaled by their MACs', () => {
  const p = new WidthPolicy(WIDTHS);
  p.record({ width: 1, runMs: 500, totalMs: 510, first: true }); // preparation: not learned from
  assert.equal(p.estimate(1), null);
  p.record({ width: 1, runMs: 100, totalMs: 110 });
  assert.ok(Math.abs(p.estimate(0.8).runMs - 100 * 308141814 / 385186000) < 0.5, JSON.stringify(p.estimate(0.8)));
  assert.ok(Math.abs(p.estimate(0.8).totalMs - p.estimate(0.8).runMs - 10) < 1e-9, 'the overhead outside the run is added');
});

test('a deadline the full width meets keeps it; a tighter one takes the widest width that fits', () => {
  const dev = device({ jitter: 0.01 });
  const roomy = stream(new WidthPolicy(WIDTHS), dev, 30, 130);
  assert.ok(last(roomy, 20).every((f) => f.width === 1), JSON.stringify(last(roomy, 20).map((f) => f.width)));
  // Full ~104 ms, 0.95 ~101, 0.9 ~97, 0.8 ~90: with 99 ms only 0.8 leaves headroom.
  const tight = stream(new WidthPolicy(WIDTHS), device({ jitter: 0.01 }), 40, 96);
  const settled = last(tight, 25);
  assert.ok(settled.every((f) => f.width === 0.8), JSON.stringify(settled.map((f) => f.width)));
  assert.equal(metShare(settled), 1);
  assert.match(settled[0].reason, /^deadline 96 ms: 0\.8 estimated \d+ ms/);
});

test('the CPU slows 3x: the width steps down and meets the deadline; it comes back to full when the CPU recovers', () => {
  const dev = device();
  const p = new WidthPolicy(WIDTHS);
  const fast = stream(p, dev, 20, 290);
  assert.ok(last(fast, 10).every((f) => f.width === 1));
  dev.fullMs = 300; // throttled: full ~304 ms, 0.8 ~262 ms; the deadline sits between
  const slow = stream(p, dev, 60, 285);
  const settled = slow.slice(10);
  assert.ok(metShare(settled) >= 0.9, `met ${metShare(settled)}: ${settled.map((f) => f.width)}`);
  assert.ok(settled.filter((f) => f.width === 1).length <= 2, 'the full width, which cannot meet it, is not retried over and over');
  dev.fullMs = 100;
  const recovered = stream(p, dev, 20, 285);
  assert.ok(recovered.slice(0, 3).some((f) => f.width === 1), `back to full within 3 frames: ${recovered.map((f) => f.width)}`);
  assert.ok(last(recovered, 10).every((f) => f.width === 1));
});

test('after a slowdown the CPU recovers: full width again once a second run confirms the speed (the jump is not taken for jitter)', () => {
  const dev = device({ jitter: 0.02 });
  const p = new WidthPolicy(WIDTHS);
  stream(p, dev, 10, 250);
  dev.fullMs = 300;
  stream(p, dev, 20, 250);
  dev.fullMs = 100;
  const back = stream(p, dev, 4, 250);
  // The first fast run may be a lucky slice of CPU; the second confirms the new speed.
  assert.deepEqual(back.map((f) => f.width), [0.8, 0.8, 1, 1], JSON.stringify(back));
  assert.match(back[2].reason, /probing up from 0\.8/);
});

test('a miss caps the width below the one that missed; after `probeEvery` runs a wider one runs again if its estimate fits', () => {
  const p = new WidthPolicy(WIDTHS, { probeEvery: 5 });
  p.record({ width: 1, runMs: 100, totalMs: 100 });
  for (let i = 0; i < 5; i++) p.record({ width: 1, runMs: 100, totalMs: 100 });
  assert.equal(p.choose({ deadlineMs: 120 }).width, 1);
  p.record({ width: 1, runMs: 125, totalMs: 125, deadlineMs: 120 }); // one slow run: a miss
  const capped = p.choose({ deadlineMs: 120 });
  assert.equal(capped.width, 0.95);
  assert.match(capped.reason, /1 missed it at 125 ms; wider again in 5 runs/);
  for (let i = 0; i < 5; i++) p.record({ width: 0.95, runMs: 95, totalMs: 95, deadlineMs: 120 });
  const probe = p.choose({ deadlineMs: 120 });
  assert.equal(probe.width, 1);
  assert.match(probe.reason, /probing up from 0\.95/);
});

test('a width costs what it measures, not only its MACs share', () => {
  // 0.8 of the MACs takes 0.95 of the time here (memory-bound kernels, say).
  const p = new WidthPolicy(WIDTHS);
  const dev = device({ trueCost: { 1: 1, 0.95: 0.99, 0.9: 0.97, 0.8: 0.95 }, jitter: 0 });
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 2; i++) { const r = dev.run(1); p.record({ width: 1, ...r }); }
    for (let i = 0; i < 2; i++) { const r = dev.run(0.8); p.record({ width: 0.8, ...r }); }
  }
  assert.ok(Math.abs(p.cost.get(0.8) - 0.95) < 0.01, `learned cost ${p.cost.get(0.8)}`);
  assert.ok(Math.abs(p.estimate(0.8).runMs - 95) < 1, JSON.stringify(p.estimate(0.8)));
});

test('a learned cost stays between the width\'s MACs share and the next wider width\'s cost', () => {
  const p = new WidthPolicy(WIDTHS);
  // Noise: 0.8 measures slower than the full width, then far faster than its MACs allow.
  for (let round = 0; round < 30; round++) {
    p.record({ width: 1, runMs: 100, totalMs: 100 });
    p.record({ width: 0.8, runMs: 130, totalMs: 130 });
  }
  assert.ok(p.cost.get(0.8) <= p.cost.get(0.9) && p.cost.get(0.9) <= p.cost.get(0.95) && p.cost.get(0.95) <= 1, JSON.stringify([...p.cost]));
  const q = new WidthPolicy(WIDTHS);
  for (let round = 0; round < 30; round++) {
    q.record({ width: 1, runMs: 100, totalMs: 100 });
    q.record({ width: 0.8, runMs: 40, totalMs: 40 });
  }
  assert.ok(Math.abs(q.cost.get(0.8) - 308141814 / 385186000) < 0.01, `${q.cost.get(0.8)}`);
});

test('low battery, not charging: the narrowest width; charging: the deadline decides', () => {
  const p = new WidthPolicy(WIDTHS);
  p.record({ width: 1, runMs: 50, totalMs: 52 });
  const low = p.choose({ deadlineMs: 200, battery: { level: 0.12, charging: false } });
  assert.equal(low.width, 0.8);
  assert.match(low.reason, /^battery low \(12%, not charging\): narrowest width 0\.8/);
  assert.equal(p.choose({ deadlineMs: 200, battery: { level: 0.12, charging: true } }).width, 1);
  assert.equal(p.choose({ deadlineMs: 200, battery: { level: 0.5, charging: false } }).width, 1);
});

test('little memory: only the full and the narrowest widths (each width used is a prepared copy)', () => {
  const p = new WidthPolicy(WIDTHS);
  for (let i = 0; i < 15; i++) p.record({ width: 1, runMs: 100, totalMs: 100 }); // steady: the jitter falls from its 10% prior
  // 0.95 (~95 ms) would fit 98 ms, but it is not allowed: 0.8.
  const c = p.choose({ deadlineMs: 98, deviceMemory: 1 });
  assert.equal(c.width, 0.8);
  assert.match(c.reason, /memory low \(1 GB\): only widths 1 and 0\.8/);
  assert.equal(p.choose({ deadlineMs: 98, deviceMemory: 8 }).width, 0.95);
});

test('one stalled run is not a new speed', () => {
  const p = new WidthPolicy(WIDTHS);
  for (let i = 0; i < 6; i++) p.record({ width: 1, runMs: 100, totalMs: 100 });
  p.record({ width: 1, runMs: 400, totalMs: 400 });
  assert.equal(Math.round(p.speed), 100);
  p.record({ width: 1, runMs: 100, totalMs: 100 });
  assert.equal(p.choose({ deadlineMs: 120 }).width, 1);
});

test('none fits: the narrowest width, and the reason says so', () => {
  const p = new WidthPolicy(WIDTHS);
  p.record({ width: 1, runMs: 100, totalMs: 100 });
  const c = p.choose({ deadlineMs: 20 });
  assert.equal(c.width, 0.8);
  assert.match(c.reason, /^deadline 20 ms: none fits, narrowest 0\.8 estimated 80 ms/);
});

test('runs at widths the model lacks, and nonsense times, are ignored', () => {
  const p = new WidthPolicy(WIDTHS);
  p.record({ width: 0.5, runMs: 10, totalMs: 12 });
  p.record({ width: 1, runMs: NaN, totalMs: 12 });
  p.record({ width: 1, runMs: 20, totalMs: 10 });
  assert.equal(p.speed, null);
  assert.equal(p.runs, 0);
});
