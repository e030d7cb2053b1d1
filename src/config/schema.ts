/**
 * The one schema for every option: pool, handler (php route), server, and the config file
 * (listen, upstreams, sites, routes). It gives the TypeScript types, the defaults, the
 * validation with key paths, and the key list that docs/configuration.md is checked against.
 *
 * valibot, because it infers the types from the schema (no second declaration to drift), reports
 * every issue with its key path and the offending input, rejects unknown keys in strict objects
 * with the key named (the loader adds "did you mean"), transforms units in place, and its
 * schemas are plain objects that config/issues.ts walks for the key list. It is one module of
 * 200 KB: zod 4 is 95 modules and cost the serving process 8 MiB of idle RSS (README, Performance).
 *
 * Sizes take `64k`/`1m`/`1g` or bytes; durations `500ms`/`30s`/`5m` or ms (config/units.ts).
 * This module is a leaf, like errors.ts: any layer may import it; it reads no file or env.
 */
import * as v from 'valibot';
import { parseDuration, parseSize } from './units.js';

/** `schema` with its description (schemaKeys reads it; docs/configuration.md is held to it). */
const doc = <S extends v.GenericSchema>(schema: S, description: string) => v.pipe(schema, v.description(description));

/** A mapping of keys: valibot's objects and records take any non-null object, lists too. */
const isMapping = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
/** Names a record would drop without a word (valibot skips them, against prototype pollution). */
const RESERVED_NAMES = ['__proto__', 'constructor', 'prototype'];

/** A check for a mapping, put before an object or a record (config/issues.ts describes its issue). */
const mapping = <T>() => v.custom<T>(isMapping, 'expected an object');

/** An object of these keys and no others; a list is refused, not read as an object with keys 0, 1, ... */
function object<const E extends v.ObjectEntries>(entries: E) {
  const schema = v.strictObject(entries);
  return v.pipe(mapping<v.InferInput<typeof schema>>(), schema);
}

/** A record (names chosen by the user); a list is refused, and so are the names a record would drop. */
function names<K extends v.GenericSchema<string, string | number | symbol>, V extends v.GenericSchema>(key: K, value: V) {
  const schema = v.record(key, value);
  return v.pipe(
    mapping<v.InferInput<typeof schema>>(),
    v.custom<v.InferInput<typeof schema>>(
      (x) => !RESERVED_NAMES.some((n) => Object.hasOwn(x as object, n)),
      (issue) => `${RESERVED_NAMES.filter((n) => Object.hasOwn(issue.input as object, n)).map((n) => JSON.stringify(n)).join(', ')} cannot be used as a name`,
    ),
    schema,
  );
}

/** A number, or a string with a unit that `parse` understands; `expected` says which. */
const withUnit = (parse: (v: number | string) => number | null, expected: string, unit: 'size' | 'duration') => (def: number, description: string) =>
  v.optional(
    v.pipe(
      v.union([v.number(), v.string()]),
      v.rawTransform<number | string, number>(({ dataset, addIssue, NEVER }) => {
        const n = parse(dataset.value);
        if (n === null) {
          addIssue({ message: `expected ${expected}` });
          return NEVER;
        }
        return n;
      }),
      v.description(description),
      v.metadata({ unit }),
    ),
    def,
  );

/** A size: bytes, or a string with a unit. */
export const size = withUnit(parseSize, 'a size: bytes, or a number with k, m or g (64k, 1m)', 'size');
/** A duration: milliseconds, or a string with a unit. */
export const duration = withUnit(parseDuration, 'a duration: ms, or a number with ms, s, m or h (500ms, 30s)', 'duration');

const count = (min: number, def: number, description: string) => v.optional(doc(v.pipe(v.number(), v.safeInteger(), v.minValue(min)), description), def);
const flag = (def: boolean, description: string) => v.optional(doc(v.boolean(), description), def);
const strings = (def: readonly string[], description: string) => v.optional(doc(v.pipe(v.array(v.string()), v.readonly()), description), [...def]);
/** null unless given (a nullable key whose default is null). */
const orNull = <S extends v.GenericSchema>(schema: S, description: string) => v.optional(doc(v.nullable(schema), description), null);
const text = (description: string) => doc(v.pipe(v.string(), v.minLength(1, 'expected a non-empty string')), description);
const startsWithSlash = (message: string) => v.pipe(v.string(), v.startsWith('/', message));
const stringMap = (description: string) => v.optional(doc(names(v.string(), v.string()), description), {});

