/**
 * HTTP-level fuzzing of the gateway over raw TCP, shared by test/integration/http-fuzz.test.ts
 * (a short run in CI) and scripts/fuzz-campaign.ts (long runs outside CI).
 *
 * A case is one to three client connections run at the same time. Each connection sends a list
 * of segments (valid requests, requests the gateway must refuse, parse errors, random or
 * mutated bytes) through a generated list of client steps (write some bytes, pause, read some,
 * half-close, destroy), then either reads until the gateway closes or just goes away:
 *
 *   fast-check ─▶ FuzzCase ─▶ runConnection × 1..3 ─▶ (checked) responses match the model
 *                                                 └─▶ invariants: no crash, pool idle, no temp
 *                                                     file, no server socket or fd left, still serves
 *
 * Outcomes are modelled only where HTTP/1.1 and the README fix them: a "checked" connection
 * has an expectation for every segment, ends with one that closes the connection, sends
 * nothing after a request in which it asked to close itself (RFC 9112 §9.6), and is read to
 * the end. Everything else is only held to the invariants, which apply after every case
 * whatever the bytes were.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import type { GatewayServerOptions } from '../../src/server.js';
import {
  GATEWAY_ROOT_FIXTURE,
  type GatewayFixture,
  listDir,
  openFilesUnder,
  parseRawResponses,
  type RawResponse,
  rawGet,
  startGateway,
  waitFor,
} from './gateway.js';
import { type PhpFpm, startPhpFpm } from './php-fpm.js';
import { patterned } from './records.js';

// ─── limits ──────────────────────────────────────────────────────────────────────────────────

/** Request bodies above this are refused with 413. */
export const MAX_BODY = 256 * 1024;
/** Request bodies above this go to a temp file. */
export const BODY_BUFFER = 4096;
/** Pool size; php-fpm gets as many workers so that no connection waits in its backlog. */
export const POOL_CONNECTIONS = 2;

/**
 * Small limits, so that every path (temp files for bodies, response spill, the upstream pause
 * at the spill cap, the head/body/send timeouts) is reached by cheap cases.
 */
export const FUZZ_GATEWAY_OPTIONS: Partial<GatewayServerOptions> = {
  pool: { connections: POOL_CONNECTIONS },
  bodyBufferSize: BODY_BUFFER,
  maxBodySize: MAX_BODY,
  responseBufferSize: 8192,
  maxResponseSpill: 128 * 1024,
  headersTimeout: 2000,
  clientBodyTimeout: 2000,
  sendTimeout: 2000,
  accessLog: false,
};

/**
 * How long a client that expects nothing in particular waits without receiving a byte before
 * it gives up (only for connections whose outcome is not modelled: it bounds the case, it does
 * not decide a result).
 */
const IDLE_PATIENCE_MS = 150;
/** Same, for a `read` step in the middle of a connection. */
const READ_PATIENCE_MS = 60;
/** A checked connection that has not been fully answered and closed by then is a hang. */
const CHECKED_DEADLINE_MS = 15_000;
/** A client pause long enough to cross the gateway's 2 s head, body and send timeouts. */
const LINGER_MIN_MS = 2100;
const LINGER_MAX_MS = 2600;

/**
 * A server-side socket must notice that its client left within this: at once when it reads,
 * at worst at the 2 s send timeout. The gateway's lingering close (5 s, src/http/linger.ts)
 * is meant to end at the client's close too, so this is below its deadline.
 */
const SOCKET_GRACE_MS = 3500;

/**
 * The gateway's request head limits (nginx's large_client_header_buffers 4 8k): heads clearly
 * below or above them have a known outcome.
 */
const MAX_REQUEST_LINE = 8192;
const MAX_HEADER_LINE = 8192;
const MAX_REQUEST_HEAD = 32 * 1024;
/** Near a limit, the Decor's extra headers decide: not modelled. */
const LIMIT_MARGIN = 1500;

// ─── fixture knowledge ───────────────────────────────────────────────────────────────────────

const fixture = (name: string): Buffer => readFileSync(join(GATEWAY_ROOT_FIXTURE, name));
const STATIC_FILES = ['/hello.txt', '/style.css', '/app.js', '/range.txt'] as const;
const STATIC_CONTENT: Record<string, Buffer> = Object.fromEntries(STATIC_FILES.map((p) => [p, fixture(p.slice(1))]));

/** big.php's output: byte i is (i mod 65536) mod 251. */
function bigBodyMismatch(body: Buffer, size: number): string | null {
  if (body.length !== size) return `expected ${size} bytes from big.php, got ${body.length}`;
  for (let i = 0; i < body.length; i++) {
    if (body[i] !== (i % 65536) % 251) return `big.php body differs at byte ${i}`;
  }
  return null;
}

/** Body bytes from (length, seed): a case stays small to print and replay, whatever the size. */
export const patternedBody = patterned;

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

// ─── the model ───────────────────────────────────────────────────────────────────────────────

/** What the body of an answer must be. */
export type BodyCheck =
  | { readonly kind: 'any' }
  | { readonly kind: 'bytes'; readonly bytes: Buffer }
  | { readonly kind: 'echo'; readonly md5: string; readonly len: number }
  | { readonly kind: 'big'; readonly size: number }
  | { readonly kind: 'front'; readonly requestUri: string };

/** What the gateway must answer to one segment, when the model knows. */
export interface Expectation {
  /** Status lines in order (an interim 100 Continue first, for Expect: 100-continue). */
  readonly statuses: readonly number[];
  /** The request is a HEAD: the final answer has no body whatever its headers say. */
  readonly head: boolean;
  /** Check of the final answer's body. */
  readonly body: BodyCheck;
  /** The gateway closes the connection after this answer: nothing later is answered. */
  readonly closes: boolean;
  /**
   * The gateway may close after this answer (HTTP/1.0 keep-alive: an answer without a length,
   * such as a HEAD of a script, cannot be framed on a kept connection, so Node closes it).
   */
  readonly mayClose: boolean;
  /**
   * The client itself asked to close (Connection: close, HTTP/1.0 without keep-alive). A client
   * that sends anything after such a request breaks RFC 9112 §9.6: the gateway closing then
   * resets the connection, and the kernel drops whatever of the answer was still unsent (nginx
   * does the same), so such connections are held to the invariants only.
   */
  readonly clientClose: boolean;
}

/** Bytes sent as one unit, with their expected answer (null: outcome not modelled). */
export interface Segment {
  readonly label: string;
  readonly bytes: Buffer;
  readonly expect: Expectation | null;
}

/** One client action. */
export type Step =
  | { readonly op: 'write'; readonly data: Buffer }
  | { readonly op: 'pause'; readonly ms: number }
  | { readonly op: 'read'; readonly bytes: number }
  | { readonly op: 'end' }
  | { readonly op: 'destroy' };

/** One client connection. */
export interface ConnPlan {
  readonly segments: readonly Segment[];
  readonly steps: readonly Step[];
  /** Does not read unless a step says so (lets the gateway's writes back up). */
  readonly lazy: boolean;
  /** ms after the case starts before this connection opens. */
  readonly startDelay: number;
  /** The model fixes the answers (see the module comment) and the client reads to the end: they are verified. */
  readonly checked: boolean;
}

export interface FuzzCase {
  readonly conns: readonly ConnPlan[];
}

const OK_TEXT = (s: string): BodyCheck => ({ kind: 'bytes', bytes: Buffer.from(s, 'latin1') });
const ANY: BodyCheck = { kind: 'any' };

// ─── request building ────────────────────────────────────────────────────────────────────────

/** How a well-formed request is dressed: header case, version, extra headers, Connection. */
export interface Decor {
  readonly version: '1.1' | '1.0';
  readonly connection: 'none' | 'close' | 'keep-alive';
  readonly hostName: string;
  readonly extra: ReadonlyArray<readonly [string, string]>;
}

const PLAIN: Decor = { version: '1.1', connection: 'none', hostName: 'Host', extra: [] };

/** The connection is closed after this request's answer (HTTP/1.0 without keep-alive too). */
const closesAfter = (d: Decor): boolean => d.connection === 'close' || (d.version === '1.0' && d.connection !== 'keep-alive');

/** A request the model knows: bytes built for a Decor, with the answer it must get. */
export interface RequestSpec {
  readonly label: string;
  readonly method: string;
  readonly target: string;
  /** Headers after Host and the extras (framing headers, Expect, Range...). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** The answer when the connection is kept (`closes`, `mayClose`, `clientClose` are then derived from the Decor). */
  readonly expect: Omit<Expectation, 'closes' | 'mayClose' | 'clientClose'> & { readonly closes?: boolean };
  /** Only valid as HTTP/1.1 (chunked bodies, Expect). */
  readonly needs11?: boolean;
}

/** Render a request with its decoration into a segment. */
export function renderRequest(spec: RequestSpec, decor: Decor): Segment {
  const d: Decor = spec.needs11 && decor.version === '1.0' ? { ...decor, version: '1.1' } : decor;
  const lines = [`${spec.method} ${spec.target} HTTP/${d.version}`];
  lines.push(`${d.hostName}: 127.0.0.1`);
  for (const [n, v] of d.extra) lines.push(`${n}: ${v}`);
  for (const [n, v] of spec.headers) lines.push(`${n}: ${v}`);
  if (d.connection !== 'none') lines.push(`Connection: ${d.connection}`);
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  const closes = spec.expect.closes === true || closesAfter(d);
  const version = d.version === '1.0' ? ' (HTTP/1.0)' : '';
  const conn = d.connection === 'none' ? '' : ` [Connection: ${d.connection}]`;
  return {
    label: `${spec.label}${version}${conn}`,
    bytes: Buffer.concat([head, spec.body]),
    expect: {
      statuses: spec.expect.statuses,
      head: spec.expect.head,
      body: spec.expect.body,
      closes,
      mayClose: d.version === '1.0' && d.connection === 'keep-alive',
      clientClose: closesAfter(d),
    },
  };
}

