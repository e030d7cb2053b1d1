/**
 * Incremental CGI response head parser (RFC 3875 §6; nginx `ngx_http_fastcgi_process_header`
 * as the behavioural reference).
 *
 *   push(chunk) ──▶ lines ──▶ header line? ── validate, record ──┐
 *        ▲          (LF or CRLF)                                │
 *        └────────────── no blank line yet ◀────────────────────┘
 *                         blank line ──▶ { head, body = rest of this chunk }   (done)
 *   any state ──▶ failed (CgiHeadInvalidError | CgiHeadTooLargeError, sticky)
 *
 * STDOUT of a FastCGI responder starts with a CGI head: header lines ended by an empty line,
 * then the body. php-fpm ends lines with CRLF, other CGI programs may use a bare LF; both are
 * accepted, and the terminator may be split across any chunk boundary (PHP cuts heads larger
 * than its 8 KiB output buffer into several STDOUT records).
 *
 * Lines are parsed as soon as they are complete, so only the current partial line is ever
 * held, and the size limit is enforced on the fly: once the head so far exceeds
 * `maxHeadSize` (or reaches it without the blank line) the parser fails instead of buffering.
 * In the common case, the whole head in the first chunk, nothing is copied: lines are found
 * with `Buffer.indexOf`, names and values are decoded straight from the chunk and the body is
 * a `subarray` view of it.
 *
 * Bytes are read as latin1 (one char per byte), so no byte is lost or replaced; names must be
 * HTTP tokens and values may not hold control characters, so nothing that reaches the HTTP
 * response can split it (CR, LF, NUL) or be refused by `res.setHeader`.
 */
import { CgiHeadInvalidError, CgiHeadTooLargeError, ConfigError } from '../errors.js';

/** The parsed CGI response head. */
export interface CgiHead {
  /**
   * HTTP status: from `Status:`; else 302 when there is a `Location` (as nginx does; a
   * local-redirect candidate also carries 302, used when its body turns out non-empty); else 200.
   */
  status: number;
  /** Reason phrase from `Status:`; '' when absent (the HTTP layer fills the standard one). */
  reason: string;
  /** Every header line in order, names as sent, `Status` removed, values trimmed of OWS. */
  headers: Array<[string, string]>;
  /** Value of `Location`, or null when there is none. */
  location: string | null;
  /**
   * RFC 3875 §6.2.2 local-redirect candidate: no `Status`, `Location` is an absolute path
   * (`/x`, not the network-path reference `//x`) and no other header is present. The caller
   * still checks that the body is empty before re-dispatching.
   */
  localRedirect: boolean;
}

/** Options of {@link CgiHeadParser}. */
export interface CgiHeadParserOptions {
  /**
   * Largest accepted head in bytes, counting every header line with its line end and the
   * terminating empty line. Default {@link DEFAULT_MAX_HEAD_SIZE}.
   */
  maxHeadSize?: number | undefined;
}

/** Default `maxHeadSize`: 64 KiB. */
export const DEFAULT_MAX_HEAD_SIZE = 65536;

/** What `push` returns once the head is complete. */
export interface CgiHeadResult {
  head: CgiHead;
  /** Bytes after the blank line in the chunk that completed the head (may be empty). */
  body: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** RFC 9110 §5.6.2 tchar: 1 for bytes allowed in a header name. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let b = 0x30; b <= 0x39; b++) TCHAR[b] = 1;
for (let b = 0x41; b <= 0x5a; b++) TCHAR[b] = 1;
for (let b = 0x61; b <= 0x7a; b++) TCHAR[b] = 1;

/**
 * 1 for bytes a header value may not contain: controls other than HTAB, and DEL (RFC 9110
 * field-vchar is VCHAR / obs-text; Node's `setHeader` refuses the same set).
 */
const BAD_VALUE = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) if (b !== HTAB) BAD_VALUE[b] = 1;
BAD_VALUE[0x7f] = 1;

/** RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'. */
const ABSOLUTE_URL = /^[A-Za-z][A-Za-z0-9+.-]*:/;

const STATE_HEAD = 0;
const STATE_DONE = 1;
const STATE_FAILED = 2;

