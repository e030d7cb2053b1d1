/**
 * The request body as php-fpm needs it: with an exact CONTENT_LENGTH.
 *
 * Buffered (the default, nginx's `fastcgi_request_buffering on`): the whole body is read
 * before the request takes an upstream connection, in memory up to `bodyBufferSize`, then in
 * an anonymous temp file (see temp-file.ts), within `maxBodySize`. A slow uploader then costs
 * a socket and a few KiB, never a php-fpm worker. Every gap between body chunks is bounded by
 * `clientBodyTimeout` (408), except while the gateway itself holds the client back for the disk.
 *
 * Streamed (`requestBuffering: false`): a body with a Content-Length goes straight into
 * FCGI_STDIN as it arrives (the exchange bounds the gaps). A chunked body has no length up
 * front and php-fpm ignores a body without one, so it is always collected first.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { BodySourceError, BodyTimeoutError, BodyTooLargeError, type GatewayError } from '../errors.js';
import type { MemoryBudget } from './memory-budget.js';
import { hasUnframedBody } from './wire.js';
import { TempFile } from './temp-file.js';

/** A body ready for FCGI_STDIN. */
export interface PreparedBody {
  readonly body: Buffer | readonly Buffer[] | Readable | null;
  /** CONTENT_LENGTH; null when the request has no body at all. */
  readonly contentLength: number | null;
  /** True when `body` is the client's request stream itself (streamed, not buffered). */
  readonly streamed: boolean;
  /** Release the temp file, if any. Idempotent; safe before, during and after the upload. */
  cleanup(): void;
}

/** The limits prepareBody works within (a subset of the handler options). */
export interface BodyLimits {
  /** Largest body accepted, else 413 (0: no limit). */
  readonly maxBodySize: number;
  /** Bytes held in memory before the rest goes to a temp file. */
  readonly bodyBufferSize: number;
  /** Directory of the temp files. */
  readonly tmpDir: string;
  /** Longest gap between two body chunks while collecting, ms (0: none). */
  readonly clientBodyTimeout: number;
  /** Collect bodies with a Content-Length too (default behaviour), not only chunked ones. */
  readonly requestBuffering: boolean;
  /** Process-wide allowance for bytes held in memory; past it bodies go to temp files. */
  readonly budget: MemoryBudget;
}

const NOTHING = (): void => {};
const NO_BODY: PreparedBody = Object.freeze({ body: null, contentLength: null, streamed: false, cleanup: NOTHING });

/**
 * Written to the temp file but not yet on disk: above this the client is paused. These bytes
 * are reserved from the process budget too; a request that gets none may have one batch on
 * its way to disk at a time, so it always progresses, and many uploads spooling at once cost
 * about a batch each instead of this much. (The first batch also takes what was held in
 * memory before the file opened, up to bodyBufferSize; each limit may be passed by a chunk.)
 */
const MAX_PENDING_DISK = 1024 * 1024;
/** Chunks bound for the temp file are gathered into writes of about this size (one writev). */
const DISK_BATCH = 256 * 1024;

/** Content-Length of a request: a number, null when absent, or an error for a bad value. */
export function declaredLength(req: IncomingMessage): number | null | BodySourceError {
  const raw = req.headers['content-length'];
  if (raw === undefined) return null;
  if (!/^\d{1,15}$/.test(raw)) return new BodySourceError(`invalid Content-Length ${JSON.stringify(raw)}`);
  return Number(raw);
}

/**
 * Prepare the body. Returns at once for no body or a streamed one; otherwise resolves once
 * the whole body is held. Throws or rejects with BodyTooLargeError (413), BodyTimeoutError
 * (408) or BodySourceError (400: bad length, client gone, spool failure).
 */
export function prepareBody(req: IncomingMessage, limits: BodyLimits): PreparedBody | Promise<PreparedBody> {
  const len = declaredLength(req);
  if (len instanceof BodySourceError) throw len;
  if (len !== null) {
    if (limits.maxBodySize > 0 && len > limits.maxBodySize) throw new BodyTooLargeError(limits.maxBodySize);
    if (len === 0) return { body: null, contentLength: 0, streamed: false, cleanup: NOTHING };
    if (!limits.requestBuffering) return { body: req, contentLength: len, streamed: true, cleanup: NOTHING };
    return collect(req, limits, len);
  }
  if (!hasUnframedBody(req)) return NO_BODY;
  return collect(req, limits, null);
}

