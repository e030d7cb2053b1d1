/**
 * One FastCGI request on a fresh connection, for the operator commands (`status`, `ping`,
 * `run`) and any other one-off caller: a single-connection pool destroyed as soon as
 * the answer is complete (a socket kept open would pin a php-fpm worker between `--watch`
 * snapshots), the CGI head parsed from STDOUT over any number of records, the body either
 * buffered or written to a stream with backpressure, and one deadline for the whole exchange.
 *
 *   dispatch ─▶ STDOUT records ─▶ CgiHeadParser ─▶ onHead(head) ─▶ body ─▶ buffer | Writable
 *            └▶ STDERR records ─▶ buffer (capped) and/or Writable
 *   deadline ─▶ abort ─▶ ConnectTimeoutError (no socket yet) or ExchangeTimeoutError
 *   signal   ─▶ abort ─▶ AbortedError        output stream error ─▶ OutputError
 */
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { type CgiHead, CgiHeadParser } from '../cgi/response-head.js';
import { AbortedError, ConnectTimeoutError, ExchangeTimeoutError, type GatewayError, OutputError } from '../errors.js';
import type { ParamInput } from '../protocol/params.js';
import type { UpstreamAddress } from '../upstream/address.js';
import type { ExchangeController } from '../upstream/exchange.js';
import { ConnectionPool } from '../upstream/pool.js';

/** Default connect timeout when the command has no deadline (ms). */
export const DEFAULT_CONNECT_TIMEOUT = 5000;

/** Bytes of STDERR kept in the result (the rest is only streamed, when a stream is given). */
export const STDERR_CAPTURE_LIMIT = 64 * 1024;

/** What to send and where the answer goes. */
export interface OneShotRequest {
  readonly address: UpstreamAddress;
  readonly params: ParamInput;
  /** FCGI_STDIN: bytes, a stream (CONTENT_LENGTH must match), or nothing. */
  readonly body?: Buffer | Readable | null;
  /** Deadline for the whole exchange in ms, connect included; 0 = none. */
  readonly timeoutMs: number;
  /** Write the body here (with backpressure) instead of buffering it. */
  readonly bodyOut?: Writable;
  /** Write STDERR here as it arrives (it is also captured up to STDERR_CAPTURE_LIMIT). */
  readonly stderrOut?: { write(chunk: Buffer): unknown };
  /** Called once with the parsed head, before the first body byte reaches `bodyOut`. */
  readonly onHead?: (head: CgiHead) => void;
  /** Aborts the exchange (e.g. Ctrl-C in --watch); rejects with an AbortedError. */
  readonly signal?: AbortSignal;
}

/** The answer. */
export interface OneShotResult {
  readonly head: CgiHead;
  /** The body, when no `bodyOut` was given (else empty). */
  readonly body: Buffer;
  /** The first STDERR_CAPTURE_LIMIT bytes of FCGI_STDERR. */
  readonly stderr: Buffer;
  readonly appStatus: number;
  /** Wall time from dispatch to END_REQUEST, in ms. */
  readonly elapsedMs: number;
}

/**
 * Send one request and collect the answer. Rejects with a GatewayError: connect, protocol,
 * bad CGI head, the deadline (ConnectTimeoutError, ExchangeTimeoutError), the signal
 * (AbortedError) or the output stream (OutputError).
 */
