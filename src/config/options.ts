/**
 * Options of the HTTP handler (`createFastCgiHandler`) and their defaults. Resolved once:
 * unknown keys and bad values throw ConfigError naming the field; the result is frozen.
 * Durations are milliseconds, sizes bytes.
 */
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import type { PoolOptions } from '../upstream/pool.js';

/** How X-Accel-Redirect / X-Sendfile answers are served. */
export interface SendfileOptions {
  /** Response header that names the file (e.g. `X-Accel-Redirect` or `X-Sendfile`). */
  readonly header: string;
  /** Directory the named file must be inside; the header value is a path under it. */
  readonly root: string;
}

/** Options of `createFastCgiHandler`. */
export interface HandlerOptions {
  /** Document root: static files and PHP scripts live here. Required. */
  readonly root: string;
  /** FastCGI upstream address: `unix:/path.sock`, `host:port` or `[v6]:port`. Required. */
  readonly upstream: string;
  /** Upstream pool settings (connections ≤ php-fpm's pm.max_children). */
  readonly pool?: PoolOptions;
  /** Index files tried for a directory, in order (default `['index.php', 'index.html']`). */
  readonly index?: readonly string[];
  /**
   * Script that gets requests matching nothing else (`try_files $uri $uri/ /index.php?$args`),
   * when it exists; null disables (default `/index.php`).
   */
  readonly frontController?: string | null;
  /** Script extensions sent to FastCGI (default `['.php']`), matched case-sensitively. */
  readonly scriptExtensions?: readonly string[];
  /** Serve existing non-script files directly (default true). */
  readonly static?: boolean;
  /** Path segments starting with `.` that may be served (default `['.well-known']`). */
  readonly allowedDotfiles?: readonly string[];
  /** Extra CGI params, overriding the defaults (PHP_VALUE etc. only come from here). */
  readonly params?: Readonly<Record<string, string>>;
  /** Peer addresses whose X-Forwarded-For / X-Forwarded-Proto are believed (default none). */
  readonly trustedProxies?: readonly string[];
  /** SERVER_NAME; default null: the request's Host without port. */
  readonly serverName?: string | null;
  /** Largest request body accepted, else 413 (default 1 GiB; 0: no limit). */
  readonly maxBodySize?: number;
  /**
   * Read the whole request body before taking an upstream connection, as nginx's
   * `fastcgi_request_buffering on` does (default true), so that a slow uploader never holds a
   * php-fpm worker. false streams bodies that have a Content-Length into FCGI_STDIN as they
   * arrive (chunked bodies are always collected: php-fpm needs the length first).
   */
  readonly requestBuffering?: boolean;
  /**
   * Request-body bytes one request may hold in memory (default 1 MiB), within `memoryBudget`;
   * a larger body, or one that finds the budget spent, goes to an unlinked temp file.
   */
  readonly bodyBufferSize?: number;
  /**
   * Longest gap between two request-body chunks, ms (default 60000, nginx `client_body_timeout`;
   * 0: none). While buffering: 408 and the connection closed. While streaming: the upstream
   * request is abandoned.
   */
  readonly clientBodyTimeout?: number;
  /**
   * Response bytes held in memory for a client slower than the upstream (default 64 KiB),
   * within `memoryBudget`, before the rest is spilled to a temp file. Measured on 1 MiB
   * responses at c=50: 64 KiB (the rest through the page cache) cost less CPU than 1 MiB in
   * memory, whose buffers live longer and cost more garbage collection.
   */
  readonly responseBufferSize?: number;
  /**
   * Bytes that request bodies and unsent response data may hold in memory in this process,
   * all requests together (default 64 MiB). Past it, new bytes go to temp files: many slow
   * clients cost disk, not RAM.
   */
  readonly memoryBudget?: number;
  /**
   * Most response bytes spilled to a temp file per response and not yet sent (default 1 GiB,
   * nginx `fastcgi_max_temp_file_size`); past it the upstream is paused until the client
   * catches up. 0: no spill, pure backpressure (a slow client then holds its php-fpm worker).
   */
  readonly maxResponseSpill?: number;
  /**
   * A client that reads nothing of a response for this long is dropped, ms (default 60000,
   * nginx `send_timeout`; 0: never).
   */
  readonly sendTimeout?: number;
  /** Directory for temp files (spooled bodies, spilled responses; default the OS temp dir). */
  readonly tmpDir?: string;
  /** Largest CGI response head, else 502 (default 64 KiB). */
  readonly maxHeadSize?: number;
  /** Local redirects (RFC 3875 §6.2.2) followed per request before giving up with 502 (default 10). */
  readonly maxLocalRedirects?: number;
  /** Hand responses carrying this header to the static file path (default null: off). */
  readonly sendfile?: SendfileOptions | null;
  /** STDERR bytes logged per request; the rest is counted, not logged (default 8192). */
  readonly maxStderrLog?: number;
  /** Forward header names containing `_` (default false, as nginx `underscores_in_headers off`). */
  readonly allowUnderscoreHeaders?: boolean;
  /**
   * ms to remember that a file or directory exists, saving a stat per request (default 1000;
   * 0: stat every time). Absent paths are never remembered.
   */
  readonly statCacheTtl?: number;
}

