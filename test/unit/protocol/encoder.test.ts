/**
 * Encoders against hand-written spec bytes (test/helpers/records.ts), then the structural
 * rules: PARAMS split only at pair boundaries, every record within php-fpm's 65535-byte
 * content+padding limit, streams padded to 8 and cut at MAX_RECORD_CONTENT.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, type GatewayError, ParamsTooLargeError } from '../../../src/errors.js';
import { MAX_RECORD_CONTENT, ProtocolStatus, RecordType, Role, ValueName } from '../../../src/protocol/constants.js';
import { parseBeginRequest, parseEndRequest } from '../../../src/protocol/decoder.js';
import {
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodeParamsStream,
  encodeRecord,
  encodeRequestHead,
  encodeStreamChunk,
  encodeStreamEnd,
  encodeUnknownType,
  frameStreamChunk,
  paddingFor,
  recordSize,
  writeHeader,
} from '../../../src/protocol/encoder.js';
import { decodePairs } from '../../../src/protocol/params.js';
import {
  ARBITRARY_VALUE,
  RT,
  SPEC_FIXTURES,
  type Rec,
  cat,
  decodeAll,
  fixture,
  header,
  hex,
  rec,
  repeat,
} from '../../helpers/records.js';

const N127 = repeat('n', 127);
const N128 = repeat('N', 128);
const V127 = repeat('v', 127);
const V128 = repeat('V', 128);

/** How our encoders should produce each spec fixture (fixtures without an entry are decode-only). */
const ENCODE: Readonly<Record<string, () => Buffer>> = {
  'BEGIN_REQUEST id 1, RESPONDER, KEEP_CONN': () => encodeBeginRequest(1, Role.Responder, true),
  'BEGIN_REQUEST id 1, AUTHORIZER, no flags': () => encodeBeginRequest(1, Role.Authorizer, false),
  'BEGIN_REQUEST id 0x1234, FILTER, KEEP_CONN': () => encodeBeginRequest(0x1234, Role.Filter, true),
  'ABORT_REQUEST id 1': () => encodeAbortRequest(1),
  'END_REQUEST app 0, REQUEST_COMPLETE': () => encodeEndRequest(1, 0, ProtocolStatus.RequestComplete),
  'END_REQUEST app 0, CANT_MPX_CONN': () => encodeEndRequest(1, 0, ProtocolStatus.CantMpxConn),
  'END_REQUEST app 0, OVERLOADED': () => encodeEndRequest(1, 0, ProtocolStatus.Overloaded),
  'END_REQUEST app 0, UNKNOWN_ROLE': () => encodeEndRequest(1, 0, ProtocolStatus.UnknownRole),
  'END_REQUEST app 0xffffffff, REQUEST_COMPLETE': () => encodeEndRequest(1, 0xffffffff, 0),
  'END_REQUEST app 0x80000001, REQUEST_COMPLETE': () => encodeEndRequest(1, 0x80000001, 0),
  'PARAMS stream, one 1-byte-length pair': () => encodeParamsStream(1, [['SCRIPT_FILENAME', '/var/www/index.php']]),
  'PARAMS stream, name and value of 127 bytes (1-byte lengths)': () => encodeParamsStream(1, [[N127, V127]]),
  'PARAMS stream, name and value of 128 bytes (4-byte lengths)': () => encodeParamsStream(1, [[N128.toString(), V128]]),
  'PARAMS stream, mixed 127/128 lengths, 300-byte value, binary value': () =>
    encodeParamsStream(1, [
      [N127, V128],
      [N128, V127.toString()],
      ['Q', 'q'.repeat(300)],
      ['BIN', ARBITRARY_VALUE],
    ]),
  'STDIN "hello" then end of STDIN': () =>
    cat(encodeStreamChunk(RecordType.Stdin, 1, Buffer.from('hello')), encodeStreamEnd(RecordType.Stdin, 1)),
  'STDOUT CGI head then end of STDOUT': () =>
    cat(encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('Content-type: text/html\r\n\r\n')), encodeStreamEnd(RecordType.Stdout, 1)),
  'STDERR line then end of STDERR': () =>
    cat(...frameStreamChunk(RecordType.Stderr, 1, Buffer.from('oops\n')), encodeStreamEnd(RecordType.Stderr, 1)),
  'DATA 8 bytes (no padding needed) then end of DATA': () =>
    cat(encodeStreamChunk(RecordType.Data, 1, hex('00 01 02 03 fc fd fe ff')), encodeStreamEnd(RecordType.Data, 1)),
  'GET_VALUES for the three §4.1 variables': () => encodeGetValues([ValueName.MaxConns, ValueName.MaxReqs, ValueName.MpxsConns]),
  'GET_VALUES_RESULT with values 10, 50, 0': () =>
    encodeGetValuesResult([
      [ValueName.MaxConns, '10'],
      [ValueName.MaxReqs, '50'],
      [ValueName.MpxsConns, '0'],
    ]),
  'UNKNOWN_TYPE naming type 12': () => encodeUnknownType(12),
  'request head: BEGIN_REQUEST, PARAMS, end of PARAMS, end of STDIN': () =>
    encodeRequestHead(1, Role.Responder, true, [['SCRIPT_FILENAME', '/var/www/index.php']], true),
  'END_REQUEST with padding and request id 0xffff': () =>
    encodeRecord(RecordType.EndRequest, 0xffff, hex('00 00 00 2a 00 00 00 00'), 8),
  'STDOUT with no padding on odd content': () => encodeRecord(RecordType.Stdout, 1, Buffer.from('abc'), 0),
  'empty STDOUT record with padding': () => encodeRecord(RecordType.Stdout, 1, Buffer.alloc(0), 8),
};

