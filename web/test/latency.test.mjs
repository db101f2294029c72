// The placement policy's latency estimates (web/src/latency.js) in Node: requests of known
// cost, and what the estimate says of a request of another size. The browser side (the
// estimates a text call's placement carries) is in edge.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Latency } from '../src/latency.js';

const close = (actual, expected, tol = 1e-9) => assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${actual} vs ${expected}`);

test('nothing measured: no estimate', () => {
  assert.equal(new Latency().estimate(1), null);
});

test('requests of one size (image runs): their weighted average, newer runs weighing more', () => {
  const l = new Latency();
  for (const ms of [40, 40, 40]) l.record(1, ms);
  close(l.estimate(1), 40);
  // The CPU slows down: the estimate follows the recent runs, as a running average does.
  for (let i = 0; i < 6; i++) l.record(1, 80);
  assert.ok(l.estimate(1) > 75 && l.estimate(1) < 80, `${l.estimate(1)}`);
  // With one size only, a larger request is taken to grow with its size.
  close(l.estimate(10), 10 * l.estimate(1));
});

test('requests of several sizes: the fixed part and the per-item part apart', () => {
  // The edge: a 30 ms round trip and 2 ms a text.
  const edge = new Latency();
  for (const n of [1, 8, 1, 32, 4]) edge.record(n, 30 + 2 * n);
  close(edge.estimate(1), 32);
  close(edge.estimate(50), 130);
  // The device: no round trip to speak of, 20 ms a text. A 50-text search is estimated at
  // 50 texts' time, not at the last call's (a 1-text note: 21 ms).
  const device = new Latency();
  for (const n of [16, 1, 16, 1]) device.record(n, 1 + 20 * n);
  close(device.estimate(50), 1001);
  // So for a 50-text call the edge (130 ms) is far faster, for one text the device (21 vs 32).
  assert.ok(edge.estimate(50) * 2 < device.estimate(50));
  assert.ok(device.estimate(1) < edge.estimate(1));
});

test('a noisy fit never gives a time that falls with size or a negative time', () => {
  const l = new Latency();
  // Bigger requests that happened to run faster (another tab stopped): no negative slope.
  l.record(1, 50);
  l.record(2, 20);
  for (const n of [1, 2, 64]) assert.ok(l.estimate(n) > 0);
  assert.ok(l.estimate(64) >= l.estimate(2) && l.estimate(2) >= l.estimate(1));
  // A fit whose fixed part would be negative: the proportional estimate instead.
  const m = new Latency();
  m.record(1, 1);
  m.record(10, 40);
  assert.ok(m.estimate(1) > 0);
});

test('only the last 16 requests count; bad samples are ignored', () => {
  const l = new Latency();
  for (let i = 0; i < 16; i++) l.record(1, 1000);
  for (let i = 0; i < 16; i++) l.record(1, 10);
  close(l.estimate(1), 10);
  assert.equal(l.count, 16);
  for (const [n, ms] of [[0, 5], [1, NaN], [1, -1], [1, Infinity]]) l.record(n, ms);
  assert.equal(l.count, 16);
  close(l.estimate(1), 10);
});
