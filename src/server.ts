/**
 * The gateway as a server: listeners (TCP, unix, TLS with HTTP/2 by ALPN), the HTTP/1 and
 * HTTP/2 engines, the handler and the access log; a reload that swaps the handler and the
 * certificates in place; and a graceful close (stop accepting, finish running requests,
 * drain the pools).
 *
 *   listener (net / tls) ──▶ admit (connection budget) ──▶ ALPN ─ h2 ──────▶ http2 engine ─┐
 *                                                            └─ http/1.1 ─▶ http1 engine ─┴▶ serveRequest ─▶ app
 */
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { parseOrThrow, stripUndefined } from './config/issues.js';
import { type GatewayConfig, type ServerOptions, serverSchema } from './config/schema.js';
import type { GatewayHandler } from './http/gateway-handler.js';
import { createFastCgiHandler, type FastCgiHandler } from './http/handler.js';
import { type AccessLogFormat, createAccessLog, createLogger } from './logging/access-log.js';
import type { ServeContext, ServedApp, ServeSettings } from './server/context.js';
import { applyHttp1Settings, createHttp1Server } from './server/http1.js';
import { createHttp2Engine } from './server/http2.js';
import { type Listener, type ListenerSpec, openListener, redirectPort } from './server/listeners.js';
import { type SniLookup, sniLookup } from './server/tls.js';
import { type AdminServer, startAdmin } from './server/admin.js';
import type { GatewayMetrics } from './server/metrics.js';
import { checkReadiness, healthOf, type ReadinessReport } from './server/readiness.js';
import { VERSION } from './version.js';

export { parseListen } from './server/listeners.js';

/**
 * Options of `startGatewayServer`: the handler's, plus where and how to listen (`serverShape` in
 * config/schema.ts), plus a logger to use instead of one built from `accessLog`.
 */
export type GatewayServerOptions = ServerOptions & {
  readonly logger?: Logger;
  /** Remove a stale unix socket file before listening (default true; cluster workers share the primary's). */
  readonly removeStaleSocket?: boolean;
  /**
   * Sees each request before the handler (after the server's own checks) and returns true when
   * it answered it: the dev server's live-reload endpoint and script injection.
   */
  readonly intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
};

/** Options of `startConfiguredServer`. */
export interface ConfiguredServerOptions {
  readonly logger?: Logger;
  /** Where proxy routes read HTTP_PROXY and friends (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** See GatewayServerOptions. */
  readonly removeStaleSocket?: boolean;
  /** Processes sharing the upstream budgets (cluster workers): each pool holds its share. */
  readonly workers?: number;
  /**
   * Open the admin listener when the config has one (default true). A cluster worker collects
   * metrics but leaves the listener to its primary.
   */
  readonly adminListener?: boolean;
  /** Scrape php-fpm status pages for /metrics (default true; one worker of a cluster does). */
  readonly scrapesFpm?: boolean;
}

/** A running server. */
export interface GatewayServer<H = FastCgiHandler> {
  /** The first listener's URL (`http://127.0.0.1:8080`, `https://…` or `unix:/path`). */
  readonly url: string;
  /** Every listener's URL, in config order. */
  readonly urls: readonly string[];
  readonly listeners: readonly Listener[];
  /** The HTTP/1 engine that every listener feeds (its 'connection' event sees each HTTP/1 connection). */
  readonly server: http.Server;
  /** The handler in force (a reload replaces it). */
  readonly handler: H;
  readonly logger: Logger | null;
  /** Stop accepting, let running requests finish, close the pools. */
  close(): Promise<void>;
}

/** A server started from a config, which a reload can change in place. */
export interface ConfiguredServer extends GatewayServer<GatewayHandler> {
  /** Metrics, when the config has an admin listener (null: none collected). */
  readonly metrics: GatewayMetrics | null;
  /** The admin listener's URL, when this process opened it. */
  readonly adminUrl: string | null;
  /** Check every upstream as /readyz does. */
  readiness(): Promise<ReadinessReport>;
  /**
   * Serve `config` from now on: new requests get the new handler, running ones finish on the
   * old one (whose pools then close), certificates are read again. Listeners stay as they are
   * (changing them takes a restart, or a rolling one with workers). Rejects with ConfigError,
   * and keeps the old config, when the new one cannot be loaded (a certificate, a pool).
   */
  reload(config: GatewayConfig): Promise<void>;
}

/** Egress proxy settings for proxy routes, as curl and undici read them (lower case first). */
function egressOf(env: NodeJS.ProcessEnv): { httpProxy: string; httpsProxy: string; noProxy: string } {
  return {
    httpProxy: env['http_proxy'] ?? env['HTTP_PROXY'] ?? '',
    httpsProxy: env['https_proxy'] ?? env['HTTPS_PROXY'] ?? '',
    noProxy: env['no_proxy'] ?? env['NO_PROXY'] ?? '',
  };
}

