/**
 * The one schema for every option: pool, handler (php route), server, and the config file
 * (listen, upstreams, sites, routes). It gives the TypeScript types, the defaults, the
 * validation with key paths, and the key list that docs/configuration.md is checked against.
 *
 * zod 4, because it infers the types from the schema (no second declaration to drift), reports
 * every issue with its key path and the offending input, rejects unknown keys in strict objects
 * with the key named (the loader adds "did you mean"), and transforms units in place.
 *
 * Sizes take `64k`/`1m`/`1g` or bytes; durations `500ms`/`30s`/`5m` or ms (config/units.ts).
 * This module is a leaf, like errors.ts: any layer may import it; it reads no file or env.
 */
import * as z from 'zod';
import { parseDuration, parseSize } from './units.js';

/** A number, or a string with a unit that `parse` understands; `expected` says which. */
const withUnit = (parse: (v: number | string) => number | null, expected: string, unit: 'size' | 'duration') => (def: number, description: string) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const n = parse(v);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `expected ${expected}`, input: v });
        return z.NEVER;
      }
      return n;
    })
    .default(def)
    .meta({ description, unit });

/** A size: bytes, or a string with a unit. */
export const size = withUnit(parseSize, 'a size: bytes, or a number with k, m or g (64k, 1m)', 'size');
/** A duration: milliseconds, or a string with a unit. */
export const duration = withUnit(parseDuration, 'a duration: ms, or a number with ms, s, m or h (500ms, 30s)', 'duration');

const count = (min: number, def: number, description: string) => z.number().int().min(min).default(def).meta({ description });
const flag = (def: boolean, description: string) => z.boolean().default(def).meta({ description });
const strings = (def: readonly string[], description: string) =>
  z
    .array(z.string())
    .readonly()
    .default([...def])
    .meta({ description });

// ─── pool ────────────────────────────────────────────────────────────────────────────────────

export const poolShape = {
  connections: count(1, 4, "Most connections open to the upstream. Keep the sum over everything sharing a php-fpm pool ≤ its pm.max_children."),
  keepAlive: flag(true, 'Send FCGI_KEEP_CONN and reuse connections.'),
  idleTimeout: duration(
    1000,
    'Close a connection idle this long. Short on purpose: an idle kept connection pins its php-fpm worker, so other clients of the pool wait behind it.',
  ),
  maxQueue: count(0, 1024, 'Requests allowed to wait for a connection; more get 503 (GW_ERR_POOL_QUEUE_FULL).'),
  queueTimeout: duration(10_000, 'Longest wait for a connection, then 503 (GW_ERR_POOL_QUEUE_TIMEOUT).'),
  connectTimeout: duration(5000, 'Connect timeout, then 504 (GW_ERR_CONNECT_TIMEOUT).'),
  readTimeout: duration(60_000, 'Longest silence while a response is expected, then 504 (GW_ERR_UPSTREAM_READ_TIMEOUT).'),
  writeTimeout: duration(60_000, 'Longest wait for the upstream to accept request bytes (GW_ERR_UPSTREAM_WRITE_TIMEOUT).'),
  maxRequestsPerConnection: count(0, 0, "Requests per connection before it is retired (0: no limit); match php-fpm's pm.max_requests."),
  retryBufferSize: size(65_536, 'Streamed request-body bytes kept so that a request can be replayed on a fresh connection after a stale one failed.'),
  probeLimits: flag(true, 'Ask the responder for FCGI_MAX_CONNS before the first connection and cap connections to it.'),
};
export const poolSchema = z.strictObject(poolShape);
/** Options of `ConnectionPool`. Durations in ms (0 disables) or with units, sizes in bytes or with units. */
export type PoolOptions = z.input<typeof poolSchema>;
export type ResolvedPoolOptions = Readonly<z.output<typeof poolSchema>>;

// ─── php route (the handler) ─────────────────────────────────────────────────────────────────

