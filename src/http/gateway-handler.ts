/**
 * The handler for a whole config: sites matched by Host, routes by path prefix, each route a
 * small handler of its kind. Usable in node:http and Express exactly as `createFastCgiHandler`.
 *
 *   req ─▶ parse target ─▶ site (Host) ─▶ route (longest prefix) ─▶ early hints ─▶ header rules
 *            400                              404 when none matches      │
 *                                        php ─ fastcgi ─ proxy ─ static ─ redirect
 *
 * One pool per upstream, shared by every route that names it (its `connections` is the budget
 * this process holds on that php-fpm pool), and one memory budget for the process.
 */
import { type IncomingMessage, type OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { isRejection } from '../cgi/uri.js';
import { type GatewayConfig, isInlineAddress, type RouteConfig, type SiteConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { type FastCgiUpstream, UpstreamGroup } from '../upstream/group.js';
import { ConnectionPool, POOL_DEFAULTS } from '../upstream/pool.js';
import { createFastCgiHandler } from './handler.js';
import { MemoryBudget } from './memory-budget.js';
import { type LoggerLike, NO_LOG } from './logger.js';
import { createProxyRoute, type EgressProxy, type ProxyRoute } from './proxy-route.js';
import { targetOf } from './request-target.js';
import { encodePath, FileKindCache, route as routeInRoot } from './router.js';
import { answerLocally, drainAndReply } from './serve-file.js';
import { hostMatcher, hostName, prefixMatcher } from './site-match.js';
import { requestHost } from './wire.js';
import { SmallFileCache } from './small-files.js';

type Next = (err?: unknown) => void;
const NO_ROUTE = { site: '-', route: '-' } as const;
const kRoute = Symbol('fastcgi-gateway.route');
type RouteHandler = (req: IncomingMessage, res: ServerResponse, next?: Next) => void;

/** One route, ready to serve. */
interface ReadyRoute {
  readonly prefix: string;
  /** The site (its first host name) and the route (its prefix), as metrics label them. */
  readonly labels: { readonly site: string; readonly route: string };
  readonly kind: string;
  readonly handle: RouteHandler;
  readonly earlyHints: readonly string[];
  readonly headers: RouteConfig['headers'];
  readonly accessLog: boolean;
  /** Largest body this route accepts (0: no limit), for `Expect: 100-continue`. */
  readonly maxBodySize: number;
  /** Connection upgrades (WebSocket): proxy routes only. */
  readonly upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

interface ReadySite {
  readonly route: (path: string) => ReadyRoute | null;
}

/** The handler of a config, with its pools and a close() for shutdown. */
export interface GatewayHandler {
  (req: IncomingMessage, res: ServerResponse, next?: Next): void;
  /** One pool (or group of pools) per upstream, by name (inline addresses by their text). */
  readonly pools: ReadonlyMap<string, FastCgiUpstream>;
  readonly memoryBudget: MemoryBudget;
  readonly config: GatewayConfig;
  /** The route a request goes to (null: none, a 404), found once per request. */
  routeOf(req: IncomingMessage): { readonly kind: string; readonly prefix: string; readonly accessLog: boolean; readonly maxBodySize: number } | null;
  /** Site and route of a request for metrics labels (`-` for a request that matches none). */
  labelsOf(req: IncomingMessage): { readonly site: string; readonly route: string };
  /** True when a route accepts connection upgrades (the server then listens for them). */
  readonly upgrades: boolean;
  /**
   * A request with `Upgrade` (node:http's 'upgrade' event): a proxy route passes it through;
   * any other route answers it as a plain request, on a connection that then closes.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Close every pool (running requests finish first). */
  close(): Promise<void>;
}

export interface GatewayHandlerDeps {
  /** SERVER_SOFTWARE (default `fastcgi-gateway`). */
  readonly serverSoftware?: string;
  /** Egress HTTP proxy for proxy routes (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, read by the caller). */
  readonly egress?: EgressProxy;
  /**
   * Processes serving this config side by side (cluster workers, default 1). Each pool holds
   * its share of the upstream's `connections` (at least 1), so that all of them together stay
   * within the budget (php-fpm's pm.max_children).
   */
  readonly workers?: number;
}

/** Create the handler of a resolved config (config/load.ts). Throws ConfigError. */
export function createGatewayHandler(config: GatewayConfig, deps: GatewayHandlerDeps = {}): GatewayHandler {
  const budget = new MemoryBudget(config.memoryBudget);
  const share = (connections: number): number => Math.max(1, Math.floor(connections / (deps.workers ?? 1)));
  const tmpDir = config.tmpDir || tmpdir();
  const pools = new Map<string, FastCgiUpstream>();
  for (const [name, up] of Object.entries(config.upstreams)) {
    const { servers, balance, maxFails, failTimeout, health, statusPath: _scrapedByMetrics, ...own } = up;
    const poolOptions = { ...own, connections: share(own.connections) };
    const list = servers.map((s) => (typeof s === 'string' ? { address: s, weight: 1 } : s));
    if (list.length === 1 && health === null) pools.set(name, new ConnectionPool(list[0]!.address, poolOptions));
    else pools.set(name, new UpstreamGroup(list, { name, balance, maxFails, failTimeout, health, pool: poolOptions }));
  }
  const poolFor = (ref: string): FastCgiUpstream => {
    let p = pools.get(ref);
    if (p === undefined && isInlineAddress(ref)) {
      p = new ConnectionPool(ref, { connections: share(POOL_DEFAULTS.connections) });
      pools.set(ref, p);
    }
    if (p === undefined) throw new ConfigError(`no upstream named ${JSON.stringify(ref)}`);
    return p;
  };
  const serverSoftware = deps.serverSoftware ?? 'fastcgi-gateway';
  const egress = deps.egress ?? { httpProxy: '', httpsProxy: '', noProxy: '' };
  const proxies: ProxyRoute[] = [];

  const buildRoute = (site: SiteConfig, r: RouteConfig): ReadyRoute => {
    const common = { prefix: r.path, labels: { site: site.hosts[0]!, route: r.path }, earlyHints: r.earlyHints, headers: r.headers, accessLog: r.accessLog };
    if (r.php) {
      const { upstream, root, ...php } = r.php;
      const pool = poolFor(upstream);
      const h = createFastCgiHandler(
        { ...php, root: root ?? site.root!, upstream: pool.address.text, tmpDir: php.tmpDir || tmpDir },
        { pool, budget, serverSoftware },
      );
      return { ...common, kind: 'php', handle: h, maxBodySize: h.options.maxBodySize };
    }
    if (r.fastcgi) {
      const f = r.fastcgi;
      const pool = poolFor(f.upstream);
      const h = createFastCgiHandler(
        {
          root: dirname(f.script),
          upstream: pool.address.text,
          params: f.params,
          maxBodySize: f.maxBodySize,
          requestBuffering: f.requestBuffering,
          clientBodyTimeout: f.clientBodyTimeout,
          sendTimeout: f.sendTimeout,
          frontController: null,
          static: false,
          tmpDir,
        },
        { pool, budget, serverSoftware, fixedScript: { filename: f.script, scriptName: r.path.replace(/\/+$/, '') } },
      );
      return { ...common, kind: 'fastcgi', handle: h, maxBodySize: h.options.maxBodySize };
    }
    if (r.proxy) {
      const p = createProxyRoute({ prefix: r.path, ...r.proxy, egress });
      proxies.push(p);
      return { ...common, kind: 'proxy', handle: p, maxBodySize: 0, upgrade: p.upgrade };
    }
    if (r.static) return { ...common, kind: 'static', handle: staticRoute(resolve(r.static.root ?? site.root!), r.static.index, r.static.statCacheTtl), maxBodySize: 0 };
    const rd = r.redirect!;
    return { ...common, kind: 'redirect', handle: redirectRoute(r.path, rd.to, rd.status, rd.keepPath), maxBodySize: 0 };
  };

  const siteOf = hostMatcher(
    config.sites.map((site) => {
      const routes = site.routes.map((r) => ({ prefix: r.path, value: buildRoute(site, r) }));
      const ready: ReadySite = { route: prefixMatcher(routes) };
      return { hosts: site.hosts, value: ready };
    }),
  );

  // The route is looked up once per request, by the access log's filter or by the handler, and
  // kept on the request (a symbol property: cheaper than a WeakMap entry per request).
  const routeFor = (req: IncomingMessage): ReadyRoute | null => {
    const r = req as IncomingMessage & { [kRoute]?: ReadyRoute | null };
    let route = r[kRoute];
    if (route !== undefined) return route;
    const target = targetOf(req);
    route = isRejection(target) ? null : siteOf(hostName(requestHost(req))).route(target.path);
    r[kRoute] = route;
    return route;
  };

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: Next): void => {
    const target = targetOf(req);
    if (isRejection(target)) {
      const log: LoggerLike = (req as IncomingMessage & { log?: LoggerLike }).log ?? NO_LOG;
      log.warn({ reason: target.reason }, 'bad request target');
      drainAndReply(req, res, target.status);
      return;
    }
    const r = routeFor(req);
    if (r === null) {
      if (next) next();
      else drainAndReply(req, res, 404);
      return;
    }
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
    if (r.earlyHints.length > 0 && !(req.httpVersionMajor === 1 && req.httpVersionMinor === 0)) res.writeEarlyHints({ link: [...r.earlyHints] });
    const h = r.headers;
    if (Object.keys(h.add).length > 0 || Object.keys(h.set).length > 0 || h.remove.length > 0) applyHeaderRules(res, h);
    r.handle(req, res, next);
  }) as GatewayHandler;

  Object.defineProperties(handler, {
    pools: { value: pools, enumerable: true },
    memoryBudget: { value: budget, enumerable: true },
    config: { value: config, enumerable: true },
    routeOf: { value: (req: IncomingMessage) => routeFor(req) },
    labelsOf: {
      value: (req: IncomingMessage) => {
        const r = routeFor(req);
        return r === null ? NO_ROUTE : r.labels;
      },
    },
    upgrades: { value: proxies.length > 0, enumerable: true },
    upgrade: {
      value: (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        const r = routeFor(req);
        if (r?.upgrade) {
          r.upgrade(req, socket, head);
          return;
        }
        // node:http hands over the socket with the parser gone: answer this one request, close.
        if (head.length > 0) socket.unshift(head);
        const res = new ServerResponse(req);
        res.shouldKeepAlive = false;
        res.assignSocket(socket as Socket);
        res.once('finish', () => socket.end());
        handler(req, res);
      },
    },
    close: { value: async () => void (await Promise.all([...[...pools.values()].map((p) => p.close()), ...proxies.map((p) => p.close())])) },
  });
  return handler;
}

/** A `static` route: files below `root` (nginx `root` semantics: the whole path is appended). */
/** `statCacheTtl` as the php route's: how long a stat result and a small file's bytes are kept. */
function staticRoute(root: string, index: readonly string[], statCacheTtl: number): RouteHandler {
  // .php is known as a script extension only to be refused: a static route never runs or shows
  // PHP (an upload directory with an evil.php in it: nginx's `location ~ \.php$ { deny all; }`).
  const opts = { root: root.replace(/\/+$/, '') || '/', allowedDotfiles: ['.well-known'], scriptExtensions: ['.php'], static: true, index, frontController: null, frontControllerOnly: false };
  const files = new FileKindCache(statCacheTtl);
  const small = new SmallFileCache({ ttl: statCacheTtl });
  return (req, res) => {
    const target = targetOf(req);
    if (isRejection(target)) {
      drainAndReply(req, res, target.status);
      return;
    }
    const r = routeInRoot(target, opts, files);
    // A script here is refused, never run (see opts).
    if (r.kind === 'script') drainAndReply(req, res, 404);
    else answerLocally(req, res, r, opts.root, small);
  };
}

/** A `redirect` route; with keepPath, the path after the prefix and the query follow the target. */
function redirectRoute(prefix: string, to: string, status: number, keepPath: boolean): RouteHandler {
  return (req, res) => {
    let location = to;
    if (keepPath) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const rest = path.startsWith(prefix) ? path.slice(prefix.length) : '';
      location = to.replace(/\/+$/, '') + (rest === '' ? (to.endsWith('/') ? '/' : '') : `/${rest.replace(/^\/+/, '')}`) + (q < 0 ? '' : url.slice(q));
    }
    drainAndReply(req, res, status, { Location: encodeLocation(location) });
  };
}

