/**
 * Name-value pairs (§3.4): lengths below 128 take one byte, others four bytes big-endian with
 * the top bit set; names and values are arbitrary bytes. Expected bytes are written by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParamsTooLargeError, ProtocolError } from '../../../src/errors.js';
import {
  MAX_PARAM_LENGTH,
  byteLength,
  decodePairs,
  encodePairs,
  lengthSize,
  measureParams,
  pairSize,
  toPairs,
} from '../../../src/protocol/params.js';
import { ARBITRARY_VALUE, cat, hex, repeat } from '../../helpers/records.js';

/** Run `fn`, expect a ProtocolError, return it. */
function protocolErrorOf(fn: () => unknown): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ProtocolError, `expected ProtocolError, got ${String(caught)}`);
  assert.equal(caught.code, 'GW_ERR_PROTO_INVALID');
  return caught;
}

const strPairs = (list: Array<[Buffer, Buffer]>): Array<[string, string]> =>
  list.map(([n, v]) => [n.toString('latin1'), v.toString('latin1')]);

test('lengthSize switches from 1 to 4 bytes at 128', () => {
  assert.equal(lengthSize(0), 1);
  assert.equal(lengthSize(127), 1);
  assert.equal(lengthSize(128), 4);
  assert.equal(lengthSize(MAX_PARAM_LENGTH), 4);
  assert.equal(MAX_PARAM_LENGTH, 2 ** 31 - 1);
});

test('pairSize counts both length prefixes and both payloads', () => {
  assert.equal(pairSize(0, 0), 2);
  assert.equal(pairSize(127, 127), 256);
  assert.equal(pairSize(127, 128), 260);
  assert.equal(pairSize(128, 128), 264);
});

test('byteLength measures strings as UTF-8 and Buffers by length', () => {
  assert.equal(byteLength('abc'), 3);
  assert.equal(byteLength('é'), 2);
  assert.equal(byteLength('€'), 3);
  assert.equal(byteLength(Buffer.alloc(5)), 5);
});

test('encodePairs writes 1-byte lengths below 128', () => {
  assert.deepEqual(
    encodePairs([['SCRIPT_FILENAME', '/var/www/index.php']]),
    hex('0f 12 "SCRIPT_FILENAME" "/var/www/index.php"'),
  );
  assert.deepEqual(encodePairs([['A', '']]), hex('01 00 "A"'));
  assert.deepEqual(encodePairs([['', '']]), hex('00 00'));
});

test('encodePairs writes 4-byte lengths with the top bit set from 128', () => {
  assert.deepEqual(encodePairs([['Q', repeat('q', 300)]]), cat(hex('01 80 00 01 2c "Q"'), repeat('q', 300)));
  assert.deepEqual(
    encodePairs([[repeat('n', 128), repeat('v', 127)]]),
    cat(hex('80 00 00 80 7f'), repeat('n', 128), repeat('v', 127)),
  );
  assert.deepEqual(
    encodePairs([[repeat('n', 127), repeat('v', 128)]]),
    cat(hex('7f 80 00 00 80'), repeat('n', 127), repeat('v', 128)),
  );
  const big = Buffer.alloc(70000, 1);
  assert.deepEqual(encodePairs([['B', big]]).subarray(0, 6), hex('01 80 01 11 70 "B"'));
});

test('encodePairs copies Buffer values byte for byte, including 0x00 and 0xff', () => {
  assert.deepEqual(encodePairs([['BIN', ARBITRARY_VALUE]]), hex('03 06 "BIN" 00 ff 80 7f 0a 00'));
  assert.deepEqual(encodePairs([[hex('00 ff'), hex('80')]]), hex('02 01 00 ff 80'));
});

test('encodePairs encodes string names and values as UTF-8', () => {
  assert.deepEqual(encodePairs([['É', 'ü€']]), hex('02 05 c3 89 c3 bc e2 82 ac'));
});

test('encodePairs accepts arrays, Maps, generators and plain objects in iteration order', () => {
  const expected = hex('01 01 "a" "1" 01 01 "b" "2"');
  assert.deepEqual(encodePairs([['a', '1'], ['b', '2']]), expected);
  assert.deepEqual(encodePairs(new Map([['a', '1'], ['b', '2']])), expected);
  assert.deepEqual(encodePairs({ a: '1', b: '2' }), expected);
  function* gen(): Generator<readonly [string, string]> {
    yield ['a', '1'];
    yield ['b', '2'];
  }
  assert.deepEqual(encodePairs(gen()), expected);
  assert.deepEqual([...toPairs({ a: '1' })], [['a', '1']]);
});

test('encodePairs keeps duplicate names (the CGI layer decides, not the codec)', () => {
  assert.deepEqual(encodePairs([['a', '1'], ['a', '2']]), hex('01 01 "a" "1" 01 01 "a" "2"'));
});