/**
 * An options type whose lists may be readonly: valibot's `readonly()` marks the output only, and
 * callers pass the resolved (readonly) lists back in.
 */
type ReadonlyLists<T> = { [K in keyof T]: T[K] extends Array<infer E> ? readonly E[] : T[K] extends Array<infer E> | undefined ? readonly E[] | undefined : T[K] };

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
export const poolSchema = object(poolShape);
/** Options of `ConnectionPool`. Durations in ms (0 disables) or with units, sizes in bytes or with units. */
export type PoolOptions = v.InferInput<typeof poolSchema>;
export type ResolvedPoolOptions = Readonly<v.InferOutput<typeof poolSchema>>;

// ─── php route (the handler) ─────────────────────────────────────────────────────────────────

const sendfileSchema = orNull(
  object({
    header: doc(v.pipe(v.string(), v.regex(/^[A-Za-z0-9-]+$/, 'expected a header name')), 'Response header that names the file (X-Accel-Redirect, X-Sendfile).'),
    root: doc(startsWithSlash('expected an absolute directory path'), 'Directory the named file must be inside; the header value is a path under it.'),
  }),
  'Serve responses that carry this header from the static file path instead (null: off).',
);

/** Options of a php route: everything of today's handler except where it runs. */
export const phpShape = {
  index: v.optional(
    doc(v.pipe(v.array(v.pipe(v.string(), v.regex(/^[^/]+$/, 'expected a file name'))), v.readonly()), 'Index files tried for a directory, in order.'),
    ['index.php', 'index.html'],
  ),
  frontController: v.optional(
    doc(
      v.nullable(startsWithSlash('expected a URL path starting with /')),
      'Script that gets requests matching nothing else (try_files $uri $uri/ /index.php?$args), when it exists; null: none.',
    ),
    '/index.php',
  ),
  frontControllerOnly: flag(
    false,
    'Run the front controller and no other script: any other .php path is a 404 (the Symfony and Laravel setups, where nothing else under the root should ever run).',
  ),
  scriptExtensions: v.optional(
    doc(v.pipe(v.array(v.pipe(v.string(), v.regex(/^\.[A-Za-z0-9]+$/, 'expected an extension such as ".php"'))), v.readonly()), 'Script extensions sent to FastCGI, matched case-sensitively.'),
    ['.php'],
  ),
  static: flag(true, 'Serve existing non-script files directly.'),
  allowedDotfiles: strings(['.well-known'], 'Path segments starting with "." that may be served.'),
  params: stringMap('Extra CGI params, overriding the mapped ones (PHP_VALUE and PHP_ADMIN_VALUE come only from here).'),
  trustedProxies: strings([], 'Peer addresses whose X-Forwarded-For and X-Forwarded-Proto are believed.'),
  serverName: orNull(v.string(), "SERVER_NAME; null: the request's Host without its port."),
  maxBodySize: size(1024 ** 3, 'Largest request body, else 413 (0: no limit).'),
  requestBuffering: flag(
    true,
    "Read the whole request body before taking an upstream connection (nginx fastcgi_request_buffering on), so that a slow uploader never holds a php-fpm worker. false streams Content-Length bodies as they arrive.",
  ),
  bodyBufferSize: size(1024 ** 2, 'Request-body bytes one request may hold in memory (within memoryBudget); more goes to an unlinked temp file.'),
  clientBodyTimeout: duration(60_000, 'Longest gap between two request-body chunks (nginx client_body_timeout): 408 while buffering; time the gateway holds the client back for its disk does not count; 0: none.'),
  responseBufferSize: size(64 * 1024, 'Response bytes held in memory for a client slower than the upstream (within memoryBudget) before spilling to a temp file.'),
  memoryBudget: size(64 * 1024 ** 2, 'Bytes that request bodies and unsent responses may hold in memory in this process, all requests together; past it they go to temp files.'),
  maxResponseSpill: size(1024 ** 3, 'Most response bytes spilled to a temp file per response (nginx fastcgi_max_temp_file_size); past it the upstream is paused. 0: pure backpressure.'),
  sendTimeout: duration(60_000, 'A client that reads nothing of a response for this long is dropped (nginx send_timeout); 0: never.'),
  tmpDir: v.optional(doc(v.string(), 'Directory for temp files (spooled bodies, spilled responses); empty: the OS temp dir.'), ''),
  maxHeadSize: size(64 * 1024, 'Largest CGI response head, else 502.'),
  maxLocalRedirects: count(0, 10, 'Local redirects (RFC 3875 §6.2.2) followed per request before 502.'),
  sendfile: sendfileSchema,
  maxStderrLog: size(8192, 'FastCGI STDERR bytes logged per request; the rest is counted.'),
  allowUnderscoreHeaders: flag(false, 'Forward request header names containing "_" (nginx underscores_in_headers).'),
  statCacheTtl: duration(1000, 'How long a file or directory is remembered to exist, saving a stat per request (0: stat every time).'),
};

