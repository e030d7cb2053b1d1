import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatDuration, formatSize, parseDuration, parseSize } from '../../../src/config/units.js';

test('sizes: binary multiples as nginx reads k, m and g; a plain number is bytes', () => {
  assert.equal(parseSize('64k'), 65_536);
  assert.equal(parseSize('64K'), 65_536);
  assert.equal(parseSize('1m'), 1_048_576);
  assert.equal(parseSize('1MiB'), 1_048_576);
  assert.equal(parseSize('1.5g'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('100'), 100);
  assert.equal(parseSize(' 8 kb '), 8192);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ['', 'k', '10q', '-1', '1e3', '1 2k', '0x10']) assert.equal(parseSize(bad), null, bad);
  for (const bad of [-1, 1.5, Number.NaN, Infinity]) assert.equal(parseSize(bad), null, String(bad));
});

test('durations: ms, s, m, h, d and sums of them; a string needs its unit; a number is ms', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1h 30m'), 5_400_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration(250), 250);
  for (const bad of ['', '30', 's', '10x', '-1s', '1s-', 'ms10']) assert.equal(parseDuration(bad), null, bad);
  assert.equal(parseDuration(-5), null);
});

test('formatting and parsing round-trip', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => parseSize(formatSize(n)) === n));
  fc.assert(fc.property(fc.integer({ min: 0, max: 10 * 86_400_000 }), (n) => parseDuration(formatDuration(n)) === n));
});
