/**
 * Incremental record decoder: bytes in, complete records out (FastCGI §3.3).
 *
 *        ┌──────────── header (8 bytes) ◀──────────────┐
 *   push │                  │ validate                  │
 *   ───▶ │                  ▼                           │
 *        │   content (contentLength bytes) ─▶ padding ──┘  emit record after content
 *        └─ any state ─▶ failed (ProtocolError, sticky)
 *
 * Feed it chunks of any size, down to one byte at a time; partial state is kept between
 * calls. Record content is passed as a view into the pushed chunk when the record lies in one
 * chunk, otherwise as a buffer assembled across chunks; callers copy what they keep past the
 * next `push`. Malformed input raises `ProtocolError` (with the byte offset); nothing else is
 * ever thrown, and a failed decoder stays failed.
 */
import { ProtocolError } from '../errors.js';
import { FCGI_HEADER_LEN, FCGI_MAXTYPE, FCGI_NULL_REQUEST_ID, FCGI_VERSION_1, RECORD_TYPE_NAMES, RecordType } from './constants.js';

/** One decoded record. `content` is only valid until the next `push`. */
export interface FcgiRecord {
  readonly type: RecordType;
  readonly requestId: number;
  readonly content: Buffer;
  /** Padding bytes that followed the content (informational). */
  readonly paddingLength: number;
}

/** Called once per complete record, in order. */
export type RecordCallback = (record: FcgiRecord) => void;

/** Decoder options. */
export interface RecordDecoderOptions {
  /**
   * When set, every application record must carry this request id; management records
   * (GET_VALUES_RESULT, UNKNOWN_TYPE) must carry 0. Unset: any id is accepted.
   */
  readonly requestId?: number;
  /**
   * Accept record types above FCGI_MAXTYPE instead of failing (a responder must answer them
   * with UNKNOWN_TYPE, §4.2). Default false: a client never expects them.
   */
  readonly allowUnknownTypes?: boolean;
  /**
   * Where content spanning chunks is assembled (default `Buffer.allocUnsafe`). The buffer is
   * handed out with the record and never touched again by the decoder.
   */
  readonly alloc?: (length: number) => Buffer;
}

/** Content lengths the spec fixes for some types. */
const FIXED_LENGTH: Readonly<Record<number, number>> = {
  [RecordType.BeginRequest]: 8,
  [RecordType.EndRequest]: 8,
  [RecordType.UnknownType]: 8,
  [RecordType.AbortRequest]: 0,
};

const STATE_HEADER = 0;
const STATE_CONTENT = 1;
const STATE_PADDING = 2;
const STATE_FAILED = 3;

/** See the module comment. */
export class RecordDecoder {
  readonly #expectId: number | undefined;
  readonly #allowUnknown: boolean;
  readonly #alloc: (length: number) => Buffer;
  #state = STATE_HEADER;
  /** Header bytes gathered so far when a header spans chunks. */
  readonly #header = Buffer.alloc(FCGI_HEADER_LEN);
  #headerFill = 0;
  #type = 0;
  #requestId = 0;
  #contentLength = 0;
  #paddingLength = 0;
  /** Buffer for content that spans chunks; null while content is read from one chunk. */
  #content: Buffer | null = null;
  #contentFill = 0;
  #paddingLeft = 0;
  /** Bytes consumed since construction: the offset reported in errors. */
  #offset = 0;
  /** Offset of the current record's first header byte. */
  #recordStart = 0;
  #error: ProtocolError | null = null;