/** Escape what may not appear in a Location header, leaving an already-encoded URL as it is. */
function encodeLocation(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, (c) => encodePath(c));
}

/** Apply a route's add / set / remove rules when the response head is written. */
function applyHeaderRules(res: ServerResponse, rules: RouteConfig['headers']): void {
  const original = res.writeHead;
  const drop = new Set([...rules.remove, ...Object.keys(rules.set)].map((n) => n.toLowerCase()));
  res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    // writeHead(status, [reason], [headers]): headers given here merge over setHeader ones.
    const last = rest.at(-1);
    if (last !== undefined && typeof last === 'object' && last !== null) {
      const filtered = Array.isArray(last) ? filterRaw(last as unknown[], drop) : filterObject(last as OutgoingHttpHeaders, drop);
      rest[rest.length - 1] = filtered;
    }
    for (const n of drop) res.removeHeader(n);
    for (const [n, v] of Object.entries(rules.set)) res.setHeader(n, v);
    for (const [n, v] of Object.entries(rules.add)) res.appendHeader(n, v);
    return (original as (...a: unknown[]) => ServerResponse).call(this, status, ...rest);
  } as typeof res.writeHead;
}

function filterObject(h: OutgoingHttpHeaders, drop: ReadonlySet<string>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!drop.has(k.toLowerCase())) out[k] = v;
  return out;
}

/** `[name, value, name, value]` or `[[name, value], ...]`. */
function filterRaw(raw: unknown[], drop: ReadonlySet<string>): unknown[] {
  if (raw.length > 0 && Array.isArray(raw[0])) return raw.filter((p) => !drop.has(String((p as unknown[])[0]).toLowerCase()));
  const out: unknown[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!drop.has(String(raw[i]).toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}
