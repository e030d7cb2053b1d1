/**
 * A `proxy` route: the request to an HTTP upstream through undici, bodies streamed both ways
 * with backpressure, as nginx's proxy_pass with `proxy_buffering off` and
 * `proxy_request_buffering off` (a Node or Go backend does not hold a worker per request).
 *
 * - Path: a url without a path gets the request URI unchanged; a url with one gets the route's
 *   prefix replaced by it (nginx's two proxy_pass forms).
 * - Request headers: hop-by-hop ones are dropped (RFC 9110 §7.6.1: Connection, the names it
 *   lists, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*), X-Forwarded-For gets
 *   the peer appended, X-Forwarded-Proto and -Host are set; Host is the upstream's (nginx's
 *   default), the client's (`host: pass`) or a given name.
 * - Errors before the head: connect refused or reset → 502, a timeout → 504; after it, the
 *   client connection is dropped. A client that leaves aborts the upstream request.
 * - Upgrades (WebSocket) go through `upgrade()`: the upstream's 101 head is relayed, then bytes
 *   flow both ways until either side closes.
 * - Egress: requests go through an HTTP(S) proxy when one is configured (HTTP_PROXY,
 *   HTTPS_PROXY, NO_PROXY, read at the edge and handed in), with undici's EnvHttpProxyAgent.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { type Dispatcher, EnvHttpProxyAgent } from 'undici';
import { ProxyError, ProxyTimeoutError, statusFor } from '../errors.js';
import { type LoggerLike, NO_LOG } from './logger.js';
import { sendError } from './send-error.js';
import { hasUnframedBody, requestHost, responseCompleted } from './wire.js';

/** Where egress requests go (values from the environment, read by the caller). */
export interface EgressProxy {
  readonly httpProxy: string;
  readonly httpsProxy: string;
  readonly noProxy: string;
}

export interface ProxyRouteOptions {
  readonly prefix: string;
  readonly url: string;
  /** 'upstream' (the url's host), 'pass' (the client's Host), or a host name to send. */
  readonly host: string;
  readonly connectTimeout: number;
  /** Time to the upstream's response head (504 past it). */
  readonly headersTimeout: number;
  /** Longest gap between response body chunks. */
  readonly bodyTimeout: number;
  readonly egress: EgressProxy;
}

export interface ProxyRoute {
  (req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'host', 'http2-settings']);

/** Headers minus hop-by-hop ones (and those the Connection header names). */
function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const listed = new Set<string>();
  const conn = headers['connection'];
  for (const v of Array.isArray(conn) ? conn : conn ? [conn] : []) for (const t of v.split(',')) listed.add(t.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || k.startsWith(':')) continue;
    if (HOP_BY_HOP.has(k) || listed.has(k)) continue;
    out[k] = v;
  }
  return out;
}

const peerOf = (req: IncomingMessage): string => {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
};