const addressText = (description: string) => doc(v.pipe(v.string(), v.minLength(1, 'expected an address (unix:/path.sock, host:port or [v6]:port)')), description);

const handlerShape = {
  root: doc(v.pipe(v.string(), v.minLength(1, 'expected a directory path')), 'Document root: static files and scripts live here.'),
  upstream: addressText('FastCGI address: unix:/path.sock, host:port or [v6]:port.'),
  // The default runs through poolSchema, which fills in every pool default.
  pool: v.optional(doc(poolSchema, 'Upstream pool settings.'), {}),
  ...phpShape,
};
export const handlerSchema = object(handlerShape);
/** Options of `createFastCgiHandler`. */
export type HandlerOptions = ReadonlyLists<v.InferInput<typeof handlerSchema>>;
export type ResolvedHandlerOptions = Readonly<v.InferOutput<typeof handlerSchema>>;

// ─── server ──────────────────────────────────────────────────────────────────────────────────

export const accessLogSchema = v.union([v.picklist(['json', 'pretty']), v.literal(false)]);

export const serverShape = {
  listen: v.optional(doc(v.string(), 'HOST:PORT, [v6]:PORT, :PORT, PORT or unix:/path.sock.'), '127.0.0.1:8080'),
  accessLog: v.optional(doc(accessLogSchema, 'Access log format: json, pretty, or false for none.'), 'json'),
  logLevel: v.optional(
    doc(
      v.picklist(['trace', 'debug', 'info', 'warn', 'error', 'fatal']),
      'Least level logged: info logs every request; warn keeps only PHP warnings (FastCGI STDERR) and errors.',
    ),
    'info',
  ),
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
export const serverSchema = object({ ...handlerShape, ...serverShape });
/** Options of `startGatewayServer` that the schema checks. */
export type ServerOptions = ReadonlyLists<v.InferInput<typeof serverSchema>>;

// ─── the config file ─────────────────────────────────────────────────────────────────────────

const tlsFiles = object({
  cert: text('PEM certificate chain file (re-read on reload).'),
  key: text('PEM private key file (re-read on reload).'),
});

const listenerSchema = object({
  address: text('HOST:PORT, [v6]:PORT, :PORT, PORT or unix:/path.sock.'),
  tls: orNull(tlsFiles, "Serve HTTPS with this certificate, the default for hosts without one of their site's own (null: plain HTTP)."),
  http2: flag(true, 'Offer HTTP/2 through ALPN on a TLS listener (HTTP/1.1 is served on the same port either way).'),
  mode: v.optional(doc(v.pipe(v.string(), v.regex(/^0?[0-7]{3}$/, 'expected an octal mode such as "0660"')), 'Permissions of a unix socket.'), '0660'),
  redirectToHttps: v.optional(
    doc(
      v.union([v.boolean(), v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(65535))]),
      'Answer every request with a 308 to https:// on the same host: true (port 443, or the first TLS listener\'s), or a port.',
    ),
    false,
  ),
});
/** One listener with every default filled in. */
export type ListenerConfig = v.InferOutput<typeof listenerSchema>;
const listenEntry = v.union([
  v.pipe(
    v.string(),
    v.minLength(1, 'expected a non-empty string'),
    v.transform((address): ListenerConfig => v.parse(listenerSchema, { address })),
  ),
  listenerSchema,
]);

