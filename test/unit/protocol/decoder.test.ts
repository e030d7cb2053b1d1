/**
 * RecordDecoder against the hand-written spec fixtures (test/helpers/records.ts): whole, at
 * every two-chunk split point, one byte at a time, and all fixtures back to back. Then the
 * validation rules: version, type, request id, fixed content lengths, each a sticky
 * ProtocolError carrying the byte offset of the offending record's header.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../src/errors.js';
import { RecordDecoder, type RecordDecoderOptions } from '../../../src/protocol/decoder.js';
import {
  RT,
  SPEC_FIXTURES,
  type DecodeOutcome,
  cat,
  chunksOf,
  decodeAll,
  decodeChunks,
  fixture,
  header,
  hex,
  rec,
  splitAt,
  summary,
} from '../../helpers/records.js';

const ALL = cat(...SPEC_FIXTURES.map((f) => f.bytes));
const ALL_RECORDS = SPEC_FIXTURES.flatMap((f) => f.records);

describe('spec fixtures decode to their records', () => {
  for (const f of SPEC_FIXTURES) {
    test(`${f.name}: whole, at every split point, and byte by byte`, () => {
      const expected = summary(f.records);
      assert.deepEqual(summary(decodeAll(f.bytes)), expected, 'one push');
      for (let cut = 0; cut <= f.bytes.length; cut++) {
        const out = decodeChunks(splitAt(f.bytes, [cut]));
        assert.equal(out.error, undefined, `split at ${cut}`);
        assert.deepEqual(summary(out.records), expected, `split at ${cut}`);
      }
      const bytewise = decodeChunks(chunksOf(f.bytes, 1));
      assert.equal(bytewise.error, undefined);
      assert.deepEqual(summary(bytewise.records), expected, 'byte by byte');
    });
  }

  test('all fixtures back to back: whole, at every split point, and byte by byte', () => {
    const expected = summary(ALL_RECORDS);
    assert.deepEqual(summary(decodeAll(ALL)), expected);
    for (let cut = 0; cut <= ALL.length; cut++) {
      const out = decodeChunks(splitAt(ALL, [cut]));
      assert.equal(out.error, undefined, `split at ${cut}`);
      assert.deepEqual(summary(out.records), expected, `split at ${cut}`);
    }
    assert.deepEqual(summary(decodeChunks(chunksOf(ALL, 1)).records), expected);
  });

  test('all fixtures back to back in chunks of 2, 3, 5, 7, 8, 9 and 64 bytes', () => {
    const expected = summary(ALL_RECORDS);
    for (const size of [2, 3, 5, 7, 8, 9, 64]) {
      const out = decodeChunks(chunksOf(ALL, size));
      assert.equal(out.error, undefined, `chunks of ${size}`);
      assert.deepEqual(summary(out.records), expected, `chunks of ${size}`);
    }
  });

  test('paddingLength reports the padding from the header', () => {
    const got = decodeAll(cat(fixture('STDOUT with 255 bytes of padding').bytes, fixture('STDOUT with no padding on odd content').bytes));
    assert.deepEqual(got.map((r) => r.paddingLength), [255, 0]);
  });

  test('the reserved header byte is ignored', () => {
    const bytes = hex('01 06 00 01 00 01 07 ff | "x" 00 00 00 00 00 00 00');
    assert.deepEqual(summary(decodeAll(bytes)), [{ type: RT.Stdout, requestId: 1, content: '78' }]);
  });

  test('a 65535-byte record (largest the header allows) decodes whole and split', () => {
    const content = Buffer.alloc(65535);
    for (let i = 0; i < content.length; i++) content[i] = i % 251;
    const bytes = rec(RT.Stdout, 1, content, 0);
    for (const chunks of [[bytes], splitAt(bytes, [3]), splitAt(bytes, [8]), splitAt(bytes, [30000, 65542]), chunksOf(bytes, 4096)]) {
      const out = decodeChunks(chunks);
      assert.equal(out.error, undefined);
      assert.equal(out.records.length, 1);
      assert.ok(out.records[0]!.content.equals(content), 'content bytes preserved');
    }
  });
});

describe('decoder state', () => {
  test('offset counts consumed bytes and atBoundary is true only between records', () => {
    const d = new RecordDecoder();
    const bytes = rec(RT.Stdout, 1, 'hello'); // 16 bytes
    const seen: number[] = [];
    assert.equal(d.atBoundary, true);
    d.push(bytes.subarray(0, 3), () => seen.push(1));
    assert.deepEqual([d.offset, d.atBoundary], [3, false]);
    d.push(bytes.subarray(3, 10), () => seen.push(1));
    assert.deepEqual([d.offset, d.atBoundary], [10, false]);
    d.push(bytes.subarray(10, 13), () => seen.push(1));
    assert.deepEqual([d.offset, d.atBoundary, seen.length], [13, false, 1], 'record out, padding pending');
    d.push(bytes.subarray(13), () => seen.push(1));
    assert.deepEqual([d.offset, d.atBoundary, seen.length], [16, true, 1]);
    assert.equal(d.error, null);
  });

  test('an empty push changes nothing', () => {
    const d = new RecordDecoder();
    d.push(Buffer.alloc(0), () => assert.fail('no record expected'));
    assert.deepEqual([d.offset, d.atBoundary], [0, true]);
  });

  test('content in one chunk is handed out as a view of that chunk', () => {
    const bytes = rec(RT.Stdout, 1, 'hello');
    let content: Buffer | undefined;
    new RecordDecoder().push(bytes, (r) => {
      content = r.content;
    });
    assert.equal(content!.buffer, bytes.buffer);
    assert.equal(content!.byteOffset, bytes.byteOffset + 8);
  });

  test('content assembled across chunks is not disturbed by later pushes', () => {
    const d = new RecordDecoder();
    const bytes = cat(rec(RT.Stdout, 1, 'first record'), rec(RT.Stdout, 1, 'second'));
    const kept: Buffer[] = [];
    for (const c of chunksOf(bytes, 5)) d.push(c, (r) => kept.push(r.content));
    assert.deepEqual(kept.map((b) => b.toString()), ['first record', 'second']);
  });

  test('an error thrown by the callback propagates and the decoder can resume from offset', () => {
    const d = new RecordDecoder();
    const bytes = cat(rec(RT.Stdout, 1, 'a'), rec(RT.Stdout, 1, 'b'));
    const boom = new Error('handler failed');
    const seen: string[] = [];
    assert.throws(
      () =>
        d.push(bytes, (r) => {
          seen.push(r.content.toString());
          throw boom;
        }),
      (err) => err === boom,
    );
    assert.equal(d.error, null, 'a callback error is not a protocol error');
    // The record was emitted; its padding is still to be consumed from where the decoder stopped.
    d.push(bytes.subarray(d.offset), (r) => seen.push(r.content.toString()));
    assert.deepEqual(seen, ['a', 'b']);
    assert.equal(d.atBoundary, true);
  });
});

/** Expect `out` to have failed with a ProtocolError at `offset`; return it. */
function failedAt(out: DecodeOutcome, offset: number): ProtocolError {
  assert.ok(out.error instanceof ProtocolError, `expected ProtocolError, got ${String(out.error)}`);
  assert.equal(out.error.code, 'GW_ERR_PROTO_INVALID');
  assert.equal(out.error.offset, offset);
  return out.error;
}

