/**
 * Name-value pairs (FastCGI §3.4): each length is one byte when < 128, else four bytes
 * big-endian with the top bit set. Names and values are arbitrary bytes; strings are UTF-8.
 */
import { ParamsTooLargeError, ProtocolError } from '../errors.js';
import { MAX_RECORD_CONTENT } from './constants.js';

/** A param name or value: a string (encoded as UTF-8) or raw bytes. */
export type ParamBytes = string | Buffer;
/** One name-value pair. */
export type ParamPair = readonly [name: ParamBytes, value: ParamBytes];
/** What the encoders accept: any iterable of pairs, or a plain object. */
export type ParamInput = Iterable<ParamPair> | Readonly<Record<string, ParamBytes>>;

/** Largest length the 31-bit form can carry (§3.4). */
export const MAX_PARAM_LENGTH = 0x7fffffff;

/** Bytes needed to encode a length: 1 below 128, else 4. */
export function lengthSize(n: number): 1 | 4 {
  return n < 128 ? 1 : 4;
}

/** Byte length of a name or value as it will go on the wire. */
export function byteLength(v: ParamBytes): number {
  return typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length;
}

/** Encoded size of one pair given the byte lengths of its name and value. */
export function pairSize(nameLen: number, valueLen: number): number {
  return lengthSize(nameLen) + lengthSize(valueLen) + nameLen + valueLen;
}

/** Iterate pairs from an array, iterable, Map or plain object. */
export function toPairs(input: ParamInput): Iterable<ParamPair> {
  if (Symbol.iterator in input) return input as Iterable<ParamPair>;
  return Object.entries(input as Record<string, ParamBytes>);
}

/** Write a §3.4 length at `offset`; returns the new offset. */
export function writeLength(buf: Buffer, offset: number, n: number): number {
  if (n < 128) {
    buf[offset] = n;
    return offset + 1;
  }
  buf.writeUInt32BE((n | 0x80000000) >>> 0, offset);
  return offset + 4;
}

/** Write name or value bytes at `offset`; returns the new offset. */
export function writeBytes(buf: Buffer, offset: number, v: ParamBytes, len: number): number {
  if (typeof v === 'string') buf.write(v, offset, len, 'utf8');
  else v.copy(buf, offset);
  return offset + len;
}

/**
 * Measured pairs: byte lengths computed once and reused by the encoders (two passes, one
 * allocation, as nginx does). Throws `ParamsTooLargeError` for a pair that cannot fit one
 * PARAMS record, since php-fpm parses each record on its own.
 */
export interface MeasuredParams {
  readonly names: ParamBytes[];
  readonly values: ParamBytes[];
  readonly nameLens: number[];
  readonly valueLens: number[];
  /** Sum of encoded pair sizes. */
  readonly total: number;
}

/** Measure pairs and check each fits one record of at most `limit` content bytes. */
export function measureParams(input: ParamInput, limit: number = MAX_RECORD_CONTENT): MeasuredParams {
  const names: ParamBytes[] = [];
  const values: ParamBytes[] = [];
  const nameLens: number[] = [];
  const valueLens: number[] = [];
  let total = 0;
  for (const [name, value] of toPairs(input)) {
    const nl = byteLength(name);
    const vl = byteLength(value);
    const size = pairSize(nl, vl);
    if (size > limit) {
      throw new ParamsTooLargeError(typeof name === 'string' ? name : name.toString('latin1'), size, limit);
    }
    names.push(name);
    values.push(value);
    nameLens.push(nl);
    valueLens.push(vl);
    total += size;
  }
  return { names, values, nameLens, valueLens, total };
}

/** Encode pairs back to back into one buffer (no record framing, no size limit per pair). */
export function encodePairs(input: ParamInput): Buffer {
  const m = measureParams(input, MAX_PARAM_LENGTH);
  const buf = Buffer.allocUnsafe(m.total);
  writePairs(buf, 0, m, 0, m.names.length);
  return buf;
}

/** Write measured pairs `from` up to (not including) `to` at `offset` (§3.4); the new offset. */
export function writePairs(buf: Buffer, offset: number, m: MeasuredParams, from: number, to: number): number {
  let o = offset;
  for (let i = from; i < to; i++) {
    const nl = m.nameLens[i]!;
    const vl = m.valueLens[i]!;
    o = writeLength(buf, o, nl);
    o = writeLength(buf, o, vl);
    o = writeBytes(buf, o, m.names[i]!, nl);
    o = writeBytes(buf, o, m.values[i]!, vl);
  }
  return o;
}

/**
 * Decode pairs from the content of one PARAMS / GET_VALUES / GET_VALUES_RESULT record (or
 * the concatenation of a stream's contents). Returned buffers are views into `content`.
 * `baseOffset` is added to offsets in errors so they point into the whole stream.
 */
export function decodePairs(content: Buffer, baseOffset = 0): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  let o = 0;
  const end = content.length;
  const readLen = (): number => {
    if (o >= end) throw new ProtocolError('truncated name-value length', baseOffset + o);
    const b = content[o]!;
    if (b < 128) {
      o += 1;
      return b;
    }
    if (o + 4 > end) throw new ProtocolError('truncated 4-byte name-value length', baseOffset + o);
    const n = content.readUInt32BE(o) & 0x7fffffff;
    o += 4;
    return n;
  };
  while (o < end) {
    const start = o;
    const nl = readLen();
    const vl = readLen();
    if (nl + vl > end - o) {
      throw new ProtocolError(`name-value pair needs ${nl + vl} bytes, ${end - o} left`, baseOffset + start);
    }
    const name = content.subarray(o, o + nl);
    o += nl;
    const value = content.subarray(o, o + vl);
    o += vl;
    out.push([name, value]);
  }
  return out;
}