const sendfileSchema = z
  .strictObject({
    header: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/, 'expected a header name')
      .meta({ description: 'Response header that names the file (X-Accel-Redirect, X-Sendfile).' }),
    root: z
      .string()
      .startsWith('/', 'expected an absolute directory path')
      .meta({ description: 'Directory the named file must be inside; the header value is a path under it.' }),
  })
  .nullable()
  .default(null)
  .meta({ description: 'Serve responses that carry this header from the static file path instead (null: off).' });

/** Options of a php route: everything of today's handler except where it runs. */
export const phpShape = {
  index: z
    .array(z.string().regex(/^[^/]+$/, 'expected a file name'))
    .readonly()
    .default(['index.php', 'index.html'])
    .meta({ description: 'Index files tried for a directory, in order.' }),
  frontController: z
    .string()
    .startsWith('/', 'expected a URL path starting with /')
    .nullable()
    .default('/index.php')
    .meta({ description: 'Script that gets requests matching nothing else (try_files $uri $uri/ /index.php?$args), when it exists; null: none.' }),
  frontControllerOnly: flag(
    false,
    'Run the front controller and no other script: any other .php path is a 404 (the Symfony and Laravel setups, where nothing else under the root should ever run).',
  ),
  scriptExtensions: z
    .array(z.string().regex(/^\.[A-Za-z0-9]+$/, 'expected an extension such as ".php"'))
    .readonly()
    .default(['.php'])
    .meta({ description: 'Script extensions sent to FastCGI, matched case-sensitively.' }),
  static: flag(true, 'Serve existing non-script files directly.'),
  allowedDotfiles: strings(['.well-known'], 'Path segments starting with "." that may be served.'),
  params: z.record(z.string(), z.string()).default({}).meta({ description: 'Extra CGI params, overriding the mapped ones (PHP_VALUE and PHP_ADMIN_VALUE come only from here).' }),
  trustedProxies: strings([], 'Peer addresses whose X-Forwarded-For and X-Forwarded-Proto are believed.'),
  serverName: z.string().nullable().default(null).meta({ description: "SERVER_NAME; null: the request's Host without its port." }),
  maxBodySize: size(1024 ** 3, 'Largest request body, else 413 (0: no limit).'),
  requestBuffering: flag(
    true,
    "Read the whole request body before taking an upstream connection (nginx fastcgi_request_buffering on), so that a slow uploader never holds a php-fpm worker. false streams Content-Length bodies as they arrive.",
  ),
  bodyBufferSize: size(1024 ** 2, 'Request-body bytes one request may hold in memory (within memoryBudget); more goes to an unlinked temp file.'),
  clientBodyTimeout: duration(60_000, 'Longest gap between two request-body chunks (nginx client_body_timeout): 408 while buffering; 0: none.'),
  responseBufferSize: size(64 * 1024, 'Response bytes held in memory for a client slower than the upstream (within memoryBudget) before spilling to a temp file.'),
  memoryBudget: size(64 * 1024 ** 2, 'Bytes that request bodies and unsent responses may hold in memory in this process, all requests together; past it they go to temp files.'),
  maxResponseSpill: size(1024 ** 3, 'Most response bytes spilled to a temp file per response (nginx fastcgi_max_temp_file_size); past it the upstream is paused. 0: pure backpressure.'),
  sendTimeout: duration(60_000, 'A client that reads nothing of a response for this long is dropped (nginx send_timeout); 0: never.'),
  tmpDir: z.string().default('').meta({ description: 'Directory for temp files (spooled bodies, spilled responses); empty: the OS temp dir.' }),
  maxHeadSize: size(64 * 1024, 'Largest CGI response head, else 502.'),
  maxLocalRedirects: count(0, 10, 'Local redirects (RFC 3875 §6.2.2) followed per request before 502.'),
  sendfile: sendfileSchema,
  maxStderrLog: size(8192, 'FastCGI STDERR bytes logged per request; the rest is counted.'),
  allowUnderscoreHeaders: flag(false, 'Forward request header names containing "_" (nginx underscores_in_headers).'),
  statCacheTtl: duration(1000, 'How long a file or directory is remembered to exist, saving a stat per request (0: stat every time).'),
};

