/**
 * Relays one FastCGI response to a node:http response: the CGI head parsed incrementally,
 * then the body streamed with backpressure both ways (a slow client pauses the upstream
 * socket; `flush()` output reaches the client as it arrives). One `onDone` per exchange.
 *
 * The relay's states (`#state`), driven by STDOUT chunks, END_REQUEST and errors:
 *
 *   head ──head parsed──┬─▶ discard    the handler serves the answer (sendfile); the body is dropped
 *                       ├─▶ redirect   a local-redirect candidate (Location only): is there a body?
 *                       │      ├─ a body byte ──▶ streaming (an ordinary redirect after all)
 *                       │      └─ END_REQUEST ──▶ done (re-dispatched, or the redirect sent)
 *                       └─▶ held       head and body kept until the end of this socket read
 *                              ├─ END_REQUEST in the same read ──▶ done (one write, Content-Length)
 *                              └─ microtask ──▶ streaming (head sent, chunked or as declared)
 *   streaming ──END_REQUEST──▶ done (the writer sends what it holds, then ends)
 *   head ──END_REQUEST──▶ done (502: no complete head)
 *   any ──error──▶ done (5xx if nothing was sent, else the connection is cut)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { type CgiHead, CgiHeadParser } from '../cgi/response-head.js';
import { CgiHeadInvalidError, type GatewayError, statusFor, UpstreamShortBodyError, UpstreamUnavailableError } from '../errors.js';
import type { EndRequest } from '../protocol/decoder.js';
import type { ExchangeController, ExchangeHandler } from '../upstream/exchange.js';
import type { LoggerLike } from './logger.js';
import { type SpillOptions, SpillingWriter } from './response-spill.js';
import { sendError } from './send-error.js';
import { writeHeadFlat } from './wire.js';

/** `#held` outside the held state: shared, never pushed to (the held state gets its own array). */
const NOTHING_HELD: Buffer[] = [];

/** See the diagram in the module comment. */
type RelayState = 'head' | 'held' | 'redirect' | 'streaming' | 'discard' | 'done';

/** Hop-by-hop and framing headers we never copy from the backend: we frame the response. */
const DROP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authenticate']);

/** Decisions the handler takes once the head is known. */
export interface ResponseHooks {
  /**
   * The head names a file for the static path (X-Accel-Redirect / X-Sendfile). Return true
   * when the handler serves it: the upstream body is then discarded.
   */
  sendfile?(head: CgiHead): boolean;
  /** An RFC 3875 §6.2.2 local redirect with an empty body: return true when re-dispatched. */
  localRedirect?(location: string): boolean;
  /** Called once when the exchange is finished, whatever the outcome. */
  onDone?(err: GatewayError | null): void;
}

/** Upstream timing and size, for the access log. */
export interface UpstreamTiming {
  /** ms from dispatch to a connection being assigned (queue wait + connect); -1 if never. */
  connect: number;
  /** ms from dispatch to the first response byte; -1 if none. */
  firstByte: number;
  /** Body bytes relayed to the client. */
  bytes: number;
  /** The upstream server that answered ('' if none was reached). */
  server: string;
}

/** Limits of one relay. */
export interface RelayOptions {
  /** Largest CGI head, else 502. */
  readonly maxHeadSize: number;
  /** STDERR bytes logged; the rest is counted only. */
  readonly maxStderrLog: number;
  /** How a client slower than the upstream is absorbed (see response-spill.ts). */
  readonly spill: SpillOptions;
}

/** See the module comment. */
export class ResponseRelay implements ExchangeHandler {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #log: LoggerLike;
  readonly #parser: CgiHeadParser;
  readonly #hooks: ResponseHooks;
  readonly #maxStderrLog: number;
  readonly #spill: SpillOptions;
  /** Created with the head: the body goes through it (spill instead of pinning the upstream). */
  #writer: SpillingWriter | null = null;
  readonly #started = performance.now();
  #controller: ExchangeController | null = null;
  #state: RelayState = 'head';
  /** Set when the head is parsed (every state after `head`). */
  #head: CgiHead | null = null;
  /** In `held`: the body chunks of this read, not yet sent. */
  #held: Buffer[] = NOTHING_HELD;
  #declaredLength = -1;
  #sent = 0;
  #stderrLogged = 0;
  #stderrBuf = '';
  readonly timing: UpstreamTiming = { connect: -1, firstByte: -1, bytes: 0, server: '' };

  constructor(req: IncomingMessage, res: ServerResponse, log: LoggerLike, options: RelayOptions, hooks: ResponseHooks = {}) {
    this.#req = req;
    this.#res = res;
    this.#log = log;
    this.#parser = new CgiHeadParser({ maxHeadSize: options.maxHeadSize });
    this.#hooks = hooks;
    this.#maxStderrLog = options.maxStderrLog;
    this.#spill = options.spill;
  }

