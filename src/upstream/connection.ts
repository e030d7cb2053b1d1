/**
 * One upstream socket serving one exchange at a time (php-fpm does not multiplex).
 *
 *   (connector) ──▶ idle ──run()──▶ busy ──END_REQUEST, clean──▶ idle
 *                    │               │
 *                    │               └─ error, timeout, abort, unclean end ──▶ closed
 *                    └─ idle timeout, peer close, unexpected bytes ──────────▶ closed
 *
 * Reuse only when clean (nginx's rule): END_REQUEST with REQUEST_COMPLETE, no bytes after it,
 * the body fully written, KEEP_CONN requested, no timer fired, not aborted. Any doubt: close.
 *
 * One timer per connection, re-armed only when its kind changes and refreshed otherwise:
 * idle (waiting in the pool), write (a write is waiting for 'drain'), read (body sent, waiting
 * for the next record; suspended while the consumer has paused us).
 *
 * Pause is exact: once onStdout returns false (or pause() is called), no record reaches the
 * handler until resume(). Records already read in the same socket chunk are copied into a
 * small backlog (at most the rest of that chunk, as the socket is paused) and delivered first
 * on resume(); END_REQUEST behind them waits for them.
 */
import type net from 'node:net';
import {
  GatewayError,
  HandlerError,
  ProtocolError,
  ReadTimeoutError,
  UpstreamRejectedError,
  WriteTimeoutError,
} from '../errors.js';
import { ProtocolStatus, RECORD_TYPE_NAMES, RecordType } from '../protocol/constants.js';
import { type EndRequest, type FcgiRecord, RecordDecoder, parseEndRequest } from '../protocol/decoder.js';
import { blocks } from './blocks.js';
import type { ReadSink } from './connector.js';
import type { Exchange, ExchangeTransport } from './exchange.js';

/** Timeouts in ms; 0 disables. */
export interface ConnectionTimeouts {
  readonly idleTimeout: number;
  readonly readTimeout: number;
  readonly writeTimeout: number;
}

/** The pool side of a connection. */
export interface ConnectionOwner {
  /** The exchange ended cleanly and the socket may serve another. */
  released(conn: UpstreamConnection): void;
  /**
   * The socket is gone. `exchange` is the request it was serving, unfinished, or null; the
   * owner decides between retrying it and failing it (`cause`: the socket error, if any).
   */
  closed(conn: UpstreamConnection, exchange: Exchange | null, cause: unknown): void;
}

const TIMER_NONE = 0;
const TIMER_IDLE = 1;
const TIMER_READ = 2;
const TIMER_WRITE = 3;

/** See the module comment. */
export class UpstreamConnection implements ExchangeTransport {
  readonly id: number;
  /** Requests started on this socket, the current one included. */
  requests = 0;
  readonly #socket: net.Socket;
  readonly #owner: ConnectionOwner;
  readonly #timeouts: ConnectionTimeouts;
  readonly #decoder = new RecordDecoder({ requestId: 1, alloc: (n) => blocks.take(n) });
  #exchange: Exchange | null = null;
  #closed = false;
  #keepConn = false;
  /** END_REQUEST seen for the current exchange. */
  #end: EndRequest | null = null;
  /** A record (or garbage) followed END_REQUEST: never reuse. */
  #dirty = false;
  #paused = false;
  /** STDOUT / STDERR records decoded while paused, in arrival order. */
  #backlog: Array<{ readonly type: number; readonly content: Buffer }> = [];
  /** resume() is delivering the backlog (a nested resume() from a handler must not recurse). */
  #draining = false;
  #bodyDone = false;
  #timer: NodeJS.Timeout | null = null;
  #timerKind = TIMER_NONE;
  #drainWaiters: Array<() => void> = [];
  #lastSocketError: Error | null = null;

  /** The fixed buffer reads land in (null: 'data' events with fresh buffers). */
  readonly #readBuffer: ArrayBufferLike | null;