const addressText = z.string().min(1, 'expected an address (unix:/path.sock, host:port or [v6]:port)');

export const handlerSchema = z.strictObject({
  root: z.string().min(1, 'expected a directory path').meta({ description: 'Document root: static files and scripts live here.' }),
  upstream: addressText.meta({ description: 'FastCGI address: unix:/path.sock, host:port or [v6]:port.' }),
  pool: poolSchema.default(poolSchema.parse({})).meta({ description: 'Upstream pool settings.' }),
  ...phpShape,
});
/** Options of `createFastCgiHandler`. */
export type HandlerOptions = z.input<typeof handlerSchema>;
export type ResolvedHandlerOptions = Readonly<z.output<typeof handlerSchema>>;

// ─── server ──────────────────────────────────────────────────────────────────────────────────

export const accessLogSchema = z.union([z.enum(['json', 'pretty']), z.literal(false)]);

export const serverShape = {
  listen: z.string().default('127.0.0.1:8080').meta({ description: 'HOST:PORT, [v6]:PORT, :PORT, PORT or unix:/path.sock.' }),
  accessLog: accessLogSchema.default('json').meta({ description: 'Access log format: json, pretty, or false for none.' }),
  logLevel: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
    .default('info')
    .meta({ description: 'Least level logged: info logs every request; warn keeps only PHP warnings (FastCGI STDERR) and errors.' }),
  headersTimeout: duration(60_000, 'Time to receive a request head, then 408.'),
  keepAliveTimeout: duration(75_000, 'How long a kept-alive client connection (or an HTTP/2 connection without streams) may stay idle (nginx keepalive_timeout 75 s).'),
  keepAliveRequests: count(0, 1000, 'Requests served on one client connection (HTTP/2: streams) before it is closed (nginx keepalive_requests 1000; 0: no limit).'),
  maxConnections: count(0, 16_384, 'Client connections open at once, all listeners and workers together; past it new ones are closed at once (0: no limit).'),
  requestTimeout: duration(0, 'Time for a whole request (0: none; the head and body timeouts guard slow clients).'),
  maxRequestLine: size(8192, 'Longest request line (method, URI, version), else 414 (nginx large_client_header_buffers 4 8k).'),
  maxHeaderLine: size(8192, 'Longest request header line, else 431.'),
  maxRequestHead: size(32 * 1024, 'Largest request head in all, else 431.'),
  shutdownTimeout: duration(30_000, 'On shutdown, how long running requests and open tunnels may go on before they are cut (0: as long as they take).'),
};
export const serverSchema = handlerSchema.extend(serverShape);

// ─── the config file ─────────────────────────────────────────────────────────────────────────

const tlsFiles = z.strictObject({
  cert: z.string().min(1).meta({ description: 'PEM certificate chain file (re-read on reload).' }),
  key: z.string().min(1).meta({ description: 'PEM private key file (re-read on reload).' }),
});

const listenerSchema = z.strictObject({
  address: z.string().min(1).meta({ description: 'HOST:PORT, [v6]:PORT, :PORT, PORT or unix:/path.sock.' }),
  tls: tlsFiles.nullable().default(null).meta({ description: "Serve HTTPS with this certificate, the default for hosts without one of their site's own (null: plain HTTP)." }),
  http2: flag(true, 'Offer HTTP/2 through ALPN on a TLS listener (HTTP/1.1 is served on the same port either way).'),
  mode: z
    .string()
    .regex(/^0?[0-7]{3}$/, 'expected an octal mode such as "0660"')
    .default('0660')
    .meta({ description: 'Permissions of a unix socket.' }),
  redirectToHttps: z
    .union([z.boolean(), z.number().int().min(1).max(65535)])
    .default(false)
    .meta({ description: 'Answer every request with a 308 to https:// on the same host: true (port 443, or the first TLS listener\'s), or a port.' }),
});
/** One listener with every default filled in. */
export type ListenerConfig = z.output<typeof listenerSchema>;
const listenEntry = z.union([z.string().min(1).transform((address) => listenerSchema.parse({ address })), listenerSchema]);

