/**
 * Answers that need no upstream: a file below a root through `send` (ETag, Last-Modified, 304,
 * Range/206, HEAD), and a bare status that does not read the request body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import send from 'send';
import { lingerWhenDone } from './linger.js';
import { sendError } from './respond.js';
import { encodePath } from './router.js';

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
    res.shouldKeepAlive = false;
    lingerWhenDone(req.socket);
    req.resume();
  }
  sendError(res, status, headers);
}
