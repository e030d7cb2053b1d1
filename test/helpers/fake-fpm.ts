/**
 * A scriptable fake FastCGI responder for fault injection, built on our own codec.
 *
 *   accept ─▶ BEGIN_REQUEST ─▶ PARAMS… ─▶ PARAMS end ─┬─ readBody=false: stop reading, run script
 *                                                      └─ STDIN… ─▶ STDIN end ─▶ run script
 *   GET_VALUES (request id 0) ─▶ answer / ignore / close / UNKNOWN_TYPE   (see `getValues`)
 *
 * The script decides what goes back (a normal response, garbage, a stall mid-record, an early
 * close, bytes after END_REQUEST, a rejecting protocol status, floods, endless output). Every
 * received request is recorded (decoded params, body bytes, KEEP_CONN flag, connection) and
 * also queued for `nextRequest()`, so a test can hold a request and answer it later.
 *
 * Only for fault injection in component tests: integration tests use a real php-fpm.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProtocolStatus, RecordType } from '../../src/protocol/constants.js';
import { type FcgiRecord, RecordDecoder, parseBeginRequest } from '../../src/protocol/decoder.js';
import {
  encodeEndRequest,
  encodeGetValuesResult,
  encodeRecord,
  encodeStreamChunk,
  encodeUnknownType,
} from '../../src/protocol/encoder.js';
import { decodePairs } from '../../src/protocol/params.js';
import type { TestContext } from 'node:test';
import { ConnectionPool, type PoolOptions } from '../../src/upstream/pool.js';

/** One request as the fake received it. */
export interface FakeRequest {
  /** The connection it arrived on. */
  readonly conn: FakeConnection;
  /** 1-based position among the requests on its connection. */
  readonly indexOnConnection: number;
  readonly role: number;
  readonly keepConn: boolean;
  /** Decoded params, in order, as raw bytes. */
  readonly pairs: ReadonlyArray<readonly [Buffer, Buffer]>;
  /** Decoded params as latin1 text (last value wins). */
  readonly params: ReadonlyMap<string, string>;
  /** STDIN bytes received so far. */
  body: Buffer;
  /** The empty STDIN record arrived. */
  bodyComplete: boolean;
  /** END_REQUEST was sent for it. */
  ended: boolean;
}

/** What a script does with one request. May be async; a throw destroys the connection. */
export type FakeScript = (req: FakeRequest, conn: FakeConnection) => void | Promise<void>;

/** How the fake answers FCGI_GET_VALUES. */
export type GetValuesMode = 'answer' | 'ignore' | 'close' | 'unknown-type';

export interface FakeFpmOptions {
  /** 'unix' (default: a socket in a fresh temp dir) or 'tcp' (127.0.0.1, ephemeral port). */
  readonly listen?: 'unix' | 'tcp';
  /** Per-request script (default: `conn.respond('ok')`). Replaceable later via `fake.script`. */
  readonly script?: FakeScript;
  /**
   * true (default): read the whole body, then run the script. false: stop reading the socket
   * as soon as PARAMS end and run the script then (the client's body writes will block).
   */
  readonly readBody?: boolean;
  /** GET_VALUES handling (default 'answer'). */
  readonly getValues?: GetValuesMode;
  /** Values reported by GET_VALUES (default FCGI_MAX_CONNS=100, FCGI_MAX_REQS=100, FCGI_MPXS_CONNS=0). */
  readonly values?: Readonly<Record<string, string>>;
  /** Called for every accepted connection before any byte is read. */
  readonly onConnection?: (conn: FakeConnection) => void;
}