/** An upstream reference: a name from `upstreams`, or an address given inline. */
export const isInlineAddress = (s: string): boolean => s.startsWith('unix:') || s.startsWith('/') || s.includes(':');

const serverEntry = z.union([
  addressText,
  z.strictObject({
    address: addressText.meta({ description: 'unix:/path.sock or host:port.' }),
    weight: z.number().int().min(1).default(1).meta({ description: 'Share of the requests, relative to the other servers.' }),
  }),
]);

const upstreamSchema = z.strictObject({
  servers: z
    .array(serverEntry)
    .min(1, 'expected at least one server')
    .meta({ description: 'FastCGI servers: "unix:/path.sock", "host:port", or { address, weight }. Each is its own php-fpm pool; connections applies to each.' }),
  balance: z.enum(['least_conn', 'round_robin']).default('least_conn').meta({ description: 'How requests are spread over the servers: fewest in flight per weight, or weighted round robin.' }),
  maxFails: count(0, 1, 'Failed connects within failTimeout that mark a server down for failTimeout (nginx max_fails; 0: never marked down).'),
  failTimeout: duration(10_000, 'The window for maxFails, and how long a server stays marked down (nginx fail_timeout).'),
  health: z
    .strictObject({
      path: z.string().startsWith('/').default('/ping').meta({ description: "php-fpm's ping.path." }),
      interval: duration(5000, 'Time between checks of each server.'),
      timeout: duration(2000, 'A check slower than this fails.'),
      expect: z.string().default('pong').meta({ description: "Text the answer must contain (php-fpm's ping.response)." }),
    })
    .nullable()
    .default(null)
    .meta({ description: 'Active health checks through php-fpm\'s ping page: a failing server is skipped until it answers again (null: passive only).' }),
  statusPath: z
    .string()
    .startsWith('/')
    .nullable()
    .default(null)
    .meta({ description: "php-fpm's pm.status_path: when set, /metrics carries each server's pool status as phpfpm_* (null: not scraped)." }),
  ...poolShape,
});

// memoryBudget is the process's, set once at the top of the file.
const { memoryBudget: _processWide, ...phpRouteShape } = phpShape;
const phpRouteSchema = z.strictObject({
  upstream: z.string().min(1).meta({ description: 'Name from upstreams, or an address inline.' }),
  root: z.string().min(1).optional().meta({ description: "Document root of this route (default: the site's root)." }),
  ...phpRouteShape,
});

const fastcgiRouteSchema = z.strictObject({
  upstream: z.string().min(1).meta({ description: 'Name from upstreams, or an address inline (unix:/run/fcgiwrap.socket).' }),
  script: z.string().startsWith('/', 'expected an absolute path').meta({ description: 'SCRIPT_FILENAME for every request under the prefix.' }),
  params: z.record(z.string(), z.string()).default({}).meta({ description: 'Extra CGI params (GIT_PROJECT_ROOT, ...).' }),
  maxBodySize: phpShape.maxBodySize,
  requestBuffering: phpShape.requestBuffering,
  clientBodyTimeout: phpShape.clientBodyTimeout,
  sendTimeout: phpShape.sendTimeout,
});

const staticRouteSchema = z.strictObject({
  root: z.string().min(1).optional().meta({ description: "Directory served under the prefix (default: the site's root)." }),
  index: z.array(z.string()).default(['index.html']).meta({ description: 'Index files tried for a directory.' }),
  statCacheTtl: duration(1000, 'How long a file or directory is remembered to exist, and a small file\'s bytes kept, saving a stat and a read per request (0: every time).'),
});

const redirectRouteSchema = z.strictObject({
  to: z.string().min(1).meta({ description: 'Target URL or path.' }),
  status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302).meta({ description: 'Redirect status.' }),
  keepPath: flag(false, 'Append the path after the prefix, and the query, to the target.'),
});