test('measureParams throws ParamsTooLargeError for a pair over the limit, naming the param', () => {
  assert.throws(
    () => measureParams([['OK', 'x'], ['HTTP_COOKIE', 'c'.repeat(100)]], 64),
    (err: unknown) => {
      assert.ok(err instanceof ParamsTooLargeError, `expected ParamsTooLargeError, got ${String(err)}`);
      assert.equal(err.code, 'GW_ERR_PROTO_PARAMS_TOO_LARGE');
      assert.equal(err.paramName, 'HTTP_COOKIE');
      assert.equal(err.size, 1 + 1 + 11 + 100);
      assert.equal(err.limit, 64);
      return true;
    },
  );
  // Exactly at the limit is fine: 1 + 1 + 2 + 60 = 64.
  assert.equal(measureParams([['OK', 'x'.repeat(60)]], 64).total, 64);
});

test('decodePairs reads 1-byte and 4-byte lengths and returns views of the input', () => {
  const content = cat(
    hex('0f 12 "SCRIPT_FILENAME" "/var/www/index.php"'),
    hex('80 00 00 80 7f'), repeat('n', 128), repeat('v', 127),
    hex('03 06 "BIN" 00 ff 80 7f 0a 00'),
    hex('00 00'),
  );
  const out = decodePairs(content);
  assert.equal(out.length, 4);
  assert.deepEqual(strPairs(out)[0], ['SCRIPT_FILENAME', '/var/www/index.php']);
  assert.deepEqual(out[1]![0], repeat('n', 128));
  assert.deepEqual(out[1]![1], repeat('v', 127));
  assert.deepEqual(out[2]![1], ARBITRARY_VALUE);
  assert.deepEqual(strPairs(out)[3], ['', '']);
  assert.equal(out[0]![0].buffer, content.buffer, 'names are views, not copies');
});

test('decodePairs of empty content gives no pairs', () => {
  assert.deepEqual(decodePairs(Buffer.alloc(0)), []);
});

test('decodePairs ignores the top bit of a 4-byte length, as §3.4 defines it as a flag', () => {
  // 0x80000003 → length 3, written with the 4-byte form although 3 < 128 (legal on the wire).
  assert.deepEqual(strPairs(decodePairs(hex('80 00 00 03 01 "abc" "x"'))), [['abc', 'x']]);
});

test('decodePairs rejects a missing value length with the offset of the missing byte', () => {
  const err = protocolErrorOf(() => decodePairs(hex('05')));
  assert.equal(err.offset, 1);
});

test('decodePairs rejects a truncated 4-byte name length at its first byte', () => {
  const err = protocolErrorOf(() => decodePairs(hex('80 00 00')));
  assert.equal(err.offset, 0);
});

test('decodePairs rejects a truncated 4-byte value length at its first byte', () => {
  const err = protocolErrorOf(() => decodePairs(hex('01 80 00 00')));
  assert.equal(err.offset, 1);
});

test('decodePairs rejects a pair whose payload runs past the end, at the pair start', () => {
  const err = protocolErrorOf(() => decodePairs(hex('03 03 "ab"')));
  assert.equal(err.offset, 0);
  const second = protocolErrorOf(() => decodePairs(hex('01 01 "a" "b" | 02 02 "cd" "e"')));
  assert.equal(second.offset, 4);
});

test('decodePairs rejects a huge declared length without allocating it', () => {
  const err = protocolErrorOf(() => decodePairs(hex('ff ff ff ff ff ff ff ff "x"')));
  assert.equal(err.offset, 0);
});

test('decodePairs adds baseOffset to error offsets', () => {
  assert.equal(protocolErrorOf(() => decodePairs(hex('03 03 "ab"'), 100)).offset, 100);
  assert.equal(protocolErrorOf(() => decodePairs(hex('01 01 "a" "b" 05'), 1000)).offset, 1005);
});

test('every proper prefix of valid pairs that cuts a pair is rejected, never misread', () => {
  const full = cat(
    hex('0f 12 "SCRIPT_FILENAME" "/var/www/index.php"'),
    hex('7f 80 00 00 80'), repeat('n', 127), repeat('v', 128),
  );
  const boundaries = new Set([0, 35, full.length]);
  for (let cut = 1; cut < full.length; cut++) {
    if (boundaries.has(cut)) continue;
    protocolErrorOf(() => decodePairs(full.subarray(0, cut)));
  }
  assert.equal(decodePairs(full.subarray(0, 35)).length, 1);
  assert.equal(decodePairs(full).length, 2);
});

test('encodePairs then decodePairs gives back the same bytes', () => {
  const input: Array<[Buffer, Buffer]> = [
    [Buffer.from('A'), Buffer.alloc(0)],
    [repeat('n', 127), repeat('v', 128)],
    [repeat('N', 128), repeat('V', 127)],
    [hex('00 ff'), ARBITRARY_VALUE],
  ];
  assert.deepEqual(decodePairs(encodePairs(input)), input);
});