/** Create a proxy route. */
export function createProxyRoute(o: ProxyRouteOptions): ProxyRoute {
  const base = new URL(o.url);
  // "http://h:1" and "http://h:1/" differ in nginx: only the second replaces the prefix.
  const replacePrefix = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+\//i.test(o.url);
  const basePath = base.pathname;
  const agent = new EnvHttpProxyAgent({
    httpProxy: o.egress.httpProxy,
    httpsProxy: o.egress.httpsProxy,
    noProxy: o.egress.noProxy,
    connect: { timeout: o.connectTimeout },
    headersTimeout: o.headersTimeout,
    bodyTimeout: o.bodyTimeout,
  });

  const upstreamPath = (url: string): string => {
    if (!replacePrefix) return url;
    const rest = url.startsWith(o.prefix) ? url.slice(o.prefix.length) : url.replace(/^\//, '');
    return basePath + rest;
  };

  // Upgrade and Connection are hop-by-hop: for an upgrade undici writes them from `protocol`.
  const requestHeaders = (req: IncomingMessage): Record<string, string | string[]> => {
    const h = endToEnd(req.headers);
    const prior = req.headers['x-forwarded-for'];
    h['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peerOf(req)}` : peerOf(req);
    h['x-forwarded-proto'] = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
    const clientHost = requestHost(req);
    if (clientHost !== undefined) h['x-forwarded-host'] = clientHost;
    h['host'] = o.host === 'upstream' ? base.host : o.host === 'pass' ? (clientHost ?? base.host) : o.host;
    return h;
  };

  const route = ((req: IncomingMessage, res: ServerResponse): void => {
    const log: LoggerLike = (req as IncomingMessage & { log?: LoggerLike }).log ?? NO_LOG;
    const ac = new AbortController();
    const onClose = (): void => {
      if (!responseCompleted(res)) ac.abort(new Error('client closed the connection'));
    };
    res.once('close', onClose);
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : hasUnframedBody(req);
    const headers = requestHeaders(req);
    if (hasBody && req.headers['content-length'] !== undefined) headers['content-length'] = req.headers['content-length'];
    const options: Dispatcher.RequestOptions = {
      origin: base.origin,
      path: upstreamPath(req.url ?? '/'),
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers,
      body: hasBody ? req : null,
      signal: ac.signal,
    };
    agent.request(options).then(
      (up) => {
        if (res.destroyed) {
          up.body.destroy();
          return;
        }
        const out = endToEnd(up.headers as IncomingHttpHeaders);
        try {
          res.writeHead(up.statusCode, out);
        } catch (cause) {
          const err = new ProxyError(base.origin, cause);
          log.error({ err, code: err.code }, err.message);
          up.body.destroy();
          sendError(res, statusFor(err));
          return;
        }
        if (req.method === 'HEAD') {
          up.body.resume();
          res.end();
          return;
        }
        pipeline(up.body, res, (err) => {
          if (err && !res.destroyed) res.destroy();
        });
      },
      (cause: NodeJS.ErrnoException) => {
        if (ac.signal.aborted) return;
        const err = proxyError(base.origin, cause);
        log.error({ err, code: err.code }, err.message);
        if (!res.headersSent && !res.destroyed) sendError(res, statusFor(err));
        else res.destroy();
      },
    );
  }) as ProxyRoute;

  route.upgrade = (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    agent
      // An Agent routes by origin, which UpgradeOptions' type leaves out.
      .upgrade({ origin: base.origin, path: upstreamPath(req.url ?? '/'), method: req.method ?? 'GET', headers: requestHeaders(req), protocol: String(req.headers['upgrade'] ?? 'websocket') } as Dispatcher.UpgradeOptions)
      .then(
        ({ headers, socket: upstream }) => {
          const lines = ['HTTP/1.1 101 Switching Protocols'];
          for (const [k, v] of Object.entries(headers)) for (const x of Array.isArray(v) ? v : [v]) if (x !== undefined) lines.push(`${k}: ${x}`);
          socket.write(`${lines.join('\r\n')}\r\n\r\n`);
          if (head.length > 0) upstream.write(head);
          // One side ending ends the tunnel (WebSocket closes with its own handshake first, so
          // no half-closed state is worth keeping; a half-open pair would hold both sockets).
          const down = (): void => {
            socket.destroy();
            upstream.destroy();
          };
          for (const side of [socket, upstream]) {
            side.on('error', down);
            side.on('end', down);
            side.on('close', down);
          }
          upstream.pipe(socket);
          socket.pipe(upstream);
        },
        (cause: NodeJS.ErrnoException) => {
          const status = statusFor(proxyError(base.origin, cause));
          if (socket.writable) socket.end(`HTTP/1.1 ${status} ${status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
          else socket.destroy();
        },
      );
  };
  route.close = () => agent.close();
  return route;
}

const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** A timeout (504), or anything else the upstream did (502). */
export function proxyError(origin: string, cause: NodeJS.ErrnoException): ProxyError | ProxyTimeoutError {
  return TIMEOUTS.has(cause.code ?? '') ? new ProxyTimeoutError(origin, cause) : new ProxyError(origin, cause);
}