export async function exchangeOnce(req: OneShotRequest): Promise<OneShotResult> {
  const timeoutMs = req.timeoutMs;
  const pool = new ConnectionPool(req.address, {
    connections: 1,
    // No FCGI_KEEP_CONN: php-fpm closes after END_REQUEST, so no worker stays pinned (the pool
    // is destroyed below as well).
    keepAlive: false,
    probeLimits: false,
    queueTimeout: 0,
    connectTimeout: timeoutMs > 0 ? timeoutMs : DEFAULT_CONNECT_TIMEOUT,
    // The deadline bounds the whole exchange; without one, a script may stay silent as long
    // as php-fpm lets it (request_terminate_timeout).
    readTimeout: 0,
    writeTimeout: 0,
  });
  try {
    return await new Promise<OneShotResult>((resolve, reject) => {
      const started = performance.now();
      const parser = new CgiHeadParser();
      const bodyParts: Buffer[] = [];
      const errParts: Buffer[] = [];
      let errBytes = 0;
      let head: CgiHead | null = null;
      let controller: ExchangeController | null = null;
      let connected = false;
      /** Why we aborted the exchange ourselves: replaces the AbortedError the pool reports. */
      let failure: Error | null = null;
      let settled = false;
      let waitingDrain = false;

      const ac = new AbortController();
      const abortWith = (err: Error): void => {
        if (failure === null) failure = err;
        ac.abort(err);
      };
      let timer: NodeJS.Timeout | null = null;
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          abortWith(connected ? new ExchangeTimeoutError(req.address.text, timeoutMs) : new ConnectTimeoutError(req.address.text, timeoutMs));
        }, timeoutMs);
      }
      const onOuterAbort = (): void => abortWith(new AbortedError(req.signal?.reason));
      if (req.signal) {
        if (req.signal.aborted) onOuterAbort();
        else req.signal.addEventListener('abort', onOuterAbort, { once: true });
      }
      const out = req.bodyOut;
      const onOutError = (err: Error): void => abortWith(new OutputError(err));
      out?.on('error', onOutError);

      const settle = (err: Error | null, result?: OneShotResult): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        req.signal?.removeEventListener('abort', onOuterAbort);
        out?.removeListener('error', onOutError);
        if (err) reject(err);
        else resolve(result as OneShotResult);
      };

      /** Body bytes: to the stream (false → pause the upstream until 'drain') or the buffer. */
      const emitBody = (chunk: Buffer): boolean => {
        if (chunk.length === 0) return true;
        // The chunk is ours to keep (the connection copied it out of its read buffer).
        if (!out) {
          bodyParts.push(chunk);
          return true;
        }
        if (out.write(chunk)) return true;
        // Records already decoded from the same socket chunk still arrive after a pause:
        // register one 'drain' listener per pause, not one per record.
        if (!waitingDrain) {
          waitingDrain = true;
          out.once('drain', () => {
            waitingDrain = false;
            controller?.resume();
          });
        }
        return false;
      };

      try {
        pool.dispatch(
          { params: req.params, body: req.body ?? null, signal: ac.signal },
          {
            onStart(c) {
              connected = true;
              controller = c;
            },
            onStdout(chunk) {
              if (failure) return true;
              if (head !== null) return emitBody(chunk);
              let parsed: ReturnType<CgiHeadParser['push']>;
              try {
                parsed = parser.push(chunk);
              } catch (err) {
                abortWith(err as Error);
                return true;
              }
              if (parsed === null) return true;
              head = parsed.head;
              try {
                req.onHead?.(head);
              } catch (err) {
                abortWith(err as Error);
                return true;
              }
              return emitBody(parsed.body);
            },
            onStderr(chunk) {
              if (errBytes < STDERR_CAPTURE_LIMIT) {
                const keep = chunk.subarray(0, STDERR_CAPTURE_LIMIT - errBytes);
                errParts.push(Buffer.from(keep));
                errBytes += keep.length;
              }
              req.stderrOut?.write(Buffer.from(chunk));
            },
            onEnd(end) {
              if (failure) {
                settle(failure);
                return;
              }
              try {
                parser.end();
              } catch (err) {
                settle(err as Error);
                return;
              }
              settle(null, {
                head: head as CgiHead,
                body: Buffer.concat(bodyParts),
                stderr: Buffer.concat(errParts),
                appStatus: end.appStatus,
                elapsedMs: performance.now() - started,
              });
            },
            onError(err: GatewayError) {
              settle(failure ?? err);
            },
          },
        );
      } catch (err) {
        settle(err instanceof Error ? err : new Error(String(err)));
      }
    });
  } finally {
    pool.destroy();
  }
}