/** One accepted socket, with helpers to write records on it. */
export class FakeConnection {
  /** 1-based accept order. */
  readonly id: number;
  readonly socket: net.Socket;
  readonly requests: FakeRequest[] = [];
  /** GET_VALUES records received on this socket. */
  getValues = 0;
  /** Bytes written by the stream helpers (stdout/stderr/endless). */
  bytesSent = 0;
  /** True while a stream helper waits for 'drain' (the peer stopped reading). */
  waitingDrain = false;
  /** The socket closed (either side). */
  closed = false;
  /** Resolves when the socket has closed. */
  readonly whenClosed: Promise<void>;
  /** Set once the fake decided to stop serving this socket (close, stall): later bytes are ignored. */
  ignoring = false;
  readonly #fake: FakeFpm;
  #blockedWaiters: Array<() => void> = [];

  constructor(id: number, socket: net.Socket, fake: FakeFpm) {
    this.id = id;
    this.socket = socket;
    this.#fake = fake;
    this.whenClosed = new Promise((resolve) => socket.once('close', () => {
      this.closed = true;
      resolve();
    }));
  }

  /** The request currently being served (last one received and not ended). */
  get current(): FakeRequest | undefined {
    const last = this.requests[this.requests.length - 1];
    return last && !last.ended ? last : undefined;
  }

  /** Write raw bytes; the socket's return value. */
  raw(bytes: Buffer | string): boolean {
    if (this.closed || this.socket.destroyed) return true;
    return this.socket.write(bytes);
  }

  /** One or more STDOUT records (request id 1). */
  stdout(data: Buffer | string): boolean {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length === 0) return true;
    this.bytesSent += buf.length;
    return this.raw(encodeStreamChunk(RecordType.Stdout, 1, buf));
  }

  /** One or more STDERR records (request id 1). */
  stderr(data: Buffer | string): boolean {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length === 0) return true;
    this.bytesSent += buf.length;
    return this.raw(encodeStreamChunk(RecordType.Stderr, 1, buf));
  }

  /**
   * Empty STDOUT record and END_REQUEST. As php-fpm does, closes the socket afterwards when
   * the request did not ask for KEEP_CONN (override with `close`). `trailer` goes out in the
   * same write, right after END_REQUEST.
   */
  end(appStatus = 0, protocolStatus: number = ProtocolStatus.RequestComplete, options: { trailer?: Buffer; close?: boolean } = {}): void {
    const req = this.current;
    const parts = [encodeRecord(RecordType.Stdout, 1), encodeEndRequest(1, appStatus, protocolStatus)];
    if (options.trailer) parts.push(options.trailer);
    this.raw(Buffer.concat(parts));
    if (req) req.ended = true;
    if (options.close ?? (req !== undefined && !req.keepConn)) this.close();
  }

  /** END_REQUEST with a rejecting protocol status and no output (OVERLOADED, CANT_MPX_CONN, ...). */
  reject(protocolStatus: number): void {
    const req = this.current;
    this.raw(encodeEndRequest(1, 0, protocolStatus));
    if (req) req.ended = true;
  }

  /** A complete CGI response: head, body, END_REQUEST. */
  respond(body: Buffer | string = 'ok', headers: Readonly<Record<string, string>> = { 'Content-Type': 'text/plain' }): void {
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
    this.stdout(Buffer.concat([Buffer.from(head), typeof body === 'string' ? Buffer.from(body) : body]));
    this.end();
  }

  /** Half a STDOUT record (header plus part of its content), then silence. */
  stallMidRecord(): void {
    const content = Buffer.alloc(100, 0x61);
    const record = encodeRecord(RecordType.Stdout, 1, content);
    this.ignoring = true;
    this.raw(record.subarray(0, 8 + 40));
  }

  /** Graceful close (FIN); bytes that arrive later are ignored. */
  close(): void {
    this.ignoring = true;
    this.socket.end();
  }

  /** Abrupt close. */
  destroy(): void {
    this.ignoring = true;
    this.socket.destroy();
  }

  /** Stop reading from the socket: the client's writes back up. */
  stopReading(): void {
    this.socket.pause();
  }

  /**
   * Write `total` bytes of `type` (STDOUT or STDERR) in records of `chunk` bytes, waiting for
   * 'drain' whenever the socket buffer is full. Byte i is `patternByte(offset + i)`. Resolves
   * with the bytes sent (fewer when the socket closed first). `total` Infinity: until closed.
   */
  async stream(type: number, total: number, chunk = 16384, offset = 0): Promise<number> {
    let sent = 0;
    while (sent < total && !this.closed && !this.socket.destroyed) {
      const n = Math.min(chunk, total - sent);
      const data = patternBytes(offset + sent, n);
      sent += n;
      this.bytesSent += n;
      const ok = this.socket.write(encodeStreamChunk(type, 1, data));
      if (!ok) await this.#drain();
    }
    this.#wakeBlockedWaiters();
    return sent;
  }

  /** STDOUT until the socket closes (pattern bytes, with backpressure). */
  endlessStdout(chunk = 16384): Promise<number> {
    return this.stream(RecordType.Stdout, Infinity, chunk);
  }

  /** `total` bytes of STDERR (pattern bytes, with backpressure); does not end the request. */
  stderrFlood(total: number, chunk = 16384): Promise<number> {
    return this.stream(RecordType.Stderr, total, chunk);
  }

  /** A CGI head of about `size` bytes (one long header line) in records of `recordSize` bytes. */
  hugeHead(size: number, recordSize = 999): string {
    const head = `X-Big: ${'h'.repeat(Math.max(0, size - 11))}\r\n\r\n`;
    for (let i = 0; i < head.length; i += recordSize) this.stdout(head.slice(i, i + recordSize));
    return head;
  }

  /**
   * Resolves the next time a stream helper blocks on a full socket buffer (or finishes, so
   * that a waiter can see the stream never blocked for good: check `waitingDrain`).
   */
  blocked(): Promise<void> {
    if (this.waitingDrain) return Promise.resolve();
    return new Promise((resolve) => this.#blockedWaiters.push(resolve));
  }

  #wakeBlockedWaiters(): void {
    const waiters = this.#blockedWaiters;
    this.#blockedWaiters = [];
    for (const w of waiters) w();
  }

  #drain(): Promise<void> {
    this.waitingDrain = true;
    this.#wakeBlockedWaiters();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.removeListener('drain', done);
        this.socket.removeListener('close', done);
        this.waitingDrain = false;
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /** Used by FakeFpm: the fake object that owns this connection. */
  get fake(): FakeFpm {
    return this.#fake;
  }
}

