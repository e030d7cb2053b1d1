/**
 * One FastCGI request from dispatch to its single finish: the caller's handler, the request
 * body (a Buffer or a Readable, pumped with backpressure), the replay buffer that makes a
 * retry on a fresh socket safe, and the controller the caller uses to pause, resume or abort.
 *
 *   queued ──▶ running ──▶ done          (exactly one of handler.onEnd / handler.onError)
 *      ▲          │
 *      └─ retry ──┘  only when a reused socket failed before any response byte and every
 *                    body byte sent so far is still held for replay
 */
import type { Readable } from 'node:stream';
import { AbortedError, BodySourceError, BodyTimeoutError, type GatewayError, UpstreamClosedError } from '../errors.js';
import { RecordType, Role } from '../protocol/constants.js';
import type { EndRequest } from '../protocol/decoder.js';
import { encodeRequestHead, encodeStreamChunk, encodeStreamEnd, frameStreamChunk } from '../protocol/encoder.js';
import type { ParamInput } from '../protocol/params.js';

/** What to send. */
export interface FastCgiRequest {
  /** CGI params, in order. Strings are sent as UTF-8; pass Buffers for raw bytes. */
  readonly params: ParamInput;
  /**
   * Request body for FCGI_STDIN: a Buffer or string (sent at once), a list of Buffers (sent
   * at once, in order, without joining them first), a Readable (streamed with backpressure),
   * or nothing. php-fpm reads exactly CONTENT_LENGTH bytes: set that param.
   */
  readonly body?: Buffer | readonly Buffer[] | string | Readable | null | undefined;
  /** FastCGI role (default RESPONDER). */
  readonly role?: Role;
  /** Aborts the request: queued → removed; running → socket closed. */
  readonly signal?: AbortSignal | undefined;
  /**
   * For a Readable body: longest wait for its next chunk while the upstream is ready for it,
   * ms (0 or absent: none) → GW_ERR_BODY_TIMEOUT. Time spent waiting for the upstream to
   * drain, or in the pool queue, does not count.
   */
  readonly bodyTimeout?: number | undefined;
}

/** Receives the response. Exactly one of onEnd / onError is called, once. */
export interface ExchangeHandler {
  /** Called when a connection is assigned (after any wait in the pool queue). */
  onStart?(controller: ExchangeController): void;
  /**
   * FCGI_STDOUT bytes (yours to keep). Large ones may lie in a block of the upstream block pool
   * (blocks.ts): the gateway's spill writer gives those back once written; any other handler
   * just keeps them, and they are collected like any Buffer. Return false to pause until
   * `resume()`.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler may return nothing (go on) or false (pause)
  onStdout(chunk: Buffer): boolean | void;
  /** FCGI_STDERR bytes (yours to keep). */
  onStderr?(chunk: Buffer): void;
  /** END_REQUEST with REQUEST_COMPLETE. */
  onEnd(end: EndRequest): void;
  /** Any failure, as a GatewayError (see docs/errors.md). */
  onError(err: GatewayError): void;
}

/** Handle on a dispatched request. */
export interface ExchangeController {
  /** Abort: a queued request leaves the queue, a running one closes its connection. */
  abort(reason?: unknown): void;
  /** Stop reading from the upstream socket (backpressure toward php-fpm). */
  pause(): void;
  /** Undo pause(). */
  resume(): void;
  /** Id of the pool connection serving the request (0 while queued). */
  readonly connectionId: number;
  /** True when the serving connection had served earlier requests. */
  readonly reused: boolean;
  /** Address of the upstream server serving the request (a group's member). */
  readonly server: string;
}

/** The socket side an exchange writes to; implemented by UpstreamConnection. */
export interface ExchangeTransport {
  readonly id: number;
  readonly reused: boolean;
  /** Write request bytes; false means wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean;
  /** Write several buffers in one corked batch; same return value as write(). */
  writev(chunks: readonly Buffer[]): boolean;
  /** Register the callback for the next drain. */
  onceDrain(fn: () => void): void;
  /** The body is fully written (STDIN end record sent). */
  bodyFinished(): void;
  pause(): void;
  resume(): void;
  /** Close the socket and fail nothing (the exchange is already finishing). */
  destroy(): void;
}

