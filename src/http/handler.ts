/**
 * The gateway as a request handler: `(req, res, next?) => void`. Drops into
 * `http.createServer(handler)` and into Express/Connect, where requests it declines (nothing
 * in the root and no front controller) go to `next()`.
 *
 *   req ─▶ parse target ─▶ route ─┬─ static ──▶ send (ETag, Range, 304, HEAD)
 *                                 ├─ redirect (dir without slash) / 403 / 404 / next()
 *                                 └─ script ─▶ body ─▶ CGI params ─▶ pool.dispatch ─▶ ResponseRelay
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize, relative } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { buildCgiParams, type CgiParamsSettings, type CgiRequestInfo, type ScriptTarget } from '../cgi/params-builder.js';
import type { CgiHead } from '../cgi/response-head.js';
import { isRejection, parseRequestTarget } from '../cgi/uri.js';
import { type HandlerOptions, type ResolvedHandlerOptions, resolveHandlerOptions } from '../config/options.js';
import { CgiRedirectLoopError, GatewayError, SendfileOutsideError, statusFor } from '../errors.js';
import type { FastCgiUpstream } from '../upstream/group.js';
import { ConnectionPool } from '../upstream/pool.js';
import { whenClientGone, whenResponseTurn } from './client-gone.js';
import { MemoryBudget } from './memory-budget.js';
import { type BodyLimits, type PreparedBody, prepareBody } from './request-body.js';
import { type LoggerLike, NO_LOG, type RelayOptions, ResponseRelay, type ResponseHooks, sendError, type UpstreamTiming } from './respond.js';
import { FileKindCache, route } from './router.js';
import { targetOf } from './request-target.js';
import { answerLocally, drainAndReply, serveFile } from './serve-file.js';
import { SmallFileCache } from './small-files.js';
import { http1RawHeaders } from './wire.js';

/** The handler function, with its pool and a close() for shutdown. */
export interface FastCgiHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  readonly pool: FastCgiUpstream;
  readonly options: ResolvedHandlerOptions;
  /** Bytes held in memory for clients (buffered bodies, unsent responses), all requests together. */
  readonly memoryBudget: MemoryBudget;
  /** Close the upstream pool (running requests finish first). */
  close(): Promise<void>;
}

/** Extra wiring for embedders and tests. */
export interface HandlerDeps {
  /** Use this pool (or upstream group) instead of creating one from `options.upstream`. */
  readonly pool?: FastCgiUpstream;
  /** SERVER_SOFTWARE (default `fastcgi-gateway`). */
  readonly serverSoftware?: string;
  /** Share this memory budget (one per process) instead of creating one of `memoryBudget`. */
  readonly budget?: MemoryBudget;
  /**
   * Send every request to this one script instead of routing in the document root (a
   * `fastcgi` route: git-http-backend behind fcgiwrap). `scriptName` is the route's prefix
   * without its trailing slash; PATH_INFO is the rest of the path.
   */
  readonly fixedScript?: { readonly filename: string; readonly scriptName: string };
}

/** What the access log reads from a response. */
export interface GatewayResponseInfo {
  upstreamTiming?: UpstreamTiming;
  /** Request body bytes sent upstream (for metrics). */
  requestBodyBytes?: number;
}

