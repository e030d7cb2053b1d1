/**
 * Record encoders (FastCGI §3.3, §5). Pure: values in, Buffers out.
 * Sizes are computed first and each result allocated once. Content is padded to a multiple
 * of 8 (the spec recommends it; nginx and php-fpm both do). Streams are cut into records of at
 * most MAX_RECORD_CONTENT bytes and ended with an empty record.
 */
import { ConfigError } from '../errors.js';
import {
  FCGI_HEADER_LEN,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  Flags,
  MAX_RECORD_CONTENT,
  RecordType,
  Role,
} from './constants.js';
import { type ParamInput, measureParams, pairSize, toPairs, writePairs } from './params.js';

/**
 * Padding that brings `contentLength` to a multiple of 8, except above MAX_RECORD_CONTENT,
 * where it is 0: php-fpm rejects a record whose content plus padding exceeds 65535
 * (main/fastcgi.c), and padding is only a recommendation (§3.3).
 */
export function paddingFor(contentLength: number): number {
  return contentLength > MAX_RECORD_CONTENT ? 0 : -contentLength & 7;
}

/** Encoded size of a record with this content length, header and padding included. */
export function recordSize(contentLength: number): number {
  return FCGI_HEADER_LEN + contentLength + paddingFor(contentLength);
}

/** Write a record header at `offset` (§3.3); returns the offset after it. */
export function writeHeader(
  buf: Buffer,
  offset: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): number {
  buf[offset] = FCGI_VERSION_1;
  buf[offset + 1] = type;
  buf[offset + 2] = requestId >>> 8;
  buf[offset + 3] = requestId & 0xff;
  buf[offset + 4] = contentLength >>> 8;
  buf[offset + 5] = contentLength & 0xff;
  buf[offset + 6] = paddingLength;
  buf[offset + 7] = 0;
  return offset + FCGI_HEADER_LEN;
}

function checkRequestId(requestId: number): void {
  if (!Number.isInteger(requestId) || requestId < 0 || requestId > 0xffff) {
    throw new ConfigError('requestId must be an integer from 0 to 65535');
  }
}

/** Stream framing limit: at least 8 (one padded unit), at most what the 16-bit field holds. */
function checkMaxContent(maxContent: number): void {
  if (!Number.isInteger(maxContent) || maxContent < 8 || maxContent > 0xffff) {
    throw new ConfigError('maxContent must be an integer from 8 to 65535');
  }
}

/**
 * One record with the given content (≤ 65535 bytes) and explicit padding (default: to 8).
 * Callers that need arbitrary padding (tests, fake responders) pass `paddingLength`.
 */
export function encodeRecord(
  type: number,
  requestId: number,
  content: Buffer = EMPTY,
  paddingLength: number = paddingFor(content.length),
): Buffer {
  checkRequestId(requestId);
  if (!Number.isInteger(type) || type < 0 || type > 255) throw new ConfigError('record type must be an integer from 0 to 255');
  if (content.length > 0xffff) throw new ConfigError('record content must be at most 65535 bytes');
  if (!Number.isInteger(paddingLength) || paddingLength < 0 || paddingLength > 255) {
    throw new ConfigError('paddingLength must be an integer from 0 to 255');
  }
  const buf = Buffer.alloc(FCGI_HEADER_LEN + content.length + paddingLength);
  writeHeader(buf, 0, type, requestId, content.length, paddingLength);
  content.copy(buf, FCGI_HEADER_LEN);
  return buf;
}

const EMPTY = Buffer.alloc(0);

/** FCGI_BEGIN_REQUEST (§5.1): role and flags, 16 bytes. */
export function encodeBeginRequest(requestId: number, role: Role = Role.Responder, keepConn = false): Buffer {
  checkRequestId(requestId);
  const buf = Buffer.alloc(16);
  writeBeginRequest(buf, 0, requestId, role, keepConn);
  return buf;
}

function writeBeginRequest(buf: Buffer, o: number, requestId: number, role: number, keepConn: boolean): number {
  writeHeader(buf, o, RecordType.BeginRequest, requestId, 8, 0);
  buf[o + 8] = role >>> 8;
  buf[o + 9] = role & 0xff;
  buf[o + 10] = keepConn ? Flags.KeepConn : 0;
  buf.fill(0, o + 11, o + 16);
  return o + 16;
}

/** FCGI_ABORT_REQUEST (§5.4): a header with no content. */
export function encodeAbortRequest(requestId: number): Buffer {
  return encodeRecord(RecordType.AbortRequest, requestId);
}

/** FCGI_END_REQUEST (§5.5): appStatus (32-bit) and protocolStatus. Used by responders and tests. */
export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(appStatus >>> 0, 0);
  body[4] = protocolStatus;
  return encodeRecord(RecordType.EndRequest, requestId, body);
}