const get = (target: string, label: string, expect: RequestSpec['expect'], headers: RequestSpec['headers'] = []): RequestSpec => ({
  label,
  method: 'GET',
  target,
  headers,
  body: Buffer.alloc(0),
  expect,
});

/** Requests every HTTP/1.1 gateway must answer in a known way (what the fixtures do). */
export const requests = {
  hello: (): RequestSpec => get('/hello.php', 'GET /hello.php', { statuses: [200], head: false, body: OK_TEXT('hello from php') }),
  headHello: (): RequestSpec => ({ ...get('/hello.php', 'HEAD /hello.php', { statuses: [200], head: true, body: ANY }), method: 'HEAD' }),
  status: (): RequestSpec => get('/status.php', 'GET /status.php', { statuses: [299], head: false, body: OK_TEXT('custom status') }),
  sleep: (ms: number): RequestSpec => get(`/sleep.php?ms=${ms}`, `GET /sleep.php?ms=${ms}`, { statuses: [200], head: false, body: OK_TEXT('slept') }),
  big: (size: number, head = false): RequestSpec => ({
    ...get(`/big.php?size=${size}`, `${head ? 'HEAD' : 'GET'} /big.php?size=${size}`, { statuses: [200], head, body: head ? ANY : { kind: 'big', size } }),
    method: head ? 'HEAD' : 'GET',
  }),
  static: (path: (typeof STATIC_FILES)[number], head = false): RequestSpec => ({
    ...get(path, `${head ? 'HEAD' : 'GET'} ${path}`, { statuses: [200], head, body: head ? ANY : { kind: 'bytes', bytes: STATIC_CONTENT[path]! } }),
    method: head ? 'HEAD' : 'GET',
  }),
  range: (path: (typeof STATIC_FILES)[number], a: number, b: number): RequestSpec => {
    const content = STATIC_CONTENT[path]!;
    const from = a % content.length;
    const upto = from + (b % (content.length - from));
    return get(path, `GET ${path} Range ${from}-${upto}`, { statuses: [206], head: false, body: { kind: 'bytes', bytes: content.subarray(from, upto + 1) } }, [
      ['Range', `bytes=${from}-${upto}`],
    ]);
  },
  /** A path matching nothing: the front controller answers with REQUEST_URI as sent. */
  front: (target: string): RequestSpec => get(target, `GET ${target} (front controller)`, { statuses: [200], head: false, body: { kind: 'front', requestUri: target } }),
  /** Absolute-form target, as a proxy sends it. */
  absolute: (): RequestSpec => get('http://127.0.0.1/hello.php', 'GET http://127.0.0.1/hello.php', { statuses: [200], head: false, body: OK_TEXT('hello from php') }),
  /** A body to echo.php; over MAX_BODY it is a 413 and the connection closes. */
  echo: (o: EchoOptions): RequestSpec => {
    const body = patternedBody(o.len, o.seed);
    const tooBig = o.len > MAX_BODY;
    const headers: Array<readonly [string, string]> = [['Content-Type', 'application/octet-stream']];
    let wire: Buffer;
    if (o.framing === 'cl') {
      headers.push([o.headerCase ? 'content-length' : 'Content-Length', String(o.len)]);
      wire = body;
    } else {
      headers.push([o.headerCase ? 'transfer-encoding' : 'Transfer-Encoding', 'chunked']);
      wire = chunked(body, o.chunkSizes, o.chunkStyle);
    }
    if (o.expectContinue) headers.push(['Expect', '100-continue']);
    // 100 Continue is sent unless a declared length is already too large (refused up front).
    const interim = o.expectContinue && !(tooBig && o.framing === 'cl') ? [100] : [];
    const label = `${o.method} /echo.php ${o.framing === 'cl' ? 'Content-Length' : `chunked(${o.chunkSizes.join(',') || 'one'}; ${o.chunkStyle})`} body ${o.len} bytes patternedBody(${o.len}, ${o.seed})${o.expectContinue ? ' Expect: 100-continue' : ''}`;
    return {
      label,
      method: o.method,
      target: '/echo.php',
      headers,
      body: wire,
      needs11: o.framing === 'chunked' || o.expectContinue,
      expect: tooBig
        ? { statuses: [...interim, 413], head: false, body: ANY, closes: true }
        : { statuses: [...interim, 200], head: false, body: { kind: 'echo', md5: md5(body), len: o.len } },
    };
  },
  /** Valid HTTP the gateway refuses (README "Security"); 400s close the connection. */
  refused: (target: string, status: 301 | 400 | 404): RequestSpec =>
    get(target, `GET ${JSON.stringify(target)} (refused)`, { statuses: [status], head: false, body: ANY, ...(status === 400 ? { closes: true } : {}) }),
  /** A request head of about `size` bytes: many headers, one long header, or a long query. */
  sized: (shape: 'count' | 'value' | 'query', size: number): RequestSpec | null => {
    let target = '/hello.php';
    let headers: Array<readonly [string, string]> = [];
    if (shape === 'count') headers = Array.from({ length: Math.max(1, Math.floor(size / 12)) }, (_, i) => [`X-F${i}`, 'v'.repeat(4)] as const);
    else if (shape === 'value') headers = [['X-Fz-Big', 'b'.repeat(size)]];
    else target = `/hello.php?q=${'q'.repeat(size)}`;
    // As the gateway counts (src/server.ts headLimitStatus): the request line, then each header
    // line with its ': ' and CRLF, then the sum.
    const line = 'GET '.length + target.length + ' HTTP/1.1'.length + 1;
    const lines = headers.map(([k, v]) => k.length + v.length + 4);
    const total = line + 2 + 'Host: 127.0.0.1'.length + 2 + lines.reduce((a, b) => a + b, 0);
    const near = (n: number, limit: number): boolean => n > limit - LIMIT_MARGIN && n < limit + LIMIT_MARGIN;
    const longestLine = Math.max(0, ...lines);
    if (near(line, MAX_REQUEST_LINE) || near(longestLine, MAX_HEADER_LINE) || near(total, MAX_REQUEST_HEAD)) return null;
    // A URI past the whole head limit is refused by node:http itself; whether it reads as a URI
    // (414) depends on how the client's writes were cut.
    if (line >= MAX_REQUEST_HEAD - LIMIT_MARGIN) return null;
    const status = line > MAX_REQUEST_LINE ? 414 : longestLine > MAX_HEADER_LINE || total > MAX_REQUEST_HEAD ? 431 : 200;
    const headLen = total;
    return {
      label: `GET ${target.length > 40 ? target.slice(0, 30) + '…' : target} with a ${headLen}-byte head (${shape})`,
      method: 'GET',
      target,
      headers,
      body: Buffer.alloc(0),
      expect: status !== 200 ? { statuses: [status], head: false, body: ANY, closes: true } : { statuses: [200], head: false, body: OK_TEXT('hello from php') },
    };
  },
};

export interface EchoOptions {
  readonly method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly len: number;
  readonly seed: number;
  readonly framing: 'cl' | 'chunked';
  /** Sizes of the chunks, used in turn; empty: one chunk. */
  readonly chunkSizes: readonly number[];
  readonly chunkStyle: 'plain' | 'upper-hex' | 'leading-zeros' | 'extensions' | 'trailer';
  readonly expectContinue: boolean;
  readonly headerCase: boolean;
}

/** Chunked framing of `body`, chunk sizes taken from `sizes` in turn. */
function chunked(body: Buffer, sizes: readonly number[], style: EchoOptions['chunkStyle']): Buffer {
  const parts: Buffer[] = [];
  // Bound the chunk count: a few hundred thousand 1-byte chunks only make a case slow.
  const floor = Math.ceil(body.length / 256);
  let pos = 0;
  let i = 0;
  const sizeLine = (n: number): string => {
    const hex = style === 'upper-hex' ? n.toString(16).toUpperCase() : n.toString(16);
    if (style === 'leading-zeros') return '000' + hex;
    if (style === 'extensions') return `${hex};fz=${i};q="a b"`;
    return hex;
  };
  while (pos < body.length) {
    const want = sizes.length === 0 ? body.length : Math.max(floor, sizes[i % sizes.length]!);
    const n = Math.min(want, body.length - pos);
    parts.push(Buffer.from(sizeLine(n) + '\r\n'), body.subarray(pos, pos + n), Buffer.from('\r\n'));
    pos += n;
    i++;
  }
  parts.push(Buffer.from(style === 'trailer' ? '0\r\nX-Fz-Trailer: t\r\n\r\n' : '0\r\n\r\n'));
  return Buffer.concat(parts);
}

/**
 * Bytes node:http must refuse at once (no more input needed), so the answer is known: 400,
 * or 431 for an oversized head, then the connection closes.
 */
