/**
 * The request body as php-fpm needs it: with an exact CONTENT_LENGTH. A body with a
 * Content-Length streams straight through (backpressure is the exchange's job). A chunked body
 * has no length up front and php-fpm ignores a body without one, so it is collected first: in
 * memory up to `bodyBufferSize`, then in a temp file (mode 0600) that `cleanup()` always removes.
 */
import { createReadStream, createWriteStream, rmSync, type WriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { BodySourceError, BodyTooLargeError } from '../errors.js';

/** A body ready for FCGI_STDIN. */
export interface PreparedBody {
  readonly body: Buffer | Readable | null;
  /** CONTENT_LENGTH; null when the request has no body at all. */
  readonly contentLength: number | null;
  /** Remove any temp file. Idempotent. */
  cleanup(): void;
}

const NOTHING = (): void => {};

/** Content-Length of a request: a number, null when absent, or an error for a bad value. */
export function declaredLength(req: IncomingMessage): number | null | BodySourceError {
  const raw = req.headers['content-length'];
  if (raw === undefined) return null;
  if (!/^\d{1,15}$/.test(raw)) return new BodySourceError(`invalid Content-Length ${JSON.stringify(raw)}`);
  return Number(raw);
}

/**
 * Prepare the body. Resolves at once for bodies with a length (or none); for chunked ones,
 * once the whole body is held. Rejects with BodyTooLargeError (413) or BodySourceError (400).
 */
export function prepareBody(
  req: IncomingMessage,
  limits: { readonly maxBodySize: number; readonly bodyBufferSize: number; readonly tmpDir: string },
): PreparedBody | Promise<PreparedBody> {
  const len = declaredLength(req);
  if (len instanceof BodySourceError) throw len;
  if (len !== null) {
    if (limits.maxBodySize > 0 && len > limits.maxBodySize) throw new BodyTooLargeError(limits.maxBodySize);
    return { body: len === 0 ? null : req, contentLength: len, cleanup: NOTHING };
  }
  if (req.headers['transfer-encoding'] === undefined) return { body: null, contentLength: null, cleanup: NOTHING };
  return spool(req, limits);
}

function spool(
  req: IncomingMessage,
  limits: { readonly maxBodySize: number; readonly bodyBufferSize: number; readonly tmpDir: string },
): Promise<PreparedBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let file: WriteStream | null = null;
    let filePath: string | null = null;
    let settled = false;
    const cleanup = (): void => {
      if (filePath) rmSync(filePath, { force: true });
      filePath = null;
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      detach();
      file?.destroy();
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (limits.maxBodySize > 0 && total > limits.maxBodySize) {
        fail(new BodyTooLargeError(limits.maxBodySize));
        return;
      }
      if (file === null && total <= limits.bodyBufferSize) {
        chunks.push(chunk);
        return;
      }
      if (file === null) {
        filePath = join(limits.tmpDir, `fcgi-body-${process.pid}-${randomBytes(8).toString('hex')}`);
        file = createWriteStream(filePath, { mode: 0o600 });
        file.on('error', (e) => fail(new BodySourceError(`cannot spool request body: ${e.message}`, { cause: e })));
        for (const c of chunks.splice(0)) file.write(c);
      }
      if (!file.write(chunk)) {
        req.pause();
        file.once('drain', () => req.resume());
      }
    };
    const onEnd = (): void => {
      if (settled) return;
      detach();
      if (file === null) {
        settled = true;
        resolve({ body: total === 0 ? null : Buffer.concat(chunks, total), contentLength: total, cleanup: NOTHING });
        return;
      }
      const path = filePath!;
      file.end(() => {
        if (settled) return;
        settled = true;
        resolve({ body: createReadStream(path), contentLength: total, cleanup });
      });
    };
    const onError = (e: Error): void => fail(new BodySourceError(`request body failed: ${e.message}`, { cause: e }));
    const onClose = (): void => {
      if (!req.complete) fail(new BodySourceError('client closed the connection before the body ended'));
    };
    const detach = (): void => {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