/** FCGI_UNKNOWN_TYPE (§4.2): tells the peer which management type we did not understand. */
export function encodeUnknownType(unknownType: number): Buffer {
  const body = Buffer.alloc(8);
  body[0] = unknownType;
  return encodeRecord(RecordType.UnknownType, FCGI_NULL_REQUEST_ID, body);
}

/**
 * A params stream: PARAMS records split at pair boundaries (php-fpm parses each record on its
 * own, so a pair must never straddle two records) plus the empty record that ends the stream.
 * Throws ParamsTooLargeError when one pair alone exceeds `maxContent`.
 */
export function encodeParamsStream(requestId: number, params: ParamInput, maxContent = MAX_RECORD_CONTENT): Buffer {
  checkRequestId(requestId);
  return encodeRequestParts({ requestId, params, maxContent });
}

/** FCGI_GET_VALUES (§4.1): names with empty values, request id 0. */
export function encodeGetValues(names: readonly string[]): Buffer {
  return encodeRequestParts({ requestId: FCGI_NULL_REQUEST_ID, params: names.map((n) => [n, ''] as const), type: RecordType.GetValues, terminate: false });
}

/** FCGI_GET_VALUES_RESULT (§4.1), for responders and tests. */
export function encodeGetValuesResult(values: ParamInput): Buffer {
  return encodeRequestParts({ requestId: FCGI_NULL_REQUEST_ID, params: values, type: RecordType.GetValuesResult, terminate: false });
}

/**
 * Everything a request sends before its body, in one buffer: BEGIN_REQUEST, the PARAMS
 * stream, and, when `endStdin` is set (no body), the empty STDIN record. One allocation, one
 * write: the hot path for small requests.
 */
export function encodeRequestHead(
  requestId: number,
  role: Role,
  keepConn: boolean,
  params: ParamInput,
  endStdin: boolean,
): Buffer {
  checkRequestId(requestId);
  return encodeAsciiHead(requestId, role, keepConn, params, endStdin) ?? encodeRequestParts({ requestId, begin: { role, keepConn }, params, endStdin });
}

