/**
 * Byte builders for FastCGI tests, in the spirit of pg-protocol's `testing/test-buffers.ts`.
 *
 * The builders and SPEC_FIXTURES are written by hand from the FastCGI 1.0 specification and
 * deliberately never call `src/protocol/encoder.ts`: they are an independent statement of what
 * the wire bytes must be, so they can check the encoder (and the decoder) rather than echo it.
 * Only the decode helpers (`decodeChunks`, `decodeAll`) use `RecordDecoder`.
 *
 *   hex(`01 06 00 01 00 05 03 00 | "hello" 00 00 00   # STDOUT id 1, "hello" + 3 pad`)
 *   rec(RT.Stdout, 1, 'hello')                         # the same bytes
 *   pair('SCRIPT_FILENAME', '/var/www/index.php')      # §3.4 name-value pair
 */
import { RecordDecoder, type RecordDecoderOptions } from '../../src/protocol/decoder.js';

/** Record type numbers from §8, spelled out here so fixtures do not depend on src constants. */
export const RT = {
  BeginRequest: 1,
  AbortRequest: 2,
  EndRequest: 3,
  Params: 4,
  Stdin: 5,
  Stdout: 6,
  Stderr: 7,
  Data: 8,
  GetValues: 9,
  GetValuesResult: 10,
  UnknownType: 11,
} as const;

/** Anything a builder accepts as bytes: a Buffer, or a string taken as UTF-8. */
export type Bytes = Buffer | string;

/** A Buffer from `Bytes` (strings as UTF-8). */
export function bytes(v: Bytes): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/** Concatenate byte pieces. */
export function cat(...parts: Bytes[]): Buffer {
  return Buffer.concat(parts.map(bytes));
}

/** `n` copies of one byte (a number, or the first char of a string). */
export function repeat(byte: number | string, n: number): Buffer {
  return Buffer.alloc(n, typeof byte === 'string' ? byte.charCodeAt(0) : byte);
}

/**
 * `len` deterministic pseudo-random bytes (xorshift seeded by `seed`): cheap in any size,
 * unlike generating large arrays byte by byte in property tests.
 */
export function patterned(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Annotated hex to bytes. Accepts two-digit hex tokens separated by whitespace, `|` as a
 * visual separator, double-quoted ASCII strings ("SCRIPT_NAME"), and `#` comments to the end
 * of the line. Anything else throws, so a typo cannot silently change a fixture.
 */
export function hex(src: string): Buffer {
  const out: number[] = [];
  for (const line of src.split('\n')) {
    let i = 0;
    while (i < line.length) {
      const ch = line[i]!;
      if (ch === '#') break;
      if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '|') {
        i++;
        continue;
      }
      if (ch === '"') {
        const end = line.indexOf('"', i + 1);
        if (end < 0) throw new Error(`hex(): unterminated string in ${JSON.stringify(line)}`);
        for (const b of Buffer.from(line.slice(i + 1, end), 'latin1')) out.push(b);
        i = end + 1;
        continue;
      }
      const tok = line.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(tok) || (i + 2 < line.length && !/[\s|#"]/.test(line[i + 2]!))) {
        throw new Error(`hex(): bad token at ${JSON.stringify(line.slice(i, i + 8))}`);
      }
      out.push(Number.parseInt(tok, 16));
      i += 2;
    }
  }
  return Buffer.from(out);
}

/** An 8-byte record header (§3.3), with every field explicit; `version` defaults to 1. */
export function header(type: number, requestId: number, contentLength: number, paddingLength = 0, version = 1): Buffer {
  const b = Buffer.alloc(8);
  b[0] = version;
  b[1] = type;
  b.writeUInt16BE(requestId, 2);
  b.writeUInt16BE(contentLength, 4);
  b[6] = paddingLength;
  b[7] = 0;
  return b;
}

/** Padding the spec recommends: up to the next multiple of 8. */
export function pad8(contentLength: number): number {
  return (8 - (contentLength % 8)) % 8;
}

/**
 * One record: header, content, then `padding` zero bytes (default: to a multiple of 8).
 * Content longer than 65535 is a test bug and throws.
 */
export function rec(type: number, requestId: number, content: Bytes = Buffer.alloc(0), padding?: number): Buffer {
  const c = bytes(content);
  if (c.length > 0xffff) throw new Error(`rec(): content of ${c.length} bytes does not fit one record`);
  const p = padding ?? pad8(c.length);
  return Buffer.concat([header(type, requestId, c.length, p), c, Buffer.alloc(p)]);
}

/** §3.4 length: one byte below 128, else four bytes big-endian with the top bit set. */
export function len(n: number): Buffer {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0, 0);
  return b;
}

