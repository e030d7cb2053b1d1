/**
 * The fixture builders in test/helpers/records.ts: the codec tests trust them as an
 * independent statement of the wire format, so they get a few checks of their own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPEC_FIXTURES, chunksOf, header, hex, len, pair, rec, splitAt } from '../../helpers/records.js';

test('hex() reads hex pairs, quoted ASCII, separators and comments', () => {
  assert.deepEqual(hex('01 ff | "AB" # comment 99\n  0a'), Buffer.from([0x01, 0xff, 0x41, 0x42, 0x0a]));
  assert.deepEqual(hex(''), Buffer.alloc(0));
});

test('hex() refuses malformed input instead of guessing', () => {
  for (const bad of ['zz', '123', '1', '01 "unterminated', '0x01']) {
    assert.throws(() => hex(bad), /hex\(\)/, JSON.stringify(bad));
  }
});

test('header(), rec(), len() and pair() lay out bytes as §3.3 and §3.4 say', () => {
  assert.deepEqual(header(6, 0x0102, 0x0304, 5), hex('01 06 01 02 03 04 05 00'));
  assert.deepEqual(header(6, 1, 0, 0, 2), hex('02 06 00 01 00 00 00 00'));
  assert.deepEqual(rec(6, 1, 'hello'), hex('01 06 00 01 00 05 03 00 "hello" 00 00 00'));
  assert.deepEqual(rec(6, 1, 'x', 0), hex('01 06 00 01 00 01 00 00 "x"'));
  assert.deepEqual(len(127), hex('7f'));
  assert.deepEqual(len(128), hex('80 00 00 80'));
  assert.deepEqual(pair('A', 'bc'), hex('01 02 "A" "bc"'));
  assert.throws(() => rec(6, 1, Buffer.alloc(65536)), /does not fit/);
});

test('splitAt() and chunksOf() cover the buffer exactly', () => {
  const b = hex('00 01 02 03 04');
  assert.deepEqual(splitAt(b, [0, 2, 5]).map((x) => x.length), [0, 2, 3, 0]);
  assert.deepEqual(chunksOf(b, 2).map((x) => x.length), [2, 2, 1]);
});

test('fixture names are unique and every fixture is a whole number of records', () => {
  assert.equal(new Set(SPEC_FIXTURES.map((f) => f.name)).size, SPEC_FIXTURES.length);
  for (const f of SPEC_FIXTURES) {
    let o = 0;
    let n = 0;
    while (o + 8 <= f.bytes.length) {
      o += 8 + f.bytes.readUInt16BE(o + 4) + f.bytes[o + 6]!;
      n++;
    }
    assert.equal(o, f.bytes.length, f.name);
    assert.equal(n, f.records.length, f.name);
  }
});
