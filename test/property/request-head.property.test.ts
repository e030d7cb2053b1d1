/**
 * encodeRequestHead has an ASCII fast path; whatever the params, its bytes must equal the
 * general encoder's: BEGIN_REQUEST + encodeParamsStream (+ empty STDIN).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RecordType, Role } from '../../src/protocol/constants.js';
import { encodeBeginRequest, encodeParamsStream, encodeRequestHead, encodeStreamEnd } from '../../src/protocol/encoder.js';

const ascii = fc.string({ unit: fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)), maxLength: 300 });
const anyText = fc.string({ unit: 'grapheme', maxLength: 40 });
const bytes = fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u));
const name = fc.oneof({ weight: 4, arbitrary: ascii }, { weight: 1, arbitrary: anyText }, { weight: 1, arbitrary: bytes });
const value = fc.oneof(
  { weight: 4, arbitrary: ascii },
  { weight: 1, arbitrary: anyText },
  { weight: 1, arbitrary: bytes },
  { weight: 1, arbitrary: fc.integer({ min: 120, max: 70_000 }).map((n) => 'v'.repeat(n)) },
);

test('encodeRequestHead (ASCII fast path or not) equals BEGIN_REQUEST + encodeParamsStream (+ STDIN end) for any params', () => {
  fc.assert(
    fc.property(fc.oneof(fc.array(fc.tuple(ascii, ascii), { maxLength: 30 }), fc.array(fc.tuple(name, value), { maxLength: 30 })), fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 65535 }), (pairs, keep, endStdin, id) => {
      let expected: Buffer | Error;
      try {
        expected = Buffer.concat([
          encodeBeginRequest(id, Role.Responder, keep),
          encodeParamsStream(id, pairs),
          ...(endStdin ? [encodeStreamEnd(RecordType.Stdin, id)] : []),
        ]);
      } catch (err) {
        expected = err as Error;
      }
      if (expected instanceof Error) {
        assert.throws(() => encodeRequestHead(id, Role.Responder, keep, pairs, endStdin), { code: (expected as Error & { code: string }).code });
      } else {
        assert.ok(encodeRequestHead(id, Role.Responder, keep, pairs, endStdin).equals(expected), 'same bytes');
      }
    }),
    { numRuns: 300 },
  );
});