/** An upstream reference: a name from `upstreams`, or an address given inline. */
export const isInlineAddress = (s: string): boolean => s.startsWith('unix:') || s.startsWith('/') || s.includes(':');

const serverEntry = v.union([
  addressText('unix:/path.sock or host:port.'),
  object({
    address: addressText('unix:/path.sock or host:port.'),
    weight: v.optional(doc(v.pipe(v.number(), v.safeInteger(), v.minValue(1)), 'Share of the requests, relative to the other servers.'), 1),
  }),
]);

const upstreamSchema = object({
  servers: doc(
    v.pipe(v.array(serverEntry), v.minLength(1, 'expected at least one server')),
    'FastCGI servers: "unix:/path.sock", "host:port", or { address, weight }. Each is its own php-fpm pool; connections applies to each.',
  ),
  balance: v.optional(
    doc(v.picklist(['least_conn', 'round_robin']), 'How requests are spread over the servers: fewest in flight per weight, or weighted round robin.'),
    'least_conn',
  ),
  maxFails: count(0, 1, 'Failed connects within failTimeout that mark a server down for failTimeout (nginx max_fails; 0: never marked down).'),
  failTimeout: duration(10_000, 'The window for maxFails, and how long a server stays marked down (nginx fail_timeout).'),
  health: orNull(
    object({
      path: v.optional(doc(startsWithSlash('expected a URL path starting with /'), "php-fpm's ping.path."), '/ping'),
      interval: duration(5000, 'Time between checks of each server.'),
      timeout: duration(2000, 'A check slower than this fails.'),
      expect: v.optional(doc(v.string(), "Text the answer must contain (php-fpm's ping.response)."), 'pong'),
    }),
    'Active health checks through php-fpm\'s ping page: a failing server is skipped until it answers again (null: passive only).',
  ),
  statusPath: orNull(
    startsWithSlash('expected a URL path starting with /'),
    "php-fpm's pm.status_path: when set, /metrics carries each server's pool status as phpfpm_* (null: not scraped).",
  ),
  ...poolShape,
});

// memoryBudget is the process's, set once at the top of the file.
const { memoryBudget: _processWide, ...phpRouteShape } = phpShape;
const phpRouteSchema = object({
  upstream: text('Name from upstreams, or an address inline.'),
  root: v.optional(text("Document root of this route (default: the site's root).")),
  ...phpRouteShape,
});

const fastcgiRouteSchema = object({
  upstream: text('Name from upstreams, or an address inline (unix:/run/fcgiwrap.socket).'),
  script: doc(startsWithSlash('expected an absolute path'), 'SCRIPT_FILENAME for every request under the prefix.'),
  params: stringMap('Extra CGI params (GIT_PROJECT_ROOT, ...).'),
  maxBodySize: phpShape.maxBodySize,
  requestBuffering: phpShape.requestBuffering,
  clientBodyTimeout: phpShape.clientBodyTimeout,
  sendTimeout: phpShape.sendTimeout,
});

const staticRouteSchema = object({
  root: v.optional(text("Directory served under the prefix (default: the site's root).")),
  index: v.optional(doc(v.array(v.string()), 'Index files tried for a directory.'), ['index.html']),
  statCacheTtl: duration(1000, 'How long a file or directory is remembered to exist, and a small file\'s bytes kept, saving a stat and a read per request (0: every time).'),
});

const redirectRouteSchema = object({
  to: text('Target URL or path.'),
  status: v.optional(doc(v.picklist([301, 302, 303, 307, 308]), 'Redirect status.'), 302),
  keepPath: flag(false, 'Append the path after the prefix, and the query, to the target.'),
});

const headersSchema = v.optional(
  doc(
    object({
      add: stringMap('Headers appended to the response.'),
      set: stringMap('Headers that replace any the upstream sent.'),
      remove: strings([], 'Headers removed from the response.'),
    }),
    'Response headers to add, set or remove.',
  ),
  { add: {}, set: {}, remove: [] },
);