/** `fn` throws a GatewayError of class `cls` with `code`. */
function throwsCode(fn: () => unknown, cls: abstract new (...args: never[]) => GatewayError, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal((err as GatewayError).code, code);
    return true;
  });
}

/** Records of one type from an encoded buffer. */
function ofType(records: Rec[], type: number): Rec[] {
  return records.filter((r) => r.type === type);
}

describe('encoders produce the spec bytes', () => {
  for (const f of SPEC_FIXTURES) {
    const encode = ENCODE[f.name];
    if (!encode) continue;
    test(f.name, () => {
      assert.equal(encode().toString('hex'), f.bytes.toString('hex'));
    });
  }

  test('every fixture except the odd-padding decode-only one has an encoder', () => {
    const missing = SPEC_FIXTURES.filter((f) => !ENCODE[f.name]).map((f) => f.name);
    assert.deepEqual(missing, ['STDOUT with 255 bytes of padding']);
  });
});

describe('record bodies parse back to their fields', () => {
  test('parseBeginRequest reads role and KEEP_CONN', () => {
    assert.deepEqual(parseBeginRequest(fixture('BEGIN_REQUEST id 1, RESPONDER, KEEP_CONN').records[0]!.content), {
      role: Role.Responder,
      keepConn: true,
    });
    assert.deepEqual(parseBeginRequest(fixture('BEGIN_REQUEST id 1, AUTHORIZER, no flags').records[0]!.content), {
      role: Role.Authorizer,
      keepConn: false,
    });
    assert.deepEqual(parseBeginRequest(fixture('BEGIN_REQUEST id 0x1234, FILTER, KEEP_CONN').records[0]!.content), {
      role: Role.Filter,
      keepConn: true,
    });
  });

  test('parseEndRequest reads each protocol status', () => {
    const cases: Array<[string, number]> = [
      ['END_REQUEST app 0, REQUEST_COMPLETE', ProtocolStatus.RequestComplete],
      ['END_REQUEST app 0, CANT_MPX_CONN', ProtocolStatus.CantMpxConn],
      ['END_REQUEST app 0, OVERLOADED', ProtocolStatus.Overloaded],
      ['END_REQUEST app 0, UNKNOWN_ROLE', ProtocolStatus.UnknownRole],
    ];
    for (const [name, status] of cases) {
      assert.deepEqual(parseEndRequest(fixture(name).records[0]!.content), { appStatus: 0, protocolStatus: status }, name);
    }
  });

  test('parseEndRequest reads appStatus as unsigned 32-bit', () => {
    assert.equal(parseEndRequest(fixture('END_REQUEST app 0xffffffff, REQUEST_COMPLETE').records[0]!.content).appStatus, 4294967295);
    assert.equal(parseEndRequest(fixture('END_REQUEST app 0x80000001, REQUEST_COMPLETE').records[0]!.content).appStatus, 0x80000001);
  });

  test('encodeEndRequest writes negative app statuses as their 32-bit two\'s complement', () => {
    assert.deepEqual(encodeEndRequest(1, -1, 0), fixture('END_REQUEST app 0xffffffff, REQUEST_COMPLETE').bytes);
  });

  test('GET_VALUES_RESULT content decodes to the names and values', () => {
    const pairs = decodePairs(fixture('GET_VALUES_RESULT with values 10, 50, 0').records[0]!.content);
    assert.deepEqual(
      pairs.map(([n, v]) => [n.toString(), v.toString()]),
      [['FCGI_MAX_CONNS', '10'], ['FCGI_MAX_REQS', '50'], ['FCGI_MPXS_CONNS', '0']],
    );
  });
});