/** Create the handler. Throws ConfigError for bad options. */
export function createFastCgiHandler(options: HandlerOptions, deps: HandlerDeps = {}): FastCgiHandler {
  const o = resolveHandlerOptions(options, tmpdir());
  const pool: FastCgiUpstream = deps.pool ?? new ConnectionPool(o.upstream, o.pool);
  const settings: CgiParamsSettings = {
    serverSoftware: deps.serverSoftware ?? 'fastcgi-gateway',
    serverName: o.serverName,
    extraParams: o.params,
    allowUnderscoreHeaders: o.allowUnderscoreHeaders,
  };
  const trusted = new Set(o.trustedProxies.map(stripV4Mapped));
  const files = new FileKindCache(o.statCacheTtl);
  const smallFiles = new SmallFileCache({ ttl: o.statCacheTtl });
  const budget = deps.budget ?? new MemoryBudget(o.memoryBudget);
  const bodyLimits: BodyLimits = { ...o, budget };
  const relayOptions: RelayOptions = {
    maxHeadSize: o.maxHeadSize,
    maxStderrLog: o.maxStderrLog,
    spill: { memory: o.responseBufferSize, maxSpill: o.maxResponseSpill, tmpDir: o.tmpDir, sendTimeout: o.sendTimeout, budget },
  };

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const log: LoggerLike = (req as IncomingMessage & { log?: LoggerLike }).log ?? NO_LOG;
    const target = targetOf(req);
    if (isRejection(target)) {
      log.warn({ reason: target.reason }, 'bad request target');
      drainAndReply(req, res, target.status);
      return;
    }
    const fixed = deps.fixedScript;
    if (fixed !== undefined) {
      const { path, query } = target;
      const pathInfo = path.startsWith(fixed.scriptName) ? path.slice(fixed.scriptName.length) : path;
      runScript(req, res, { scriptName: fixed.scriptName, pathInfo, documentUri: path, query, documentRoot: o.root, scriptFilename: fixed.filename }, log, 0, null);
      return;
    }
    const r = route(target, o, files);
    if (r.kind === 'script') runScript(req, res, r.target, log, 0, null);
    else answerLocally(req, res, r, o.root, smallFiles, next);
  }) as FastCgiHandler;

  /**
   * Run a script. `redirectUri` is set for a local redirect: the request becomes a GET of
   * that URI with no body.
   */
  function runScript(
    req: IncomingMessage,
    res: ServerResponse,
    target: ScriptTarget,
    log: LoggerLike,
    depth: number,
    redirectUri: string | null,
  ): void {
    let prepared: PreparedBody | Promise<PreparedBody>;
    if (redirectUri !== null) {
      prepared = { body: null, contentLength: null, streamed: false, cleanup() {} };
    } else {
      try {
        prepared = prepareBody(req, bodyLimits);
      } catch (err) {
        failEarly(req, res, err, log);
        return;
      }
    }
    const whenReady = (p: PreparedBody): void =>
      whenResponseTurn(req, res, () => dispatch(req, res, target, log, depth, redirectUri, p), () => p.cleanup());
    if (prepared instanceof Promise) prepared.then(whenReady, (err) => failEarly(req, res, err, log));
    else whenReady(prepared);
  }

  function dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    target: ScriptTarget,
    log: LoggerLike,
    depth: number,
    redirectUri: string | null,
    prepared: PreparedBody,
  ): void {
    if (res.destroyed || res.writableEnded || req.socket.destroyed) {
      // The client left while its body was being read: nothing to send it to.
      prepared.cleanup();
      return;
    }
    const info = requestInfo(req, trusted, redirectUri);
    const contentType = redirectUri === null ? (req.headers['content-type'] ?? null) : null;
    const params = buildCgiParams(info, target, settings, { contentLength: prepared.contentLength, contentType });
    let stopWatching: (() => void) | null = null;
    let finished = false;
    const hooks: ResponseHooks = {
      localRedirect: (location) => {
        if (depth >= o.maxLocalRedirects) {
          // Handled here: relaying the Location to the client would only move the loop there.
          const err = new CgiRedirectLoopError(o.maxLocalRedirects, location);
          log.error({ err, code: err.code, location }, err.message);
          sendError(res, 502);
          return true;
        }
        const next = parseRequestTarget(location);
        if (isRejection(next)) return false;
        const r = route(next, o, files);
        if (r.kind === 'static') {
          serveFile(req, res, o.root, r.path, undefined);
          return true;
        }
        if (r.kind !== 'script') return false;
        runScript(req, res, r.target, log, depth + 1, location);
        return true;
      },
      onDone: () => {
        prepared.cleanup();
        finished = true;
        stopWatching?.();
      },
    };
    if (o.sendfile) hooks.sendfile = (head) => trySendfile(req, res, head, log);
    const relay = new ResponseRelay(req, res, log, relayOptions, hooks);
    const resInfo = res as ServerResponse & GatewayResponseInfo;
    resInfo.upstreamTiming = relay.timing;
    resInfo.requestBodyBytes = prepared.contentLength ?? 0;
    let controller: ReturnType<FastCgiUpstream['dispatch']>;
    try {
      controller = pool.dispatch({ params, body: prepared.body, bodyTimeout: prepared.streamed ? o.clientBodyTimeout : 0 }, relay);
    } catch (err) {
      prepared.cleanup();
      failEarly(req, res, err, log);
      return;
    }
    if (finished) return;
    stopWatching = whenClientGone(req, res, () => {
      if (!res.writableFinished) controller.abort(new Error('client closed the connection'));
    });
  }

  /** X-Accel-Redirect / X-Sendfile: serve the named file under `sendfile.root` instead. */
  function trySendfile(req: IncomingMessage, res: ServerResponse, head: CgiHead, log: LoggerLike): boolean {
    const sf = o.sendfile!;
    const wanted = sf.header.toLowerCase();
    const entry = head.headers.find(([n]) => n.toLowerCase() === wanted);
    if (!entry) return false;
    const rel = normalize('/' + entry[1]).replace(/^\/+/, '');
    const full = join(sf.root, rel);
    const inside = relative(sf.root, full);
    if (inside.startsWith('..') || isAbsolute(inside) || entry[1].includes('\0')) {
      const err = new SendfileOutsideError(entry[1]);
      log.error({ err, code: err.code, path: err.path }, err.message);
      sendError(res, 502);
      return true;
    }
    for (const [n, v] of head.headers) {
      const l = n.toLowerCase();
      if (l === 'content-type' || l === 'content-disposition' || l === 'set-cookie' || l === 'cache-control' || l === 'expires') {
        res.appendHeader(n, v);
      }
    }
    serveFile(req, res, sf.root, '/' + rel, undefined);
    return true;
  }

  function failEarly(req: IncomingMessage, res: ServerResponse, err: unknown, log: LoggerLike): void {
    const status = statusFor(err);
    if (err instanceof GatewayError) log.warn({ code: err.code, err }, err.message);
    else log.error({ err }, 'gateway error');
    drainAndReply(req, res, status);
  }

  Object.defineProperties(handler, {
    pool: { value: pool, enumerable: true },
    options: { value: o, enumerable: true },
    memoryBudget: { value: budget, enumerable: true },
    close: { value: () => pool.close() },
  });
  return handler;
}

