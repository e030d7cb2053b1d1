/**
 * A bounded pool of connections to one FastCGI upstream, with a FIFO wait queue.
 *
 *   dispatch ─▶ idle socket (LIFO: hottest first) ─▶ run
 *            └▶ queue (FIFO, ≤ maxQueue, queueTimeout) ─▶ served by the next released or
 *                                                          newly connected socket
 *
 * Why the gateway queues instead of opening more sockets: a kept-alive connection pins a
 * php-fpm worker, so connections beyond pm.max_children wait in php-fpm's listen backlog
 * behind pinned workers (seconds of stall). Keep `connections` ≤ pm.max_children; with
 * `probeLimits` the pool asks the responder (FCGI_MAX_CONNS) and caps itself.
 *
 * Stale sockets: php-fpm closes a kept connection when a worker exits (pm.max_requests,
 * reload). An idle socket that sees the close leaves the pool; a request that loses the race
 * (a reused socket fails before any response byte, with every body byte still held) is
 * retried once on a fresh socket.
 */
import { deepFreeze, parseOrThrow, stripUndefined } from '../config/issues.js';
import { type PoolOptions, poolSchema, type ResolvedPoolOptions } from '../config/schema.js';
import { PoolClosedError, PoolQueueFullError, PoolQueueTimeoutError, type GatewayError, UpstreamClosedError } from '../errors.js';
import { type UpstreamAddress, parseAddress } from './address.js';
import { UpstreamConnection, type ConnectionOwner, type ConnectionTimeouts } from './connection.js';
import { connectSocket, type ReadSink } from './connector.js';
import { Exchange, type ExchangeController, type ExchangeHandler, type FastCgiRequest } from './exchange.js';
import { queryValues, type ResponderValues } from './values.js';

/** Bytes each connection reads at a time, into its own fixed buffer (php-fpm records ≤ 64 KiB). */
const READ_BUFFER_SIZE = 64 * 1024;

export type { PoolOptions, ResolvedPoolOptions } from '../config/schema.js';

/** Defaults (ms / bytes), from the schema. */
export const POOL_DEFAULTS: ResolvedPoolOptions = deepFreeze(parseOrThrow(poolSchema, {}));

/** Validate and default pool options; throws ConfigError naming the bad field. */
export function resolvePoolOptions(input: PoolOptions = {}, path = 'pool'): ResolvedPoolOptions {
  return deepFreeze(parseOrThrow(poolSchema, stripUndefined(input), path));
}

/** A read-only snapshot of the pool. */
export interface PoolStats {
  /** Effective connection limit (configured, or capped by FCGI_MAX_CONNS). */
  readonly limit: number;
  /** Open sockets (idle + busy). */
  readonly connected: number;
  readonly idle: number;
  readonly busy: number;
  /** Connects in progress. */
  readonly connecting: number;
  /** Requests waiting for a connection. */
  readonly queued: number;
  /** Requests dispatched since creation. */
  readonly dispatched: number;
  /** Requests finished with END_REQUEST / with an error. */
  readonly completed: number;
  readonly failed: number;
  /** Sockets opened since creation. */
  readonly connects: number;
  /** Requests retried on a fresh socket after a stale one failed. */
  readonly retries: number;
  /** Connects that failed (refused, timed out, …). */
  readonly connectErrors: number;
  /** Requests that ended with a timeout (connect, read, write, queue). */
  readonly timeouts: number;
  /** Time requests spent waiting for a connection, in ms, and how many waited. */
  readonly queueWaitMs: number;
  readonly queueWaits: number;
  /** What the responder reported to FCGI_GET_VALUES, when probed. */
  readonly responder: ResponderValues | null;
}

/** Result of `request()`: the whole response, buffered. */
export interface BufferedResponse {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly appStatus: number;
  readonly protocolStatus: number;
}