/** One §3.4 name-value pair. */
export function pair(name: Bytes, value: Bytes): Buffer {
  const n = bytes(name);
  const v = bytes(value);
  return Buffer.concat([len(n.length), len(v.length), n, v]);
}

/** Several pairs back to back. */
export function pairs(list: ReadonlyArray<readonly [Bytes, Bytes]>): Buffer {
  return Buffer.concat(list.map(([n, v]) => pair(n, v)));
}

/** BEGIN_REQUEST body (§5.1): role (16-bit), flags, 5 reserved bytes. */
export function beginBody(role: number, flags = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(role, 0);
  b[2] = flags;
  return b;
}

/** END_REQUEST body (§5.5): appStatus (32-bit), protocolStatus, 3 reserved bytes. */
export function endBody(appStatus: number, protocolStatus: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(appStatus >>> 0, 0);
  b[4] = protocolStatus;
  return b;
}

/** A decoded record copied out of the decoder (its content is only valid until the next push). */
export interface Rec {
  type: number;
  requestId: number;
  content: Buffer;
  paddingLength: number;
}

/** Expected record in fixtures: what a decoder must report. */
export interface ExpectedRecord {
  type: number;
  requestId: number;
  content: Buffer;
}

/** Outcome of feeding chunks to a fresh decoder. */
export interface DecodeOutcome {
  records: Rec[];
  /** What the decoder threw, if anything (left for the caller to inspect). */
  error: unknown;
}

/** Feed `chunks` in order to a fresh decoder; collect copies of the records and any error. */
export function decodeChunks(chunks: Iterable<Buffer>, options: RecordDecoderOptions = {}): DecodeOutcome {
  const decoder = new RecordDecoder(options);
  const records: Rec[] = [];
  const onRecord = (r: { type: number; requestId: number; content: Buffer; paddingLength: number }): void => {
    records.push({ type: r.type, requestId: r.requestId, content: Buffer.from(r.content), paddingLength: r.paddingLength });
  };
  try {
    for (const c of chunks) decoder.push(c, onRecord);
  } catch (err) {
    return { records, error: err };
  }
  return { records, error: undefined };
}

/** Decode all of `buf` in one push; throws whatever the decoder throws. */
export function decodeAll(buf: Buffer, options: RecordDecoderOptions = {}): Rec[] {
  const out = decodeChunks([buf], options);
  if (out.error !== undefined) throw out.error;
  return out.records;
}

/** `buf` cut at the given offsets (sorted ascending, each within 0..length). */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    parts.push(buf.subarray(prev, c));
    prev = c;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

/** `buf` as consecutive chunks of `size` bytes (the last may be shorter). */
export function chunksOf(buf: Buffer, size: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return parts;
}

/** Records reduced to what fixtures compare: type, id, content bytes (as hex for readable diffs). */
export function summary(records: ReadonlyArray<{ type: number; requestId: number; content: Buffer }>): Array<{ type: number; requestId: number; content: string }> {
  return records.map((r) => ({ type: r.type, requestId: r.requestId, content: r.content.toString('hex') }));
}

// ───────────────────────────── spec fixtures ─────────────────────────────
//
// Each fixture is wire bytes written out from the spec (§3.3 header, §3.4 pairs, §4 management
// records, §5 application records) plus the records a decoder must report for them. Header
// layout: version type idB1 idB0 lenB1 lenB0 padding reserved.