/** Deterministic test bytes: byte at position p is (p mod 65536) mod 251 (as big.php does). */
export function patternBytes(offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) buf[i] = ((offset + i) % 65536) % 251;
  return buf;
}

interface PendingRequest {
  readonly begin: { role: number; keepConn: boolean };
  readonly params: Buffer[];
  paramsDone: boolean;
  req: FakeRequest | null;
  readonly body: Buffer[];
}

/** See the module comment. Create with `startFakeFpm`. */
export class FakeFpm {
  /** `unix:/tmp/.../fake.sock` or `127.0.0.1:port`. */
  address = '';
  script: FakeScript;
  readBody: boolean;
  getValuesMode: GetValuesMode;
  values: Record<string, string>;
  onConnection: ((conn: FakeConnection) => void) | undefined;
  /** Every accepted connection, in order. */
  readonly connections: FakeConnection[] = [];
  /** Every request received, in order. */
  readonly requests: FakeRequest[] = [];
  /** Problems the fake saw in what the client sent (bad records, a second BEGIN_REQUEST, ...). */
  readonly errors: string[] = [];
  readonly #server: net.Server;
  readonly #dir: string;
  #taken = 0;
  #requestWaiters: Array<(r: FakeRequest) => void> = [];
  #open = 0;
  #maxOpen = 0;

