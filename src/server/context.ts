/**
 * What every listener of a server shares: the app being served (swapped whole by a reload),
 * the settings, the access log, and the checks each request passes before the app sees it.
 * The HTTP/1 and HTTP/2 engines call `serveRequest`; they differ only in how requests arrive.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { sendError } from '../http/send-error.js';
import { hostName } from '../http/site-match.js';
import { endAfterAnswer, isHttp2, requestHost } from '../http/wire.js';

/** What the listeners serve: a handler, and what the server asks of it before the handler runs. */
export interface ServedApp {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Largest body the request's route accepts (0: no limit), checked on `Expect: 100-continue`. */
  maxBodySize(req: IncomingMessage): number;
  /** Whether the request is access-logged. */
  logs(req: IncomingMessage): boolean;
  /** Site and route of a request, as metrics label them. */
  labels(req: IncomingMessage): { readonly site: string; readonly route: string };
  /** Connection upgrades, when some route takes them. */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): Promise<void>;
}

/** nginx's large_client_header_buffers 4 8k, as three limits. */
export interface HeadLimits {
  readonly maxRequestLine: number;
  readonly maxHeaderLine: number;
  readonly maxRequestHead: number;
}

export interface ServeSettings extends HeadLimits {
  readonly headersTimeout: number;
  readonly keepAliveTimeout: number;
  readonly keepAliveRequests: number;
  readonly requestTimeout: number;
  /** ms that close() lets running requests finish before it cuts them (0: wait for them). */
  readonly shutdownTimeout: number;
}

/** Where a connection came in: set on each accepted socket by its listener. */
export interface ListenerInfo {
  /** Port of `https://` redirects, or 0 when this listener serves requests itself. */
  readonly redirectToHttps: number;
}
export const kListener = Symbol('fastcgi-gateway.listener');
export type TaggedSocket = Socket & { [kListener]?: ListenerInfo };

export interface ServeContext {
  app: ServedApp;
  settings: ServeSettings;
  readonly accessLog: ((req: IncomingMessage, res: ServerResponse) => void) | null;
  /** Set by close(): HTTP/1 answers then say `Connection: close`. */
  closing: boolean;
  /** Called for each request before anything else (metrics). */
  observe: ((req: IncomingMessage, res: ServerResponse, app: ServedApp) => void) | null;
}

/**
 * 414 for a request line over its limit, 431 for a header line or a whole head over theirs,
 * else 0. node:http enforces maxRequestHead on the URI and on the header block separately
 * (and answers beyond it in clientError); the sum and the per-line limits are checked here.
 */
export function headLimitStatus(req: IncomingMessage, l: HeadLimits): number {
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

/** One request, from either engine: the checks every request passes, then the app. */
export function serveRequest(ctx: ServeContext, req: IncomingMessage, res: ServerResponse): void {
  const app = ctx.app;
  ctx.observe?.(req, res, app);
  if (ctx.accessLog !== null && app.logs(req)) ctx.accessLog(req, res);
  const h2 = isHttp2(req);
  if (!h2) {
    if (ctx.closing) res.shouldKeepAlive = false;
    if (req.headers.host === undefined && req.httpVersionMinor === 1) {
      // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host. Answered here rather than by
      // node:http (requireHostHeader), so that it is the connection's known last answer and
      // nothing pipelined behind it gets an answer after it.
      sendError(res, 400);
      return;
    }
  }
  const tooLarge = headLimitStatus(req, ctx.settings);
  if (tooLarge !== 0) {
    sendError(res, tooLarge);
    return;
  }
  const port = h2 ? 0 : ((req.socket as TaggedSocket)[kListener]?.redirectToHttps ?? 0);
  if (port !== 0) {
    redirectToHttps(req, res, port);
    return;
  }
  app.handle(req, res);
}

/** 308 to the same host and URI over https (308 keeps the method and the body, unlike 301). */
function redirectToHttps(req: IncomingMessage, res: ServerResponse, port: number): void {
  const host = hostName(requestHost(req));
  if (host === '' || !/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/.test(host)) {
    sendError(res, 400);
    return;
  }
  const location = `https://${host}${port === 443 ? '' : `:${port}`}${req.url ?? '/'}`;
  if (!req.complete) {
    endAfterAnswer(req, res);
    req.resume();
  }
  res.writeHead(308, { Location: location, 'Content-Length': 0 });
  res.end();
}