  constructor(options: RecordDecoderOptions = {}) {
    this.#expectId = options.requestId;
    this.#allowUnknown = options.allowUnknownTypes ?? false;
    this.#alloc = options.alloc ?? ((n) => Buffer.allocUnsafe(n));
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** True between records: no partial header, content or padding pending. */
  get atBoundary(): boolean {
    return this.#state === STATE_HEADER && this.#headerFill === 0;
  }

  /** The error that failed this decoder, if any. */
  get error(): ProtocolError | null {
    return this.#error;
  }

  /**
   * Decode `chunk`, calling `onRecord` for each complete record. Throws ProtocolError on
   * malformed input (after delivering the records before it). An exception thrown by
   * `onRecord` propagates unchanged and leaves the decoder consistent at the next record.
   */
  push(chunk: Buffer, onRecord: RecordCallback): void {
    if (this.#error) throw this.#error;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.#state) {
        case STATE_HEADER: {
          if (this.#headerFill === 0 && n - i >= FCGI_HEADER_LEN) {
            // Fast path: the whole header is in this chunk.
            this.#recordStart = this.#offset;
            this.#readHeader(chunk, i);
            i += FCGI_HEADER_LEN;
            this.#offset += FCGI_HEADER_LEN;
          } else {
            if (this.#headerFill === 0) this.#recordStart = this.#offset;
            const take = Math.min(FCGI_HEADER_LEN - this.#headerFill, n - i);
            chunk.copy(this.#header, this.#headerFill, i, i + take);
            this.#headerFill += take;
            i += take;
            this.#offset += take;
            if (this.#headerFill < FCGI_HEADER_LEN) return;
            this.#headerFill = 0;
            this.#readHeader(this.#header, 0);
          }
          if (this.#contentLength === 0) {
            this.#emit(EMPTY, onRecord);
          } else {
            this.#state = STATE_CONTENT;
          }
          break;
        }
        case STATE_CONTENT: {
          const want = this.#contentLength - this.#contentFill;
          if (this.#content === null && n - i >= want) {
            // Fast path: the whole content is in this chunk; hand out a view.
            const view = chunk.subarray(i, i + want);
            i += want;
            this.#offset += want;
            this.#emit(view, onRecord);
            break;
          }
          if (this.#content === null) this.#content = this.#alloc(this.#contentLength);
          const take = Math.min(want, n - i);
          chunk.copy(this.#content, this.#contentFill, i, i + take);
          this.#contentFill += take;
          i += take;
          this.#offset += take;
          if (this.#contentFill === this.#contentLength) {
            const content = this.#content;
            this.#content = null;
            this.#contentFill = 0;
            this.#emit(content, onRecord);
          }
          break;
        }
        case STATE_PADDING: {
          const take = Math.min(this.#paddingLeft, n - i);
          this.#paddingLeft -= take;
          i += take;
          this.#offset += take;
          if (this.#paddingLeft === 0) this.#state = STATE_HEADER;
          break;
        }
        default:
          throw this.#error!;
      }
    }
  }

  /** Parse and validate a header at `buf[o..o+8)`. */
  #readHeader(buf: Buffer, o: number): void {
    const version = buf[o]!;
    const type = buf[o + 1]!;
    const requestId = (buf[o + 2]! << 8) | buf[o + 3]!;
    const contentLength = (buf[o + 4]! << 8) | buf[o + 5]!;
    const paddingLength = buf[o + 6]!;
    if (version !== FCGI_VERSION_1) this.#fail(`unsupported version ${version} (expected 1)`);
    if (type === 0 || (type > FCGI_MAXTYPE && !this.#allowUnknown)) this.#fail(`unknown record type ${type}`);
    const fixed = FIXED_LENGTH[type];
    if (fixed !== undefined && contentLength !== fixed) {
      this.#fail(`${typeName(type)} content must be ${fixed} bytes, got ${contentLength}`);
    }
    if (this.#expectId !== undefined) {
      const management = type === RecordType.GetValues || type === RecordType.GetValuesResult || type === RecordType.UnknownType || type > FCGI_MAXTYPE;
      const want = management ? FCGI_NULL_REQUEST_ID : this.#expectId;
      if (requestId !== want) this.#fail(`${typeName(type)} record for request id ${requestId}, expected ${want}`);
    }
    this.#type = type;
    this.#requestId = requestId;
    this.#contentLength = contentLength;
    this.#paddingLength = paddingLength;
  }

  #emit(content: Buffer, onRecord: RecordCallback): void {
    const record: FcgiRecord = {
      type: this.#type as RecordType,
      requestId: this.#requestId,
      content,
      paddingLength: this.#paddingLength,
    };
    if (this.#paddingLength > 0) {
      this.#paddingLeft = this.#paddingLength;
      this.#state = STATE_PADDING;
    } else {
      this.#state = STATE_HEADER;
    }
    onRecord(record);
  }

  #fail(reason: string): never {
    this.#state = STATE_FAILED;
    this.#error = new ProtocolError(reason, this.#recordStart);
    throw this.#error;
  }
}

const EMPTY = Buffer.alloc(0);

function typeName(type: number): string {
  return RECORD_TYPE_NAMES[type] ?? `type ${type}`;
}

/** END_REQUEST body (§5.5). */
export interface EndRequest {
  readonly appStatus: number;
  readonly protocolStatus: number;
}

/** Parse the 8-byte END_REQUEST content (the decoder has already checked its length). */
export function parseEndRequest(content: Buffer): EndRequest {
  return { appStatus: content.readUInt32BE(0), protocolStatus: content[4]! };
}

/** BEGIN_REQUEST body (§5.1), for responders and tests. */
export interface BeginRequest {
  readonly role: number;
  readonly keepConn: boolean;
}

/** Parse the 8-byte BEGIN_REQUEST content. */
export function parseBeginRequest(content: Buffer): BeginRequest {
  return { role: content.readUInt16BE(0), keepConn: (content[2]! & 1) === 1 };
}