function stripV4Mapped(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** Snapshot of what the CGI mapping needs, with trusted-proxy resolution. */
function requestInfo(req: IncomingMessage, trusted: ReadonlySet<string>, redirectUri: string | null): CgiRequestInfo {
  const sock = req.socket;
  const peer = stripV4Mapped(sock.remoteAddress ?? '');
  let remoteAddress = peer;
  let https = (sock as TLSSocket).encrypted === true;
  if (trusted.size > 0 && trusted.has(peer)) {
    const xff = req.headers['x-forwarded-for'];
    if (typeof xff === 'string' && xff !== '') {
      const hops = xff.split(',').map((h) => stripV4Mapped(h.trim())).filter((h) => h !== '');
      let client = hops[0] ?? peer;
      for (let i = hops.length - 1; i >= 0; i--) {
        if (!trusted.has(hops[i]!)) {
          client = hops[i]!;
          break;
        }
      }
      remoteAddress = client;
    }
    const proto = req.headers['x-forwarded-proto'];
    if (typeof proto === 'string') https = proto.split(',')[0]!.trim().toLowerCase() === 'https';
  }
  return {
    method: redirectUri === null ? (req.method ?? 'GET') : 'GET',
    rawUrl: redirectUri ?? req.url ?? '/',
    httpVersion: req.httpVersion,
    rawHeaders: http1RawHeaders(req),
    remoteAddress,
    remotePort: sock.remotePort ?? 0,
    serverAddress: stripV4Mapped(sock.localAddress ?? ''),
    serverPort: sock.localPort ?? 0,
    https,
  };
}