const proxyRouteSchema = object({
  url: doc(
    v.pipe(v.string(), v.regex(/^https?:\/\/[^/?#]+(\/[^?#]*)?$/i, 'expected an http:// or https:// URL')),
    'Upstream URL. Without a path the request URI is sent unchanged; with one ("http://h:3000/v1/"), the route prefix is replaced by it, as nginx proxy_pass does.',
  ),
  host: v.optional(text('Host header sent: "upstream" (the url\'s host, nginx\'s default), "pass" (the client\'s), or a name.'), 'upstream'),
  connectTimeout: duration(5000, 'Connect timeout, then 504.'),
  headersTimeout: duration(60_000, 'Time to the response head, then 504 (nginx proxy_read_timeout).'),
  bodyTimeout: duration(60_000, 'Longest gap between response body chunks; past it the response is cut.'),
});

export const ROUTE_KINDS = ['php', 'fastcgi', 'proxy', 'static', 'redirect'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];

/** The path item of `key` in `parent`, for an issue a check adds below the object it checks. */
const at = (parent: Record<string, unknown> | readonly unknown[], key: string | number): v.IssuePathItem =>
  Array.isArray(parent)
    ? { type: 'array', origin: 'value', input: parent, key: key as number, value: parent[key as number] }
    : { type: 'object', origin: 'value', input: parent as Record<string, unknown>, key: key as string, value: (parent as Record<string, unknown>)[key as string] };
/** A value that should be a list or a mapping, as one (empty when it is not: its own issue says why). */
const list = (x: unknown): readonly unknown[] => (Array.isArray(x) ? x : []);
const fields = (x: unknown): Record<string, unknown> => (isMapping(x) ? x : {});

/** The path from `root` down `keys`. */
const pathOf = (root: unknown, ...keys: Array<string | number>): [v.IssuePathItem, ...v.IssuePathItem[]] => {
  const items: v.IssuePathItem[] = [];
  let node = root as Record<string, unknown> | unknown[];
  for (const k of keys) {
    items.push(at(node, k));
    node = (Array.isArray(node) ? node[k as number] : node[k as string]) as Record<string, unknown> | unknown[];
  }
  return items as [v.IssuePathItem, ...v.IssuePathItem[]];
};

const routeSchema = v.pipe(
  object({
    path: doc(startsWithSlash('expected a path prefix starting with /'), 'Path prefix; the longest matching prefix wins.'),
    php: v.optional(doc(phpRouteSchema, 'PHP scripts from a document root, as the nginx + php-fpm setup does.')),
    fastcgi: v.optional(doc(fastcgiRouteSchema, 'One fixed FastCGI script for every request under the prefix (fcgiwrap + git-http-backend).')),
    proxy: v.optional(doc(proxyRouteSchema, 'An HTTP upstream, bodies streamed both ways, upgrades (WebSocket) passed through.')),
    static: v.optional(doc(staticRouteSchema, 'Files only (ETag, Range, 304).')),
    redirect: v.optional(doc(redirectRouteSchema, 'Answer with a redirect.')),
    earlyHints: strings([], 'Link values sent as 103 Early Hints before the request is dispatched.'),
    headers: headersSchema,
    accessLog: flag(true, "Log this route's requests."),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    const r = fields(dataset.value);
    const kinds = ROUTE_KINDS.filter((k) => r[k] !== undefined);
    if (kinds.length !== 1) {
      addIssue({ message: `a route needs exactly one of ${ROUTE_KINDS.join(', ')}; ${kinds.length === 0 ? 'found none' : `found ${kinds.join(' and ')}`}` });
    }
  }),
);

const siteSchema = object({
  hosts: v.optional(
    doc(v.pipe(v.array(v.pipe(v.string(), v.minLength(1, 'expected a non-empty string'))), v.minLength(1)), 'Host names: exact, "*.example.com", or "*" for the default site.'),
    ['*'],
  ),
  tls: orNull(tlsFiles, "This site's certificate, chosen by SNI on every TLS listener (null: the listener's)."),
  root: v.optional(text('Document root of the php and static routes that give none.')),
  routes: doc(v.pipe(v.array(routeSchema), v.minLength(1, 'expected at least one route')), 'Routes by path prefix.'),
});

export const configSchema = v.pipe(
  object({
    listen: doc(
      v.pipe(
        v.optional(v.union([listenEntry, v.pipe(v.array(listenEntry), v.minLength(1))]), ['127.0.0.1:8080']),
        v.transform((l) => (Array.isArray(l) ? l : [l])),
      ),
      'Listeners: an address (HOST:PORT, [v6]:PORT, :PORT, unix:/path.sock), or { address, tls, http2, mode, redirectToHttps }.',
    ),
    workers: v.optional(
      doc(
        v.union([v.pipe(v.number(), v.safeInteger(), v.minValue(1)), v.literal('auto')]),
        'Worker processes sharing the listeners (node:cluster); "auto": one per core. Each upstream\'s connections are divided among them.',
      ),
      1,
    ),
    admin: orNull(
      object({
        listen: v.optional(text('Address of the admin listener (loopback unless told otherwise).'), '127.0.0.1:9180'),
      }),
      'Admin listener with /healthz, /readyz and /metrics (null: off).',
    ),
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
    upstreams: v.optional(
      doc(names(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, _ . -')), upstreamSchema), 'Named FastCGI upstreams.'),
      {},
    ),
    sites: doc(v.pipe(v.array(siteSchema), v.minLength(1, 'expected at least one site')), 'Sites, matched by Host.'),
  }),
  // Also when other keys are wrong (every problem is reported at once), so each value's shape is
  // checked before it is used.
  v.rawCheck(({ dataset, addIssue }) => {
    const c = fields(dataset.value);
    const listen = list(c['listen']).map(fields);
    const upstreams = fields(c['upstreams']);
    const sites = list(c['sites']).map(fields);
    const addresses = new Set<string>();
    listen.forEach((l, i) => {
      const address = l['address'];
      if (typeof address === 'string') {
        // Port 0 (any free port, in tests) may be listed more than once.
        if (addresses.has(address) && !address.endsWith(':0')) addIssue({ path: pathOf(c, 'listen', i), message: `${address} is listed twice`, input: address });
        addresses.add(address);
      }
      const redirect = l['redirectToHttps'];
      if (isMapping(l['tls']) && redirect !== false && redirect !== undefined) addIssue({ path: pathOf(c, 'listen', i, 'redirectToHttps'), message: 'a TLS listener cannot redirect to HTTPS', input: redirect });
    });
    if (sites.some((s) => isMapping(s['tls'])) && !listen.some((l) => isMapping(l['tls']))) {
      addIssue({ path: pathOf(c, 'listen'), message: 'a site has tls but no listener does: give one listener tls, the default certificate', input: c['listen'] });
    }
    const seen = new Map<string, number>();
    sites.forEach((site, i) => {
      list(site['hosts']).forEach((h, j) => {
        if (typeof h !== 'string') return;
        const key = h.toLowerCase();
        const first = seen.get(key);
        if (first !== undefined) addIssue({ path: pathOf(c, 'sites', i, 'hosts', j), message: `host ${JSON.stringify(h)} is already served by site ${first}`, input: h });
        else seen.set(key, i);
      });
      list(site['routes']).forEach((route, j) => {
        const r = fields(route);
        for (const kind of ['php', 'fastcgi'] as const) {
          const up = fields(r[kind])['upstream'];
          // Own keys only: "toString" is not an upstream.
          if (typeof up === 'string' && !isInlineAddress(up) && !Object.hasOwn(upstreams, up)) {
            const defined = Object.keys(upstreams);
            addIssue({
              path: pathOf(c, 'sites', i, 'routes', j, kind, 'upstream'),
              message: `no upstream named ${JSON.stringify(up)} (${defined.length ? `defined: ${defined.join(', ')}` : 'none defined'}; an address inline needs a ":" or "unix:")`,
              input: up,
            });
          }
        }
        const rootless = (kind: 'php' | 'static'): boolean => isMapping(r[kind]) && !fields(r[kind])['root'] && !site['root'];
        if (rootless('php') || rootless('static')) {
          addIssue({ path: pathOf(c, 'sites', i, 'routes', j), message: 'this route needs a root (on the route or its site)', input: r });
        }
      });
    });
  }),
);
/** The config file, as written. */
export type GatewayConfigInput = v.InferInput<typeof configSchema>;
/** The config file with every default filled in. */
export type GatewayConfig = v.InferOutput<typeof configSchema>;
export type SiteConfig = GatewayConfig['sites'][number];
export type RouteConfig = SiteConfig['routes'][number];
export type UpstreamConfig = GatewayConfig['upstreams'][string];
export type PhpRouteConfig = NonNullable<RouteConfig['php']>;
export type FastCgiRouteConfig = NonNullable<RouteConfig['fastcgi']>;