describe('record header and padding', () => {
  test('paddingFor rounds content up to a multiple of 8', () => {
    const got = [0, 1, 7, 8, 9, 15, 16, 35, 65527, 65528].map(paddingFor);
    assert.deepEqual(got, [0, 7, 1, 0, 7, 1, 0, 5, 1, 0]);
  });

  test('paddingFor never lets content + padding exceed 65535 (php-fpm rejects it)', () => {
    for (let n = 65520; n <= 65535; n++) {
      assert.ok(n + paddingFor(n) <= 65535, `content ${n} + padding ${paddingFor(n)}`);
    }
  });

  test('recordSize is header + content + padding', () => {
    assert.equal(recordSize(0), 8);
    assert.equal(recordSize(1), 16);
    assert.equal(recordSize(35), 48);
    assert.equal(recordSize(65528), 65536);
  });

  test('writeHeader writes all eight fields at the given offset', () => {
    const buf = Buffer.alloc(12, 0xee);
    assert.equal(writeHeader(buf, 2, RecordType.Stdout, 0x0102, 0x0304, 5), 10);
    assert.deepEqual(buf, hex('ee ee | 01 06 01 02 03 04 05 00 | ee ee'));
  });

  test('encodeRecord honours explicit padding from 0 to 255 with zero bytes', () => {
    assert.deepEqual(encodeRecord(RecordType.Stdout, 1, Buffer.from('x'), 0), hex('01 06 00 01 00 01 00 00 "x"'));
    assert.deepEqual(encodeRecord(RecordType.Stdout, 1, Buffer.from('x'), 255), rec(RT.Stdout, 1, 'x', 255));
    assert.deepEqual(encodeRecord(RecordType.Stdout, 1, Buffer.from('x')), rec(RT.Stdout, 1, 'x'));
  });

  test('encodeRecord takes 65535 content bytes and refuses 65536', () => {
    const max = encodeRecord(RecordType.Stdout, 1, Buffer.alloc(65535, 7), 0);
    assert.deepEqual(max.subarray(0, 8), header(RT.Stdout, 1, 65535, 0));
    assert.equal(max.length, 8 + 65535);
    throwsCode(() => encodeRecord(RecordType.Stdout, 1, Buffer.alloc(65536)), ConfigError, 'GW_ERR_CONFIG_INVALID');
  });

  test('encodeRecord rejects out-of-range ids, types and paddings instead of truncating them', () => {
    for (const id of [-1, 65536, 1.5]) {
      throwsCode(() => encodeRecord(RecordType.Stdout, id), ConfigError, 'GW_ERR_CONFIG_INVALID');
    }
    for (const type of [-1, 256, 2.5]) {
      throwsCode(() => encodeRecord(type, 1), ConfigError, 'GW_ERR_CONFIG_INVALID');
    }
    for (const padding of [-1, 256, 2.5]) {
      throwsCode(() => encodeRecord(RecordType.Stdout, 1, Buffer.alloc(1), padding), ConfigError, 'GW_ERR_CONFIG_INVALID');
    }
    throwsCode(() => encodeBeginRequest(65536), ConfigError, 'GW_ERR_CONFIG_INVALID');
    throwsCode(() => encodeParamsStream(-1, []), ConfigError, 'GW_ERR_CONFIG_INVALID');
  });
});