/** Options after defaults. */
export type ResolvedHandlerOptions = Readonly<Required<Omit<HandlerOptions, 'pool'>>> & { readonly pool: PoolOptions };

export const HANDLER_DEFAULTS = Object.freeze({
  index: Object.freeze(['index.php', 'index.html']),
  frontController: '/index.php',
  scriptExtensions: Object.freeze(['.php']),
  static: true,
  allowedDotfiles: Object.freeze(['.well-known']),
  params: Object.freeze({}),
  trustedProxies: Object.freeze([]),
  serverName: null,
  maxBodySize: 1024 * 1024 * 1024, // 1 GiB
  requestBuffering: true,
  bodyBufferSize: 1024 * 1024, // 1 MiB
  clientBodyTimeout: 60_000, // ms
  responseBufferSize: 64 * 1024, // 64 KiB
  memoryBudget: 64 * 1024 * 1024, // 64 MiB
  maxResponseSpill: 1024 * 1024 * 1024, // 1 GiB
  sendTimeout: 60_000, // ms
  tmpDir: '',
  maxHeadSize: 64 * 1024, // 64 KiB
  maxLocalRedirects: 10,
  sendfile: null,
  maxStderrLog: 8192,
  allowUnderscoreHeaders: false,
  statCacheTtl: 1000,
  pool: Object.freeze({}),
});

const KNOWN = new Set(['root', 'upstream', ...Object.keys(HANDLER_DEFAULTS)]);
const PRIVILEGED = new Set(['PHP_VALUE', 'PHP_ADMIN_VALUE', 'REQUEST_BODY_FILE']);

/** Validate and default handler options. */
export function resolveHandlerOptions(input: HandlerOptions, tmpDirDefault: string): ResolvedHandlerOptions {
  if (input === null || typeof input !== 'object') throw new ConfigError('options must be an object');
  for (const key of Object.keys(input)) if (!KNOWN.has(key)) throw new ConfigError(`unknown option ${key}`);
  if (typeof input.root !== 'string' || input.root === '') throw new ConfigError('root must be a directory path');
  if (typeof input.upstream !== 'string' || input.upstream === '') throw new ConfigError('upstream must be an address (unix:/path.sock or host:port)');
  const o = { ...HANDLER_DEFAULTS, ...definedOnly(input) };
  const root = resolve(o.root as string).replace(/\/+$/, '') || '/';
  const nonNegInt = (k: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(`${k} must be an integer ≥ 0`);
  };
  nonNegInt('maxBodySize', o.maxBodySize);
  nonNegInt('bodyBufferSize', o.bodyBufferSize);
  nonNegInt('clientBodyTimeout', o.clientBodyTimeout);
  nonNegInt('responseBufferSize', o.responseBufferSize);
  nonNegInt('memoryBudget', o.memoryBudget);
  nonNegInt('maxResponseSpill', o.maxResponseSpill);
  nonNegInt('sendTimeout', o.sendTimeout);
  if (typeof o.requestBuffering !== 'boolean') throw new ConfigError('requestBuffering must be a boolean');
  nonNegInt('maxHeadSize', o.maxHeadSize);
  nonNegInt('maxLocalRedirects', o.maxLocalRedirects);
  nonNegInt('maxStderrLog', o.maxStderrLog);
  nonNegInt('statCacheTtl', o.statCacheTtl);
  const strList = (k: string, v: unknown): void => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${k} must be a list of strings`);
  };
  strList('index', o.index);
  strList('scriptExtensions', o.scriptExtensions);
  strList('allowedDotfiles', o.allowedDotfiles);
  strList('trustedProxies', o.trustedProxies);
  for (const ext of o.scriptExtensions) if (!/^\.[A-Za-z0-9]+$/.test(ext)) throw new ConfigError(`scriptExtensions entry ${JSON.stringify(ext)} must look like ".php"`);
  for (const idx of o.index) if (idx.includes('/') || idx === '') throw new ConfigError(`index entry ${JSON.stringify(idx)} must be a file name`);
  if (o.frontController !== null && (typeof o.frontController !== 'string' || !o.frontController.startsWith('/'))) {
    throw new ConfigError('frontController must be a URL path starting with / or null');
  }
  if (typeof o.params !== 'object' || o.params === null) throw new ConfigError('params must be an object of strings');
  for (const [k, v] of Object.entries(o.params)) {
    if (typeof v !== 'string') throw new ConfigError(`params.${k} must be a string`);
  }
  if (o.sendfile !== null) {
    const sf = o.sendfile as SendfileOptions;
    if (typeof sf.header !== 'string' || !/^[A-Za-z0-9-]+$/.test(sf.header)) throw new ConfigError('sendfile.header must be a header name');
    if (typeof sf.root !== 'string' || !isAbsolute(sf.root)) throw new ConfigError('sendfile.root must be an absolute directory path');
  }
  return Object.freeze({
    ...o,
    root,
    tmpDir: o.tmpDir || tmpDirDefault,
    params: Object.freeze({ ...o.params }),
  }) as ResolvedHandlerOptions;
}

/** True for params only configuration may set. */
export function isPrivilegedParam(name: string): boolean {
  return PRIVILEGED.has(name.toUpperCase());
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const r: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (r as Record<string, unknown>)[k] = v;
  return r;
}
