/** The gateway's own error answers: a short text body that reveals nothing internal. */
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { endAfterAnswer, isHttp2 } from './wire.js';

/** A short error response that reveals nothing internal. */
export function sendError(res: ServerResponse, status: number, extraHeaders: Record<string, string> = {}): void {
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
  const headers: Record<string, string | number> = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...extraHeaders,
  };
  if (status === 503 && !('Retry-After' in extraHeaders)) headers['Retry-After'] = '1';
  if (status === 413 || status === 400 || status === 414 || status === 431 || status === 408) {
    // HTTP/1: the connection closes after it, lingering, as a pipelining client may still be
    // sending and a reset would eat this answer (and the earlier ones) in its receive buffer.
    if (!isHttp2(res.req)) headers['Connection'] = 'close';
    endAfterAnswer(res.req, res);
  }
  try {
    res.writeHead(status, headers);
    res.end(res.req?.method === 'HEAD' ? undefined : body);
  } catch {
    res.destroy();
  }
}