export const garbage = {
  badFirstByte: (first: string, rest: string): Segment => parseError(`bad first byte ${JSON.stringify(first)}`, first + rest + '\r\n\r\n'),
  lowercaseMethod: (): Segment => parseError('lower-case method', 'get /hello.php HTTP/1.1\r\nHost: x\r\n\r\n'),
  unknownMethod: (m: string): Segment => parseError(`unknown method ${m}`, `${m} /hello.php HTTP/1.1\r\nHost: x\r\n\r\n`),
  badVersion: (v: string): Segment => parseError(`version ${v}`, `GET /hello.php ${v}\r\nHost: x\r\n\r\n`),
  clAndTe: (): Segment =>
    parseError(
      'Content-Length and Transfer-Encoding (smuggling attempt)',
      'POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n',
    ),
  duplicateCl: (a: number, b: number): Segment =>
    parseError(`Content-Length ${a} and ${b}`, `POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: ${a}\r\nContent-Length: ${b}\r\n\r\n${'d'.repeat(Math.max(a, b))}`),
  badCl: (v: string): Segment => parseError(`Content-Length ${JSON.stringify(v)}`, `POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: ${v}\r\n\r\nabc`),
  badTe: (v: string): Segment => parseError(`Transfer-Encoding ${JSON.stringify(v)}`, `POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${v}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`),
  badChunkSize: (size: string): Segment =>
    parseError(`chunk size ${JSON.stringify(size)}`, `POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\nabc\r\n0\r\n\r\n`),
  chunkWithoutCrlf: (): Segment => parseError('chunk data not followed by CRLF', 'POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n'),
  controlInTarget: (c: '\0' | '\r' | '\n' | '\x7f', path: string): Segment =>
    parseError(`raw ${JSON.stringify(c)} in the request target`, `GET /${path}${c}x.php HTTP/1.1\r\nHost: x\r\n\r\n`),
  controlInHeader: (c: '\0' | '\r'): Segment => parseError(`raw ${JSON.stringify(c)} in a header value`, `GET /hello.php HTTP/1.1\r\nHost: x\r\nX-A: a${c}b\r\n\r\n`),
  badHeaderName: (name: string): Segment => parseError(`header name ${JSON.stringify(name)}`, `GET /hello.php HTTP/1.1\r\nHost: x\r\n${name}: v\r\n\r\n`),
  obsFold: (): Segment => parseError('obsolete line folding', 'GET /hello.php HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n'),
  bareLf: (): Segment => parseError('bare LF line ends', 'GET /hello.php HTTP/1.1\nHost: x\n\n'),
  missingHost: (): Segment => parseError('HTTP/1.1 without Host', 'GET /hello.php HTTP/1.1\r\nX-A: b\r\n\r\n'),
  oversizedHead: (size: number): Segment => ({
    label: `a ${size}-byte header value (over maxHeaderLine)`,
    bytes: Buffer.from(`GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: ${'o'.repeat(size)}\r\n\r\n`, 'latin1'),
    expect: { statuses: [431], head: false, body: ANY, closes: true, mayClose: false, clientClose: false },
  }),
};

function parseError(label: string, bytes: string): Segment {
  return { label: `parse error: ${label}`, bytes: Buffer.from(bytes, 'latin1'), expect: { statuses: [400], head: false, body: ANY, closes: true, mayClose: false, clientClose: false } };
}

/** Segment without a model. */
const unmodelled = (label: string, bytes: Buffer | string): Segment => ({
  label: `unmodelled: ${label}`,
  bytes: typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes,
  expect: null,
});

// ─── arbitraries ─────────────────────────────────────────────────────────────────────────────

const tokenChars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
const tokenArb = (min: number, max: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...tokenChars.split('')), minLength: min, maxLength: max });
/** Header values node accepts: visible ASCII, inner spaces and tabs, obs-text. */
const headerValueArb = fc.string({
  unit: fc.oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) },
    { weight: 2, arbitrary: fc.constantFrom(' ', '\t') },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
  ),
  maxLength: 60,
}).map((v) => v.trim());

/**
 * Extra headers that change nothing in the modelled answers (no framing, no conditionals, no
 * Range); underscores and Proxy are dropped by the gateway, which must not disturb the answer.
 */
const extraHeaderArb: fc.Arbitrary<readonly [string, string]> = fc.tuple(
  fc.oneof(
    fc.constantFrom('X-Fz', 'Accept', 'User-Agent', 'Cookie', 'X-Forwarded-For', 'Referer', 'Accept-Encoding', 'X_Under_Score', 'Proxy', 'X-Request-Id', 'Authorization'),
    tokenArb(1, 20).map((t) => `X-${t}`),
  ),
  headerValueArb,
);

export const decorArb: fc.Arbitrary<Decor> = fc.record({
  version: fc.oneof({ weight: 9, arbitrary: fc.constant('1.1' as const) }, { weight: 1, arbitrary: fc.constant('1.0' as const) }),
  connection: fc.oneof(
    { weight: 8, arbitrary: fc.constant('none' as const) },
    { weight: 1, arbitrary: fc.constant('keep-alive' as const) },
    { weight: 1, arbitrary: fc.constant('close' as const) },
  ),
  hostName: fc.constantFrom('Host', 'host', 'HOST'),
  extra: fc.array(extraHeaderArb, { maxLength: 4 }),
});

const echoArb: fc.Arbitrary<RequestSpec> = fc
  .record({
    method: fc.constantFrom('POST' as const, 'POST' as const, 'PUT' as const, 'PATCH' as const, 'DELETE' as const),
    len: fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0, max: 300 }) },
      { weight: 3, arbitrary: fc.integer({ min: BODY_BUFFER - 200, max: BODY_BUFFER * 3 }) },
      { weight: 2, arbitrary: fc.integer({ min: BODY_BUFFER * 3, max: MAX_BODY }) },
      { weight: 1, arbitrary: fc.integer({ min: MAX_BODY + 1, max: MAX_BODY + 40_000 }) },
    ),
    seed: fc.integer(),
    framing: fc.constantFrom('cl' as const, 'chunked' as const),
    chunkSizes: fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 4 }),
    chunkStyle: fc.constantFrom('plain' as const, 'upper-hex' as const, 'leading-zeros' as const, 'extensions' as const, 'trailer' as const),
    expectContinue: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    headerCase: fc.boolean(),
  })
  .map((o) => requests.echo(o));

const frontTargetArb: fc.Arbitrary<string> = fc
  .tuple(tokenArb(1, 12), fc.option(tokenArb(0, 10), { nil: undefined }), fc.boolean())
  .map(([seg, q, pathInfo]) => (pathInfo ? `/index.php/${seg}` : `/fz/${seg}`) + (q === undefined ? '' : `?${q}=${seg}`));

/** A request with a known answer that leaves the connection open (unless its Decor closes it). */
export const knownRequestArb: fc.Arbitrary<RequestSpec> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(requests.hello()) },
  { weight: 1, arbitrary: fc.constant(requests.headHello()) },
  { weight: 1, arbitrary: fc.constant(requests.status()) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 40 }).map(requests.sleep) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.oneof(
          { weight: 3, arbitrary: fc.integer({ min: 0, max: 2000 }) },
          { weight: 2, arbitrary: fc.integer({ min: 2000, max: 140_000 }) },
          { weight: 1, arbitrary: fc.integer({ min: 140_000, max: 700_000 }) },
        ),
        fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      )
      .map(([n, head]) => requests.big(n, head)),
  },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...STATIC_FILES), fc.boolean()).map(([p, head]) => requests.static(p, head)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...STATIC_FILES), fc.nat(40), fc.nat(40)).map(([p, a, b]) => requests.range(p, a, b)) },
  { weight: 2, arbitrary: frontTargetArb.map(requests.front) },
  { weight: 1, arbitrary: fc.constant(requests.absolute()) },
  { weight: 5, arbitrary: echoArb },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.constantFrom(
        '/%2e%2e/outside-secret.txt',
        '/sub/%2e%2e/%2e%2e/outside-secret.txt',
        '/..%2f..%2fetc/passwd',
        '/%2E%2E/%2e%2E/root/outside-secret.txt',
        '/a%00b.php',
        '/hello.php%0a',
        '/x%0d%0aSet-Cookie:%20a',
        '/%zz',
        '/%c3%28',
        'hello.php',
      ).map((t) => requests.refused(t, 400)),
      fc.constantFrom('/.env', '/.git/config', '/.htaccess', '/UPPER.PHP', '/uploads/evil.jpg/x.php', '/nope.php', '/sub/nope.php').map((t) => requests.refused(t, 404)),
      fc.constantFrom('/sub', '/html').map((t) => requests.refused(t, 301)),
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('count' as const, 'value' as const, 'query' as const), fc.integer({ min: 100, max: 45_000 }))
      .map(([shape, size]) => requests.sized(shape, size))
      .filter((s): s is RequestSpec => s !== null),
  },
);

/** A known request, dressed. */
const knownSegmentArb: fc.Arbitrary<Segment> = fc.tuple(knownRequestArb, decorArb).map(([spec, decor]) => renderRequest(spec, decor));