const settingsOf = (c: ServeSettings): ServeSettings => ({
  headersTimeout: c.headersTimeout,
  keepAliveTimeout: c.keepAliveTimeout,
  keepAliveRequests: c.keepAliveRequests,
  requestTimeout: c.requestTimeout,
  maxRequestLine: c.maxRequestLine,
  maxHeaderLine: c.maxHeaderLine,
  maxRequestHead: c.maxRequestHead,
  shutdownTimeout: c.shutdownTimeout,
});

/** Create and start the server for one document root and one upstream (what `serve` flags mean). */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  const { logger: givenLogger, removeStaleSocket = true, intercept, ...rest } = options;
  const parsed = parseOrThrow(serverSchema, stripUndefined(rest));
  const { listen, accessLog: format, logLevel, headersTimeout, keepAliveTimeout, keepAliveRequests, requestTimeout, maxRequestLine, maxHeaderLine, maxRequestHead, shutdownTimeout, maxConnections, ...handlerOptions } =
    parsed;
  const handler = createFastCgiHandler(handlerOptions, { serverSoftware: `fastcgi-gateway/${VERSION}` });
  const maxBody = handler.options.maxBodySize;
  const labels = { site: '*', route: '/' };
  const handle = intercept === undefined ? handler : (req: IncomingMessage, res: ServerResponse) => void (intercept(req, res) || handler(req, res));
  const app: ServedApp = { handle, maxBodySize: () => maxBody, logs: () => true, labels: () => labels, close: () => handler.close() };
  const spec: ListenerSpec = { address: listen, tls: null, http2: false, mode: '0660', redirectToHttps: false };
  const core = await runServer({ app, handler, settings: settingsOf(parsed), listen: [spec], maxConnections, sni: () => null, logger: givenLogger ?? null, format, logLevel, removeStaleSocket });
  return core.server;
}

/** What a configured server serves, built from a config (throws ConfigError). */
async function buildApp(config: GatewayConfig, env: NodeJS.ProcessEnv, workers: number): Promise<{ app: ServedApp; handler: GatewayHandler; sni: SniLookup }> {
  // Loaded here, not at the top: a single-root server never needs it, nor undici behind it.
  const { createGatewayHandler } = await import('./http/gateway-handler.js');
  const sni = sniLookup(config.sites);
  const handler = createGatewayHandler(config, { serverSoftware: `fastcgi-gateway/${VERSION}`, egress: egressOf(env), workers });
  const app: ServedApp = {
    handle: handler,
    maxBodySize: (req) => handler.routeOf(req)?.maxBodySize ?? 0,
    logs: (req) => handler.routeOf(req)?.accessLog ?? true,
    labels: (req) => handler.labelsOf(req),
    ...(handler.upgrades ? { upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => handler.upgrade(req, socket, head) } : {}),
    close: () => handler.close(),
  };
  return { app, handler, sni };
}

/** Create and start the server for a resolved config (config/load.ts): every site, route and listener. */
export async function startConfiguredServer(config: GatewayConfig, options: ConfiguredServerOptions = {}): Promise<ConfiguredServer> {
  const env = options.env ?? process.env;
  const workers = options.workers ?? 1;
  const built = await buildApp(config, env, workers);
  let current = config;
  let server: GatewayServer<GatewayHandler> | null = null;
  // prom-client is loaded only when there are metrics to serve.
  const metrics =
    config.admin === null
      ? null
      : (await import('./server/metrics.js')).createMetrics({ pools: () => (server ?? built).handler.pools, statusPaths: () => new Map(Object.entries(current.upstreams).map(([name, u]) => [name, u.statusPath])), scrapesFpm: options.scrapesFpm ?? true });
  const readiness = (): Promise<ReadinessReport> => checkReadiness((server ?? built).handler.pools, healthOf(current));
  const core = await runServer({
    ...built,
    observe: metrics?.observe ?? null,
    settings: settingsOf(config),
    listen: config.listen,
    maxConnections: config.maxConnections,
    logger: options.logger ?? null,
    format: config.accessLog,
    logLevel: config.logLevel,
    removeStaleSocket: options.removeStaleSocket ?? true,
  });
  server = core.server;
  let admin: AdminServer | null = null;
  if (config.admin !== null && metrics !== null && options.adminListener !== false) {
    const registry = metrics.registry;
    try {
      admin = await startAdmin(config.admin.listen, { metrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }), ready: readiness });
    } catch (err) {
      await core.server.close();
      throw err;
    }
  }
  const closeServer = core.server.close;
  return Object.assign(core.server, {
    metrics,
    adminUrl: admin?.url ?? null,
    readiness,
    close: async () => {
      await Promise.all([closeServer(), admin?.close()]);
    },
    async reload(next: GatewayConfig): Promise<void> {
      const fresh = await buildApp(next, env, workers);
      try {
        for (const l of core.server.listeners) l.reloadCertificate();
      } catch (err) {
        await fresh.app.close();
        throw err;
      }
      core.swap(fresh.app, fresh.handler, fresh.sni, settingsOf(next));
      current = next;
    },
  });
}