describe('request head', () => {
  test('without params it is BEGIN_REQUEST and the empty PARAMS record', () => {
    assert.deepEqual(
      encodeRequestHead(1, Role.Responder, false, [], false),
      cat(rec(RT.BeginRequest, 1, hex('00 01 00 00 00 00 00 00')), rec(RT.Params, 1)),
    );
  });

  test('endStdin appends the empty STDIN record; without it the body stream stays open', () => {
    const open = encodeRequestHead(1, Role.Responder, true, { A: 'b' }, false);
    const closed = encodeRequestHead(1, Role.Responder, true, { A: 'b' }, true);
    assert.deepEqual(closed, cat(open, rec(RT.Stdin, 1)));
    assert.deepEqual(open.subarray(-8), rec(RT.Params, 1));
  });

  test('an empty params stream is just its end record', () => {
    assert.deepEqual(encodeParamsStream(1, []), rec(RT.Params, 1));
  });

  test('GET_VALUES with no names is one empty GET_VALUES record, not a stream end', () => {
    assert.deepEqual(encodeGetValues([]), rec(RT.GetValues, 0));
  });
});

/** Many params totalling well over 64 KiB, with lengths on both sides of 127/128. */
function bigParams(): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  for (let i = 0; i < 400; i++) {
    const valueLen = [0, 1, 126, 127, 128, 129, 700, 3000][i % 8]!;
    const name = i % 5 === 0 ? `HTTP_X_${'H'.repeat(121)}_${i}` : `P${i}`;
    out.push([name, Buffer.alloc(valueLen, i & 0xff)]);
  }
  return out;
}

/** Check a PARAMS stream inside `records` and return its pairs (names latin1). */
function checkParamsStream(records: Rec[]): Array<[string, Buffer]> {
  const params = ofType(records, RT.Params);
  assert.ok(params.length >= 3, `expected a multi-record stream, got ${params.length}`);
  const last = params[params.length - 1]!;
  assert.equal(last.content.length, 0, 'stream ends with an empty PARAMS record');
  const pairs: Array<[string, Buffer]> = [];
  params.slice(0, -1).forEach((r, k) => {
    assert.ok(r.content.length > 0, `record ${k} is not an early end of stream`);
    assert.ok(r.content.length <= MAX_RECORD_CONTENT, `record ${k} content ${r.content.length}`);
    assert.ok(r.content.length + r.paddingLength <= 65535, `record ${k} content+padding`);
    assert.equal((r.content.length + r.paddingLength) % 8, 0, `record ${k} is padded to 8`);
    // Decoding each record on its own must succeed: no pair straddles two records.
    for (const [n, v] of decodePairs(r.content)) pairs.push([n.toString('latin1'), Buffer.from(v)]);
  });
  return pairs;
}