/** A §3.4 length as latin1 characters (one char per byte). */
function lengthChars(n: number): string {
  if (n < 128) return String.fromCharCode(n);
  return String.fromCharCode(0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** How many of a 4-byte length's bytes are ≥ 0x80 (they take 2 bytes in UTF-8). */
function highBytes(n: number): number {
  // The first byte always has its top bit set; the others only when their value is ≥ 0x80.
  return 1 + ((n >>> 16) & 0x80 ? 1 : 0) + ((n >>> 8) & 0x80 ? 1 : 0) + (n & 0x80 ? 1 : 0);
}

/**
 * Fast path for the common request: every name and value an ASCII string and all of them in
 * one PARAMS record. The pairs are laid out as one latin1 string (one char per byte) and copied
 * with a single write, instead of two size computations and two writes per pair. Whether every
 * name and value is ASCII is checked once for the whole string: its UTF-8 length equals its
 * length plus the length bytes ≥ 0x80 exactly when no name or value has a char above 0x7f (one
 * native call instead of a regex per string, which cost more than the rest of the encoding).
 * Returns null when the request does not qualify; the general encoder then produces the same
 * bytes.
 */
function encodeAsciiHead(requestId: number, role: number, keepConn: boolean, params: ParamInput, endStdin: boolean): Buffer | null {
  let body = '';
  let high = 0;
  for (const [name, value] of toPairs(params)) {
    if (typeof name !== 'string' || typeof value !== 'string') return null;
    const nl = name.length;
    const vl = value.length;
    if (nl >= 128) high += highBytes(nl);
    if (vl >= 128) high += highBytes(vl);
    body += lengthChars(nl) + lengthChars(vl) + name + value;
    if (body.length > MAX_RECORD_CONTENT) return null;
  }
  const len = body.length;
  if (Buffer.byteLength(body, 'utf8') !== len + high) return null;
  const pad = paddingFor(len);
  const total = 16 + (len > 0 ? FCGI_HEADER_LEN + len + pad : 0) + FCGI_HEADER_LEN + (endStdin ? FCGI_HEADER_LEN : 0);
  const buf = Buffer.allocUnsafe(total);
  let o = writeBeginRequest(buf, 0, requestId, role, keepConn);
  if (len > 0) {
    o = writeHeader(buf, o, RecordType.Params, requestId, len, pad);
    o += buf.write(body, o, len, 'latin1');
    buf.fill(0, o, o + pad);
    o += pad;
  }
  o = writeHeader(buf, o, RecordType.Params, requestId, 0, 0);
  if (endStdin) writeHeader(buf, o, RecordType.Stdin, requestId, 0, 0);
  return buf;
}

/** What `encodeRequestParts` writes. */
interface RequestParts {
  readonly requestId: number;
  /** BEGIN_REQUEST first (a request head), or nothing (a bare params stream or management record). */
  readonly begin?: { readonly role: number; readonly keepConn: boolean };
  readonly params: ParamInput;
  /** The empty STDIN record after the params (a request without a body). */
  readonly endStdin?: boolean;
  readonly maxContent?: number;
  /** PARAMS (default), or GET_VALUES / GET_VALUES_RESULT. */
  readonly type?: number;
  /** End with the stream's empty record (default true; management records have none). */
  readonly terminate?: boolean;
}

function encodeRequestParts(parts: RequestParts): Buffer {
  const { requestId, begin, params, endStdin = false, maxContent = MAX_RECORD_CONTENT, type = RecordType.Params, terminate = true } = parts;
  checkMaxContent(maxContent);
  const m = measureParams(params, maxContent);
  // Pass 1: plan record boundaries. `cuts[k]` is the index of the first pair of record k+1.
  const recordLens: number[] = [];
  const cuts: number[] = [];
  let current = 0;
  for (let i = 0; i < m.names.length; i++) {
    const size = pairSize(m.nameLens[i]!, m.valueLens[i]!);
    if (current + size > maxContent) {
      recordLens.push(current);
      cuts.push(i);
      current = 0;
    }
    current += size;
  }
  // A management record (GET_VALUES) is sent even when empty; a stream's empty record is its end.
  if (current > 0 || (!terminate && recordLens.length === 0)) recordLens.push(current);
  let total = (begin ? 16 : 0) + (terminate ? FCGI_HEADER_LEN : 0) + (endStdin ? FCGI_HEADER_LEN : 0);
  for (const len of recordLens) total += recordSize(len);
  // Pass 2: write.
  const buf = Buffer.allocUnsafe(total);
  let o = 0;
  if (begin) o = writeBeginRequest(buf, o, requestId, begin.role, begin.keepConn);
  let pair = 0;
  for (let r = 0; r < recordLens.length; r++) {
    const len = recordLens[r]!;
    const pad = paddingFor(len);
    o = writeHeader(buf, o, type, requestId, len, pad);
    const stop = r < cuts.length ? cuts[r]! : m.names.length;
    o = writePairs(buf, o, m, pair, stop);
    pair = stop;
    buf.fill(0, o, o + pad);
    o += pad;
  }
  if (terminate) o = writeHeader(buf, o, type, requestId, 0, 0);
  if (endStdin) o = writeHeader(buf, o, RecordType.Stdin, requestId, 0, 0);
  return buf;
}

/**
 * Frame stream bytes (STDIN, STDOUT, STDERR, DATA) as records, copied into one buffer.
 * Does not end the stream: `data` of length 0 gives an empty buffer, never an empty record.
 */
export function encodeStreamChunk(type: number, requestId: number, data: Buffer, maxContent = MAX_RECORD_CONTENT): Buffer {
  checkMaxContent(maxContent);
  if (data.length === 0) return EMPTY;
  const full = Math.floor(data.length / maxContent);
  const rest = data.length - full * maxContent;
  const total = full * recordSize(maxContent) + (rest > 0 ? recordSize(rest) : 0);
  const buf = Buffer.allocUnsafe(total);
  let o = 0;
  for (let start = 0; start < data.length; start += maxContent) {
    const len = Math.min(maxContent, data.length - start);
    const pad = paddingFor(len);
    o = writeHeader(buf, o, type, requestId, len, pad);
    data.copy(buf, o, start, start + len);
    o += len;
    buf.fill(0, o, o + pad);
    o += pad;
  }
  return buf;
}

const PADDING = Buffer.alloc(8);

/**
 * Frame stream bytes without copying them: header buffers, views into `data`, shared padding.
 * For large chunks, where copying costs more than a few extra iovecs in one corked write.
 */
export function frameStreamChunk(type: number, requestId: number, data: Buffer, maxContent = MAX_RECORD_CONTENT): Buffer[] {
  checkMaxContent(maxContent);
  const parts: Buffer[] = [];
  for (let start = 0; start < data.length; start += maxContent) {
    const len = Math.min(maxContent, data.length - start);
    const pad = paddingFor(len);
    const header = Buffer.allocUnsafe(FCGI_HEADER_LEN);
    writeHeader(header, 0, type, requestId, len, pad);
    parts.push(header, data.subarray(start, start + len));
    if (pad > 0) parts.push(PADDING.subarray(0, pad));
  }
  return parts;
}

/** The empty record that ends a stream (§3.3: "stream records"). */
export function encodeStreamEnd(type: number, requestId: number): Buffer {
  const buf = Buffer.allocUnsafe(FCGI_HEADER_LEN);
  writeHeader(buf, 0, type, requestId, 0, 0);
  return buf;
}