interface RunOptions<H> {
  readonly app: ServedApp;
  readonly handler: H;
  readonly settings: ServeSettings;
  readonly listen: readonly ListenerSpec[];
  readonly maxConnections: number;
  readonly sni: SniLookup;
  readonly logger: Logger | null;
  readonly format: AccessLogFormat | false;
  readonly logLevel: string;
  readonly removeStaleSocket: boolean;
  readonly observe?: ServeContext['observe'];
}

async function runServer<H>(o: RunOptions<H>): Promise<{ server: GatewayServer<H>; swap(app: ServedApp, handler: H, sni: SniLookup, settings: ServeSettings): void }> {
  const logger = o.logger ?? (o.format === false ? null : createLogger(o.format, undefined, o.logLevel));
  const ctx: ServeContext = {
    app: o.app,
    settings: o.settings,
    accessLog: logger ? createAccessLog(logger) : null,
    closing: false,
    observe: o.observe ?? null,
  };
  let handler = o.handler;
  let sni = o.sni;
  const http1 = createHttp1Server(ctx);
  const h2 = o.listen.some((l) => l.tls !== null && l.http2) ? createHttp2Engine(ctx) : null;

  /** Every client connection (upgraded tunnels and HTTP/2 sessions included): what a shutdown past its deadline cuts. */
  const open = new Set<Socket>();
  const sink = {
    admit(socket: Socket): boolean {
      if (o.maxConnections > 0 && open.size >= o.maxConnections) {
        // Past the budget: refused before a byte is read or a handshake is paid for.
        socket.destroy();
        return false;
      }
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      return true;
    },
    http1: (socket: Socket) => http1.emit('connection', socket),
    http2: (socket: TLSSocket) => h2!.server.emit('connection', socket),
    sni: () => sni,
    handshakeTimeout: o.settings.headersTimeout,
  };

  const listeners: Listener[] = [];
  try {
    for (const spec of o.listen) {
      listeners.push(await openListener(spec, { redirectToHttps: redirectPort(spec, o.listen) }, sink, { removeStaleSocket: o.removeStaleSocket }));
    }
  } catch (err) {
    for (const l of listeners) l.server.close();
    await o.app.close();
    throw err;
  }

  let closing: Promise<void> | null = null;
  const server: GatewayServer<H> = {
    url: listeners[0]!.url,
    urls: listeners.map((l) => l.url),
    listeners,
    server: http1,
    get handler() {
      return handler;
    },
    logger,
    close() {
      if (closing !== null) return closing;
      ctx.closing = true;
      // Stop accepting and let running requests finish, for up to shutdownTimeout; then cut
      // what is left (slow requests, kept-open tunnels), whose upstream requests are abandoned.
      const stopped = Promise.all(listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve()))));
      for (const s of h2?.sessions ?? []) s.close();
      // HTTP/1 answers now say Connection: close. A kept connection idle at this moment is closed
      // a little later, not at once: a client reusing it in a loop would otherwise send its
      // next request into the close (a reload must drop nothing); by then it has had an answer
      // that closes it.
      const sweep = setInterval(() => http1.closeIdleConnections(), Math.min(1000, Math.max(50, o.settings.keepAliveTimeout)));
      sweep.unref();
      let timer: NodeJS.Timeout | null = null;
      if (ctx.settings.shutdownTimeout > 0) {
        timer = setTimeout(() => {
          for (const s of open) s.destroy();
        }, ctx.settings.shutdownTimeout);
        timer.unref();
      }
      closing = stopped
        .then(() => {
          clearInterval(sweep);
          if (timer !== null) clearTimeout(timer);
        })
        .then(() => ctx.app.close())
        .then(() => new Promise<void>((resolve) => (logger && !o.logger ? logger.flush(() => resolve()) : resolve())));
      return closing;
    },
  };
  const swap = (app: ServedApp, next: H, nextSni: SniLookup, settings: ServeSettings): void => {
    const old = ctx.app;
    ctx.app = app;
    ctx.settings = settings;
    handler = next;
    sni = nextSni;
    applyHttp1Settings(http1, ctx);
    // Requests already running finish on the old handler; its pools close once they have.
    void old.close();
  };
  return { server, swap };
}