  constructor(options: FakeFpmOptions) {
    this.script = options.script ?? ((_req, conn) => conn.respond('ok'));
    this.readBody = options.readBody ?? true;
    this.getValuesMode = options.getValues ?? 'answer';
    this.values = { FCGI_MAX_CONNS: '100', FCGI_MAX_REQS: '100', FCGI_MPXS_CONNS: '0', ...options.values };
    this.onConnection = options.onConnection;
    this.#dir = mkdtempSync(join(tmpdir(), 'fake-fpm-'));
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Connections accepted so far (GET_VALUES probes included). */
  get accepted(): number {
    return this.connections.length;
  }

  /** Connections that carried at least one BEGIN_REQUEST. */
  get requestConnections(): FakeConnection[] {
    return this.connections.filter((c) => c.requests.length > 0);
  }

  /** GET_VALUES records received over all connections. */
  get getValuesQueries(): number {
    return this.connections.reduce((n, c) => n + c.getValues, 0);
  }

  /** Sockets open now / at most at once. */
  get openConnections(): number {
    return this.#open;
  }

  get maxOpenConnections(): number {
    return this.#maxOpen;
  }

  /** The next request not yet taken by an earlier call (in arrival order). */
  nextRequest(): Promise<FakeRequest> {
    const r = this.requests[this.#taken];
    if (r) {
      this.#taken++;
      return Promise.resolve(r);
    }
    return new Promise((resolve) => this.#requestWaiters.push(resolve));
  }

  /** @internal */
  async listen(kind: 'unix' | 'tcp'): Promise<void> {
    if (kind === 'unix') {
      const path = join(this.#dir, 'fake.sock');
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(path, () => resolve());
      });
      this.address = `unix:${path}`;
    } else {
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(0, '127.0.0.1', () => resolve());
      });
      this.address = `127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
    }
  }

  /** Stop listening, destroy every socket, remove the temp dir. */
  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #accept(socket: net.Socket): void {
    const conn = new FakeConnection(this.connections.length + 1, socket, this);
    this.connections.push(conn);
    this.#open++;
    this.#maxOpen = Math.max(this.#maxOpen, this.#open);
    socket.on('error', () => {}); // EPIPE / ECONNRESET are expected in fault scenarios
    socket.once('close', () => this.#open--);
    this.onConnection?.(conn);
    const decoder = new RecordDecoder({ allowUnknownTypes: true });
    let pending: PendingRequest | null = null;
    const onRecord = (rec: FcgiRecord): void => {
      if (conn.ignoring) return;
      switch (rec.type) {
        case RecordType.GetValues:
          conn.getValues++;
          this.#answerGetValues(conn, rec.content);
          return;
        case RecordType.BeginRequest:
          if (pending !== null || conn.current) this.errors.push(`conn ${conn.id}: BEGIN_REQUEST while a request is in progress`);
          if (rec.requestId !== 1) this.errors.push(`conn ${conn.id}: request id ${rec.requestId}`);
          pending = { begin: parseBeginRequest(rec.content), params: [], paramsDone: false, req: null, body: [] };
          return;
        case RecordType.Params: {
          if (pending === null || pending.paramsDone) {
            this.errors.push(`conn ${conn.id}: PARAMS outside a params stream`);
            return;
          }
          if (rec.content.length > 0) {
            pending.params.push(Buffer.from(rec.content));
            return;
          }
          pending.paramsDone = true;
          const pairs = pending.params.flatMap((c) => decodePairs(c)).map(([n, v]) => [Buffer.from(n), Buffer.from(v)] as const);
          const req: FakeRequest = {
            conn,
            indexOnConnection: conn.requests.length + 1,
            role: pending.begin.role,
            keepConn: pending.begin.keepConn,
            pairs,
            params: new Map(pairs.map(([n, v]) => [n.toString('latin1'), v.toString('latin1')])),
            body: Buffer.alloc(0),
            bodyComplete: false,
            ended: false,
          };
          pending.req = req;
          conn.requests.push(req);
          this.#record(req);
          if (!this.readBody) {
            pending = null;
            conn.stopReading();
            conn.ignoring = true;
            this.#run(req, conn);
          }
          return;
        }
        case RecordType.Stdin: {
          const req = pending?.req;
          if (!pending || !req) {
            this.errors.push(`conn ${conn.id}: STDIN before the params stream ended`);
            return;
          }
          if (rec.content.length > 0) {
            pending.body.push(Buffer.from(rec.content));
            req.body = Buffer.concat(pending.body);
            return;
          }
          req.bodyComplete = true;
          pending = null;
          this.#run(req, conn);
          return;
        }
        case RecordType.AbortRequest:
          conn.ignoring = true;
          socket.destroy();
          return;
        default:
          if (rec.type > RecordType.UnknownType) {
            conn.raw(encodeUnknownType(rec.type));
            return;
          }
          this.errors.push(`conn ${conn.id}: unexpected record type ${rec.type}`);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (conn.ignoring) return;
      try {
        decoder.push(chunk, onRecord);
      } catch (err) {
        this.errors.push(`conn ${conn.id}: ${err instanceof Error ? err.message : String(err)}`);
        conn.destroy();
      }
    });
  }

  #record(req: FakeRequest): void {
    this.requests.push(req);
    const w = this.#requestWaiters.shift();
    if (w) {
      this.#taken++;
      w(req);
    }
  }

  #run(req: FakeRequest, conn: FakeConnection): void {
    Promise.resolve()
      .then(() => this.script(req, conn))
      .catch((err: unknown) => {
        this.errors.push(`conn ${conn.id}: script threw: ${err instanceof Error ? err.message : String(err)}`);
        conn.destroy();
      });
  }

  #answerGetValues(conn: FakeConnection, content: Buffer): void {
    switch (this.getValuesMode) {
      case 'ignore':
        return;
      case 'close':
        conn.destroy();
        return;
      case 'unknown-type':
        conn.raw(encodeUnknownType(RecordType.GetValues));
        return;
      case 'answer': {
        const asked = decodePairs(content).map(([n]) => n.toString('latin1'));
        const answer: Array<[string, string]> = [];
        for (const name of asked) {
          const v = this.values[name];
          if (v !== undefined) answer.push([name, v]);
        }
        conn.raw(encodeGetValuesResult(answer));
        // php-fpm closes the socket after a management record.
        conn.close();
        return;
      }
    }
  }
}

/** Start a fake responder listening on a temp-dir unix socket (or 127.0.0.1:0). */
export async function startFakeFpm(options: FakeFpmOptions = {}): Promise<FakeFpm> {
  const fake = new FakeFpm(options);
  await fake.listen(options.listen ?? 'unix');
  return fake;
}

/** Counters a test expects once a pool has nothing in flight. */
export interface QuietExpectation {
  readonly completed: number;
  readonly failed: number;
}

/**
 * Assert that a pool is quiet (nothing busy, queued or connecting) and that its counters add
 * up: every dispatched request either completed or failed, with the expected counts.
 */
export function assertPoolQuiet(
  stats: { busy: number; queued: number; connecting: number; dispatched: number; completed: number; failed: number; idle: number; connected: number },
  expected: QuietExpectation,
): void {
  assert.equal(stats.busy, 0, 'busy');
  assert.equal(stats.queued, 0, 'queued');
  assert.equal(stats.connecting, 0, 'connecting');
  assert.equal(stats.completed, expected.completed, 'completed');
  assert.equal(stats.failed, expected.failed, 'failed');
  assert.equal(stats.dispatched, stats.completed + stats.failed, 'dispatched = completed + failed');
  assert.equal(stats.connected, stats.idle, 'every open socket is idle');
}

/**
 * A fake responder and a pool in front of it (no limits probe), both torn down after the test:
 * the usual setup of the component tests.
 */
export async function startFakeWithPool(
  t: TestContext,
  fakeOptions: FakeFpmOptions = {},
  poolOptions: PoolOptions = {},
): Promise<{ fake: FakeFpm; pool: ConnectionPool }> {
  const fake = await startFakeFpm(fakeOptions);
  const pool = new ConnectionPool(fake.address, { probeLimits: false, ...poolOptions });
  t.after(async () => {
    pool.destroy();
    await fake.close();
  });
  return { fake, pool };
}