  /**
   * `sink`: the ReadSink the socket was connected with; its reads come here, and record
   * contents that are views into its buffer are copied before a handler sees them.
   */
  constructor(id: number, socket: net.Socket, owner: ConnectionOwner, timeouts: ConnectionTimeouts, sink?: ReadSink) {
    this.id = id;
    this.#socket = socket;
    this.#owner = owner;
    this.#timeouts = timeouts;
    if (sink) {
      this.#readBuffer = sink.buffer.buffer;
      sink.onData = this.#onData;
    } else {
      this.#readBuffer = null;
      socket.on('data', this.#onData);
    }
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
  }

  /** True when this socket served an earlier request before the current one. */
  get reused(): boolean {
    return this.requests > 1;
  }

  get busy(): boolean {
    return this.#exchange !== null;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Put the connection in the idle state (pool calls this when it parks the socket). */
  parkIdle(): void {
    this.#arm(TIMER_IDLE);
  }

  /** Serve `exchange`. `keepConn` sets FCGI_KEEP_CONN: false means php-fpm closes after it. */
  run(exchange: Exchange, keepConn: boolean): void {
    this.#exchange = exchange;
    this.#keepConn = keepConn;
    this.#end = null;
    this.#bodyDone = false;
    this.#paused = false;
    this.#backlog = [];
    this.requests++;
    this.#arm(TIMER_NONE);
    exchange.start(this, keepConn);
  }

  // ── ExchangeTransport ──────────────────────────────────────────────────────────────────

  write(chunk: Buffer): boolean {
    if (this.#closed) return true;
    return this.#socket.write(chunk);
  }

  writev(chunks: readonly Buffer[]): boolean {
    if (this.#closed) return true;
    if (chunks.length === 1) return this.#socket.write(chunks[0]!);
    this.#socket.cork();
    let ok = true;
    for (const c of chunks) ok = this.#socket.write(c);
    this.#socket.uncork();
    return ok;
  }

  onceDrain(fn: () => void): void {
    this.#drainWaiters.push(fn);
    this.#arm(TIMER_WRITE);
  }

  bodyFinished(): void {
    this.#bodyDone = true;
    if (this.#timerKind !== TIMER_WRITE && !this.#paused) this.#arm(TIMER_READ);
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    if (this.#closed) return;
    this.#socket.pause();
    if (this.#timerKind === TIMER_READ) this.#arm(TIMER_NONE);
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#draining) return; // called from a handler during the backlog loop, which carries on
    const ex = this.#exchange;
    if (ex !== null && this.#backlog.length > 0 && !this.#drainBacklog(ex)) return;
    if (!this.#closed) this.#socket.resume();
    if (ex !== null && this.#exchange === ex && this.#end !== null) {
      // END_REQUEST arrived behind the backlog and waited for it.
      this.#complete(ex, this.#end);
      return;
    }
    if (this.#bodyDone && this.#timerKind === TIMER_NONE && this.#exchange) this.#arm(TIMER_READ);
  }

  destroy(): void {
    this.#close(undefined);
  }

  // ── socket events ──────────────────────────────────────────────────────────────────────

  #onData = (chunk: Buffer): void => {
    const ex = this.#exchange;
    if (ex === null) {
      // Bytes on an idle socket: the previous exchange was not clean after all.
      this.#close(undefined);
      return;
    }
    if (this.#timerKind === TIMER_READ) this.#timer?.refresh();
    try {
      this.#decoder.push(chunk, this.#onRecord);
    } catch (err) {
      if (this.#end !== null && this.#exchange === ex) {
        // Garbage after END_REQUEST: the response is complete, the socket is not reusable.
        this.#dirty = true;
      } else if (this.#exchange === ex) {
        this.#fail(err instanceof GatewayError ? err : new HandlerError(err));
        return;
      } else {
        return;
      }
    }
    if (this.#end !== null && this.#exchange === ex && this.#backlog.length === 0) this.#complete(ex, this.#end);
  };

  #onRecord = (record: FcgiRecord): void => {
    const ex = this.#exchange;
    if (ex === null || ex.done) return; // aborted by a handler earlier in this chunk
    if (this.#end !== null) {
      this.#dirty = true;
      return;
    }
    switch (record.type) {
      case RecordType.Stdout:
      case RecordType.Stderr:
        ex.markResponse();
        if (record.content.length === 0) return;
        {
          // Handlers own what they get; a view into the read buffer is overwritten by the next read.
          const content = record.content.buffer === this.#readBuffer ? blocks.copy(record.content) : record.content;
          if (this.#paused || this.#backlog.length > 0) {
            // Paused earlier in this chunk: hold the record until resume().
            this.#backlog.push({ type: record.type, content });
            return;
          }
          this.#deliver(ex, record.type, content);
        }
        return;
      case RecordType.EndRequest:
        ex.markResponse();
        this.#end = parseEndRequest(record.content);
        return;
      default:
        throw new ProtocolError(`unexpected ${RECORD_TYPE_NAMES[record.type] ?? record.type} record from the responder`, this.#decoder.offset);
    }
  };

  /** Hand one STDOUT / STDERR record to the handler; false from onStdout pauses. */
  #deliver(ex: Exchange, type: number, content: Buffer): void {
    if (type === RecordType.Stdout) {
      if (ex.handler.onStdout(content) === false) ex.pause();
    } else {
      ex.handler.onStderr?.(content);
    }
  }

  /** Deliver held records until the consumer pauses again; true when all went out. */
  #drainBacklog(ex: Exchange): boolean {
    this.#draining = true;
    try {
      while (this.#backlog.length > 0) {
        if (this.#paused || this.#exchange !== ex || ex.done) return false;
        const rec = this.#backlog.shift()!;
        this.#deliver(ex, rec.type, rec.content);
      }
    } catch (err) {
      if (this.#exchange === ex) this.#fail(err instanceof GatewayError ? err : new HandlerError(err));
      return false;
    } finally {
      this.#draining = false;
    }
    return !this.#paused && this.#exchange === ex && !ex.done;
  }

  #onDrain = (): void => {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    this.#drainWaiters = [];
    if (this.#exchange) this.#arm(this.#bodyDone && !this.#paused ? TIMER_READ : TIMER_NONE);
    for (const fn of waiters) fn();
  };

  #onSocketError = (err: Error): void => {
    this.#lastSocketError = err;
    this.#close(err);
  };

  #onSocketClose = (): void => {
    this.#close(this.#lastSocketError ?? undefined);
  };

  #onTimeout = (): void => {
    const kind = this.#timerKind;
    this.#timerKind = TIMER_NONE;
    this.#timer = null;
    if (kind === TIMER_IDLE) this.#close(undefined);
    else if (kind === TIMER_READ) this.#fail(new ReadTimeoutError(this.#timeouts.readTimeout));
    else if (kind === TIMER_WRITE) this.#fail(new WriteTimeoutError(this.#timeouts.writeTimeout));
  };

  // ── transitions ────────────────────────────────────────────────────────────────────────

  #complete(ex: Exchange, end: EndRequest): void {
    this.#exchange = null;
    this.#end = null;
    if (end.protocolStatus !== ProtocolStatus.RequestComplete) {
      this.#close(undefined);
      ex.fail(rejection(end.protocolStatus, this.#decoder.offset));
      return;
    }
    const clean = !this.#dirty && this.#keepConn && this.#bodyDone && ex.bodyComplete && this.#decoder.atBoundary && !this.#closed;
    if (clean) {
      if (this.#paused) {
        this.#paused = false;
        this.#socket.resume();
      }
      this.#drainWaiters = [];
      this.#arm(TIMER_NONE);
      this.#owner.released(this);
    } else {
      this.#close(undefined);
    }
    ex.succeed(end);
  }

  /** Fail the current exchange with `err` and close. */
  #fail(err: GatewayError): void {
    const ex = this.#exchange;
    this.#exchange = null;
    this.#close(undefined);
    ex?.fail(err);
  }

  #close(cause: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#arm(TIMER_NONE);
    this.#socket.destroy();
    this.#drainWaiters = [];
    const ex = this.#exchange;
    if (ex !== null && !ex.done && this.#end !== null && this.#backlog.length > 0) {
      // END_REQUEST is in and only waits behind records held for a paused consumer (php-fpm
      // closes right after it without KEEP_CONN or after pm.max_requests): the response is
      // complete. Free the slot now; resume() delivers the rest and finishes the exchange.
      this.#owner.closed(this, null, cause);
      return;
    }
    this.#backlog = [];
    this.#exchange = null;
    this.#owner.closed(this, ex !== null && !ex.done ? ex : null, cause);
  }

  #arm(kind: number): void {
    if (kind === this.#timerKind && this.#timer !== null) {
      this.#timer.refresh();
      return;
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerKind = kind;
    const ms =
      kind === TIMER_IDLE ? this.#timeouts.idleTimeout
      : kind === TIMER_READ ? this.#timeouts.readTimeout
      : kind === TIMER_WRITE ? this.#timeouts.writeTimeout
      : 0;
    if (ms > 0) {
      this.#timer = setTimeout(this.#onTimeout, ms);
      this.#timer.unref();
    }
  }
}

function rejection(status: number, offset: number): GatewayError {
  if (status === ProtocolStatus.CantMpxConn) return new UpstreamRejectedError('GW_ERR_UPSTREAM_CANT_MPX_CONN', status);
  if (status === ProtocolStatus.Overloaded) return new UpstreamRejectedError('GW_ERR_UPSTREAM_OVERLOADED', status);
  if (status === ProtocolStatus.UnknownRole) return new UpstreamRejectedError('GW_ERR_UPSTREAM_UNKNOWN_ROLE', status);
  return new ProtocolError(`unknown END_REQUEST protocolStatus ${status}`, offset);
}

