/**
 * Answers that need no upstream: a file below a root through `send` (ETag, Last-Modified, 304,
 * Range/206, HEAD), and a bare status that does not read the request body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type SendModule from 'send';
import { endAfterAnswer } from './wire.js';
import { sendError } from './send-error.js';
import { encodePath, type Route } from './router.js';
import type { SmallFileCache } from './small-files.js';

// `send` (12 MiB of RSS with its dependencies) is loaded on the first file the small-file path
// does not answer: most sites never need it.
const requireCjs = createRequire(import.meta.url);
let sendModule: typeof SendModule | null = null;
const send = ((...args: Parameters<typeof SendModule>) => {
  if (sendModule === null) sendModule = requireCjs('send') as typeof SendModule;
  return sendModule(...args);
}) as typeof SendModule;

/** Serve a file below `root` with `send` (ETag, Last-Modified, 304, Range/206, HEAD). */
export function serveFile(req: IncomingMessage, res: ServerResponse, root: string, path: string, next?: (err?: unknown) => void): void {
  const stream = send(req, encodePath(path), { root, dotfiles: 'allow', index: false });
  stream.on('error', (err: { status?: number; statusCode?: number }) => {
    const status = err.status ?? err.statusCode ?? 500;
    if (status === 404 && next) next();
    else if (!res.headersSent) sendError(res, status);
    else res.destroy();
  });
  stream.pipe(res);
}

/**
 * Answer without reading the body: the socket is closed after the response when a body is
 * still unread, so a large upload does not keep flowing for nothing.
 */
export function drainAndReply(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (!req.complete && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)) {
    endAfterAnswer(req, res);
    req.resume();
  }
  sendError(res, status, headers);
}

/**
 * Answer a route that needs no upstream (everything but `script`): a file (from the small-file
 * cache when it fits), a slash redirect, 403, or 404 (`not-found` goes to `next` when there is one).
 */
export function answerLocally(req: IncomingMessage, res: ServerResponse, r: Exclude<Route, { kind: 'script' }>, root: string, small: SmallFileCache, next?: (err?: unknown) => void): void {
  switch (r.kind) {
    case 'static':
      if (!small.serve(req, res, root + r.path)) serveFile(req, res, root, r.path, next);
      return;
    case 'redirect':
      res.writeHead(301, { Location: r.location, 'Content-Length': 0 });
      res.end();
      return;
    case 'forbidden':
      drainAndReply(req, res, 403);
      return;
    case 'hidden':
      drainAndReply(req, res, 404);
      return;
    case 'not-found':
      if (next) next();
      else drainAndReply(req, res, 404);
      return;
  }
}