/**
 * Check that `bad` (a header, possibly followed by content) fails, alone and after valid
 * records, in one push, in small chunks and byte by byte, always at its header's offset and
 * after delivering the records before it.
 */
function rejects(bad: Buffer, reason: RegExp, options: RecordDecoderOptions = {}): void {
  const validId = options.requestId ?? 1;
  const before = cat(rec(RT.Stdout, validId, 'hello'), rec(RT.Stderr, validId, 'x'.repeat(20)), rec(RT.Stdout, validId));
  const beforeRecords = 3;
  const cases: Array<[string, Buffer, number]> = [
    ['alone', bad, 0],
    ['after valid records', cat(before, bad), before.length],
  ];
  for (const [label, bytes, offset] of cases) {
    const chunkings: Array<[string, Buffer[]]> = [
      ['one push', [bytes]],
      ['byte by byte', chunksOf(bytes, 1)],
      ['chunks of 3', chunksOf(bytes, 3)],
      ['chunks of 7', chunksOf(bytes, 7)],
      ['split inside the bad header', splitAt(bytes, [offset + 5])],
    ];
    for (const [how, chunks] of chunkings) {
      const out = decodeChunks(chunks, options);
      const err = failedAt(out, offset);
      assert.match(err.reason, reason, `${label}, ${how}`);
      assert.equal(out.records.length, offset === 0 ? 0 : beforeRecords, `${label}, ${how}: records before the error`);
    }
  }
}