/** Bytes node:http refuses at once with a known status (then closes). */
export const garbageArb: fc.Arbitrary<Segment> = fc.oneof(
  fc
    .tuple(fc.constantFrom('\x01', '\x00', '\x7f', '{', '(', '@', ' ', '\xff', '\x16'), fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }))
    .map(([a, b]) => garbage.badFirstByte(a, b)),
  fc.constant(garbage.lowercaseMethod()),
  fc.constantFrom('FOO', 'BREW', 'GETT', 'PRI').map(garbage.unknownMethod),
  fc.constantFrom('HTTP/9.9', 'HTTP/1.2', 'HTTP/3.0', 'HTX/1.1', 'HTTP/1.1x', 'HTTP/0.0').map(garbage.badVersion),
  fc.constant(garbage.clAndTe()),
  fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 9 })).map(([a, b]) => garbage.duplicateCl(a, b)),
  fc.constantFrom('-1', '0x10', '+3', 'abc', '3, 3', '', '99999999999999999999999').map(garbage.badCl),
  fc.constantFrom('chunked, gzip', 'identity', 'chunked\x00').map(garbage.badTe),
  fc.constantFrom('zz', '-3', '3 ', 'ffffffffffffffffff', '0x3', '3\x00').map(garbage.badChunkSize),
  fc.constant(garbage.chunkWithoutCrlf()),
  fc.tuple(fc.constantFrom('\0' as const, '\r' as const, '\n' as const, '\x7f' as const), tokenArb(0, 8)).map(([c, p]) => garbage.controlInTarget(c, p)),
  fc.constantFrom('\0' as const, '\r' as const).map(garbage.controlInHeader),
  fc.constantFrom('X A', 'X-A ', '(x)', 'X"', '', 'X@Y').map(garbage.badHeaderName),
  fc.constant(garbage.obsFold()),
  fc.constant(garbage.bareLf()),
  fc.constant(garbage.missingHost()),
  fc.integer({ min: 17_500, max: 40_000 }).map(garbage.oversizedHead),
);

/** HTTP-ish fragments for token soup. */
const FRAGMENTS = [
  'GET', 'POST', 'HEAD', 'PUT', 'OPTIONS', 'CONNECT', 'PRI', 'get', ' ', '  ', '\t', '/', '/hello.php', '/echo.php', '/hello.txt',
  '/index.php/a', '/big.php?size=70000', '/sleep.php?ms=30', '?', '#', '%', '%2e', '%2e%2e/', '%00', '%0a', '%0d', '%2f', '..', '*',
  'http://x', ' HTTP/1.1', ' HTTP/1.0', ' HTTP/2.0', 'HTTP/1.1', '\r\n', '\r', '\n', '\r\n\r\n', '\x00', ':', ': ', 'Host: x',
  'Content-Length: ', 'Content-Length: 5', 'Content-Length: 5000', 'Transfer-Encoding: chunked', 'Transfer-Encoding: ', 'Connection: close',
  'Connection: keep-alive', 'Connection: upgrade', 'Upgrade: h2c', 'Upgrade: websocket', 'Expect: 100-continue', 'Expect: 200-ok', '0', '1', '5', '10',
  '-1', 'ffffffff', ';ext', 'chunked', 'X-A', '\xff', '\x80', 'abcde',
];

/** A request line with any CL/TE combination and a body that may not match it. */
const framingSoupArb: fc.Arbitrary<Segment> = fc
  .record({
    method: fc.constantFrom('POST', 'PUT', 'GET', 'HEAD', 'DELETE', 'OPTIONS'),
    path: fc.constantFrom('/echo.php', '/hello.php', '/hello.txt', '/index.php', '/nope', '/sub/', '/.env', '/%2e%2e/x'),
    cls: fc.array(fc.constantFrom('0', '3', '5', '10', '4097', '300000', '-1', '+3', ' 3', '3 ', '0x3', '3,3', '', 'abc', '00003', '1e3'), { maxLength: 2 }),
    tes: fc.array(fc.constantFrom('chunked', 'Chunked', 'CHUNKED', 'gzip, chunked', 'chunked, gzip', 'identity', '', 'chunked;q=1', 'x'), { maxLength: 2 }),
    teName: fc.constantFrom('Transfer-Encoding', 'transfer-encoding', 'Transfer_Encoding', 'Transfer-Encodings', 'Transfer-Encoding '),
    expect: fc.option(fc.constantFrom('100-continue', '200-ok', ''), { nil: undefined }),
    body: fc.oneof(
      fc.string({ maxLength: 20 }),
      fc
        .array(
          fc.tuple(fc.constantFrom('0', '3', '03', 'zz', '-1', '3 ', '1;a=b', 'A', 'ffffffffffffffffff', '3\n', ''), fc.string({ maxLength: 12 })),
          { maxLength: 4 },
        )
        .map((cs) => cs.map(([s, d]) => `${s}\r\n${d}\r\n`).join('') + (cs.length % 2 === 0 ? '0\r\n\r\n' : '')),
    ),
  })
  .map((o) => {
    const lines = [`${o.method} ${o.path} HTTP/1.1`, 'Host: x'];
    for (const v of o.cls) lines.push(`Content-Length: ${v}`);
    for (const v of o.tes) lines.push(`${o.teName}: ${v}`);
    if (o.expect !== undefined) lines.push(`Expect: ${o.expect}`);
    return unmodelled(`framing soup (${lines.slice(2).join(' | ')})`, lines.join('\r\n') + '\r\n\r\n' + o.body);
  });

interface Mutation {
  readonly at: number;
  readonly op: 'flip' | 'insert' | 'delete' | 'duplicate';
  readonly byte: number;
  readonly len: number;
  readonly fragment: string;
}

function mutate(base: Buffer, ms: readonly Mutation[]): Buffer {
  let b = base;
  for (const m of ms) {
    const at = Math.floor((m.at / 1_000_000) * b.length);
    if (m.op === 'flip') {
      if (b.length === 0) continue;
      b = Buffer.from(b);
      b[Math.min(at, b.length - 1)] = m.byte;
    } else if (m.op === 'insert') {
      b = Buffer.concat([b.subarray(0, at), Buffer.from(m.fragment, 'latin1'), b.subarray(at)]);
    } else if (m.op === 'delete') {
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    } else {
      b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]);
    }
  }
  return b;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  at: fc.integer({ min: 0, max: 1_000_000 }),
  op: fc.constantFrom('flip' as const, 'insert' as const, 'delete' as const, 'duplicate' as const),
  byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x3a, 0x25, 0x7f)),
  len: fc.integer({ min: 1, max: 40 }),
  fragment: fc.constantFrom(...FRAGMENTS),
});

/** Segments whose outcome is not modelled: only the invariants judge them. */
const unmodelledArb: fc.Arbitrary<Segment> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 96 }).map((a) => unmodelled('random bytes', Buffer.from(a))) },
  { weight: 3, arbitrary: fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 24 }).map((fs) => unmodelled('token soup', fs.join(''))) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(knownSegmentArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
      .map(([seg, ms]) => unmodelled(`mutated ${seg.label}`, mutate(seg.bytes, ms))),
  },
  { weight: 3, arbitrary: framingSoupArb },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      unmodelled('Upgrade request', 'GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
      unmodelled('CONNECT', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n'),
      unmodelled('HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      unmodelled('HTTP/0.9 request', 'GET /hello.php\r\n\r\n'),
      unmodelled('Expect: 200-ok', 'POST /echo.php HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc'),
      unmodelled('body shorter than Content-Length', 'POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc'),
      unmodelled('chunked body without its last chunk', 'POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n'),
      unmodelled('static file with an unsent body', 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc'),
      unmodelled('head without its blank line', 'GET /hello.php HTTP/1.1\r\nHost: x\r\n'),
    ),
  },
);

// ─── client plans ────────────────────────────────────────────────────────────────────────────

type Gap = { readonly kind: 'none' } | { readonly kind: 'pause'; readonly ms: number } | { readonly kind: 'read'; readonly bytes: number };

const gapArb: fc.Arbitrary<Gap> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }).map((ms) => ({ kind: 'pause' as const, ms })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 70_000 }).map((bytes) => ({ kind: 'read' as const, bytes })) },
);

/** How a connection ends. Positions are fractions of the payload, in millionths. */
type Ending =
  | { readonly kind: 'drain' }
  | { readonly kind: 'destroy' | 'end'; readonly at: number; readonly readFirst: number | null }
  | { readonly kind: 'silent-end' }
  | { readonly kind: 'linger'; readonly at: number; readonly ms: number };

const positionArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 1_000_000 }) },
  { weight: 1, arbitrary: fc.constant(1_000_000) },
);

const abortEndingArb: fc.Arbitrary<Ending> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constantFrom('destroy' as const, 'end' as const),
      at: positionArb,
      readFirst: fc.option(fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 2000, max: 400_000 })), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'silent-end' as const }) },
);

const lingerEndingArb: fc.Arbitrary<Ending> = fc.record({
  kind: fc.constant('linger' as const),
  at: positionArb,
  ms: fc.integer({ min: LINGER_MIN_MS, max: LINGER_MAX_MS }),
});

interface PlanShape {
  readonly cuts: readonly number[];
  readonly gaps: readonly Gap[];
  readonly lazy: boolean;
  readonly startDelay: number;
}

const shapeArb: fc.Arbitrary<PlanShape> = fc.record({
  cuts: fc.array(fc.integer({ min: 0, max: 1_000_000 }), { maxLength: 5 }),
  gaps: fc.array(gapArb, { maxLength: 6 }),
  lazy: fc.boolean(),
  startDelay: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 15 }) }),
});

