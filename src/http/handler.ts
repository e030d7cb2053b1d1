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
import { buildCgiParams, type CgiParamsSettings, type ScriptTarget } from '../cgi/params-builder.js';
import { isRejection, parseRequestTarget } from '../cgi/uri.js';
import { type HandlerOptions, type ResolvedHandlerOptions, resolveHandlerOptions } from '../config/options.js';
import { CgiRedirectLoopError, GatewayError, statusFor } from '../errors.js';
import type { FastCgiUpstream } from '../upstream/group.js';
import { ConnectionPool } from '../upstream/pool.js';
import { requestInfo, trustedSet } from './client-info.js';
import { whenClientGone, whenResponseTurn } from './client-gone.js';
import { MemoryBudget } from './memory-budget.js';
import { type BodyLimits, type PreparedBody, prepareBody } from './request-body.js';
import { type LoggerLike, NO_LOG } from './logger.js';
import { type RelayOptions, ResponseRelay, type ResponseHooks, type UpstreamTiming } from './response-relay.js';
import { sendError } from './send-error.js';
import { FileKindCache, route } from './router.js';
import { targetOf } from './request-target.js';
import { answerLocally, drainAndReply, serveFile } from './serve-file.js';
import { trySendfile } from './sendfile.js';
import { SmallFileCache } from './small-files.js';
import { responseCompleted } from './wire.js';

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

/**
 * One script run of one request: what `runScript` and `dispatch` pass along. A local redirect
 * makes a new one (depth + 1, the redirect's URI) for the same req and res.
 */
interface ScriptRun {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly log: LoggerLike;
  readonly target: ScriptTarget;
  /** Local redirects followed so far. */
  readonly depth: number;
  /** Set for a local redirect: the request is then a GET of this URI, without a body. */
  readonly redirectUri: string | null;
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
  const trusted = trustedSet(o.trustedProxies);
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
      const script = { scriptName: fixed.scriptName, pathInfo, documentUri: path, query, documentRoot: o.root, scriptFilename: fixed.filename };
      runScript({ req, res, log, target: script, depth: 0, redirectUri: null });
      return;
    }
    const r = route(target, o, files);
    if (r.kind === 'script') runScript({ req, res, log, target: r.target, depth: 0, redirectUri: null });
    else answerLocally(req, res, r, o.root, smallFiles, next);
  }) as FastCgiHandler;

  /** Run a script: read (or spool) the body, then dispatch when it is this response's turn. */
  function runScript(run: ScriptRun): void {
    const { req, res, log } = run;
    let prepared: PreparedBody | Promise<PreparedBody>;
    if (run.redirectUri !== null) {
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
      whenResponseTurn(req, res, () => dispatch(run, p), () => p.cleanup());
    if (prepared instanceof Promise) prepared.then(whenReady, (err) => failEarly(req, res, err, log));
    else whenReady(prepared);
  }

  /** Build the params and hand the exchange to the pool, the response to a ResponseRelay. */
  function dispatch(run: ScriptRun, prepared: PreparedBody): void {
    const { req, res, log, target, depth, redirectUri } = run;
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
        runScript({ req, res, log, target: r.target, depth: depth + 1, redirectUri: location });
        return true;
      },
      onDone: () => {
        prepared.cleanup();
        finished = true;
        stopWatching?.();
      },
    };
    const sendfile = o.sendfile;
    if (sendfile) hooks.sendfile = (head) => trySendfile(req, res, sendfile, head, log);
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
      if (!responseCompleted(res)) controller.abort(new Error('client closed the connection'));
    });
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