const STATE_QUEUED = 0;
const STATE_RUNNING = 1;
const STATE_DONE = 2;

/** See the module comment. Created by the pool; callers see it as an ExchangeController. */
export class Exchange implements ExchangeController {
  readonly handler: ExchangeHandler;
  readonly head: Buffer;
  readonly #body: Buffer | Readable | null;
  /** A body given as a list of Buffers (then #body is null). */
  readonly #parts: readonly Buffer[] | null;
  readonly #retryBufferSize: number;
  #state = STATE_QUEUED;
  #transport: ExchangeTransport | null = null;
  /** Any record arrived for this request: from here on, never retry. */
  responseStarted = false;
  /** Number of connections tried. */
  attempts = 0;
  /** Stream body chunks sent so far, kept while a retry is still possible. */
  #replay: Buffer[] | null = [];
  #replayBytes = 0;
  #streamAttached = false;
  #listeners: { data(d: Buffer | string): void; end(): void; error(e: Error): void; close(): void } | null = null;
  #streamEnded = false;
  #bodyComplete = false;
  #waitingDrain = false;
  #paused = false;
  /** When the exchange entered the pool's wait queue (performance.now()). */
  queuedAt = 0;
  /** Called once when the exchange settles (pool counters). */
  onSettled: ((ok: boolean, err: GatewayError | null) => void) | null = null;
  /** Set by the pool: removes a queued exchange from its queue. */
  onAbortQueued: ((ex: Exchange) => void) | null = null;
  readonly #signal: AbortSignal | undefined;
  #onSignal: (() => void) | null = null;
  readonly #bodyTimeout: number;
  #bodyTimer: NodeJS.Timeout | null = null;