describe('decoder errors', () => {
  test('version other than 1 is rejected', () => {
    rejects(header(RT.Stdout, 1, 0, 0, 0), /version 0/);
    rejects(header(RT.Stdout, 1, 0, 0, 2), /version 2/);
    rejects(hex('ff 06 00 01 00 00 00 00'), /version 255/);
  });

  test('record types 0, 12 and 255 are rejected', () => {
    rejects(header(0, 1, 0), /type 0/);
    rejects(header(12, 0, 8), /type 12/);
    rejects(header(255, 0, 0), /type 255/);
  });

  test('allowUnknownTypes accepts types above 11 as management records but never type 0', () => {
    const bytes = cat(rec(12, 0, 'abc'), rec(255, 0));
    assert.deepEqual(summary(decodeAll(bytes, { allowUnknownTypes: true })), [
      { type: 12, requestId: 0, content: '616263' },
      { type: 255, requestId: 0, content: '' },
    ]);
    rejects(header(0, 0, 0), /type 0/, { allowUnknownTypes: true });
    rejects(header(12, 1, 0), /request id 1, expected 0/, { allowUnknownTypes: true, requestId: 1 });
  });

  test('with requestId set, application records for another id are rejected', () => {
    rejects(rec(RT.Stdout, 2, 'x'), /STDOUT record for request id 2, expected 1/, { requestId: 1 });
    rejects(rec(RT.Stdout, 0, 'x'), /request id 0, expected 1/, { requestId: 1 });
    rejects(rec(RT.EndRequest, 0x0101, Buffer.alloc(8)), /END_REQUEST record for request id 257/, { requestId: 1 });
    rejects(rec(RT.Stderr, 1, 'x'), /STDERR record for request id 1, expected 7/, { requestId: 7 });
  });

  test('with requestId set, management records must carry id 0', () => {
    rejects(rec(RT.GetValuesResult, 1), /GET_VALUES_RESULT record for request id 1, expected 0/, { requestId: 1 });
    rejects(rec(RT.UnknownType, 1, Buffer.alloc(8)), /UNKNOWN_TYPE record for request id 1, expected 0/, { requestId: 1 });
    rejects(rec(RT.GetValues, 1), /GET_VALUES record for request id 1, expected 0/, { requestId: 1 });
    const ok = cat(fixture('GET_VALUES_RESULT with values 10, 50, 0').bytes, fixture('UNKNOWN_TYPE naming type 12').bytes, rec(RT.Stdout, 1));
    assert.equal(decodeAll(ok, { requestId: 1 }).length, 3);
  });

  test('without requestId any id is accepted', () => {
    const bytes = cat(rec(RT.Stdout, 2, 'x'), rec(RT.GetValuesResult, 9), rec(RT.Stdout, 0xffff));
    assert.deepEqual(decodeAll(bytes).map((r) => r.requestId), [2, 9, 0xffff]);
  });

  test('END_REQUEST, BEGIN_REQUEST and UNKNOWN_TYPE content must be exactly 8 bytes', () => {
    for (const type of [RT.EndRequest, RT.BeginRequest, RT.UnknownType]) {
      const id = type === RT.UnknownType ? 0 : 1;
      for (const n of [0, 7, 9, 16]) {
        rejects(rec(type, id, Buffer.alloc(n)), new RegExp(`content must be 8 bytes, got ${n}`));
      }
    }
  });

  test('ABORT_REQUEST must have no content', () => {
    for (const n of [1, 8]) rejects(rec(RT.AbortRequest, 1, Buffer.alloc(n)), new RegExp(`ABORT_REQUEST content must be 0 bytes, got ${n}`));
  });

  test('a bad header fails as soon as it is complete, before its content arrives', () => {
    const d = new RecordDecoder();
    const seen: number[] = [];
    d.push(rec(RT.Stdout, 1, 'ok'), (r) => seen.push(r.type));
    assert.throws(() => d.push(header(RT.EndRequest, 1, 9), () => seen.push(0)), (err) => err instanceof ProtocolError && err.offset === 16);
    assert.deepEqual(seen, [RT.Stdout]);
  });

  test('the error is sticky: every later push throws the same error and delivers nothing', () => {
    const d = new RecordDecoder();
    const seen: number[] = [];
    const onRecord = (r: { type: number }): void => {
      seen.push(r.type);
    };
    let first: unknown;
    try {
      d.push(cat(rec(RT.Stdout, 1, 'a'), header(RT.Stdout, 1, 0, 0, 9), rec(RT.Stdout, 1, 'b')), onRecord);
    } catch (err) {
      first = err;
    }
    assert.ok(first instanceof ProtocolError, `expected ProtocolError, got ${String(first)}`);
    assert.equal(first.offset, 16);
    assert.equal(d.error, first);
    for (const next of [rec(RT.Stdout, 1, 'c'), Buffer.alloc(0)]) {
      assert.throws(() => d.push(next, onRecord), (err) => err === first);
    }
    assert.deepEqual(seen, [RT.Stdout], 'nothing after the bad record is delivered');
  });

  test('offsets keep counting across many pushes (error deep in the stream)', () => {
    const good = cat(...Array.from({ length: 50 }, (_, i) => rec(RT.Stdout, 1, Buffer.alloc(i * 37))));
    const out = decodeChunks(chunksOf(cat(good, header(RT.Stdout, 1, 0, 0, 3)), 13));
    failedAt(out, good.length);
    assert.equal(out.records.length, 50);
  });

  test('the error message names the reason and the offset', () => {
    const err = failedAt(decodeChunks([cat(rec(RT.Stdout, 1, 'x'), header(0, 1, 0))]), 16);
    assert.equal(err.message, 'fastcgi protocol error at byte 16: unknown record type 0');
    assert.equal(err.name, 'ProtocolError');
  });
});