/** Turn segments + shape + ending into client steps. */
export function buildPlan(segments: readonly Segment[], shape: PlanShape, ending: Ending): ConnPlan {
  const payload = Buffer.concat(segments.map((s) => s.bytes));
  const L = payload.length;
  const scale = (x: number): number => Math.round((x / 1_000_000) * L);
  const stopAt = ending.kind === 'destroy' || ending.kind === 'end' ? scale(ending.at) : L;
  const lingerAt = ending.kind === 'linger' ? scale(ending.at) : -1;
  const cutSet = new Set(shape.cuts.map(scale).filter((p) => p > 0 && p < stopAt));
  if (lingerAt > 0 && lingerAt < stopAt) cutSet.add(lingerAt);
  const cuts = [...cutSet].sort((a, b) => a - b);
  const steps: Step[] = [];
  let pos = 0;
  cuts.push(stopAt);
  cuts.forEach((cut, i) => {
    if (cut > pos) steps.push({ op: 'write', data: payload.subarray(pos, cut) });
    pos = cut;
    if (cut === lingerAt && ending.kind === 'linger') steps.push({ op: 'pause', ms: ending.ms });
    if (i === cuts.length - 1) return;
    const gap = shape.gaps[i];
    if (gap?.kind === 'pause') steps.push({ op: 'pause', ms: gap.ms });
    else if (gap?.kind === 'read') steps.push({ op: 'read', bytes: gap.bytes });
  });
  if (lingerAt === 0 && ending.kind === 'linger') steps.unshift({ op: 'pause', ms: ending.ms });
  if (ending.kind === 'destroy' || ending.kind === 'end') {
    if (ending.readFirst !== null) steps.push({ op: 'read', bytes: ending.readFirst });
    steps.push({ op: ending.kind });
  } else if (ending.kind === 'silent-end') {
    steps.push({ op: 'end' });
  }
  const checked = ending.kind === 'drain' && modelled(segments);
  return { segments, steps, lazy: shape.lazy || ending.kind === 'silent-end', startDelay: shape.startDelay, checked };
}

/**
 * The model fixes the answers: every segment modelled, one of them closes (so a client reading
 * to the end gets an end), and the client sends nothing after asking to close itself.
 */
function modelled(segments: readonly Segment[]): boolean {
  const firstClientClose = segments.findIndex((s) => s.expect?.clientClose === true);
  return (
    segments.every((s) => s.expect !== null) &&
    segments.some((s) => s.expect?.closes === true) &&
    (firstClientClose < 0 || firstClientClose === segments.length - 1)
  );
}

/** The same dress, but not asking to close (HTTP/1.0 asks for keep-alive). */
const keepOpen = (d: Decor): Decor => (d.version === '1.0' ? { ...d, connection: 'keep-alive' } : d.connection === 'close' ? { ...d, connection: 'none' } : d);

/** Only the last request closes the connection: the client conforms and sees the end. */
function closeLast(specs: ReadonlyArray<readonly [RequestSpec, Decor]>): Segment[] {
  return specs.map(([spec, decor], i) => renderRequest(spec, i === specs.length - 1 ? { ...decor, connection: 'close' } : keepOpen(decor)));
}

/** A known request that does not ask to close (what a conforming client pipelines). */
const keptSegmentArb: fc.Arbitrary<Segment> = fc.tuple(knownRequestArb, decorArb).map(([spec, decor]) => renderRequest(spec, keepOpen(decor)));

const drain: Ending = { kind: 'drain' };

/** Valid pipelines read to the end: answers in order, bodies right (invariant 5). */
const validConnArb: fc.Arbitrary<ConnPlan> = fc
  .tuple(fc.array(fc.tuple(knownRequestArb, decorArb), { minLength: 1, maxLength: 4 }), shapeArb)
  .map(([specs, shape]) => buildPlan(closeLast(specs), shape, drain));

/** Valid requests, then bytes refused at once: the valid ones answered first, then 4xx, close. */
const validThenGarbageArb: fc.Arbitrary<ConnPlan> = fc
  .tuple(fc.array(keptSegmentArb, { maxLength: 3 }), garbageArb, shapeArb)
  .map(([valid, bad, shape]) => buildPlan([...valid, bad], shape, drain));

/** Valid requests, and a client that leaves at a random point (mid-head, mid-body, mid-response). */
const abortConnArb: fc.Arbitrary<ConnPlan> = fc
  .tuple(fc.array(knownSegmentArb, { minLength: 1, maxLength: 3 }), shapeArb, abortEndingArb)
  .map(([segs, shape, ending]) => buildPlan(segs, shape, ending));

/** Anything at all, any way. */
const hostileConnArb: fc.Arbitrary<ConnPlan> = fc
  .tuple(
    fc.array(
      fc.oneof({ weight: 2, arbitrary: knownSegmentArb }, { weight: 1, arbitrary: garbageArb }, { weight: 3, arbitrary: unmodelledArb }),
      { minLength: 1, maxLength: 4 },
    ),
    shapeArb,
    // Lingering cases cost over 2 s each: rare enough to keep a default run short.
    fc.oneof({ weight: 6, arbitrary: fc.constant(drain) }, { weight: 6, arbitrary: abortEndingArb }, { weight: 1, arbitrary: lingerEndingArb }),
  )
  .map(([segs, shape, ending]) => buildPlan(segs, shape, ending));

const connArb: fc.Arbitrary<ConnPlan> = fc.oneof(
  { weight: 4, arbitrary: validConnArb },
  { weight: 2, arbitrary: validThenGarbageArb },
  { weight: 3, arbitrary: abortConnArb },
  { weight: 4, arbitrary: hostileConnArb },
);

/**
 * A whole case: mostly one connection, sometimes two or three at once (queueing behind the
 * pool). Cross-shrinking tries "no extra connection" first, so a counterexample keeps only
 * the connections that matter.
 */
export const fuzzCaseArb: fc.Arbitrary<FuzzCase> = fc
  .tuple(
    connArb,
    fc.oneof({ withCrossShrink: true }, { weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(connArb, { minLength: 1, maxLength: 2 }) }),
  )
  .map(([first, more]) => withDescription({ conns: [first, ...more] }));

/** Give a case a readable form for fast-check's counterexample report. */
export function withDescription(c: FuzzCase): FuzzCase {
  Object.defineProperty(c, fc.toStringMethod, { value: () => describeCase(c), enumerable: false });
  return c;
}

/** Latin-1 JSON of bytes, long runs abbreviated (bodies are described by their label). */
function quote(b: Buffer): string {
  if (b.length <= 400) return JSON.stringify(b.toString('latin1'));
  return `${JSON.stringify(b.subarray(0, 200).toString('latin1'))} …(${b.length - 260} more bytes)… ${JSON.stringify(b.subarray(b.length - 60).toString('latin1'))}`;
}

export function describeCase(c: FuzzCase): string {
  const out: string[] = [`case with ${c.conns.length} connection(s):`];
  c.conns.forEach((p, i) => {
    out.push(`  conn ${i}: ${p.checked ? 'checked' : 'invariants only'}, ${p.lazy ? 'lazy' : 'eager'} reader, opens at +${p.startDelay} ms`);
    for (const s of p.segments) {
      const e = s.expect;
      out.push(`    segment ${s.label} → ${e === null ? 'not modelled' : `${e.statuses.join(', ')}${e.closes ? ', then close' : ''}`}`);
    }
    for (const st of p.steps) {
      if (st.op === 'write') out.push(`    write ${quote(st.data)}`);
      else if (st.op === 'pause') out.push(`    pause ${st.ms} ms`);
      else if (st.op === 'read') out.push(`    read ${st.bytes} bytes`);
      else out.push(`    ${st.op}`);
    }
    out.push(`    then ${p.steps.some((s) => s.op === 'destroy') ? 'gone' : 'read until the gateway closes'}`);
  });
  return out.join('\n');
}

// ─── the client ──────────────────────────────────────────────────────────────────────────────

export interface ConnResult {
  readonly received: Buffer;
  /** The gateway ended or reset the connection before the client destroyed it. */
  readonly serverClosed: boolean;
  /** A checked connection was not answered and closed within CHECKED_DEADLINE_MS. */
  readonly hung: boolean;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** waitFor, with the state at the deadline (not at the call) in the failure message. */
async function waitForState(cond: () => boolean, what: string, state: () => string, timeoutMs?: number): Promise<void> {
  try {
    await waitFor(cond, what, timeoutMs);
  } catch {
    assert.fail(`timed out waiting for ${what} (${state()})`);
  }
}

/** Run one connection's steps against `port`. Every wait is bounded; it always destroys the socket. */
export async function runConnection(port: number, plan: ConnPlan): Promise<ConnResult> {
  if (plan.startDelay > 0) await delay(plan.startDelay);
  const sock = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let total = 0;
  let serverClosed = false;
  let closed = false;
  let destroyedByUs = false;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...wakers]) w();
  };
  // EPIPE / ECONNRESET are normal here: the gateway hangs up on garbage.
  sock.on('error', () => {});
  sock.on('data', (c: Buffer) => {
    chunks.push(c);
    total += c.length;
    wake();
  });
  sock.on('connect', wake);
  sock.on('end', () => {
    serverClosed = true;
    wake();
  });
  sock.on('close', () => {
    closed = true;
    if (!destroyedByUs) serverClosed = true;
    wake();
  });
  if (plan.lazy) sock.pause();

  /** Resolve when `cond` holds, or after `ms` with no new byte (idle) or in all (deadline). */
  const until = (cond: () => boolean, ms: number, idle: boolean): Promise<boolean> =>
    new Promise((resolve) => {
      if (cond()) {
        resolve(true);
        return;
      }
      let last = total;
      const timer = setTimeout(() => done(false), ms);
      const waker = (): void => {
        if (cond()) done(true);
        else if (idle && total !== last) {
          last = total;
          timer.refresh();
        }
      };
      const done = (v: boolean): void => {
        clearTimeout(timer);
        wakers.delete(waker);
        resolve(v);
      };
      wakers.add(waker);
    });

  await until(() => sock.readyState === 'open' || closed, 5000, false);
  for (const step of plan.steps) {
    if (closed) break;
    switch (step.op) {
      case 'write':
        if (sock.writable) sock.write(step.data);
        break;
      case 'pause':
        await delay(step.ms);
        break;
      case 'read': {
        const target = total + step.bytes;
        sock.resume();
        await until(() => total >= target || serverClosed || closed, READ_PATIENCE_MS, true);
        if (plan.lazy) sock.pause();
        break;
      }
      case 'end':
        sock.end();
        break;
      case 'destroy':
        destroyedByUs = true;
        sock.destroy();
        break;
    }
  }
  let hung = false;
  if (!closed && !destroyedByUs) {
    sock.resume();
    if (plan.checked) hung = !(await until(() => serverClosed || closed, CHECKED_DEADLINE_MS, false));
    else await until(() => serverClosed || closed, IDLE_PATIENCE_MS, true);
  }
  if (!closed) {
    destroyedByUs = destroyedByUs || !serverClosed;
    sock.destroy();
    await until(() => closed, 5000, false);
  }
  return { received: Buffer.concat(chunks), serverClosed, hung };
}