describe('params stream splitting', () => {
  test('params over 64 KiB are split into records at pair boundaries only', () => {
    const input = bigParams();
    const records = decodeAll(encodeParamsStream(1, input), { requestId: 1 });
    assert.deepEqual(checkParamsStream(records), input);
  });

  test('encodeRequestHead splits the same way between BEGIN_REQUEST and end of STDIN', () => {
    const input = bigParams();
    const records = decodeAll(encodeRequestHead(1, Role.Responder, true, input, true), { requestId: 1 });
    assert.equal(records[0]!.type, RT.BeginRequest);
    assert.equal(records.at(-1)!.type, RT.Stdin);
    assert.equal(records.at(-1)!.content.length, 0);
    assert.deepEqual(records.slice(1, -1).map((r) => r.type), records.slice(1, -1).map(() => RT.Params));
    assert.deepEqual(checkParamsStream(records), input);
  });

  test('records are filled before a new one starts (no needless tiny records)', () => {
    const records = ofType(decodeAll(encodeParamsStream(1, bigParams())), RT.Params);
    const input = bigParams();
    // The first pair of every following record must not have fit into the previous one.
    let consumed = 0;
    for (let k = 0; k + 2 < records.length; k++) {
      consumed += decodePairs(records[k]!.content).length;
      const [name, value] = input[consumed]!;
      const size = (name.length < 128 ? 1 : 4) + (value.length < 128 ? 1 : 4) + name.length + value.length;
      assert.ok(records[k]!.content.length + size > MAX_RECORD_CONTENT, `record ${k} was closed early`);
    }
  });

  test('a pair of exactly MAX_RECORD_CONTENT bytes fills one record with no padding', () => {
    // 1 + 4 + 3 + 65520 = 65528
    const value = Buffer.alloc(65520, 0xab);
    const buf = encodeParamsStream(1, [['BIG', value]]);
    assert.deepEqual(buf.subarray(0, 13), hex('01 04 00 01 ff f8 00 00 | 03 80 00 ff f0'));
    const records = decodeAll(buf);
    assert.equal(records.length, 2);
    assert.equal(records[0]!.content.length, MAX_RECORD_CONTENT);
    assert.equal(records[0]!.paddingLength, 0);
    assert.deepEqual(decodePairs(records[0]!.content)[0]![1], value);
  });

  test('a pair at the limit after other params goes into a record of its own', () => {
    const records = ofType(decodeAll(encodeParamsStream(1, [['A', 'b'], ['BIG', Buffer.alloc(65520)], ['C', 'd']])), RT.Params);
    assert.deepEqual(records.map((r) => r.content.length), [4, 65528, 4, 0]);
  });

  test('a pair one byte over the limit throws ParamsTooLargeError instead of producing a malformed record', () => {
    const params = [['A', 'b'], ['BIG', Buffer.alloc(65521)]] as const;
    for (const encode of [
      () => encodeParamsStream(1, params),
      () => encodeRequestHead(1, Role.Responder, true, params, true),
    ]) {
      assert.throws(encode, (err: unknown) => {
        assert.ok(err instanceof ParamsTooLargeError, `expected ParamsTooLargeError, got ${String(err)}`);
        assert.equal(err.code, 'GW_ERR_PROTO_PARAMS_TOO_LARGE');
        assert.equal(err.paramName, 'BIG');
        assert.equal(err.size, 65529);
        assert.equal(err.limit, MAX_RECORD_CONTENT);
        return true;
      });
    }
  });

  test('a smaller maxContent moves the limit with it', () => {
    const records = ofType(decodeAll(encodeParamsStream(1, [['ab', 'x'.repeat(60)], ['cd', 'y'.repeat(60)]], 64)), RT.Params);
    assert.deepEqual(records.map((r) => r.content.length), [64, 64, 0]);
    throwsCode(() => encodeParamsStream(1, [['ab', 'x'.repeat(61)]], 64), ParamsTooLargeError, 'GW_ERR_PROTO_PARAMS_TOO_LARGE');
  });

  test('maxContent 65535 keeps content + padding within 65535', () => {
    // 1 + 4 + 1 + 65529 = 65535 bytes of content; padding to 8 would make it 65536.
    const records = decodeAll(encodeParamsStream(1, [['A', Buffer.alloc(65529)]], 65535));
    assert.equal(records[0]!.content.length, 65535);
    assert.ok(records[0]!.content.length + records[0]!.paddingLength <= 65535, `padding ${records[0]!.paddingLength}`);
  });

  test('maxContent outside 8..65535 is a ConfigError', () => {
    for (const max of [0, 7, 65536, 100.5]) {
      throwsCode(() => encodeParamsStream(1, [['A', 'b']], max), ConfigError, 'GW_ERR_CONFIG_INVALID');
    }
  });
});