describe('the alloc option', () => {
  test('content spanning pushes is assembled in a buffer from alloc; content within one push is a view', () => {
    const asked: number[] = [];
    const made: Buffer[] = [];
    const d = new RecordDecoder({
      alloc: (n) => {
        asked.push(n);
        const b = Buffer.alloc(n, 0xee); // pre-filled: every byte must be overwritten
        made.push(b);
        return b;
      },
    });
    const whole = rec(RT.Stdout, 1, 'in one push');
    const spanning = rec(RT.Stdout, 1, Buffer.alloc(300, 'x'), 4);
    const got: Buffer[] = [];
    const onRecord = (r: { content: Buffer }): void => void got.push(r.content);
    const bytes = cat(whole, spanning);
    const cut = whole.length + 100;
    const first = bytes.subarray(0, cut);
    d.push(first, onRecord);
    d.push(bytes.subarray(cut), onRecord);
    assert.deepEqual(asked, [300], 'one allocation, of the content length');
    assert.equal(got.length, 2);
    assert.equal(got[0]!.buffer, first.buffer, 'a view into the pushed chunk…');
    assert.equal(got[0]!.byteOffset, first.byteOffset + 8, '…just past its header');
    assert.equal(got[1], made[0], 'the allocated buffer itself');
    assert.ok(got[1]!.equals(Buffer.alloc(300, 'x')));
  });
});
