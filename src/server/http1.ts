/**
 * The HTTP/1.x engine: one node:http server that never listens itself. Every listener hands it
 * its accepted sockets (plain TCP, unix, or TLS connections that chose http/1.1 by ALPN), so
 * the same code answers `Expect: 100-continue`, malformed requests and pipelining on all of
 * them.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { BodySourceError } from '../errors.js';
import { lingerClose, lingerWhenDone } from '../http/linger.js';
import { declaredLength } from '../http/request-body.js';
import { sendError } from '../http/send-error.js';
import { type ServeContext, serveRequest } from './context.js';

/** Status for a request that node:http could not parse or that ran out of time. */
function clientErrorStatus(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, maxRequestLine: number): number {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': {
      // A request line longer than the whole head limit: the URI is what is too long, as nginx
      // says (when the packet holds the start of the request).
      const raw = err.rawPacket;
      if (raw !== undefined && /^[A-Za-z]+ /.test(raw.subarray(0, 16).toString('latin1'))) {
        const eol = raw.indexOf(10);
        if (eol < 0 || eol > maxRequestLine) return 414;
      }
      return 431;
    }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    default:
      return 400;
  }
}

/** True when `res` says `Connection: close` (after it, the connection ends). */
function closesConnection(res: ServerResponse): boolean {
  // `_last` is node:http's own "this response ends the connection" (set from a
  // `Connection: close` given to writeHead, which getHeader does not see).
  if (!res.shouldKeepAlive || (res as ServerResponse & { _last?: boolean })._last === true) return true;
  const c = res.getHeader('connection');
  return typeof c === 'string' && /\bclose\b/i.test(c);
}

/** The raw reply to a request node:http could not parse (there is no res to write it with). */
function errorReply(status: number): string {
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
}

/** Apply the timeouts of `ctx.settings` (again after a reload). */
export function applyHttp1Settings(server: http.Server, ctx: ServeContext): void {
  const s = ctx.settings;
  server.headersTimeout = s.headersTimeout;
  server.requestTimeout = s.requestTimeout;
  server.keepAliveTimeout = s.keepAliveTimeout;
  server.maxRequestsPerSocket = s.keepAliveRequests;
  // node:http serves an Upgrade request as a plain one unless someone listens for upgrades, so
  // the listener is there only while the app takes them (a reload may change that).
  const upgrade = ctx.app.upgrade;
  server.removeAllListeners('upgrade');
  if (upgrade) server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade.call(ctx.app, req, socket, head));
}

/** The HTTP/1 engine of `ctx`; feed it sockets with `server.emit('connection', socket)`. */
export function createHttp1Server(ctx: ServeContext): http.Server {
  const { headersTimeout, maxRequestHead } = ctx.settings;
  /** The response of the latest request read on each socket: a client error answers after it. */
  const lastResponse = new WeakMap<Socket, ServerResponse>();
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    lastResponse.set(req.socket, res);
    serveRequest(ctx, req, res);
  };
  const server = http.createServer(
    {
      requireHostHeader: false,
      // Per line and in sum the limits are checked in serveRequest; node applies this one to
      // the URI and to the header block each. (Fixed at creation: a reload keeps it.)
      maxHeaderSize: maxRequestHead,
      // node checks head and request deadlines on this interval (30 s by default, so a 60 s
      // header timeout fired after up to 90 s): check every second, or finer for short ones.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 10) || 1000)),
    },
    serve,
  );
  applyHttp1Settings(server, ctx);
  // No count limit (node drops headers past 2000 without a word): maxRequestHead bounds them.
  server.maxHeadersCount = 0;
  // node:http starts its connection tracking (the header and request deadlines, and
  // closeIdleConnections) on 'listening'; this server is handed sockets instead of listening.
  server.emit('listening');
  // Every close node:http decides after a response (Connection: close, HTTP/1.0 without a
  // length) lingers, as nginx's lingering_close: a client may have pipelined more, and closing
  // on unread bytes sends a RST that can wipe the answer out of its receive buffer (found by
  // the fuzz campaign: HEAD over HTTP/1.0 keep-alive, then more bytes: no answer arrived).
  server.on('connection', (socket: Socket) => lingerWhenDone(socket));
  // Expect: 100-continue — refuse an oversized body before the client sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const len = declaredLength(req);
    const maxBody = ctx.app.maxBodySize(req);
    if (typeof len === 'number' && maxBody > 0 && len > maxBody) {
      if (ctx.accessLog !== null && ctx.app.logs(req)) ctx.accessLog(req, res);
      res.shouldKeepAlive = false;
      sendError(res, 413);
      return;
    }
    // A pipelined request's response waits behind the earlier ones: its 100 Continue must too,
    // so it goes out when the response gets the socket, unless the final head is queued by then.
    const sendContinue = (): void => {
      // `headersSent` stays false while a queued response's head waits in node's buffer;
      // `_header` is set as soon as writeHead ran: then the 100 would land after the final head.
      const headQueued = (res as ServerResponse & { _header?: unknown })._header != null;
      if (!headQueued && !res.headersSent && !res.writableEnded && !res.destroyed) res.writeContinue();
    };
    if (res.socket) sendContinue();
    else res.once('socket', sendContinue);
    serve(req, res);
  });
  const answered = new WeakSet<Socket>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (answered.has(socket)) return;
    answered.add(socket);
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err, ctx.settings.maxRequestLine);
    const reply = (): void => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      lingerClose(socket, errorReply(status));
    };
    const pending = lastResponse.get(socket);
    const live = pending !== undefined && !pending.writableFinished && !pending.destroyed;
    if (pending !== undefined && closesConnection(pending)) {
      // The last answer already ends the connection: nothing may follow it. node:http closes
      // the socket once it is sent; bytes after it are read and dropped until then.
      if (!live) lingerClose(socket);
      return;
    }
    if (live && pending.req && !pending.req.complete) {
      // The bad bytes (or the client's close) are inside that request's body: it cannot
      // complete. Its handler is told through the body stream and answers 400 through its own
      // response, which node:http sends after the earlier ones, in order. Without a listener
      // (or when the client is gone) the connection is dropped.
      const req = pending.req;
      if (err.code !== 'HPE_INVALID_EOF_STATE' && socket.writable && !pending.headersSent && req.listenerCount('error') > 0) {
        req.emit('error', new BodySourceError(`malformed request body: ${err.code ?? err.message}`));
      } else {
        socket.destroy();
      }
      return;
    }
    // HTTP/1.1 answers in request order: requests read before the bad bytes are answered
    // first, then the error, then the connection closes.
    if (!live) {
      reply();
      return;
    }
    pending.once('finish', reply);
    pending.once('close', () => {
      if (!pending.writableFinished) socket.destroy();
    });
  });
  return server;
}