// ─── verification of checked connections ─────────────────────────────────────────────────────

interface Expected {
  readonly status: number;
  readonly head: boolean;
  readonly body: BodyCheck;
  readonly label: string;
}

/**
 * The answer lists a checked connection may get: every segment's answers up to the first that
 * closes, or (when a segment only may close) up to that one. The full list comes first.
 */
export function expectedAnswers(plan: ConnPlan): Expected[][] {
  const full: Expected[] = [];
  const shorter: Expected[][] = [];
  for (const s of plan.segments) {
    const e = s.expect;
    assert.ok(e !== null, 'a checked connection has only modelled segments');
    e.statuses.forEach((status, i) => {
      const final = i === e.statuses.length - 1;
      full.push({ status, head: final && e.head, body: final ? e.body : ANY, label: s.label });
    });
    if (e.closes) break;
    if (e.mayClose) shorter.push([...full]);
  }
  // A pipelined request's 100 Continue waits behind the earlier answers. When its final head
  // is already queued by the time its turn comes (the client sent the body without waiting),
  // the 100 is omitted, as RFC 9110 §10.1.1 allows, and node:http then ends the connection
  // after that final answer (the client retries what it pipelined behind it).
  const all = [full, ...shorter];
  for (const c of [full, ...shorter]) {
    // Any pipelined request's 100, not only the first (found by the long campaign: a 413 for a
    // chunked body written before its turn came left its 100 out).
    c.forEach((x, k) => {
      if (x.status === 100 && k > 0 && c[k + 1] !== undefined) all.push([...c.slice(0, k), c[k + 1]!]);
    });
  }
  return all;
}

function bodyMismatch(check: BodyCheck, res: RawResponse): string | null {
  switch (check.kind) {
    case 'any':
      return null;
    case 'bytes':
      return res.body.equals(check.bytes) ? null : `body ${quote(res.body)}, expected ${quote(check.bytes)}`;
    case 'big':
      return bigBodyMismatch(res.body, check.size);
    case 'echo': {
      let got: { md5?: unknown; len?: unknown };
      try {
        got = JSON.parse(res.body.toString('utf8')) as { md5?: unknown; len?: unknown };
      } catch {
        return `echo.php answered ${quote(res.body)}`;
      }
      return got.md5 === check.md5 && got.len === check.len ? null : `echo.php saw ${got.len} bytes md5 ${String(got.md5)}, sent ${check.len} bytes md5 ${check.md5}`;
    }
    case 'front': {
      let got: { script?: unknown; server?: { REQUEST_URI?: unknown } };
      try {
        got = JSON.parse(res.body.toString('utf8')) as typeof got;
      } catch {
        return `front controller answered ${quote(res.body)}`;
      }
      if (got.script !== 'index.php') return `front controller: script ${String(got.script)}`;
      return got.server?.REQUEST_URI === check.requestUri ? null : `REQUEST_URI ${JSON.stringify(got.server?.REQUEST_URI)}, sent ${JSON.stringify(check.requestUri)}`;
    }
  }
}

/** How the answers on a connection differ from the model (a tag that groups cases of one bug). */
function classify(got: readonly number[], want: readonly number[]): string {
  const isPrefix = (a: readonly number[], b: readonly number[]): boolean => a.every((x, i) => b[i] === x);
  if (got.length > want.length && isPrefix(want, got)) return 'answer after the final one';
  if (got.length < want.length && isPrefix(got, want)) return 'answers missing';
  if (got.length < want.length) {
    // got is want with some earlier answers dropped?
    let k = 0;
    for (const x of want) if (got[k] === x) k++;
    if (k === got.length && got.at(-1) === want.at(-1)) return 'earlier answer lost';
  }
  return 'wrong status';
}

