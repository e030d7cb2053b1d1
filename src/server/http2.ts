/**
 * The HTTP/2 engine: a node:http2 server (compatibility API) that never listens itself; TLS
 * listeners hand it the connections that chose `h2` by ALPN. Requests go through the same
 * `serveRequest` as HTTP/1; http/wire.ts holds what differs per request.
 *
 * Per connection, as nginx's http2 module: an idle connection (no open stream) is closed after
 * keepAliveTimeout with a GOAWAY; after keepAliveRequests streams a GOAWAY lets the open ones
 * finish and refuses new ones, so the client moves to a new connection.
 */
import http2, { type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { declaredLength } from '../http/request-body.js';
import { sendError } from '../http/send-error.js';
import { type ServeContext, serveRequest } from './context.js';

/** The engine, and the sessions it holds (for a graceful shutdown). */
export interface Http2Engine {
  readonly server: http2.Http2Server;
  readonly sessions: ReadonlySet<ServerHttp2Session>;
}

/** Streams one client may have open at once (nginx http2_max_concurrent_streams 128). */
const MAX_CONCURRENT_STREAMS = 128;

export function createHttp2Engine(ctx: ServeContext): Http2Engine {
  const asHttp1 = (req: Http2ServerRequest, res: Http2ServerResponse): [IncomingMessage, ServerResponse] => [req as unknown as IncomingMessage, res as unknown as ServerResponse];
  const server = http2.createServer({ settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS } }, (req, res) => serveRequest(ctx, ...asHttp1(req, res)));
  server.on('checkContinue', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const [r, s] = asHttp1(req, res);
    const len = declaredLength(r);
    const maxBody = ctx.app.maxBodySize(r);
    if (typeof len === 'number' && maxBody > 0 && len > maxBody) {
      if (ctx.accessLog !== null && ctx.app.logs(r)) ctx.accessLog(r, s);
      sendError(s, 413);
      return;
    }
    res.writeContinue();
    serveRequest(ctx, r, s);
  });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // A protocol error or a vanished peer: the session is destroyed; nothing to answer.
    session.on('error', () => session.destroy());
    let streams = 0;
    let open = 0;
    const idle = (): void => {
      // Inactivity with streams open is their business (send and body timeouts).
      if (open === 0) session.close();
    };
    session.setTimeout(ctx.settings.keepAliveTimeout, idle);
    session.on('stream', (stream) => {
      open++;
      stream.once('close', () => open--);
      const max = ctx.settings.keepAliveRequests;
      if (max > 0 && ++streams >= max) session.close();
    });
  });
  // Stream errors (a reset in the middle of a response) end that stream only.
  server.on('sessionError', () => {});
  return { server, sessions };
}
