/**
 * The gateway as a server: node:http + the FastCGI handler + the access log, listening on a
 * TCP address or a unix socket, with `Expect: 100-continue` checked before the body is
 * invited, and a graceful close (stop accepting, finish running requests, drain the pool).
 */
import { chmodSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { BodySourceError, ConfigError } from './errors.js';
import type * as z from 'zod';
import { parseOrThrow, stripUndefined } from './config/issues.js';
import { type GatewayConfig, serverSchema } from './config/schema.js';
import type { GatewayHandler } from './http/gateway-handler.js';
import { createFastCgiHandler, type FastCgiHandler } from './http/handler.js';
import { lingerClose, lingerWhenDone } from './http/linger.js';
import { declaredLength } from './http/request-body.js';
import { sendError } from './http/respond.js';
import { type AccessLogFormat, createAccessLog, createLogger } from './logging/access-log.js';
import { VERSION } from './version.js';

/**
 * Options of `startGatewayServer`: the handler's, plus where and how to listen (`serverShape` in
 * config/schema.ts), plus a logger to use instead of one built from `accessLog`.
 */
export type GatewayServerOptions = z.input<typeof serverSchema> & { readonly logger?: Logger };

/** A running server. */
export interface GatewayServer<H = FastCgiHandler> {
  /** The first listener's URL (`http://127.0.0.1:8080` or `unix:/path`). */
  readonly url: string;
  /** Every listener's URL, in config order. */
  readonly urls: readonly string[];
  /** The first listener's server. */
  readonly server: http.Server;
  readonly servers: readonly http.Server[];
  readonly handler: H;
  readonly logger: Logger | null;
  /** Stop accepting, let running requests finish, close the pools. */
  close(): Promise<void>;
}

/** What the listeners serve: a handler, and what the server asks of it before the handler runs. */
interface ServedApp {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Largest body the request's route accepts (0: no limit), checked on `Expect: 100-continue`. */
  maxBodySize(req: IncomingMessage): number;
  /** Whether the request is access-logged. */
  logs(req: IncomingMessage): boolean;
  /** Connection upgrades, when some route takes them. */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): Promise<void>;
}

interface ListenSettings extends HeadLimits {
  readonly listen: readonly string[];
  /** ms that close() lets running requests finish before it cuts them (0: wait for them). */
  readonly shutdownTimeout: number;
  readonly headersTimeout: number;
  readonly keepAliveTimeout: number;
  readonly requestTimeout: number;
}

/** nginx's large_client_header_buffers 4 8k, as three limits. */
interface HeadLimits {
  readonly maxRequestLine: number;
  readonly maxHeaderLine: number;
  readonly maxRequestHead: number;
}

/**
 * 414 for a request line over its limit, 431 for a header line or a whole head over theirs,
 * else 0. node:http enforces maxRequestHead on the URI and on the header block separately
 * (and answers beyond it in clientError); the sum and the per-line limits are checked here.
 */
function headLimitStatus(req: IncomingMessage, l: HeadLimits): number {
  // "GET /path HTTP/1.1": node decodes the head as latin1, so lengths are bytes.
  const line = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 10;
  if (line > l.maxRequestLine) return 414;
  const raw = req.rawHeaders;
  let total = line + 2;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]!.length + raw[i + 1]!.length + 4;
    if (n > l.maxHeaderLine) return 431;
    total += n;
  }
  return total > l.maxRequestHead ? 431 : 0;
}

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