describe('stream framing', () => {
  const SIZES = [0, 1, 7, 8, 65527, 65528, 65529, 131056, 200000];

  for (const size of SIZES) {
    test(`${size} bytes: encodeStreamChunk and frameStreamChunk give identical records that carry the data`, () => {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
      const copied = encodeStreamChunk(RecordType.Stdin, 1, data);
      const framed = Buffer.concat(frameStreamChunk(RecordType.Stdin, 1, data));
      assert.ok(copied.equals(framed), 'same bytes');
      const records = decodeAll(copied, { requestId: 1 });
      assert.equal(records.length, Math.ceil(size / MAX_RECORD_CONTENT));
      for (const r of records) {
        assert.equal(r.type, RT.Stdin);
        assert.ok(r.content.length > 0, 'no empty record: framing never ends the stream');
        assert.ok(r.content.length <= MAX_RECORD_CONTENT, `content ${r.content.length}`);
        assert.equal(r.paddingLength, paddingFor(r.content.length));
        assert.equal((r.content.length + r.paddingLength) % 8, 0);
      }
      assert.ok(Buffer.concat(records.map((r) => r.content)).equals(data), 'data preserved');
    });
  }

  test('65529 bytes become a full 65528-byte record and a 1-byte record with 7 padding', () => {
    const buf = encodeStreamChunk(RecordType.Stdin, 1, Buffer.alloc(65529, 0x41));
    assert.deepEqual(buf.subarray(0, 8), hex('01 05 00 01 ff f8 00 00'));
    assert.deepEqual(buf.subarray(8 + 65528), hex('01 05 00 01 00 01 07 00 | 41 00 00 00 00 00 00 00'));
  });

  test('zero bytes frame to nothing (the stream end is encodeStreamEnd\'s job)', () => {
    assert.equal(encodeStreamChunk(RecordType.Stdin, 1, Buffer.alloc(0)).length, 0);
    assert.deepEqual(frameStreamChunk(RecordType.Stdin, 1, Buffer.alloc(0)), []);
    assert.deepEqual(encodeStreamEnd(RecordType.Stdin, 1), hex('01 05 00 01 00 00 00 00'));
  });

  test('frameStreamChunk hands out views of the data, not copies', () => {
    const data = Buffer.alloc(100, 1);
    const parts = frameStreamChunk(RecordType.Stdin, 1, data);
    assert.equal(parts[1]!.buffer, data.buffer);
  });

  test('a small maxContent cuts records at that size', () => {
    const data = Buffer.from('abcdefghijklmnopqrstu'); // 21 bytes
    const buf = encodeStreamChunk(RecordType.Stdout, 3, data, 8);
    assert.deepEqual(
      buf,
      hex(`
        01 06 00 03 00 08 00 00 | "abcdefgh"
        01 06 00 03 00 08 00 00 | "ijklmnop"
        01 06 00 03 00 05 03 00 | "qrstu" 00 00 00
      `),
    );
    assert.ok(Buffer.concat(frameStreamChunk(RecordType.Stdout, 3, data, 8)).equals(buf), 'frameStreamChunk gives the same bytes');
  });

  test('maxContent 65535 gives 65535-byte records without padding', () => {
    const data = Buffer.alloc(65536, 2);
    const buf = encodeStreamChunk(RecordType.Stdin, 1, data, 65535);
    assert.deepEqual(buf.subarray(0, 8), hex('01 05 00 01 ff ff 00 00'));
    assert.ok(Buffer.concat(frameStreamChunk(RecordType.Stdin, 1, data, 65535)).equals(buf), 'frameStreamChunk gives the same bytes');
    assert.ok(Buffer.concat(decodeAll(buf).map((r) => r.content)).equals(data), 'data preserved');
  });

  test('maxContent outside 8..65535 is a ConfigError, not a hang or a malformed header', () => {
    const data = Buffer.alloc(70000);
    for (const max of [0, -1, 7, 65536, 70000, 100.5]) {
      throwsCode(() => frameStreamChunk(RecordType.Stdin, 1, data, max), ConfigError, 'GW_ERR_CONFIG_INVALID');
      throwsCode(() => encodeStreamChunk(RecordType.Stdin, 1, data, max), ConfigError, 'GW_ERR_CONFIG_INVALID');
    }
  });
});
