/**
 * Property tests of the record codec (fast-check): encode → decode round trip, chunking
 * invariance, and random bytes giving only records or a ProtocolError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.js';
import { RecordDecoder } from '../../src/protocol/decoder.js';
import { encodeRecord } from '../../src/protocol/encoder.js';
import { RT, type Rec, decodeChunks, patterned, splitAt } from '../helpers/records.js';

/**
 * Content of any length 0..65535: small arrays straight from fast-check (they shrink well),
 * or large patterned ones, with the 8-byte and 65535-byte edges weighted in.
 */
const contentArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer()).map(([n, s]) => patterned(n, s)),
  fc.tuple(fc.constantFrom(0, 1, 7, 8, 9, 127, 128, 65527, 65528, 65529, 65534, 65535), fc.integer()).map(([n, s]) => patterned(n, s)),
);

interface RecordSpec {
  type: number;
  requestId: number;
  content: Buffer;
  padding: number;
}

/** A record the decoder must accept (no requestId option): fixed-length types get their length. */
const recordArb: fc.Arbitrary<RecordSpec> = fc
  .record({
    type: fc.integer({ min: 1, max: 11 }),
    requestId: fc.oneof(fc.constantFrom(0, 1, 0xffff), fc.integer({ min: 0, max: 0xffff })),
    content: contentArb,
    padding: fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 255 })),
    fixed: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  })
  .map(({ type, requestId, content, padding, fixed }) => {
    if (type === RT.BeginRequest || type === RT.EndRequest || type === RT.UnknownType) content = Buffer.from(fixed);
    if (type === RT.AbortRequest) content = Buffer.alloc(0);
    return { type, requestId, content, padding };
  });

const recordsArb = fc.array(recordArb, { minLength: 1, maxLength: 6 });

function encodeAll(specs: RecordSpec[]): Buffer {
  return Buffer.concat(specs.map((r) => encodeRecord(r.type, r.requestId, r.content, r.padding)));
}

function sameRecords(got: Rec[], specs: RecordSpec[]): void {
  assert.equal(got.length, specs.length);
  got.forEach((r, i) => {
    const s = specs[i]!;
    assert.equal(r.type, s.type, `record ${i} type`);
    assert.equal(r.requestId, s.requestId, `record ${i} id`);
    assert.equal(r.paddingLength, s.padding, `record ${i} padding`);
    assert.ok(r.content.equals(s.content), `record ${i} content`);
  });
}

test('property: encodeRecord → RecordDecoder gives back type, id, content and padding', () => {
  fc.assert(
    fc.property(recordsArb, (specs) => {
      const bytes = encodeAll(specs);
      const out = decodeChunks([bytes]);
      assert.equal(out.error, undefined);
      sameRecords(out.records, specs);
    }),
    { numRuns: 150 },
  );
});

test('property: any chunking of a valid stream gives the same records', () => {
  fc.assert(
    fc.property(recordsArb, fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (specs, rawCuts, tiny) => {
      const bytes = encodeAll(specs);
      // Cuts anywhere in the stream; `tiny` also packs many cuts into the first 40 bytes so
      // headers are split byte by byte as well.
      const cuts = rawCuts.map((c) => (tiny ? c % Math.min(40, bytes.length + 1) : c % (bytes.length + 1))).sort((a, b) => a - b);
      const out = decodeChunks(splitAt(bytes, cuts));
      assert.equal(out.error, undefined);
      sameRecords(out.records, specs);
    }),
    { numRuns: 150 },
  );
});

/** Decode `chunks`, allowing only records or a ProtocolError; check offsets are consistent. */
function decodeOnlyRecordsOrProtocolError(chunks: Buffer[], requestId: number | undefined): void {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const decoder = new RecordDecoder(requestId === undefined ? {} : { requestId });
  let delivered = 0;
  let caught: unknown;
  try {
    for (const c of chunks) {
      decoder.push(c, (r) => {
        assert.ok(r.type >= 1 && r.type <= 11, `type ${r.type}`);
        delivered += 8 + r.content.length + r.paddingLength;
      });
    }
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) {
    assert.equal(decoder.offset, total, 'all bytes consumed');
    return;
  }
  assert.ok(caught instanceof ProtocolError, `only ProtocolError may be thrown, got ${String(caught)}`);
  // Errors are found in headers, so the offset is exactly where the delivered records end.
  assert.equal(caught.offset, delivered);
  assert.ok(caught.offset + 8 <= total, 'a complete header was seen');
  assert.equal(decoder.error, caught);
  assert.throws(() => decoder.push(Buffer.alloc(1), () => assert.fail('no record after failure')), (e) => e === caught);
}

const chunkSizeArb = fc.integer({ min: 1, max: 64 });
/** The decoder's `requestId` option: unset, the usual 1, or something else. */
const requestIdOptionArb: fc.Arbitrary<number | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant(1) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }) },
);

/**
 * Header-shaped noise: mostly version 1, mostly known types, ids near 0/1, small lengths, and
 * usually exactly as many bytes as the header announces (random otherwise). Pure random bytes
 * almost always fail on the first version byte and never reach the later states.
 */
const plausibleArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.record({
      version: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      type: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 11 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      id: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 }) }),
      contentLength: fc.oneof(fc.constantFrom(0, 8), fc.integer({ min: 0, max: 300 })),
      padding: fc.integer({ min: 0, max: 9 }),
      exact: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      tailLength: fc.integer({ min: 0, max: 320 }),
      seed: fc.integer(),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((parts) =>
    Buffer.concat(
      parts.flatMap((p) => [
        Buffer.from([p.version, p.type, 0, p.id, p.contentLength >> 8, p.contentLength & 0xff, p.padding, 0]),
        patterned(p.exact ? p.contentLength + p.padding : p.tailLength, p.seed),
      ]),
    ),
  );

test('property: random bytes give only records or a ProtocolError at a record boundary', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)) },
        { weight: 3, arbitrary: plausibleArb },
      ),
      chunkSizeArb,
      requestIdOptionArb,
      (bytes, size, requestId) => {
        const chunks: Buffer[] = [];
        for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
        decodeOnlyRecordsOrProtocolError(chunks, requestId);
      },
    ),
    { numRuns: 500 },
  );
});

test('property: valid streams with corrupted bytes give only records or a ProtocolError', () => {
  // Random bytes rarely pass the version check; corrupting a valid stream exercises the
  // deeper states (long content, padding, later headers).
  fc.assert(
    fc.property(
      fc.array(recordArb.filter((r) => r.content.length < 4096), { minLength: 1, maxLength: 8 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      chunkSizeArb,
      requestIdOptionArb,
      (specs, flips, size, requestId) => {
        const bytes = encodeAll(specs);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        const chunks: Buffer[] = [];
        for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
        decodeOnlyRecordsOrProtocolError(chunks, requestId);
      },
    ),
    { numRuns: 300 },
  );
});