  onStart(controller: ExchangeController): void {
    this.#controller = controller;
    this.timing.connect = performance.now() - this.#started;
    this.timing.server = controller.server;
  }

  onStdout(chunk: Buffer): boolean {
    if (this.timing.firstByte < 0) this.timing.firstByte = performance.now() - this.#started;
    switch (this.#state) {
      case 'head':
        return this.#onHeadChunk(chunk);
      case 'held':
        this.#held.push(chunk);
        return true;
      case 'redirect':
        return this.#release(chunk);
      case 'streaming':
        return this.#write(chunk);
      default:
        return true; // discard, done
    }
  }

  #onHeadChunk(chunk: Buffer): boolean {
    const r = this.#parser.push(chunk); // throws CgiHead* errors → exchange fails → onError
    if (r === null) return true;
    this.#head = r.head;
    if (this.#hooks.sendfile?.(r.head)) {
      this.#state = 'discard';
      return true;
    }
    if (r.head.localRedirect && this.#hooks.localRedirect) {
      this.#state = 'redirect';
      return r.body.length > 0 ? this.#release(r.body) : true;
    }
    // Hold the head until the end of this socket read: when END_REQUEST is in the same read
    // (most small responses), the answer goes out with a Content-Length in one write instead
    // of chunked; otherwise a microtask sends what arrived and the body streams from there.
    this.#state = 'held';
    this.#held = r.body.length > 0 ? [r.body] : [];
    queueMicrotask(this.#flushHeld);
    return true;
  }

  /** `held` → `streaming`: the read ended without END_REQUEST; send the head and what came. */
  #flushHeld = (): void => {
    if (this.#state !== 'held') return;
    const held = this.#held;
    this.#held = NOTHING_HELD;
    this.#state = 'streaming';
    try {
      this.#writeHead(this.#head!, -1);
    } catch (err) {
      // Settle first (502, logged), then stop the upstream: the abort's own onError is then
      // ignored instead of turning the answer into a silent 499.
      this.#fail(new CgiHeadInvalidError(`header rejected by node:http: ${(err as Error).message}`));
      this.#controller?.abort(err);
      return;
    }
    let ok = true;
    for (const chunk of held) ok = this.#write(chunk) && ok;
    if (!ok) this.#controller?.pause();
  };