/** Read the whole body: memory first, then a temp file. `expected` is the Content-Length. */
function collect(req: IncomingMessage, limits: BodyLimits, expected: number | null): Promise<PreparedBody> {
  return new Promise((resolve, reject) => {
    const budget = limits.budget;
    /** In memory: the body so far (until it moves to a file), then the batch for the next write. */
    let chunks: Buffer[] = [];
    let batched = 0;
    /** Bytes of `chunks` reserved from the budget. */
    let held = 0;
    let total = 0;
    let file: TempFile | null = null;
    /** The temp file is being created; chunks wait in `chunks`, and past a batch the client is paused. */
    let opening = false;
    /** The budget refused the last batch: the client waits until it is on disk. */
    let starved = false;
    let ended = false;
    let settled = false;
    let timer: NodeJS.Timeout | null = null;

    const unhold = (): void => {
      budget.give(held);
      held = 0;
    };
    const release = (): void => {
      file?.close();
      file = null;
      chunks = [];
      unhold();
    };
    const fail = (err: GatewayError): void => {
      if (settled) return;
      settled = true;
      detach();
      release();
      reject(err);
    };
    const finish = (): void => {
      if (settled || !ended || opening) return;
      if (file === null) {
        settled = true;
        // Handed over as the list it arrived in: joining 1 MiB per request costs a copy and
        // garbage-collector time (measured: 11 % of the gateway's CPU on 1 MiB POSTs).
        const body = total === 0 ? null : chunks.length === 1 ? chunks[0]! : chunks;
        chunks = [];
        // The memory stays reserved until the request is done with the body.
        const reserved = held;
        held = 0;
        resolve({ body, contentLength: total, streamed: false, cleanup: once(() => budget.give(reserved)) });
        return;
      }
      if (batched > 0) flushBatch();
      if (file.pending > 0) return; // the last append's callback calls finish again
      if (file.error) {
        fail(new BodySourceError(`cannot spool request body: ${file.error.message}`, { cause: file.error }));
        return;
      }
      settled = true;
      const f = file;
      resolve({ body: total === 0 ? null : f.stream(), contentLength: total, streamed: false, cleanup: () => f.close() });
    };
    const afterAppend = (err: Error | null): void => {
      if (err) {
        fail(new BodySourceError(`cannot spool request body: ${err.message}`, { cause: err }));
        return;
      }
      resumeIfDrained();
      finish();
    };
    // clientBodyTimeout bounds the client's silence, not ours: while the gateway holds the
    // client back (the temp file opening, or the disk behind), the timer is off, and it starts
    // afresh on resume. nginx likewise does not read, so does not time, while it writes.
    const holdClient = (): void => {
      req.pause();
      if (timer !== null) clearTimeout(timer);
      timer = null;
    };
    const resumeIfDrained = (): void => {
      if (file === null || opening || ended || !req.isPaused() || file.pending > (starved ? 0 : MAX_PENDING_DISK / 2)) return;
      startTimer();
      req.resume();
    };
    const flushBatch = (): void => {
      const batch = chunks;
      const n = batched;
      chunks = [];
      batched = 0;
      const reserved = budget.take(n);
      starved = !reserved;
      file!.appendv(batch, (err) => {
        if (reserved) budget.give(n);
        afterAppend(err);
      });
      if (file!.pending > (starved ? 0 : MAX_PENDING_DISK)) holdClient();
    };
    const openFile = (): void => {
      opening = true;
      TempFile.create(limits.tmpDir).then(
        (f) => {
          opening = false;
          if (settled) {
            f.close();
            return;
          }
          file = f;
          // What was held in memory goes to disk in the first batch, which reserves it anew
          // (in one turn of the event loop: nobody else can take it in between).
          unhold();
          batched = chunks.reduce((n, c) => n + c.length, 0);
          if (batched > 0) flushBatch();
          resumeIfDrained();
          finish();
        },
        (err: Error) => {
          opening = false;
          fail(new BodySourceError(`cannot spool request body: ${err.message}`, { cause: err }));
        },
      );
    };

    const onData = (chunk: Buffer): void => {
      timer?.refresh();
      total += chunk.length;
      if (limits.maxBodySize > 0 && total > limits.maxBodySize) {
        fail(new BodyTooLargeError(limits.maxBodySize));
        return;
      }
      chunks.push(chunk);
      if (file !== null) {
        batched += chunk.length;
        if (batched >= DISK_BATCH) flushBatch();
        return;
      }
      if (opening) {
        // The open waits its turn in libuv's thread pool: past a batch, the rest waits in the socket.
        batched += chunk.length;
        if (batched >= DISK_BATCH) holdClient();
        return;
      }
      // Memory while the body fits this request's share and the process-wide budget; a
      // declared length over the share goes to disk from the first byte.
      if ((expected ?? total) <= limits.bodyBufferSize && budget.take(chunk.length)) {
        held += chunk.length;
        return;
      }
      openFile();
    };
    const onEnd = (): void => {
      ended = true;
      detach();
      if (expected !== null && total !== expected) {
        // node:http ends a Content-Length body after exactly that many bytes; anything else
        // means the stream was cut.
        fail(new BodySourceError(`request body ended after ${total} of ${expected} bytes`));
        return;
      }
      finish();
    };
    const onError = (e: Error): void => fail(new BodySourceError(`request body failed: ${e.message}`, { cause: e }));
    const onClose = (): void => {
      if (!ended) fail(new BodySourceError('client closed the connection before the body ended'));
    };
    const onTimeout = (): void => fail(new BodyTimeoutError(limits.clientBodyTimeout));
    const startTimer = (): void => {
      if (limits.clientBodyTimeout <= 0 || timer !== null || settled) return;
      timer = setTimeout(onTimeout, limits.clientBodyTimeout);
      timer.unref();
    };
    const detach = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('close', onClose);
    };
    startTimer();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    if (req.destroyed && !req.readableEnded) onClose();
  });
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