/**
 * Feeds STDOUT chunks until the CGI head is complete. See the module comment.
 *
 * ```ts
 * const parser = new CgiHeadParser({ maxHeadSize });
 * const r = parser.push(chunk);      // null until the blank line, then { head, body }
 * parser.end();                      // at end of STDOUT: throws if the head never completed
 * ```
 */
export class CgiHeadParser {
  readonly #maxHeadSize: number;
  #state = STATE_HEAD;
  #error: Error | null = null;
  /** Head bytes consumed so far, including the current partial line. */
  #headBytes = 0;
  /** Pieces of a line that spans chunks (concatenated once, when its LF arrives). */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  #lineNo = 0;
  readonly #headers: Array<[string, string]> = [];
  #status = 0;
  #reason = '';
  #location: string | null = null;

  constructor(options: CgiHeadParserOptions = {}) {
    const max = options.maxHeadSize ?? DEFAULT_MAX_HEAD_SIZE;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new ConfigError(`maxHeadSize must be an integer ≥ 1 (bytes), got ${String(max)}`);
    }
    this.#maxHeadSize = max;
  }

  /** True once the head has been returned by `push`. */
  get done(): boolean {
    return this.#state === STATE_DONE;
  }

  /**
   * Feed the next STDOUT chunk. Returns null until the blank line that ends the head, then
   * the head and the bytes after it in this chunk (a view, not a copy). Throws
   * `CgiHeadInvalidError` or `CgiHeadTooLargeError`; once failed, every call rethrows the same
   * error. Calling it again after the head was returned is a programming error.
   */
  push(chunk: Buffer): CgiHeadResult | null {
    if (this.#state !== STATE_HEAD) {
      if (this.#state === STATE_FAILED) throw this.#error as Error;
      throw new Error('CgiHeadParser.push() called after the head was complete');
    }
    try {
      return this.#consume(chunk);
    } catch (err) {
      this.#state = STATE_FAILED;
      this.#error = err as Error;
      throw err;
    }
  }

  /**
   * Call at the end of STDOUT. Throws `CgiHeadInvalidError` when the head never completed
   * (including an empty STDOUT); rethrows the earlier error when the parser failed.
   */
  end(): void {
    if (this.#state === STATE_DONE) return;
    if (this.#state === STATE_FAILED) throw this.#error as Error;
    const err = new CgiHeadInvalidError(
      this.#headBytes === 0 ? 'empty response (no head)' : 'response ended before the blank line ending the head',
    );
    this.#state = STATE_FAILED;
    this.#error = err;
    throw err;
  }

  #consume(chunk: Buffer): CgiHeadResult | null {
    const max = this.#maxHeadSize;
    let pos = 0;
    if (this.#partialBytes > 0) {
      // Finish the line started in an earlier chunk.
      const nl = chunk.indexOf(LF);
      if (nl === -1) return this.#keepPartial(chunk, 0);
      this.#headBytes += nl + 1;
      if (this.#headBytes > max) throw new CgiHeadTooLargeError(max);
      const pieces = this.#partial;
      pieces.push(chunk.subarray(0, nl));
      const line = Buffer.concat(pieces, this.#partialBytes + nl);
      this.#partial = [];
      this.#partialBytes = 0;
      pos = nl + 1;
      if (this.#line(line, 0, line.length)) return this.#finish(chunk, pos);
    }
    for (;;) {
      const nl = chunk.indexOf(LF, pos);
      if (nl === -1) return this.#keepPartial(chunk, pos);
      this.#headBytes += nl + 1 - pos;
      if (this.#headBytes > max) throw new CgiHeadTooLargeError(max);
      const start = pos;
      pos = nl + 1;
      if (this.#line(chunk, start, nl)) return this.#finish(chunk, pos);
    }
  }

  /** Keep `chunk[from..]` (no LF in it) as part of the current line. */
  #keepPartial(chunk: Buffer, from: number): null {
    const n = chunk.length - from;
    this.#headBytes += n;
    // At the limit without the blank line: the head needs at least one more byte.
    if (this.#headBytes >= this.#maxHeadSize) throw new CgiHeadTooLargeError(this.#maxHeadSize);
    if (n > 0) {
      // Copied: the caller may reuse the chunk's memory once push() returns.
      this.#partial.push(Buffer.from(chunk.subarray(from)));
      this.#partialBytes += n;
    }
    return null;
  }

  /**
   * Parse one line `buf[start..end)` (LF excluded). Returns true for the empty line that ends
   * the head.
   */
  #line(buf: Buffer, start: number, end: number): boolean {
    this.#lineNo++;
    if (end > start && buf[end - 1] === CR) end--;
    if (end === start) return true;

    const first = buf[start] as number;
    if (first === SP || first === HTAB) this.#invalid('line starts with whitespace (obs-fold)');
    let colon = start;
    while (colon < end) {
      const b = buf[colon] as number;
      if (b === COLON) break;
      if (TCHAR[b] !== 1) {
        if (b === CR) this.#invalid('bare CR in header line');
        const c = buf.indexOf(COLON, colon);
        this.#invalid(c === -1 || c >= end ? 'header line without a colon' : 'invalid character in header name');
      }
      colon++;
    }
    if (colon === end) this.#invalid('header line without a colon');
    if (colon === start) this.#invalid('empty header name');

    let vs = colon + 1;
    let ve = end;
    while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    for (let i = vs; i < ve; i++) {
      if (BAD_VALUE[buf[i] as number] === 1) {
        this.#invalid(`control character in value of ${buf.toString('latin1', start, colon)}`);
      }
    }

    const name = buf.toString('latin1', start, colon);
    const value = buf.toString('latin1', vs, ve);
    const len = colon - start;
    if (len === 6 && name.toLowerCase() === 'status') {
      this.#setStatus(value);
      return false;
    }
    if (len === 8 && name.toLowerCase() === 'location') {
      // A singleton field (RFC 9110 §10.2.2); nginx also refuses a duplicate.
      if (this.#location !== null) this.#invalid('more than one Location header');
      this.#location = value;
    }
    this.#headers.push([name, value]);
    return false;
  }

  /** `Status: NNN [reason]` — exactly three digits, 100..599, then whitespace or the end. */
  #setStatus(value: string): void {
    if (this.#status !== 0) this.#invalid('more than one Status header');
    const c0 = value.charCodeAt(0) - 0x30;
    const c1 = value.charCodeAt(1) - 0x30;
    const c2 = value.charCodeAt(2) - 0x30;
    const sep = value.charCodeAt(3);
    if (
      !(c0 >= 1 && c0 <= 5) ||
      !(c1 >= 0 && c1 <= 9) ||
      !(c2 >= 0 && c2 <= 9) ||
      (value.length > 3 && sep !== SP && sep !== HTAB)
    ) {
      this.#invalid('Status must start with a 3-digit code 100..599');
    }
    this.#status = c0 * 100 + c1 * 10 + c2;
    // The value is already trimmed at the end; drop the separator run before the phrase.
    let i = 3;
    while (i < value.length && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB)) i++;
    this.#reason = i === value.length ? '' : value.slice(i);
  }

  #finish(chunk: Buffer, pos: number): CgiHeadResult {
    this.#state = STATE_DONE;
    const location = this.#location;
    const headers = this.#headers;
    let status = this.#status;
    let localRedirect = false;
    if (status === 0) {
      // Any Location without Status is a client redirect (nginx answers 302 for it too),
      // unless it is a local-redirect candidate, which the caller may re-dispatch instead.
      status = location !== null ? 302 : 200;
      if (location !== null && !ABSOLUTE_URL.test(location)) {
        localRedirect =
          headers.length === 1 && location.charCodeAt(0) === 0x2f && location.charCodeAt(1) !== 0x2f;
      }
    }
    const head: CgiHead = { status, reason: this.#reason, headers, location, localRedirect };
    return { head, body: pos === chunk.length ? EMPTY : chunk.subarray(pos) };
  }

  #invalid(reason: string): never {
    throw new CgiHeadInvalidError(`line ${this.#lineNo}: ${reason}`);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Parse a complete STDOUT buffer's head in one call: `{ head, body }` where `body` is a view
 * of the bytes after the blank line. Throws like {@link CgiHeadParser} (including when the
 * blank line is missing).
 */
export function parseCgiHead(stdout: Buffer, options: CgiHeadParserOptions = {}): CgiHeadResult {
  const parser = new CgiHeadParser(options);
  const result = parser.push(stdout);
  if (result === null) {
    parser.end();
    // end() always throws here; this keeps the return type honest.
    throw new CgiHeadInvalidError('response ended before the blank line ending the head');
  }
  return result;
}