  onStderr(chunk: Buffer): void {
    if (this.timing.firstByte < 0) this.timing.firstByte = performance.now() - this.#started;
    if (this.#stderrLogged >= this.#maxStderrLog) return;
    const text = chunk.toString('utf8', 0, Math.min(chunk.length, this.#maxStderrLog - this.#stderrLogged));
    this.#stderrLogged += chunk.length;
    // Log whole lines; keep a partial line until the next chunk or the end.
    const lines = (this.#stderrBuf + text).split('\n');
    this.#stderrBuf = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') this.#log.warn({ stderr: line }, 'upstream stderr');
  }

  onEnd(_end: EndRequest): void {
    this.#flushStderr();
    const state = this.#state;
    this.#state = 'done';
    switch (state) {
      case 'head':
        try {
          this.#parser.end(); // throws: the response ended inside its head
        } catch (err) {
          this.#fail(err as GatewayError);
        }
        return;
      case 'discard':
        this.#hooks.onDone?.(null);
        return;
      case 'redirect':
        // Location with an absolute path, nothing else, and no body: redirect internally.
        if (!this.#hooks.localRedirect?.(this.#head!.location!)) {
          this.#writeHead(this.#head!, -1);
          this.#endStream();
        }
        this.#hooks.onDone?.(null);
        return;
      case 'held':
        this.#endWhole();
        return;
      case 'streaming':
        this.#endStream();
        this.#hooks.onDone?.(null);
        return;
      default:
        return;
    }
  }

  /** The whole response arrived in one read: one write, framed with a Content-Length. */
  #endWhole(): void {
    const res = this.#res;
    const held = this.#held;
    this.#held = NOTHING_HELD;
    const body = held.length === 1 ? held[0]! : Buffer.concat(held);
    try {
      this.#writeHead(this.#head!, this.#req.method === 'HEAD' ? -1 : body.length);
    } catch (err) {
      this.#fail(new CgiHeadInvalidError(`header rejected by node:http: ${(err as Error).message}`));
      return;
    }
    if (this.#declaredLength >= 0 && body.length > this.#declaredLength) {
      this.#sent = this.#declaredLength;
      res.end(body.subarray(0, this.#declaredLength));
    } else {
      this.#sent = body.length;
      if (this.#declaredLength > body.length && this.#req.method !== 'HEAD' && hasBody(res.statusCode)) {
        const err = new UpstreamShortBodyError(this.#declaredLength, body.length);
        this.#log.error({ err, code: err.code, declared: err.declared, sent: err.sent }, err.message);
        // What came goes out first, then the connection closes: the client sees a body that
        // stops short of its Content-Length, never one that looks whole.
        res.write(body, () => res.destroy());
        this.timing.bytes = this.#sent;
        this.#hooks.onDone?.(null);
        return;
      }
      res.end(body.length > 0 ? body : undefined);
    }
    this.timing.bytes = this.#sent;
    this.#hooks.onDone?.(null);
  }

  /** End a streamed response; a body short of its declared length is cut, never ended. */
  #endStream(): void {
    const res = this.#res;
    const short = this.#declaredLength >= 0 && this.#sent < this.#declaredLength && this.#req.method !== 'HEAD' && hasBody(res.statusCode);
    if (short) {
      // The backend promised more than it sent: do not let the client read a short body as whole.
      const err = new UpstreamShortBodyError(this.#declaredLength, this.#sent);
      this.#log.error({ err, code: err.code, declared: err.declared, sent: err.sent }, err.message);
    }
    // The upstream is done (its connection goes back to the pool now); the writer sends what
    // it still holds and ends (or, for a short body, drops) the response.
    if (this.#writer) this.#writer.end(short);
    else if (short) res.destroy();
    else res.end();
  }

  onError(err: GatewayError): void {
    // Once done, the response is already settled (and onDone called): nothing more to do.
    if (this.#state !== 'done') this.#fail(err);
  }

  #fail(err: GatewayError): void {
    this.#state = 'done';
    this.#held = NOTHING_HELD;
    this.#flushStderr();
    const res = this.#res;
    if (err.code !== 'GW_ERR_UPSTREAM_ABORTED') this.#log.error({ err, code: err.code }, err.message);
    this.#writer?.destroy();
    if (res.headersSent) {
      res.destroy();
    } else if (!res.destroyed && !res.writableEnded) {
      const retry = err instanceof UpstreamUnavailableError ? { 'Retry-After': String(Math.ceil(err.retryAfterMs / 1000)) } : {};
      sendError(res, statusFor(err), retry);
    }
    this.#hooks.onDone?.(err);
  }

  /** Send the head; `bodyLength` ≥ 0 adds a Content-Length when the backend gave none. */
  #writeHead(head: CgiHead, bodyLength: number): void {
    const res = this.#res;
    const flat: string[] = [];
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (DROP.has(lower)) continue;
      if (lower === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) continue; // nginx ignores an invalid upstream length too
        this.#declaredLength = Number(value);
      }
      flat.push(name, value);
    }
    const status = head.status;
    if (bodyLength >= 0 && this.#declaredLength < 0 && hasBody(status)) flat.push('Content-Length', String(bodyLength));
    writeHeadFlat(this.#req, res, status, head.reason || STATUS_CODES[status] || '', flat);
  }

  readonly #writerEvents = {
    resume: (): void => this.#controller?.resume(),
    failed: (err: GatewayError): void => {
      this.#log.warn({ code: err.code, err }, err.message);
      // The client is being dropped: stop the upstream too if it is still sending.
      this.#controller?.abort(err);
    },
  };

  /** `redirect` → `streaming`: a body byte arrived; it is an ordinary redirect after all. */
  #release(chunk: Buffer): boolean {
    this.#state = 'streaming';
    this.#writeHead(this.#head!, -1);
    return this.#write(chunk);
  }

  #write(chunk: Buffer): boolean {
    let data = chunk;
    if (this.#declaredLength >= 0 && this.#sent + data.length > this.#declaredLength) {
      // More than Content-Length: cut it (nginx does the same) so the framing stays correct.
      data = data.subarray(0, Math.max(0, this.#declaredLength - this.#sent));
      if (data.length === 0) return true;
    }
    this.#sent += data.length;
    this.timing.bytes = this.#sent;
    // Made on the first streamed chunk: a response that arrives whole never needs one.
    this.#writer ??= new SpillingWriter(this.#res, this.#spill, this.#writerEvents);
    return this.#writer.write(data);
  }

  #flushStderr(): void {
    if (this.#stderrBuf.trim() !== '') this.#log.warn({ stderr: this.#stderrBuf }, 'upstream stderr');
    this.#stderrBuf = '';
  }
}

function hasBody(status: number): boolean {
  return !(status === 204 || status === 304 || (status >= 100 && status < 200));
}