  constructor(request: FastCgiRequest, handler: ExchangeHandler, keepConn: boolean, retryBufferSize: number) {
    this.handler = handler;
    const body = request.body;
    if (Array.isArray(body)) {
      this.#parts = (body as readonly Buffer[]).filter((b) => b.length > 0);
      if (this.#parts.some((b) => !Buffer.isBuffer(b))) throw new BodySourceError('body list must hold Buffers only');
      this.#body = null;
    } else {
      this.#parts = null;
      this.#body = typeof body === 'string' ? Buffer.from(body, 'utf8') : ((body as Buffer | Readable | null | undefined) ?? null);
    }
    if (this.#body !== null && !Buffer.isBuffer(this.#body) && typeof (this.#body as Readable).on !== 'function') {
      throw new BodySourceError('body must be a Buffer, a list of Buffers, a string or a Readable stream');
    }
    const noBody = (this.#body === null && (this.#parts === null || this.#parts.length === 0)) || (Buffer.isBuffer(this.#body) && this.#body.length === 0);
    // Encoded once here so that a param too large for php-fpm fails before taking a socket.
    this.head = encodeRequestHead(1, request.role ?? Role.Responder, keepConn, request.params, noBody);
    this.#retryBufferSize = retryBufferSize;
    this.#bodyTimeout = request.bodyTimeout ?? 0;
    this.#signal = request.signal;
    if (this.#signal) {
      if (this.#signal.aborted) {
        this.#state = STATE_QUEUED;
      } else {
        this.#onSignal = () => this.abort(this.#signal?.reason);
        this.#signal.addEventListener('abort', this.#onSignal, { once: true });
      }
    }
  }

  get done(): boolean {
    return this.#state === STATE_DONE;
  }

  get running(): boolean {
    return this.#state === STATE_RUNNING;
  }

  /** True when the signal was already aborted at dispatch. */
  get abortedAtStart(): boolean {
    return this.#signal?.aborted === true;
  }

  get connectionId(): number {
    return this.#transport?.id ?? 0;
  }

  /** Set by the pool: the address of the server this exchange goes to. */
  server = '';

  get reused(): boolean {
    return this.#transport?.reused ?? false;
  }

  /** True when the whole body has been written (STDIN end record sent). */
  get bodyComplete(): boolean {
    return this.#bodyComplete;
  }

  /** A retry on a fresh socket would resend exactly what was sent: no response yet, body held. */
  get replayable(): boolean {
    return !this.responseStarted && this.#replay !== null;
  }

  /** Mark that a response record arrived: the request can no longer be retried. */
  markResponse(): void {
    if (!this.responseStarted) {
      this.responseStarted = true;
      this.#replay = null;
    }
  }

  /** Start (or restart, on retry) the request on a transport. */
  start(transport: ExchangeTransport, keepConn: boolean): void {
    this.#state = STATE_RUNNING;
    this.#transport = transport;
    this.attempts++;
    this.head[10] = keepConn ? 1 : 0; // BEGIN_REQUEST flags byte (§5.1)
    this.handler.onStart?.(this);
    if (this.#state !== STATE_RUNNING || this.#transport !== transport) return; // aborted in onStart
    const body = this.#body;
    const parts = this.#parts;
    if (parts !== null && parts.length > 0) {
      const out = [this.head];
      for (const p of parts) out.push(...frameStdin(p));
      out.push(STDIN_END);
      this.#finishBody(transport, transport.writev(out));
    } else if (body === null || (Buffer.isBuffer(body) && body.length === 0)) {
      this.#finishBody(transport, transport.write(this.head));
    } else if (Buffer.isBuffer(body)) {
      this.#finishBody(transport, transport.writev([this.head, ...frameStdin(body), STDIN_END]));
    } else {
      if (this.attempts > 1 && this.#replay === null) {
        // Cannot happen while the stream is paused between attempts; refuse rather than corrupt.
        this.fail(new UpstreamClosedError(true));
        transport.destroy();
        return;
      }
      const parts = [this.head];
      if (this.#replay) for (const chunk of this.#replay) parts.push(...frameStdin(chunk));
      if (this.#streamEnded) parts.push(STDIN_END);
      if (!this.#streamEnded && (body.destroyed || body.readableAborted)) {
        // The source died while this request waited for a connection (a client that hung up
        // behind a pipelined request): its 'close' is gone, so waiting would never end.
        this.fail(new BodySourceError('request body stream closed before its end'));
        return;
      }
      const ok = transport.writev(parts);
      if (this.#streamEnded) {
        this.#finishBody(transport, ok);
      } else {
        this.#attachStream(body);
        if (!ok) this.#waitDrain(transport);
        else this.#awaitBody(body);
      }
    }
  }

  /**
   * The STDIN end record has been written; `flushed` is what the write returned. When the
   * socket buffer is still full, the body is finished only on 'drain', so that a responder
   * that stops reading meets writeTimeout (not readTimeout) whatever the body type.
   */
  #finishBody(transport: ExchangeTransport, flushed: boolean): void {
    const finish = (): void => {
      this.#bodyComplete = true;
      transport.bodyFinished();
    };
    if (flushed) {
      finish();
      return;
    }
    transport.onceDrain(() => {
      if (this.#state === STATE_RUNNING && this.#transport === transport) finish();
    });
  }

  #attachStream(body: Readable): void {
    if (this.#streamAttached) return;
    this.#streamAttached = true;
    // Bound here, not as class fields: most requests have no stream body and need none.
    const l = {
      data: (d: Buffer | string) => this.#onBodyData(d),
      end: () => this.#onBodyEnd(),
      error: (e: Error) => this.#onBodyError(e),
      close: () => this.#onBodyClose(),
    };
    this.#listeners = l;
    body.on('data', l.data);
    body.once('end', l.end);
    body.once('error', l.error);
    body.once('close', l.close);
  }

  /** Resume the body source and bound the wait for its next chunk. */
  #awaitBody(body: Readable): void {
    body.resume();
    if (this.#bodyTimeout <= 0 || this.#streamEnded) return;
    if (this.#bodyTimer === null) {
      this.#bodyTimer = setTimeout(this.#onBodyTimeout, this.#bodyTimeout);
      this.#bodyTimer.unref();
    } else {
      this.#bodyTimer.refresh();
    }
  }

  #stopBodyTimer(): void {
    if (this.#bodyTimer !== null) clearTimeout(this.#bodyTimer);
    this.#bodyTimer = null;
  }

  #onBodyTimeout = (): void => {
    this.#bodyTimer = null;
    if (this.#state !== STATE_RUNNING) return;
    const transport = this.#transport;
    this.fail(new BodyTimeoutError(this.#bodyTimeout));
    transport?.destroy();
  };

  #detachStream(): void {
    const body = this.#body;
    if (!this.#streamAttached || body === null || Buffer.isBuffer(body)) return;
    this.#streamAttached = false;
    const l = this.#listeners!;
    body.removeListener('data', l.data);
    body.removeListener('end', l.end);
    body.removeListener('error', l.error);
    body.removeListener('close', l.close);
    this.#listeners = null;
  }

  #onBodyData(data: Buffer | string): void {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (chunk.length === 0) return;
    if (this.#replay) {
      this.#replayBytes += chunk.length;
      if (this.#replayBytes > this.#retryBufferSize) this.#replay = null;
      else this.#replay.push(chunk);
    }
    const transport = this.#transport;
    if (this.#state !== STATE_RUNNING || transport === null) {
      // Between attempts (reconnecting for a retry): hold the stream; the chunk is in #replay
      // or, if the buffer overflowed, the retry is no longer possible and fail() follows.
      (this.#body as Readable).pause();
      return;
    }
    if (!transport.writev(frameStdin(chunk))) this.#waitDrain(transport);
    else this.#bodyTimer?.refresh();
  }


  #waitDrain(transport: ExchangeTransport): void {
    const body = this.#body as Readable;
    body.pause();
    // Waiting on the upstream now (its writeTimeout applies), not on the client.
    this.#stopBodyTimer();
    if (this.#waitingDrain) return;
    this.#waitingDrain = true;
    transport.onceDrain(() => {
      this.#waitingDrain = false;
      if (this.#state === STATE_RUNNING && this.#transport === transport) this.#awaitBody(body);
    });
  }

  #onBodyEnd(): void {
    this.#streamEnded = true;
    this.#stopBodyTimer();
    const transport = this.#transport;
    if (this.#state === STATE_RUNNING && transport !== null) this.#finishBody(transport, transport.write(STDIN_END));
  }


  #onBodyError(err: Error): void {
    this.fail(new BodySourceError(`request body stream failed: ${err.message}`, { cause: err }));
  }


  #onBodyClose(): void {
    if (!this.#streamEnded && this.#state !== STATE_DONE) {
      this.fail(new BodySourceError('request body stream closed before its end'));
    }
  }


  /** Detach from a failed transport so the pool can retry on another. */
  detachForRetry(): void {
    this.#transport = null;
    this.#state = STATE_QUEUED;
    this.#waitingDrain = false;
    this.#stopBodyTimer();
    const body = this.#body;
    if (body !== null && !Buffer.isBuffer(body)) body.pause();
  }

  pause(): void {
    if (this.#state !== STATE_RUNNING || this.#paused) return;
    this.#paused = true;
    this.#transport?.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#state === STATE_RUNNING) this.#transport?.resume();
  }

  get paused(): boolean {
    return this.#paused;
  }

  abort(reason?: unknown): void {
    if (this.#state === STATE_DONE) return;
    const err = new AbortedError(reason);
    if (this.#state === STATE_QUEUED) {
      this.onAbortQueued?.(this);
      this.fail(err);
      return;
    }
    const transport = this.#transport;
    this.fail(err);
    transport?.destroy();
  }

  /** Finish successfully. */
  succeed(end: EndRequest): void {
    if (!this.#settle(true)) return;
    this.handler.onEnd(end);
  }

  /** Finish with an error. */
  fail(err: GatewayError): void {
    if (!this.#settle(false, err)) return;
    this.handler.onError(err);
  }

  #settle(ok: boolean, err: GatewayError | null = null): boolean {
    if (this.#state === STATE_DONE) return false;
    this.#state = STATE_DONE;
    this.#replay = null;
    this.#stopBodyTimer();
    this.#detachStream();
    if (this.#onSignal && this.#signal) this.#signal.removeEventListener('abort', this.#onSignal);
    this.#onSignal = null;
    this.onSettled?.(ok, err);
    return true;
  }
}

const STDIN_END = encodeStreamEnd(RecordType.Stdin, 1);

/** Small chunks are copied into one framed buffer; large ones are framed without copying. */
function frameStdin(chunk: Buffer): Buffer[] {
  return chunk.length <= 16384 ? [encodeStreamChunk(RecordType.Stdin, 1, chunk)] : frameStreamChunk(RecordType.Stdin, 1, chunk);
}