/** Parse a listen string into node's listen arguments. */
export function parseListen(listen: string): { path: string } | { host: string; port: number } {
  if (listen.startsWith('unix:')) return { path: listen.slice(5) };
  if (/^\d+$/.test(listen)) return { host: '127.0.0.1', port: Number(listen) };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new ConfigError(`listen ${JSON.stringify(listen)} must be HOST:PORT, [v6]:PORT, :PORT or unix:/path`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`listen port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** Create and start the server for one document root and one upstream (what `serve` flags mean). */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  const { logger: givenLogger, ...rest } = options;
  const { listen, accessLog: format, headersTimeout, keepAliveTimeout, requestTimeout, maxRequestLine, maxHeaderLine, maxRequestHead, shutdownTimeout, ...handlerOptions } = parseOrThrow(
    serverSchema,
    stripUndefined(rest),
  );
  const handler = createFastCgiHandler(handlerOptions, { serverSoftware: `fastcgi-gateway/${VERSION}` });
  const maxBody = handler.options.maxBodySize;
  const app: ServedApp = { handle: handler, maxBodySize: () => maxBody, logs: () => true, close: () => handler.close() };
  const settings = { listen: [listen], headersTimeout, keepAliveTimeout, requestTimeout, maxRequestLine, maxHeaderLine, maxRequestHead, shutdownTimeout };
  return listenAll(app, handler, settings, givenLogger ?? null, format);
}

/** Create and start the server for a resolved config (config/load.ts): every site, route and listener. */
export async function startConfiguredServer(
  config: GatewayConfig,
  options: { readonly logger?: Logger; readonly env?: NodeJS.ProcessEnv } = {},
): Promise<GatewayServer<GatewayHandler>> {
  const env = options.env ?? process.env;
  // Proxy routes' egress proxy, as curl and undici read it (lower case first).
  const egress = {
    httpProxy: env['http_proxy'] ?? env['HTTP_PROXY'] ?? '',
    httpsProxy: env['https_proxy'] ?? env['HTTPS_PROXY'] ?? '',
    noProxy: env['no_proxy'] ?? env['NO_PROXY'] ?? '',
  };
  // Loaded here, not at the top: a single-root server never needs it, nor undici behind it.
  const { createGatewayHandler } = await import('./http/gateway-handler.js');
  const handler = createGatewayHandler(config, { serverSoftware: `fastcgi-gateway/${VERSION}`, egress });
  const app: ServedApp = {
    handle: handler,
    maxBodySize: (req) => handler.routeOf(req)?.maxBodySize ?? 0,
    logs: (req) => handler.routeOf(req)?.accessLog ?? true,
    ...(handler.upgrades ? { upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => handler.upgrade(req, socket, head) } : {}),
    close: () => handler.close(),
  };
  return listenAll(app, handler, config, options.logger ?? null, config.accessLog);
}

async function listenAll<H>(app: ServedApp, handler: H, settings: ListenSettings, givenLogger: Logger | null, format: AccessLogFormat | false): Promise<GatewayServer<H>> {
  const logger = givenLogger ?? (format === false ? null : createLogger(format));
  const accessLog = logger ? createAccessLog(logger) : null;
  const { headersTimeout, keepAliveTimeout, requestTimeout } = settings;

  /** The response of the latest request read on each socket: a client error answers after it. */
  const lastResponse = new WeakMap<Socket, ServerResponse>();
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    lastResponse.set(req.socket, res);
    if (accessLog !== null && app.logs(req)) accessLog(req, res);
    if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host. Answered here rather than by
      // node:http (requireHostHeader), so that it is the connection's known last answer and
      // nothing pipelined behind it gets an answer after it.
      sendError(res, 400);
      return;
    }
    const tooLarge = headLimitStatus(req, settings);
    if (tooLarge !== 0) {
      sendError(res, tooLarge);
      return;
    }
    app.handle(req, res);
  };

  /** Every client socket, upgraded tunnels included: what a shutdown past its deadline cuts. */
  const open = new Set<Socket>();
  const makeServer = (): http.Server => {
    const server = http.createServer(
      {
        keepAliveTimeout,
        requireHostHeader: false,
        // Per line and in sum the limits are checked in serve(); node applies this one to the URI
        // and to the header block each.
        maxHeaderSize: settings.maxRequestHead,
        // node checks head and request deadlines on this interval (30 s by default, so a 60 s
        // header timeout fired after up to 90 s): check every second, or finer for short ones.
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 10) || 1000)),
      },
      serve,
    );
    server.headersTimeout = headersTimeout;
    server.requestTimeout = requestTimeout;
    // No count limit (node drops headers past 2000 without a word): maxRequestHead bounds them.
    server.maxHeadersCount = 0;
    // Every close node:http decides after a response (Connection: close, HTTP/1.0 without a
    // length) lingers, as nginx's lingering_close: a client may have pipelined more, and closing
    // on unread bytes sends a RST that can wipe the answer out of its receive buffer (found by
    // the fuzz campaign: HEAD over HTTP/1.0 keep-alive, then more bytes: no answer arrived).
    server.on('connection', (socket: Socket) => {
      lingerWhenDone(socket);
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
    // Expect: 100-continue — refuse an oversized body before the client sends it.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      const len = declaredLength(req);
      const maxBody = app.maxBodySize(req);
      if (typeof len === 'number' && maxBody > 0 && len > maxBody) {
        if (accessLog !== null && app.logs(req)) accessLog(req, res);
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
      const status = clientErrorStatus(err, settings.maxRequestLine);
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
    if (app.upgrade) server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => app.upgrade!(req, socket, head));
    return server;
  };

  const servers: http.Server[] = [];
  const urls: string[] = [];
  try {
    for (const listen of settings.listen) {
      const server = makeServer();
      servers.push(server);
      urls.push(await listenOn(server, listen));
    }
  } catch (err) {
    for (const server of servers) server.close();
    await app.close();
    throw err;
  }

  let closing: Promise<void> | null = null;
  return {
    url: urls[0]!,
    urls,
    server: servers[0]!,
    servers,
    handler,
    logger,
    close() {
      if (closing !== null) return closing;
      // Stop accepting and let running requests finish, for up to shutdownTimeout; then cut
      // what is left (slow requests, kept-open tunnels), whose upstream requests are abandoned.
      let timer: NodeJS.Timeout | null = null;
      const stopped = Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeIdleConnections();
            }),
        ),
      );
      if (settings.shutdownTimeout > 0) {
        timer = setTimeout(() => {
          for (const s of open) s.destroy();
        }, settings.shutdownTimeout);
        timer.unref();
      }
      closing = stopped
        .then(() => {
          if (timer !== null) clearTimeout(timer);
        })
        .then(() => app.close())
        .then(() => new Promise<void>((resolve) => (logger && !givenLogger ? logger.flush(() => resolve()) : resolve())));
      return closing;
    },
  };
}

/** Listen on one address; resolves to its URL. */
async function listenOn(server: http.Server, listen: string): Promise<string> {
  const target = parseListen(listen);
  if ('path' in target) rmSync(target.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  if ('path' in target) {
    chmodSync(target.path, 0o660);
    return `unix:${target.path}`;
  }
  const a = server.address() as AddressInfo;
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}