/** See the module comment. */
export class ConnectionPool implements ConnectionOwner {
  readonly address: UpstreamAddress;
  readonly options: ResolvedPoolOptions;
  readonly #timeouts: ConnectionTimeouts;
  #limit: number;
  #idle: UpstreamConnection[] = [];
  #open = new Set<UpstreamConnection>();
  #connecting = 0;
  /** FIFO of waiting exchanges; entries may be done (aborted) and are skipped. */
  #queue: Exchange[] = [];
  #queueHead = 0;
  #queued = 0;
  #queueTimer: NodeJS.Timeout | null = null;
  #nextId = 1;
  #closing = false;
  /** Set by destroy(): the error every request still in flight fails with. */
  #destroyError: GatewayError | null = null;
  #closeWaiters: Array<() => void> = [];
  #probe: 'todo' | 'running' | 'done';
  #responder: ResponderValues | null = null;
  #dispatched = 0;
  #completed = 0;
  #failed = 0;
  #connects = 0;
  #retries = 0;
  #connectErrors = 0;
  #timedOut = 0;
  #queueWaitMs = 0;
  #queueWaits = 0;

  constructor(address: string | UpstreamAddress, options: PoolOptions = {}) {
    this.address = typeof address === 'string' ? parseAddress(address) : address;
    this.options = resolvePoolOptions(options);
    this.#limit = this.options.connections;
    this.#probe = this.options.probeLimits ? 'todo' : 'done';
    this.#timeouts = {
      idleTimeout: this.options.idleTimeout,
      readTimeout: this.options.readTimeout,
      writeTimeout: this.options.writeTimeout,
    };
  }

  /** A snapshot of counters and sizes. */
  get stats(): PoolStats {
    const idle = this.#idle.length;
    return {
      limit: this.#limit,
      connected: this.#open.size,
      idle,
      busy: this.#open.size - idle,
      connecting: this.#connecting,
      queued: this.#queued,
      dispatched: this.#dispatched,
      completed: this.#completed,
      failed: this.#failed,
      connects: this.#connects,
      retries: this.#retries,
      connectErrors: this.#connectErrors,
      timeouts: this.#timedOut,
      queueWaitMs: this.#queueWaitMs,
      queueWaits: this.#queueWaits,
      responder: this.#responder,
    };
  }

  /**
   * Send a request; the response goes to `handler`. Throws at once for input that can never
   * be sent (a param too large for one record, a bad body type); every other failure reaches
   * `handler.onError`.
   */
  dispatch(request: FastCgiRequest, handler: ExchangeHandler): ExchangeController {
    const ex = new Exchange(request, handler, this.options.keepAlive, this.options.retryBufferSize);
    ex.server = this.address.text;
    this.#dispatched++;
    ex.onSettled = this.#countSettled;
    if (this.#closing) {
      queueMicrotask(() => this.#failEx(ex, new PoolClosedError()));
      return ex;
    }
    if (ex.abortedAtStart) {
      queueMicrotask(() => ex.abort(request.signal?.reason));
      return ex;
    }
    const conn = this.#idle.pop();
    if (conn !== undefined) {
      this.#run(conn, ex);
      return ex;
    }
    if (this.#queued >= this.options.maxQueue && this.#open.size + this.#connecting >= this.#limit) {
      queueMicrotask(() => this.#failEx(ex, new PoolQueueFullError(this.options.maxQueue)));
      return ex;
    }
    this.#enqueue(ex);
    this.#pump();
    return ex;
  }

  /** Send a request and buffer the whole response (convenient for small responses). */
  request(request: FastCgiRequest): Promise<BufferedResponse> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      try {
        this.dispatch(request, {
          onStdout: (c) => void out.push(c),
          onStderr: (c) => void err.push(c),
          onEnd: (end) =>
            resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), appStatus: end.appStatus, protocolStatus: end.protocolStatus }),
          onError: reject,
        });
      } catch (e) {
        reject(e);
      }
    });
  }

  /** Close idle sockets above the limit (after the probe lowered it). */
  #trimIdle(): void {
    while (this.#open.size > this.#limit && this.#idle.length > 0) this.#idle.shift()!.destroy();
  }

  /** Ask the responder for its limits now (FCGI_GET_VALUES) and cap the pool to FCGI_MAX_CONNS. */
  async probeLimits(): Promise<ResponderValues | null> {
    try {
      const values = await queryValues(this.address, { connectTimeout: this.options.connectTimeout, timeout: Math.min(this.options.connectTimeout || 2000, 2000) });
      this.#responder = values;
      if (values.maxConns !== undefined && values.maxConns > 0 && values.maxConns < this.#limit) this.#limit = values.maxConns;
      return values;
    } catch {
      return null;
    }
  }

  /** Stop taking requests, let running and queued ones finish, close every socket. */
  close(): Promise<void> {
    this.#closing = true;
    for (const conn of this.#idle.splice(0)) conn.destroy();
    return new Promise((resolve) => {
      this.#closeWaiters.push(resolve);
      this.#checkClosed();
    });
  }

  /** Fail queued and running requests with `err` (default PoolClosedError) and close everything. */
  destroy(err: GatewayError = new PoolClosedError()): void {
    this.#closing = true;
    this.#destroyError ??= err;
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const ex = this.#queue[i]!;
      if (!ex.done) this.#failEx(ex, err);
    }
    this.#queue = [];
    this.#queueHead = 0;
    this.#queued = 0;
    if (this.#queueTimer !== null) clearTimeout(this.#queueTimer);
    this.#queueTimer = null;
    for (const conn of [...this.#open]) conn.destroy();
    this.#checkClosed();
  }

  // ── ConnectionOwner ─────────────────────────────────────────────────────────────────────

  released(conn: UpstreamConnection): void {
    const max = this.options.maxRequestsPerConnection;
    if ((max > 0 && conn.requests >= max) || this.#open.size > this.#limit) {
      conn.destroy();
      return;
    }
    // Requests queued before close() still get served: close() drains, destroy() fails them.
    const next = this.#dequeue();
    if (next) {
      this.#run(conn, next);
      return;
    }
    if (this.#closing) {
      conn.destroy();
      return;
    }
    this.#idle.push(conn);
    conn.parkIdle();
  }

  closed(conn: UpstreamConnection, exchange: Exchange | null, cause: unknown): void {
    this.#open.delete(conn);
    const i = this.#idle.lastIndexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    if (exchange !== null) {
      if (conn.reused && exchange.replayable && exchange.attempts === 1 && !this.#closing) {
        // A stale kept connection lost the race with php-fpm closing it: replay on a new one.
        this.#retries++;
        exchange.detachForRetry();
        this.#connectFor(exchange);
      } else {
        this.#failEx(exchange, this.#destroyError ?? new UpstreamClosedError(!exchange.responseStarted, cause));
      }
    }
    this.#pump();
    this.#checkClosed();
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────

  #run(conn: UpstreamConnection, ex: Exchange): void {
    if (ex.queuedAt > 0) {
      this.#queueWaitMs += performance.now() - ex.queuedAt;
      this.#queueWaits++;
    }
    const max = this.options.maxRequestsPerConnection;
    const keepConn = this.options.keepAlive && !(max > 0 && conn.requests + 1 >= max);
    conn.run(ex, keepConn);
  }

  #countSettled = (ok: boolean, err: GatewayError | null): void => {
    if (ok) this.#completed++;
    else {
      this.#failed++;
      if (err?.code.endsWith('_TIMEOUT')) this.#timedOut++;
    }
  };

  #failEx(ex: Exchange, err: GatewayError): void {
    ex.fail(err);
  }

  /**
   * FIFO with one timer for the whole queue: every waiter has the same queueTimeout, so the
   * oldest live entry always expires first; the timer is armed for it alone (no timer per
   * request on the hot path). Aborted entries stay in place, marked done, and are skipped.
   */
  #enqueue(ex: Exchange): void {
    ex.queuedAt = performance.now();
    this.#queue.push(ex);
    this.#queued++;
    ex.onAbortQueued = this.#onAbortQueued;
    if (this.#queueTimer === null && this.options.queueTimeout > 0) this.#armQueueTimer();
  }

  #onAbortQueued = (): void => {
    this.#queued--;
  };

  /** The oldest waiter that is still waiting, skipping (and dropping) finished ones. */
  #head(): Exchange | undefined {
    while (this.#queueHead < this.#queue.length) {
      const ex = this.#queue[this.#queueHead]!;
      if (!ex.done) return ex;
      this.#advance();
    }
    return undefined;
  }

  #advance(): void {
    this.#queue[this.#queueHead] = undefined as unknown as Exchange;
    this.#queueHead++;
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #armQueueTimer(): void {
    const head = this.#head();
    if (head === undefined) {
      this.#queueTimer = null;
      return;
    }
    const wait = Math.max(0, head.queuedAt + this.options.queueTimeout - performance.now());
    this.#queueTimer = setTimeout(this.#onQueueTimer, Math.ceil(wait));
    this.#queueTimer.unref();
  }

  #onQueueTimer = (): void => {
    this.#queueTimer = null;
    const now = performance.now();
    for (let ex = this.#head(); ex !== undefined && ex.queuedAt + this.options.queueTimeout <= now; ex = this.#head()) {
      this.#advance();
      this.#queued--;
      ex.onAbortQueued = null;
      this.#failEx(ex, new PoolQueueTimeoutError(this.options.queueTimeout));
    }
    this.#armQueueTimer();
  };

  #dequeue(): Exchange | undefined {
    const ex = this.#head();
    if (ex === undefined) return undefined;
    this.#advance();
    this.#queued--;
    ex.onAbortQueued = null;
    return ex;
  }

  /** Serve waiters from idle sockets, and open sockets for the rest up to the limit. */
  #pump(): void {
    if (this.#probe === 'todo' && this.#queued > 0) {
      // The probe runs beside the first request instead of gating it (a busy responder may
      // take seconds to answer, and php-fpm 8.2 reports no limit anyway); until it answers,
      // one connection only, the least any responder takes.
      this.#probe = 'running';
      void this.probeLimits().then(() => {
        this.#probe = 'done';
        this.#trimIdle();
        this.#pump();
      });
    }
    const limit = this.#probe === 'done' ? this.#limit : 1;
    while (this.#queued > 0 && this.#idle.length > 0) {
      const ex = this.#dequeue();
      if (!ex) break;
      this.#run(this.#idle.pop()!, ex);
    }
    // Also while closing: the queue then holds only requests accepted before close().
    while (this.#queued > this.#connecting && this.#open.size + this.#connecting < limit) {
      this.#connectFor(null);
    }
  }

  /** Open a socket; it serves `ex` (a retry) or else the head of the queue. */
  #connectFor(ex: Exchange | null): void {
    this.#connecting++;
    const sink: ReadSink = { buffer: Buffer.allocUnsafe(READ_BUFFER_SIZE), onData: () => {} };
    connectSocket(this.address, this.options.connectTimeout, sink).then(
      (socket) => {
        this.#connecting--;
        if (this.#destroyError !== null) {
          // Destroyed while connecting (a retry, or a socket for a queue that is gone now).
          socket.destroy();
          if (ex !== null && !ex.done) this.#failEx(ex, this.#destroyError);
          this.#checkClosed();
          return;
        }
        this.#connects++;
        socket.setNoDelay(true);
        const conn = new UpstreamConnection(this.#nextId++, socket, this, this.#timeouts, sink);
        this.#open.add(conn);
        const target = ex !== null && !ex.done ? ex : this.#dequeue();
        if (target) this.#run(conn, target);
        else if (this.#closing) conn.destroy();
        else {
          this.#idle.push(conn);
          conn.parkIdle();
        }
        this.#checkClosed();
      },
      (err: GatewayError) => {
        this.#connecting--;
        this.#connectErrors++;
        // The request this connect was for gets the error, as nginx answers it with 502/504.
        const target = ex !== null && !ex.done ? ex : this.#dequeue();
        if (target) this.#failEx(target, err);
        this.#pump();
        this.#checkClosed();
      },
    );
  }

  #checkClosed(): void {
    if (!this.#closing || this.#open.size > 0 || this.#connecting > 0 || this.#queued > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }
}