const headersSchema = z
  .strictObject({
    add: z.record(z.string(), z.string()).default({}).meta({ description: 'Headers appended to the response.' }),
    set: z.record(z.string(), z.string()).default({}).meta({ description: 'Headers that replace any the upstream sent.' }),
    remove: strings([], 'Headers removed from the response.'),
  })
  .default({ add: {}, set: {}, remove: [] });

const proxyRouteSchema = z.strictObject({
  url: z
    .string()
    .regex(/^https?:\/\/[^/?#]+(\/[^?#]*)?$/i, 'expected an http:// or https:// URL')
    .meta({ description: 'Upstream URL. Without a path the request URI is sent unchanged; with one ("http://h:3000/v1/"), the route prefix is replaced by it, as nginx proxy_pass does.' }),
  host: z.string().min(1).default('upstream').meta({ description: 'Host header sent: "upstream" (the url\'s host, nginx\'s default), "pass" (the client\'s), or a name.' }),
  connectTimeout: duration(5000, 'Connect timeout, then 504.'),
  headersTimeout: duration(60_000, 'Time to the response head, then 504 (nginx proxy_read_timeout).'),
  bodyTimeout: duration(60_000, 'Longest gap between response body chunks; past it the response is cut.'),
});

export const ROUTE_KINDS = ['php', 'fastcgi', 'proxy', 'static', 'redirect'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];

const routeSchema = z
  .strictObject({
    path: z.string().startsWith('/', 'expected a path prefix starting with /').meta({ description: 'Path prefix; the longest matching prefix wins.' }),
    php: phpRouteSchema.optional().meta({ description: 'PHP scripts from a document root, as the nginx + php-fpm setup does.' }),
    fastcgi: fastcgiRouteSchema.optional().meta({ description: 'One fixed FastCGI script for every request under the prefix (fcgiwrap + git-http-backend).' }),
    proxy: proxyRouteSchema.optional().meta({ description: 'An HTTP upstream, bodies streamed both ways, upgrades (WebSocket) passed through.' }),
    static: staticRouteSchema.optional().meta({ description: 'Files only (ETag, Range, 304).' }),
    redirect: redirectRouteSchema.optional().meta({ description: 'Answer with a redirect.' }),
    earlyHints: strings([], 'Link values sent as 103 Early Hints before the request is dispatched.'),
    headers: headersSchema.meta({ description: 'Response headers to add, set or remove.' }),
    accessLog: flag(true, "Log this route's requests."),
  })
  .superRefine((r, ctx) => {
    const kinds = ROUTE_KINDS.filter((k) => r[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `a route needs exactly one of ${ROUTE_KINDS.join(', ')}; ${kinds.length === 0 ? 'found none' : `found ${kinds.join(' and ')}`}`,
        input: r,
      });
    }
  });

const siteSchema = z.strictObject({
  hosts: z.array(z.string().min(1)).min(1).default(['*']).meta({ description: 'Host names: exact, "*.example.com", or "*" for the default site.' }),
  tls: tlsFiles.nullable().default(null).meta({ description: "This site's certificate, chosen by SNI on every TLS listener (null: the listener's)." }),
  root: z.string().min(1).optional().meta({ description: 'Document root of the php and static routes that give none.' }),
  routes: z.array(routeSchema).min(1, 'expected at least one route').meta({ description: 'Routes by path prefix.' }),
});

export const configSchema = z
  .strictObject({
    listen: z
      .union([listenEntry, z.array(listenEntry).min(1)])
      .prefault(['127.0.0.1:8080'])
      .transform((v) => (Array.isArray(v) ? v : [v]))
      .meta({ description: 'Listeners: an address (HOST:PORT, [v6]:PORT, :PORT, unix:/path.sock), or { address, tls, http2, mode, redirectToHttps }.' }),
    workers: z
      .union([z.number().int().min(1), z.literal('auto')])
      .default(1)
      .meta({ description: 'Worker processes sharing the listeners (node:cluster); "auto": one per core. Each upstream\'s connections are divided among them.' }),
    admin: z
      .strictObject({
        listen: z.string().min(1).default('127.0.0.1:9180').meta({ description: 'Address of the admin listener (loopback unless told otherwise).' }),
      })
      .nullable()
      .default(null)
      .meta({ description: 'Admin listener with /healthz, /readyz and /metrics (null: off).' }),
    accessLog: serverShape.accessLog,
    logLevel: serverShape.logLevel,
    headersTimeout: serverShape.headersTimeout,
    keepAliveTimeout: serverShape.keepAliveTimeout,
    keepAliveRequests: serverShape.keepAliveRequests,
    maxConnections: serverShape.maxConnections,
    requestTimeout: serverShape.requestTimeout,
    maxRequestLine: serverShape.maxRequestLine,
    maxHeaderLine: serverShape.maxHeaderLine,
    maxRequestHead: serverShape.maxRequestHead,
    shutdownTimeout: serverShape.shutdownTimeout,
    memoryBudget: phpShape.memoryBudget,
    tmpDir: phpShape.tmpDir,
    upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, _ . -'), upstreamSchema).default({}).meta({ description: 'Named FastCGI upstreams.' }),
    sites: z.array(siteSchema).min(1, 'expected at least one site').meta({ description: 'Sites, matched by Host.' }),
  })
  .superRefine((c, ctx) => {
    const addresses = new Set<string>();
    c.listen.forEach((l, i) => {
      // Port 0 (any free port, in tests) may be listed more than once.
      if (addresses.has(l.address) && !l.address.endsWith(':0')) ctx.addIssue({ code: 'custom', path: ['listen', i], message: `${l.address} is listed twice`, input: l.address });
      addresses.add(l.address);
      if (l.tls !== null && l.redirectToHttps !== false) ctx.addIssue({ code: 'custom', path: ['listen', i, 'redirectToHttps'], message: 'a TLS listener cannot redirect to HTTPS', input: l.redirectToHttps });
    });
    if (c.sites.some((s) => s.tls !== null) && !c.listen.some((l) => l.tls !== null)) {
      ctx.addIssue({ code: 'custom', path: ['listen'], message: 'a site has tls but no listener does: give one listener tls, the default certificate', input: c.listen });
    }
    const seen = new Map<string, number>();
    c.sites.forEach((site, i) => {
      site.hosts.forEach((h, j) => {
        const key = h.toLowerCase();
        const first = seen.get(key);
        if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['sites', i, 'hosts', j], message: `host ${JSON.stringify(h)} is already served by site ${first}`, input: h });
        else seen.set(key, i);
      });
      site.routes.forEach((r, j) => {
        for (const kind of ['php', 'fastcgi'] as const) {
          const up = r[kind]?.upstream;
          if (up !== undefined && !isInlineAddress(up) && !(up in c.upstreams)) {
            const names = Object.keys(c.upstreams);
            ctx.addIssue({
              code: 'custom',
              path: ['sites', i, 'routes', j, kind, 'upstream'],
              message: `no upstream named ${JSON.stringify(up)} (${names.length ? `defined: ${names.join(', ')}` : 'none defined'}; an address inline needs a ":" or "unix:")`,
              input: up,
            });
          }
        }
        if ((r.php && !r.php.root && !site.root) || (r.static && !r.static.root && !site.root)) {
          ctx.addIssue({ code: 'custom', path: ['sites', i, 'routes', j], message: 'this route needs a root (on the route or its site)', input: r });
        }
      });
    });
  });
/** The config file, as written. */
export type GatewayConfigInput = z.input<typeof configSchema>;
/** The config file with every default filled in. */
export type GatewayConfig = z.output<typeof configSchema>;
export type SiteConfig = GatewayConfig['sites'][number];
export type RouteConfig = SiteConfig['routes'][number];
export type UpstreamConfig = GatewayConfig['upstreams'][string];
export type PhpRouteConfig = NonNullable<RouteConfig['php']>;
export type FastCgiRouteConfig = NonNullable<RouteConfig['fastcgi']>;
