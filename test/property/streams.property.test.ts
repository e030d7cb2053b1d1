/**
 * Property tests of stream encoders (fast-check): PARAMS streams round trip pair by pair with
 * every record decodable on its own, and STDIN framing preserves bytes for any maxContent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParamsTooLargeError } from '../../src/errors.js';
import { MAX_RECORD_CONTENT, RecordType, Role } from '../../src/protocol/constants.js';
import { encodeParamsStream, encodeRequestHead, encodeStreamChunk, frameStreamChunk } from '../../src/protocol/encoder.js';
import { decodePairs, pairSize } from '../../src/protocol/params.js';
import { RT, type Rec, decodeChunks, patterned } from '../helpers/records.js';

/** A byte length weighted towards the 1-byte/4-byte boundary of §3.4. */
const lengthArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 124, max: 131 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 8 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 2000 }) },
);

/** Arbitrary bytes of a boundary-weighted length. */
const bytesArb: fc.Arbitrary<Buffer> = lengthArb.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((a) => Buffer.from(a));

const pairArb: fc.Arbitrary<[Buffer, Buffer]> = fc.tuple(bytesArb, bytesArb);

/** Records of a PARAMS stream: each decoded on its own; returns all pairs in order. */
function paramsStreamPairs(records: Rec[], maxContent: number): Array<[Buffer, Buffer]> {
  const params = records.filter((r) => r.type === RT.Params);
  assert.ok(params.length >= 1, 'at least the end record');
  assert.equal(params.at(-1)!.content.length, 0, 'ends with the empty PARAMS record');
  const out: Array<[Buffer, Buffer]> = [];
  for (const r of params.slice(0, -1)) {
    assert.ok(r.content.length > 0 && r.content.length <= maxContent, `content ${r.content.length}`);
    assert.ok(r.content.length + r.paddingLength <= 65535, 'content + padding within 65535');
    for (const [n, v] of decodePairs(r.content)) out.push([Buffer.from(n), Buffer.from(v)]);
  }
  return out;
}

function decodeOk(bytes: Buffer): Rec[] {
  const out = decodeChunks([bytes], { requestId: 1 });
  assert.equal(out.error, undefined);
  return out.records;
}

test('property: PARAMS stream round trip with byte names and values across the 127/128 boundary', () => {
  fc.assert(
    fc.property(
      fc.array(pairArb, { maxLength: 40 }),
      fc.oneof(fc.constant(MAX_RECORD_CONTENT), fc.integer({ min: 300, max: 5000 }), fc.integer({ min: 8, max: 65535 })),
      (pairs, maxContent) => {
        const tooBig = pairs.find(([n, v]) => pairSize(n.length, v.length) > maxContent);
        if (tooBig) {
          assert.throws(() => encodeParamsStream(1, pairs, maxContent), ParamsTooLargeError);
          return;
        }
        const got = paramsStreamPairs(decodeOk(encodeParamsStream(1, pairs, maxContent)), maxContent);
        assert.deepEqual(got, pairs);
      },
    ),
    { numRuns: 200 },
  );
});

test('property: PARAMS over 64 KiB in a request head split into self-contained records', () => {
  fc.assert(
    fc.property(
      // 17..30 pairs of at least 4000 bytes: always more than 64 KiB in total.
      fc.array(fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 4000, max: 20000 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 17,
        maxLength: 30,
      }),
      fc.boolean(),
      (shapes, endStdin) => {
        const pairs = shapes.map(([nl, vl, fill], i): [Buffer, Buffer] => [Buffer.alloc(nl, 0x41 + (i % 26)), Buffer.alloc(vl, fill)]);
        const records = decodeOk(encodeRequestHead(1, Role.Responder, true, pairs, endStdin));
        assert.equal(records[0]!.type, RT.BeginRequest);
        assert.equal(records.at(-1)!.type, endStdin ? RT.Stdin : RT.Params);
        assert.ok(records.filter((r) => r.type === RT.Params).length >= 3, 'more than one PARAMS record with content');
        assert.deepEqual(paramsStreamPairs(records, MAX_RECORD_CONTENT), pairs);
      },
    ),
    { numRuns: 40 },
  );
});

test('property: string params round trip as UTF-8', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.string({ unit: 'binary', maxLength: 150 }), fc.string({ unit: 'binary', maxLength: 150 })), { maxLength: 20 }), (pairs) => {
      const got = paramsStreamPairs(decodeOk(encodeParamsStream(1, pairs)), MAX_RECORD_CONTENT);
      assert.deepEqual(
        got,
        pairs.map(([n, v]) => [Buffer.from(n, 'utf8'), Buffer.from(v, 'utf8')]),
      );
    }),
    { numRuns: 150 },
  );
});

test('property: STDIN framing preserves bytes for any data and maxContent 8..65535', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 100 }).map((a) => Buffer.from(a)),
        fc.tuple(fc.integer({ min: 0, max: 200000 }), fc.integer()).map(([n, s]) => patterned(n, s)),
      ),
      fc.oneof(fc.integer({ min: 8, max: 64 }), fc.integer({ min: 8, max: 65535 }), fc.constantFrom(65528, 65529, 65535)),
      (data, maxContent) => {
        // Keep tiny records away from huge data (hundreds of thousands of records, no added value).
        if (data.length / maxContent > 5000) maxContent = Math.ceil(data.length / 5000);
        const copied = encodeStreamChunk(RecordType.Stdin, 1, data, maxContent);
        const framed = frameStreamChunk(RecordType.Stdin, 1, data, maxContent);
        assert.ok(Buffer.concat(framed).equals(copied), 'both framings give the same bytes');
        const records = decodeOk(copied);
        assert.equal(records.length, Math.ceil(data.length / maxContent));
        for (const r of records) {
          assert.equal(r.type, RT.Stdin);
          assert.ok(r.content.length >= 1 && r.content.length <= maxContent, `content ${r.content.length}`);
          assert.ok(r.content.length + r.paddingLength <= 65535, 'content + padding within 65535');
        }
        assert.ok(Buffer.concat(records.map((r) => r.content)).equals(data), 'bytes preserved');
      },
    ),
    { numRuns: 120 },
  );
});
