/**
 * What differs between HTTP/1.x and HTTP/2 for a request, in one place, so that the handlers
 * stay version-neutral. node:http2's compatibility API gives HTTP/2 streams the shape of
 * node:http's req/res, with these differences:
 *
 * - There is no connection of the request's own: `req.socket` is a proxy whose `on`, `once`
 *   and `destroy` act on the stream, and no header may speak for the connection (`Connection`,
 *   `Keep-Alive`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`: writeHead throws).
 * - No reason phrase: the status line is gone.
 * - The Host is `:authority` (RFC 9113 §8.3.1), and the pseudo-headers sit in `rawHeaders`.
 * - A body needs no framing header: it is there unless the HEADERS frame ended the stream.
 * - Refusing the rest of a body is an RST_STREAM with NO_ERROR after the answer (§8.1), not
 *   a lingering close.
 */
import { constants as h2, Http2ServerResponse, type Http2ServerRequest } from 'node:http2';
import { type IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { lingerWhenDone } from './linger.js';

/** True for a request that arrived on an HTTP/2 stream. */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

/** Headers that belong to one HTTP/1 connection, forbidden in HTTP/2 (RFC 9113 §8.2.2). */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** The request's Host: the Host header, else HTTP/2's `:authority`. */
export function requestHost(req: IncomingMessage): string | undefined {
  return req.headers.host ?? (req.headers[':authority'] as string | undefined);
}

const kCgiHeaders = Symbol('fastcgi-gateway.cgiHeaders');

/**
 * `rawHeaders` as HTTP/1 has them, for the CGI mapping and the proxy: HTTP/2's pseudo-headers
 * dropped and `:authority` given as Host when the client sent none (nginx does the same, so
 * PHP sees HTTP_HOST either way).
 */
export function http1RawHeaders(req: IncomingMessage): readonly string[] {
  if (!isHttp2(req)) return req.rawHeaders;
  const r = req as IncomingMessage & { [kCgiHeaders]?: string[] };
  const cached = r[kCgiHeaders];
  if (cached !== undefined) return cached;
  const raw = req.rawHeaders;
  const out: string[] = [];
  let authority: string | null = null;
  let host = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = raw[i + 1]!;
      continue;
    }
    if (name.length === 4 && name.toLowerCase() === 'host') host = true;
    out.push(name, raw[i + 1]!);
  }
  if (!host && authority !== null) out.unshift('host', authority);
  r[kCgiHeaders] = out;
  return out;
}

/**
 * True when the request has a body without Content-Length: chunked in HTTP/1.1; in HTTP/2,
 * any stream that the HEADERS frame did not end.
 */
export function hasUnframedBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return isHttp2(req) && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders && !req.complete;
}

/**
 * Write a response head from a flat [name, value, …] list: with the reason phrase on HTTP/1;
 * without it, and without connection headers, on HTTP/2.
 */
export function writeHeadFlat(req: IncomingMessage, res: ServerResponse, status: number, reason: string, flat: string[]): void {
  if (!isHttp2(req)) {
    res.writeHead(status, reason, flat);
    return;
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) if (!CONNECTION_HEADERS.has(flat[i]!.toLowerCase())) kept.push(flat[i]!, flat[i + 1]!);
  res.writeHead(status, kept);
}

/** Drop connection headers from a header object before it goes out on HTTP/2. */
export function withoutConnectionHeaders<T extends Record<string, unknown>>(req: IncomingMessage, headers: T): T {
  if (!isHttp2(req)) return headers;
  const out = { ...headers };
  for (const k of Object.keys(out)) if (CONNECTION_HEADERS.has(k.toLowerCase())) delete out[k];
  return out;
}

/**
 * This answer is the last thing read of the request: the rest of its body (and on HTTP/1, any
 * request pipelined behind it) is not wanted. HTTP/1 closes the connection after the answer,
 * lingering so that the client reads it; HTTP/2 resets only the stream, with NO_ERROR, once
 * the answer is sent.
 */
export function endAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (isHttp2(req)) {
    const stream = (req as unknown as Http2ServerRequest).stream;
    // The stream's own 'finish' (the answer handed to the session): the response's 'finish'
    // waits for the stream to close, which an unfinished upload never lets happen.
    stream.once('finish', () => {
      if (!req.complete && !stream.destroyed) stream.close(h2.NGHTTP2_NO_ERROR);
    });
    return;
  }
  res.shouldKeepAlive = false;
  if (res.socket) lingerWhenDone(res.socket as Socket);
  else res.once('socket', (s: Socket) => lingerWhenDone(s));
}

/**
 * The response was ended by the gateway and flushed. On HTTP/2 `writableFinished` alone turns
 * true when the client resets the stream (RST_STREAM), so `writableEnded` is checked as well.
 */
export function responseCompleted(res: ServerResponse): boolean {
  return res.writableEnded && res.writableFinished;
}

/**
 * True when a successful callback of `res.write(chunk, cb)` on a live response means node is
 * done with the chunk's bytes, so that they may be reused:
 * - HTTP/1 on a socket of node's own: the write completes once the kernel has the bytes.
 * - HTTP/2 over TLS: the session encrypts (copies) each frame as it goes to the socket.
 * Not on cleartext HTTP/2, where a frame cut by flow control may still sit in a socket write
 * when its stream is destroyed and the callback runs; not through a wrapper that replaced
 * `write` (a compressing middleware may keep a chunk past its callback); not on an arbitrary
 * Duplex emitted as a connection.
 */
export function writeCallbackFreesChunk(res: ServerResponse): boolean {
  if (Object.hasOwn(res, 'write')) return false;
  if (res.write === (Http2ServerResponse.prototype.write as unknown)) {
    return (res as unknown as Http2ServerResponse).stream?.session?.encrypted === true;
  }
  return res.write === ServerResponse.prototype.write && res.req?.socket instanceof Socket;
}

/** The response (HTTP/1) or its stream (HTTP/2) was destroyed. */
export function responseDestroyed(res: ServerResponse): boolean {
  const stream = (res as unknown as { stream?: { destroyed: boolean } }).stream;
  return stream !== undefined ? stream.destroyed : res.destroyed;
}