/** Invariant 5: a checked connection got exactly the modelled answers, in order, then the end. */
export function verifyChecked(plan: ConnPlan, result: ConnResult, index: number): void {
  const candidates = expectedAnswers(plan);
  // Parse along the candidate whose statuses are the ones received (HEAD answers have no body).
  const received = [...result.received.toString('latin1').matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
  const want = candidates.find((c) => c.length === received.length && c.every((w, i) => w.status === received[i])) ?? candidates[0]!;
  const where = (tag: string): string => `conn ${index} [${tag}]`;
  const statusLines = [...result.received.toString('latin1').matchAll(/HTTP\/1\.[01] (\d{3})[^\r\n]*/g)].map((m) => m[0]);
  const wanted = want.map((w) => w.status).join(', ');
  assert.ok(!result.hung, `${where('hang')}: not answered and closed within ${CHECKED_DEADLINE_MS} ms (got ${JSON.stringify(statusLines)}; expected ${wanted})`);
  let got: RawResponse[];
  try {
    got = parseRawResponses(result.received, want.map((w) => w.head));
  } catch (err) {
    assert.fail(`${where('unparseable answers')}: ${(err as Error).message}; status lines ${JSON.stringify(statusLines)}, expected ${wanted}`);
  }
  const statuses = got.map((r) => r.status);
  assert.deepEqual(
    statuses,
    want.map((w) => w.status),
    `${where(classify(statuses, want.map((w) => w.status)))}: answers ${got.map((r) => `${r.status} ${r.reason}`).join(' | ') || '(none)'} for ${want.map((w) => `[${w.label}]`).join(' ')}`,
  );
  got.forEach((r, i) => {
    const w = want[i]!;
    const bad = bodyMismatch(w.body, r);
    assert.equal(bad, null, `${where('wrong or truncated body')}: answer ${i} to [${w.label}]: ${bad}`);
  });
  assert.ok(result.serverClosed, `${where('not closed')}: the gateway did not close the connection after the last answer`);
}

// ─── the harness ─────────────────────────────────────────────────────────────────────────────

/** Records what would otherwise crash the process hosting the gateway (invariant 1). */
export class CrashRecorder {
  /** Since the last reset (so that a shrinking replay is judged on its own). */
  readonly recent: string[] = [];
  /** Over the whole run. */
  readonly all: string[] = [];
  readonly #onException = (err: unknown): void => this.#record(`uncaughtException: ${(err as Error)?.stack ?? String(err)}`);
  readonly #onRejection = (reason: unknown): void => this.#record(`unhandledRejection: ${(reason as Error)?.stack ?? String(reason)}`);
  #record(what: string): void {
    this.recent.push(what);
    this.all.push(what);
  }
  install(): void {
    process.on('uncaughtException', this.#onException);
    process.on('unhandledRejection', this.#onRejection);
  }
  uninstall(): void {
    process.removeListener('uncaughtException', this.#onException);
    process.removeListener('unhandledRejection', this.#onRejection);
  }
}

export const openFdCount = (): number => readdirSync('/proc/self/fd').length;

/** Counters for the run summary. */
export interface FuzzStats {
  cases: number;
  connections: number;
  checked: number;
  aborted: number;
  responses: number;
  resets: number;
  readonly statuses: Map<number, number>;
}

/**
 * One php-fpm and one gateway, the invariants after every case, and a fresh gateway after a
 * case that broke the gateway's state (crash, leaked slot, temp file, socket or fd, not
 * serving), so that fast-check's shrinking replays cases on a clean one: a leaked slot would
 * otherwise fail every later case and the counterexample would say nothing. A wrong answer
 * alone leaves the gateway as it was (the state checks run first), so no reset is needed.
 */
export class FuzzHarness {
  readonly recorder = new CrashRecorder();
  readonly stats: FuzzStats = { cases: 0, connections: 0, checked: 0, aborted: 0, responses: 0, resets: 0, statuses: new Map() };
  #fpm: PhpFpm | null = null;
  #fx: GatewayFixture | null = null;
  /** Server-side client sockets still open (tracked from 'connection'). */
  #serverSockets = new Set<Socket>();
  /** fds minus upstream sockets once quiet: what every case must come back to. */
  #baseline = 0;
  #dirty = false;
  /** fds of the process before anything was started. */
  readonly fdsAtStart: number;
  /** fds once the first gateway was warm (the whole run must come back near this). */
  fdsWarm = 0;

  private constructor() {
    this.fdsAtStart = openFdCount();
  }

  static async start(): Promise<FuzzHarness> {
    const h = new FuzzHarness();
    h.recorder.install();
    try {
      h.#fpm = await startPhpFpm({ workers: POOL_CONNECTIONS });
      await h.#startGateway();
    } catch (err) {
      await h.stop();
      throw err;
    }
    h.fdsWarm = openFdCount();
    return h;
  }

  get fixture(): GatewayFixture {
    assert.ok(this.#fx, 'the harness is running');
    return this.#fx;
  }

  async #startGateway(): Promise<void> {
    const fx = await startGateway({ fpm: this.#fpm!, gateway: FUZZ_GATEWAY_OPTIONS });
    this.#fx = fx;
    this.#serverSockets = new Set();
    const sockets = this.#serverSockets;
    fx.gw.server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    // Warm the pool so its sockets exist before the baseline is taken.
    await Promise.all(Array.from({ length: POOL_CONNECTIONS }, () => this.#healthCheck()));
    await this.#settle('after start');
    this.#baseline = this.#fdMeasure();
  }

  /** Open descriptors, not counting the pool's upstream sockets (their number varies with aborts). */
  #fdMeasure(): number {
    const s = this.fixture.gw.handler.pool.stats;
    return openFdCount() - s.connected - s.connecting;
  }

  #quiet(): boolean {
    const s = this.fixture.gw.handler.pool.stats;
    return s.busy === 0 && s.queued === 0 && s.connecting === 0;
  }

  /** Invariant 6. */
  async #healthCheck(): Promise<void> {
    const res = await rawGet(this.fixture.port, '/hello.php');
    assert.equal(res.status, 200, 'the gateway still serves GET /hello.php');
    assert.equal(res.body.toString('latin1'), 'hello from php');
  }

  /** Invariants 2 and 3, and no server socket outliving its client. */
  async #settle(when: string): Promise<void> {
    const fx = this.fixture;
    await waitForState(
      () => this.#serverSockets.size === 0,
      `every server-side socket to close ${when}, within ${SOCKET_GRACE_MS} ms`,
      () => `${this.#serverSockets.size} open: ${[...this.#serverSockets].map((s) => `bytesRead ${s.bytesRead}, writable ${s.writable}`).join('; ')}`,
      SOCKET_GRACE_MS,
    );
    await waitForState(() => this.#quiet(), `the pool to be idle ${when}`, () => JSON.stringify(this.#poolSummary()));
    // Both: a temp file is opened, then unlinked (src/http/temp-file.ts), so a spill that began
    // as its client left may show its name for a moment; it must not keep it, nor its fd.
    await waitForState(
      () => openFilesUnder(fx.dirs.tmp).length === 0 && listDir(fx.dirs.tmp).length === 0,
      `temp files to be closed and unlinked ${when}`,
      () => `open: ${openFilesUnder(fx.dirs.tmp).join(', ') || 'none'}; names: ${listDir(fx.dirs.tmp).join(', ') || 'none'}`,
    );
  }

  #assertNoCrash(when: string): void {
    assert.deepEqual(this.recorder.recent, [], `the process hosting the gateway recorded crashes ${when}`);
  }

  #poolSummary(): Record<string, number> {
    const { busy, queued, connecting, connected, idle } = this.fixture.gw.handler.pool.stats;
    return { busy, queued, connecting, connected, idle };
  }

  /** Run one case and check every invariant after it. Throws (an assertion) when one fails. */
  async runCase(c: FuzzCase): Promise<void> {
    if (this.#dirty) await this.reset();
    const port = this.fixture.port;
    const results = await Promise.all(c.conns.map((p) => runConnection(port, p)));
    this.#count(c, results);
    try {
      // The gateway's state first: invariants 1-4 and 6.
      this.#assertNoCrash('during the case');
      await this.#settle('after the clients left');
      await waitForState(() => this.#fdMeasure() <= this.#baseline, `open fds (less upstream sockets) to come back to ${this.#baseline}`, () => `now ${this.#fdMeasure()}`);
      await this.#healthCheck();
      this.#assertNoCrash('after the case');
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
    // Then the answers (invariant 5).
    c.conns.forEach((p, i) => {
      const r = results[i]!;
      // Whatever the bytes, the gateway only ever sends HTTP/1.1 responses.
      if (r.received.length > 0) assert.match(r.received.subarray(0, 9).toString('latin1'), /^HTTP\/1\.1 $/, `conn ${i}: the gateway sent ${quote(r.received.subarray(0, 80))}`);
      if (p.checked) verifyChecked(p, r, i);
    });
  }

  #count(c: FuzzCase, results: readonly ConnResult[]): void {
    const st = this.stats;
    st.cases++;
    st.connections += c.conns.length;
    for (const p of c.conns) {
      if (p.checked) st.checked++;
      if (p.steps.some((s) => s.op === 'destroy' || s.op === 'end')) st.aborted++;
    }
    for (const r of results) {
      for (const m of r.received.toString('latin1').matchAll(/HTTP\/1\.[01] (\d{3})/g)) {
        const code = Number(m[1]);
        st.statuses.set(code, (st.statuses.get(code) ?? 0) + 1);
        st.responses++;
      }
    }
  }

  /** A fresh gateway (and restarted php-fpm, which drops whatever the old pool held). */
  async reset(): Promise<void> {
    this.stats.resets++;
    this.#dirty = false;
    const old = this.#fx;
    this.#fx = null;
    if (old) {
      old.gw.server.closeAllConnections();
      await this.#fpm!.restart();
      // A gateway that leaked a request may never finish closing: do not wait for it forever,
      // and remove its directories even then (close() removes them only once it is done).
      await Promise.race([old.close(), delay(3000)]);
      old.dirs.remove();
    }
    this.recorder.recent.length = 0;
    await this.#startGateway();
  }

  /** Invariants 1 and 4 over the whole run (crashes are never forgotten, resets or not). */
  async finalChecks(): Promise<void> {
    assert.deepEqual(this.recorder.all, [], 'the process hosting the gateway recorded crashes during the run');
    if (this.#dirty) await this.reset();
    await this.#settle('at the end of the run');
    // The pool may hold up to its limit of sockets; anything beyond that (+1 in flight) leaked.
    const slack = POOL_CONNECTIONS + 1;
    await waitForState(() => openFdCount() <= this.fdsWarm + slack, `open fds to come back near ${this.fdsWarm}`, () => `now ${openFdCount()}`);
  }

  /** Stop gateway and php-fpm. Idempotent. */
  async stop(): Promise<void> {
    const fx = this.#fx;
    this.#fx = null;
    if (fx) {
      fx.gw.server.closeAllConnections();
      await Promise.race([fx.close(), delay(5000)]);
      fx.dirs.remove();
    }
    const fpm = this.#fpm;
    this.#fpm = null;
    await fpm?.stop();
    this.recorder.uninstall();
  }

  summary(): string {
    const s = this.stats;
    const statuses = [...s.statuses.entries()].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}×${v}`).join(' ');
    return `${s.cases} cases, ${s.connections} connections (${s.checked} checked, ${s.aborted} with a client abort or half-close), ${s.responses} status lines [${statuses}], ${s.resets} gateway resets`;
  }
}

const envInt = (name: string): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  assert.ok(Number.isSafeInteger(n), `${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
};

/**
 * fast-check parameters from the environment: FUZZ_RUNS (default `defaultRuns`), FUZZ_SEED
 * (else fast-check picks one and prints it on failure), FUZZ_PATH (replay a counterexample
 * with its seed), FUZZ_NO_SHRINK=1, FUZZ_TIME_LIMIT_MS (default `defaultTimeLimit`; 0: none):
 * no run starts after it, so a slow machine runs fewer cases and a shrink whose replays each
 * wait for a deadline stops with the smallest counterexample found so far.
 */
/** The seed CI uses when FUZZ_SEED is unset: a landing is judged on known cases, not on luck. */
const CI_SEED = 20261201;

export function fuzzParameters(defaultRuns: number, defaultTimeLimit = 0): fc.Parameters<[FuzzCase]> {
  const seed = envInt('FUZZ_SEED') ?? (process.env['CI'] ? CI_SEED : undefined);
  const path = process.env['FUZZ_PATH'];
  const limit = envInt('FUZZ_TIME_LIMIT_MS') ?? defaultTimeLimit;
  return {
    numRuns: envInt('FUZZ_RUNS') ?? defaultRuns,
    ...(seed !== undefined ? { seed } : {}),
    ...(path ? { path } : {}),
    ...(limit > 0 ? { skipAllAfterTimeLimit: limit } : {}),
    endOnFailure: process.env['FUZZ_NO_SHRINK'] === '1',
  };
}

/**
 * The property: run a case, check the invariants. Shrinking is bounded (FUZZ_MAX_SHRINKS,
 * default `defaultShrinks`): each attempt is a real exchange, and the counterexample is
 * readable long before fast-check runs out of smaller candidates.
 */
export function fuzzProperty(h: FuzzHarness, defaultShrinks: number): fc.IAsyncProperty<[FuzzCase]> {
  return fc.asyncProperty(fc.limitShrink(fuzzCaseArb, envInt('FUZZ_MAX_SHRINKS') ?? defaultShrinks), (c) => h.runCase(c));
}

// ─── hand-picked cases, one test each ────────────────────────────────────────────────────────

const noShape: PlanShape = { cuts: [], gaps: [], lazy: false, startDelay: 0 };
const one = (plan: ConnPlan): FuzzCase => withDescription({ conns: [plan] });
const seg = (spec: RequestSpec, decor: Partial<Decor> = {}): Segment => renderRequest(spec, { ...PLAIN, ...decor });
const echo = (len: number, framing: 'cl' | 'chunked', extra: Partial<EchoOptions> = {}): RequestSpec =>
  requests.echo({ method: 'POST', len, seed: len, framing, chunkSizes: [], chunkStyle: 'plain', expectContinue: false, headerCase: false, ...extra });
const close: Partial<Decor> = { connection: 'close' };

/** A plan with explicit steps (writes are the segments' bytes, in order, as given). */
function manualPlan(segments: readonly Segment[], steps: readonly Step[], lazy: boolean): ConnPlan {
  const written = Buffer.concat(steps.flatMap((s) => (s.op === 'write' ? [s.data] : [])));
  assert.ok(written.equals(Buffer.concat(segments.map((s) => s.bytes))), 'a manual plan writes exactly its segments');
  return { segments, steps, lazy, startDelay: 0, checked: modelled(segments) && !steps.some((s) => s.op === 'destroy' || s.op === 'end') };
}

export interface NamedCase {
  readonly name: string;
  readonly case: FuzzCase;
  /** Runs of it in one test: a race that a single run meets only now and then. */
  readonly repeat?: number;
}

/** One case per family in the brief, and a minimal case for each bug the fuzzer found. */
export function namedCases(): NamedCase[] {
  const bigClose = seg(requests.big(500_000), close);
  const hello = seg(requests.hello());
  return [
    { name: 'pipelining: answers in request order, slow script first', case: one(buildPlan([seg(requests.sleep(30)), hello, seg(requests.big(100_000)), seg(requests.hello(), close)], noShape, drain)) },
    {
      name: 'bodies: Content-Length and chunked, below and above bodyBufferSize, written in pieces',
      case: one(
        buildPlan(
          [seg(echo(100, 'cl')), seg(echo(BODY_BUFFER + 1, 'cl')), seg(echo(20_000, 'chunked', { chunkSizes: [1000, 7], chunkStyle: 'extensions' })), seg(echo(0, 'chunked')), seg(requests.hello(), close)],
          { ...noShape, cuts: [10_000, 500_000, 999_000], gaps: [{ kind: 'pause', ms: 5 }, { kind: 'read', bytes: 10 }] },
          drain,
        ),
      ),
    },
    { name: 'a valid request, then a bad request head: 200, then 400, then close', case: one(buildPlan([seg(requests.sleep(20)), garbage.duplicateCl(1, 2)], noShape, drain)) },
    { name: 'a valid request, then an oversized head: 200, then 431, then close', case: one(buildPlan([hello, garbage.oversizedHead(20_000)], noShape, drain)) },
    {
      name: 'refused paths in a pipeline (404, 301 keep the connection, 400 closes it)',
      case: one(buildPlan([seg(requests.refused('/.env', 404)), seg(requests.refused('/sub', 301)), seg(requests.refused('/%2e%2e/outside-secret.txt', 400))], noShape, drain)),
    },
    { name: 'chunked body over maxBodySize: 413 and close', case: one(buildPlan([seg(echo(MAX_BODY + 10, 'chunked', { chunkSizes: [65_536] })), hello], noShape, drain)) },
    { name: 'Content-Length over maxBodySize with Expect: 100-continue: 413 before the body', case: one(buildPlan([seg(echo(MAX_BODY + 10, 'cl', { expectContinue: true }))], noShape, drain)) },
    { name: 'client gone mid-head', case: one(buildPlan([hello], noShape, { kind: 'destroy', at: 300_000, readFirst: null })) },
    { name: 'client gone mid-body (Content-Length, temp file)', case: one(buildPlan([seg(echo(200_000, 'cl'))], noShape, { kind: 'destroy', at: 500_000, readFirst: null })) },
    { name: 'client half-closes mid-body (chunked, temp file)', case: one(buildPlan([seg(echo(200_000, 'chunked', { chunkSizes: [9000] }))], noShape, { kind: 'end', at: 700_000, readFirst: null })) },
    { name: 'client gone mid-response (spilled to a temp file)', case: one(buildPlan([seg(requests.big(600_000))], { ...noShape, lazy: true }, { kind: 'destroy', at: 1_000_000, readFirst: 64 * 1024 })) },
    { name: 'client half-closes after a pipeline without reading anything', case: one(buildPlan([seg(requests.big(600_000)), seg(requests.big(300_000)), seg(echo(10_000, 'cl'))], noShape, { kind: 'silent-end' })) },
    { name: 'client stops reading: spill, then dropped at the send timeout', case: one(buildPlan([seg(requests.big(700_000))], { ...noShape, lazy: true }, { kind: 'linger', at: 1_000_000, ms: LINGER_MIN_MS })) },
    {
      name: 'three connections on a pool of two: one queued, one leaving mid-way',
      case: withDescription({
        conns: [
          buildPlan([seg(requests.sleep(40), close)], noShape, drain),
          buildPlan([seg(requests.sleep(40), close)], noShape, drain),
          buildPlan([hello, seg(requests.big(200_000))], { ...noShape, startDelay: 5 }, { kind: 'destroy', at: 1_000_000, readFirst: 1000 }),
        ],
      }),
    },
    {
      name: 'a client that keeps sending after its own Connection: close (the answer may be cut by the reset; nothing may leak)',
      case: one(
        manualPlan(
          [bigClose, hello],
          [{ op: 'write', data: bigClose.bytes }, { op: 'pause', ms: 50 }, { op: 'write', data: hello.bytes }, { op: 'pause', ms: 20 }],
          true,
        ),
      ),
    },
    // Minimal cases of what the fuzzer found.
    {
      name: 'found: after the gateway answered 400 with Connection: close, a pipelined request gets no second answer',
      case: one(buildPlan([seg(requests.refused('/%2e%2e/outside-secret.txt', 400)), garbage.oversizedHead(20_000)], noShape, drain)),
    },
    {
      name: 'found: when the gateway closes after a 400 refusal, a pipelining client that sends more still gets the earlier answers whole',
      case: one(
        manualPlan(
          [seg(requests.big(600_000)), seg(requests.refused('/%2e%2e/outside-secret.txt', 400)), hello],
          [
            { op: 'write', data: Buffer.concat([seg(requests.big(600_000)).bytes, seg(requests.refused('/%2e%2e/outside-secret.txt', 400)).bytes]) },
            { op: 'pause', ms: 60 },
            { op: 'write', data: hello.bytes },
            { op: 'pause', ms: 20 },
          ],
          true,
        ),
      ),
    },
    {
      name: 'found: after a 413 for an over-long Content-Length, the lingering close reads on and ends when the client leaves',
      case: one(
        manualPlan(
          [seg(echo(MAX_BODY + 20_000, 'cl'))],
          [{ op: 'write', data: seg(echo(MAX_BODY + 20_000, 'cl')).bytes }, { op: 'read', bytes: 1 }, { op: 'pause', ms: 50 }, { op: 'destroy' }],
          false,
        ),
      ),
    },
    {
      // Found by the long campaign: node:http's own 400 for a missing Host was not the
      // connection's known last answer, so a parse error behind it got a second 400.
      name: 'found: after the 400 for a missing Host, a pipelined bad request gets no second answer',
      case: one(buildPlan([garbage.missingHost(), garbage.controlInHeader('\0')], noShape, drain)),
    },
    {
      name: 'found: a bad chunk in a pipelined request does not overtake (and drop) the earlier answer',
      case: one(buildPlan([hello, garbage.badChunkSize('zz')], noShape, drain)),
    },
    {
      name: 'found: a pipelined Expect: 100-continue gets its 100 Continue before its final answer, not inside it',
      case: one(buildPlan([seg(requests.sleep(20)), seg(echo(3, 'cl', { expectContinue: true }), close)], noShape, drain)),
    },
    {
      name: 'found: a 413 written before its turn leaves out the 100 Continue of a pipelined request that is not the first',
      case: one(
        buildPlan(
          [hello, seg(echo(0, 'cl', { expectContinue: true })), seg(echo(MAX_BODY + 1, 'chunked', { expectContinue: true })), garbage.missingHost()],
          noShape,
          drain,
        ),
      ),
    },
    {
      // Found by the long campaign (about 1 run in 4): node:http closed after the HTTP/1.0 answer
      // with the pipelined bytes unread, and the RST wiped the answer at the client.
      name: 'found: an HTTP/1.0 keep-alive answer that closes the connection arrives whole when more bytes were pipelined behind it',
      // Measured without the fix: 8 failing runs in 40, so 20 runs miss it about once in 90.
      repeat: 20,
      // As found, with a second client sending junk at the same time (it shifts the timing
      // enough to make the race likely).
      case: withDescription({
        conns: [
          manualPlan(
            [seg(requests.headHello(), { version: '1.0', connection: 'keep-alive' }), garbage.badChunkSize('zz')],
            [
              { op: 'write', data: seg(requests.headHello(), { version: '1.0', connection: 'keep-alive' }).bytes },
              { op: 'pause', ms: 0 },
              { op: 'write', data: garbage.badChunkSize('zz').bytes.subarray(0, 1) },
              { op: 'write', data: garbage.badChunkSize('zz').bytes.subarray(1) },
            ],
            false,
          ),
          { segments: [], steps: [{ op: 'write', data: Buffer.from('"') }, { op: 'read', bytes: 1995 }, { op: 'end' }], lazy: false, startDelay: 0, checked: false },
        ],
      }),
    },
    {
      // Found by the long campaign: the GETs pipelined behind a POST whose body was still coming
      // took both pool connections while their answers could not be sent yet, so the POST
      // waited for a connection until their send timeout dropped them.
      name: 'found: requests pipelined behind an unfinished POST do not take the pool connections it needs',
      case: (() => {
        const post = seg(echo(12_288, 'cl'));
        const rest = [seg(requests.big(204_820)), seg(requests.big(698_852), close)];
        return one(
          manualPlan(
            [post, ...rest],
            [
              { op: 'write', data: post.bytes.subarray(0, 700) },
              { op: 'pause', ms: 60 },
              { op: 'write', data: Buffer.concat([post.bytes.subarray(700), ...rest.map((r) => r.bytes)]) },
            ],
            false,
          ),
        );
      })(),
    },
  ];
}