/** A named run of wire bytes and the records it holds. */
export interface SpecFixture {
  readonly name: string;
  readonly bytes: Buffer;
  readonly records: readonly ExpectedRecord[];
}

const N127 = repeat('n', 127);
const N128 = repeat('N', 128);
const V127 = repeat('v', 127);
const V128 = repeat('V', 128);
const V300 = repeat('q', 300);
/** A value with bytes that text handling would mangle: NUL, 0xff, high bit, newline. */
export const ARBITRARY_VALUE = hex('00 ff 80 7f 0a 00');

/** All fixtures, in a fixed order. Names are unique and used as keys by the tests. */
export const SPEC_FIXTURES: readonly SpecFixture[] = [
  {
    name: 'BEGIN_REQUEST id 1, RESPONDER, KEEP_CONN',
    bytes: hex(`01 01 00 01 00 08 00 00 | 00 01 01 00 00 00 00 00   # role 1, flags FCGI_KEEP_CONN`),
    records: [{ type: RT.BeginRequest, requestId: 1, content: hex('00 01 01 00 00 00 00 00') }],
  },
  {
    name: 'BEGIN_REQUEST id 1, AUTHORIZER, no flags',
    bytes: hex(`01 01 00 01 00 08 00 00 | 00 02 00 00 00 00 00 00   # role 2, flags 0`),
    records: [{ type: RT.BeginRequest, requestId: 1, content: hex('00 02 00 00 00 00 00 00') }],
  },
  {
    name: 'BEGIN_REQUEST id 0x1234, FILTER, KEEP_CONN',
    bytes: hex(`01 01 12 34 00 08 00 00 | 00 03 01 00 00 00 00 00   # id big-endian, role 3`),
    records: [{ type: RT.BeginRequest, requestId: 0x1234, content: hex('00 03 01 00 00 00 00 00') }],
  },
  {
    name: 'ABORT_REQUEST id 1',
    bytes: hex(`01 02 00 01 00 00 00 00                             # no content (§5.4)`),
    records: [{ type: RT.AbortRequest, requestId: 1, content: hex('') }],
  },
  {
    name: 'END_REQUEST app 0, REQUEST_COMPLETE',
    bytes: hex(`01 03 00 01 00 08 00 00 | 00 00 00 00 00 00 00 00`),
    records: [{ type: RT.EndRequest, requestId: 1, content: hex('00 00 00 00 00 00 00 00') }],
  },
  {
    name: 'END_REQUEST app 0, CANT_MPX_CONN',
    bytes: hex(`01 03 00 01 00 08 00 00 | 00 00 00 00 01 00 00 00`),
    records: [{ type: RT.EndRequest, requestId: 1, content: hex('00 00 00 00 01 00 00 00') }],
  },
  {
    name: 'END_REQUEST app 0, OVERLOADED',
    bytes: hex(`01 03 00 01 00 08 00 00 | 00 00 00 00 02 00 00 00`),
    records: [{ type: RT.EndRequest, requestId: 1, content: hex('00 00 00 00 02 00 00 00') }],
  },
  {
    name: 'END_REQUEST app 0, UNKNOWN_ROLE',
    bytes: hex(`01 03 00 01 00 08 00 00 | 00 00 00 00 03 00 00 00`),
    records: [{ type: RT.EndRequest, requestId: 1, content: hex('00 00 00 00 03 00 00 00') }],
  },
  {
    name: 'END_REQUEST app 0xffffffff, REQUEST_COMPLETE',
    bytes: hex(`01 03 00 01 00 08 00 00 | ff ff ff ff 00 00 00 00   # appStatus is unsigned 32-bit`),
    records: [{ type: RT.EndRequest, requestId: 1, content: hex('ff ff ff ff 00 00 00 00') }],
  },
  {
    name: 'END_REQUEST app 0x80000001, REQUEST_COMPLETE',
    bytes: hex(`01 03 00 01 00 08 00 00 | 80 00 00 01 00 00 00 00   # top bit set: not negative`),
    records: [{ type: RT.EndRequest, requestId: 1, content: hex('80 00 00 01 00 00 00 00') }],
  },
  {
    name: 'PARAMS stream, one 1-byte-length pair',
    bytes: hex(`
      01 04 00 01 00 23 05 00 | 0f 12 "SCRIPT_FILENAME" "/var/www/index.php" 00 00 00 00 00   # 35 bytes + 5 pad
      01 04 00 01 00 00 00 00                                                                  # end of PARAMS
    `),
    records: [
      { type: RT.Params, requestId: 1, content: cat(hex('0f 12'), 'SCRIPT_FILENAME', '/var/www/index.php') },
      { type: RT.Params, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'PARAMS stream, name and value of 127 bytes (1-byte lengths)',
    bytes: cat(
      hex(`01 04 00 01 01 00 00 00 | 7f 7f                # 2 + 127 + 127 = 256 bytes, no pad`),
      N127,
      V127,
      hex(`01 04 00 01 00 00 00 00`),
    ),
    records: [
      { type: RT.Params, requestId: 1, content: cat(hex('7f 7f'), N127, V127) },
      { type: RT.Params, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'PARAMS stream, name and value of 128 bytes (4-byte lengths)',
    bytes: cat(
      hex(`01 04 00 01 01 08 00 00 | 80 00 00 80 80 00 00 80   # 8 + 128 + 128 = 264 bytes`),
      N128,
      V128,
      hex(`01 04 00 01 00 00 00 00`),
    ),
    records: [
      { type: RT.Params, requestId: 1, content: cat(hex('80 00 00 80 80 00 00 80'), N128, V128) },
      { type: RT.Params, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'PARAMS stream, mixed 127/128 lengths, 300-byte value, binary value',
    bytes: cat(
      // 1+4+127+128 = 260, 4+1+128+127 = 260, 1+4+1+300 = 306, 1+1+3+6 = 11: 837 bytes + 3 pad
      hex(`01 04 00 01 03 45 03 00`),
      hex(`7f 80 00 00 80`), N127, V128,
      hex(`80 00 00 80 7f`), N128, V127,
      hex(`01 80 00 01 2c "Q"`), V300,
      hex(`03 06 "BIN" 00 ff 80 7f 0a 00 | 00 00 00`),
      hex(`01 04 00 01 00 00 00 00`),
    ),
    records: [
      {
        type: RT.Params,
        requestId: 1,
        content: cat(
          hex('7f 80 00 00 80'), N127, V128,
          hex('80 00 00 80 7f'), N128, V127,
          hex('01 80 00 01 2c "Q"'), V300,
          hex('03 06 "BIN"'), ARBITRARY_VALUE,
        ),
      },
      { type: RT.Params, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'STDIN "hello" then end of STDIN',
    bytes: hex(`
      01 05 00 01 00 05 03 00 | "hello" 00 00 00
      01 05 00 01 00 00 00 00
    `),
    records: [
      { type: RT.Stdin, requestId: 1, content: hex('"hello"') },
      { type: RT.Stdin, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'STDOUT CGI head then end of STDOUT',
    bytes: hex(`
      01 06 00 01 00 1b 05 00 | "Content-type: text/html" 0d 0a 0d 0a 00 00 00 00 00   # 27 + 5 pad
      01 06 00 01 00 00 00 00
    `),
    records: [
      { type: RT.Stdout, requestId: 1, content: hex('"Content-type: text/html" 0d 0a 0d 0a') },
      { type: RT.Stdout, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'STDERR line then end of STDERR',
    bytes: hex(`
      01 07 00 01 00 05 03 00 | "oops" 0a 00 00 00
      01 07 00 01 00 00 00 00
    `),
    records: [
      { type: RT.Stderr, requestId: 1, content: hex('"oops" 0a') },
      { type: RT.Stderr, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'DATA 8 bytes (no padding needed) then end of DATA',
    bytes: hex(`
      01 08 00 01 00 08 00 00 | 00 01 02 03 fc fd fe ff
      01 08 00 01 00 00 00 00
    `),
    records: [
      { type: RT.Data, requestId: 1, content: hex('00 01 02 03 fc fd fe ff') },
      { type: RT.Data, requestId: 1, content: hex('') },
    ],
  },
  {
    name: 'GET_VALUES for the three §4.1 variables',
    bytes: hex(`
      01 09 00 00 00 30 00 00   # id 0 (management), 6 + 14 + 13 + 15 = 48 bytes
      0e 00 "FCGI_MAX_CONNS"
      0d 00 "FCGI_MAX_REQS"
      0f 00 "FCGI_MPXS_CONNS"
    `),
    records: [
      {
        type: RT.GetValues,
        requestId: 0,
        content: hex('0e 00 "FCGI_MAX_CONNS" 0d 00 "FCGI_MAX_REQS" 0f 00 "FCGI_MPXS_CONNS"'),
      },
    ],
  },
  {
    name: 'GET_VALUES_RESULT with values 10, 50, 0',
    bytes: hex(`
      01 0a 00 00 00 35 03 00   # 18 + 17 + 18 = 53 bytes + 3 pad
      0e 02 "FCGI_MAX_CONNS" "10"
      0d 02 "FCGI_MAX_REQS" "50"
      0f 01 "FCGI_MPXS_CONNS" "0"
      00 00 00
    `),
    records: [
      {
        type: RT.GetValuesResult,
        requestId: 0,
        content: hex('0e 02 "FCGI_MAX_CONNS" "10" 0d 02 "FCGI_MAX_REQS" "50" 0f 01 "FCGI_MPXS_CONNS" "0"'),
      },
    ],
  },
  {
    name: 'UNKNOWN_TYPE naming type 12',
    bytes: hex(`01 0b 00 00 00 08 00 00 | 0c 00 00 00 00 00 00 00   # §4.2 body: type + 7 reserved`),
    records: [{ type: RT.UnknownType, requestId: 0, content: hex('0c 00 00 00 00 00 00 00') }],
  },
  {
    name: 'request head: BEGIN_REQUEST, PARAMS, end of PARAMS, end of STDIN',
    bytes: hex(`
      01 01 00 01 00 08 00 00 | 00 01 01 00 00 00 00 00
      01 04 00 01 00 23 05 00 | 0f 12 "SCRIPT_FILENAME" "/var/www/index.php" 00 00 00 00 00
      01 04 00 01 00 00 00 00
      01 05 00 01 00 00 00 00
    `),
    records: [
      { type: RT.BeginRequest, requestId: 1, content: hex('00 01 01 00 00 00 00 00') },
      { type: RT.Params, requestId: 1, content: cat(hex('0f 12'), 'SCRIPT_FILENAME', '/var/www/index.php') },
      { type: RT.Params, requestId: 1, content: hex('') },
      { type: RT.Stdin, requestId: 1, content: hex('') },
    ],
  },
  // Padding that is legal but not what our encoder writes: the decoder must honour the header.
  {
    name: 'STDOUT with no padding on odd content',
    bytes: hex(`01 06 00 01 00 03 00 00 | "abc"`),
    records: [{ type: RT.Stdout, requestId: 1, content: hex('"abc"') }],
  },
  {
    name: 'STDOUT with 255 bytes of padding',
    bytes: cat(hex(`01 06 00 01 00 01 ff 00 | "x"`), repeat(0xaa, 255)),
    records: [{ type: RT.Stdout, requestId: 1, content: hex('"x"') }],
  },
  {
    name: 'empty STDOUT record with padding',
    bytes: hex(`01 06 00 01 00 00 08 00 | 00 00 00 00 00 00 00 00`),
    records: [{ type: RT.Stdout, requestId: 1, content: hex('') }],
  },
  {
    name: 'END_REQUEST with padding and request id 0xffff',
    bytes: hex(`01 03 ff ff 00 08 08 00 | 00 00 00 2a 00 00 00 00 | 00 00 00 00 00 00 00 00`),
    records: [{ type: RT.EndRequest, requestId: 0xffff, content: hex('00 00 00 2a 00 00 00 00') }],
  },
];

/** The fixture with this name (throws on a typo). */
export function fixture(name: string): SpecFixture {
  const f = SPEC_FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture named ${JSON.stringify(name)}`);
  return f;
}
