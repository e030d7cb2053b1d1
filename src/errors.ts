/**
 * Typed errors. Every failure the library reports is a `GatewayError` with a stable `code`
 * (listed in docs/errors.md; a test keeps the two in sync). Callers match on `code`.
 * The HTTP status and the exit kind of each code live in one table here (`ERRORS`), nowhere else.
 */

/** Base class: `code` is API, `message` is for humans, `cause` holds the underlying error. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem in a config: where (key path, and in a file its position) and what. */
export interface ConfigIssue {
  readonly path: ReadonlyArray<string | number>;
  readonly message: string;
  /** `file:line:column`, when the config came from a file. */
  readonly where?: string;
}

/** Invalid options or configuration (thrown at construction, never at run time). */
export class ConfigError extends GatewayError {
  /** Every problem found, when the schema found them (empty for a single hand-made check). */
  readonly issues: readonly ConfigIssue[];
  constructor(message: string, options?: { cause?: unknown; issues?: readonly ConfigIssue[] }) {
    super('GW_ERR_CONFIG_INVALID', message, options);
    this.issues = options?.issues ?? [];
  }
}

/** An upstream address string that cannot be parsed. */
export class AddressError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_CONFIG_ADDRESS', message);
  }
}

/** The upstream refused or could not be reached (ECONNREFUSED, ENOENT, EACCES, ...). */
export class ConnectError extends GatewayError {
  readonly address: string;
  constructor(address: string, cause: unknown) {
    const reason = describeSystemError(cause);
    super('GW_ERR_CONNECT_FAILED', `cannot connect to ${address}: ${reason}`, { cause });
    this.address = address;
  }
}

/** No connection within `connectTimeout`. */
export class ConnectTimeoutError extends GatewayError {
  readonly address: string;
  constructor(address: string, timeoutMs: number) {
    super('GW_ERR_CONNECT_TIMEOUT', `connect to ${address} timed out after ${timeoutMs} ms`);
    this.address = address;
  }
}

/** The pool's wait queue is full. */
export class PoolQueueFullError extends GatewayError {
  constructor(maxQueue: number) {
    super('GW_ERR_POOL_QUEUE_FULL', `upstream pool wait queue is full (${maxQueue} waiting)`);
  }
}

/** A request waited in the pool queue longer than `queueTimeout`. */
export class PoolQueueTimeoutError extends GatewayError {
  constructor(timeoutMs: number) {
    super('GW_ERR_POOL_QUEUE_TIMEOUT', `no upstream connection became free within ${timeoutMs} ms`);
  }
}

/** The pool was closed or destroyed. */
export class PoolClosedError extends GatewayError {
  constructor() {
    super('GW_ERR_POOL_CLOSED', 'upstream pool is closed');
  }
}

/** No upstream record for `readTimeout` ms while a response was expected. */
export class ReadTimeoutError extends GatewayError {
  constructor(timeoutMs: number) {
    super('GW_ERR_UPSTREAM_READ_TIMEOUT', `upstream sent nothing for ${timeoutMs} ms`);
  }
}

/** The upstream did not accept request bytes for `writeTimeout` ms. */
export class WriteTimeoutError extends GatewayError {
  constructor(timeoutMs: number) {
    super('GW_ERR_UPSTREAM_WRITE_TIMEOUT', `upstream accepted no request bytes for ${timeoutMs} ms`);
  }
}

/** The upstream closed the connection (or it failed) before END_REQUEST. */
export class UpstreamClosedError extends GatewayError {
  /** True when no response byte had arrived: the request may be retried on a fresh socket. */
  readonly beforeResponse: boolean;
  constructor(beforeResponse: boolean, cause?: unknown) {
    const detail = cause === undefined ? '' : `: ${describeSystemError(cause)}`;
    super('GW_ERR_UPSTREAM_CLOSED', `upstream closed the connection before END_REQUEST${detail}`, { cause });
    this.beforeResponse = beforeResponse;
  }
}

/** END_REQUEST carried a protocol status other than REQUEST_COMPLETE. */
export class UpstreamRejectedError extends GatewayError {
  readonly protocolStatus: number;
  constructor(code: 'GW_ERR_UPSTREAM_CANT_MPX_CONN' | 'GW_ERR_UPSTREAM_OVERLOADED' | 'GW_ERR_UPSTREAM_UNKNOWN_ROLE', protocolStatus: number) {
    const what = {
      GW_ERR_UPSTREAM_CANT_MPX_CONN: 'cannot multiplex connections (FCGI_CANT_MPX_CONN)',
      GW_ERR_UPSTREAM_OVERLOADED: 'is overloaded (FCGI_OVERLOADED)',
      GW_ERR_UPSTREAM_UNKNOWN_ROLE: 'does not support the requested role (FCGI_UNKNOWN_ROLE)',
    }[code];
    super(code, `upstream ${what}`);
    this.protocolStatus = protocolStatus;
  }
}

/** The caller aborted the request (for example the HTTP client went away). */
export class AbortedError extends GatewayError {
  constructor(cause?: unknown) {
    super('GW_ERR_UPSTREAM_ABORTED', 'request aborted by the caller', { cause });
  }
}

/** A one-shot exchange (client/one-shot.ts) connected but got no complete answer by its deadline. */
export class ExchangeTimeoutError extends GatewayError {
  readonly address: string;
  constructor(address: string, timeoutMs: number) {
    super('GW_ERR_EXCHANGE_TIMEOUT', `no complete answer from ${address} within ${timeoutMs} ms`);
    this.address = address;
  }
}

/** A one-shot exchange could not write the answer to its output stream (EPIPE, disk full). */
export class OutputError extends GatewayError {
  constructor(cause: unknown) {
    super('GW_ERR_OUTPUT_FAILED', `cannot write the response: ${describeSystemError(cause)}`, { cause });
  }
}

/** A response handler (onStdout / onStderr) threw; the exchange fails with this. */
export class HandlerError extends GatewayError {
  constructor(cause: unknown) {
    super('GW_ERR_UPSTREAM_HANDLER', `response handler threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Malformed FastCGI bytes. `offset` counts bytes from the start of the stream. */
export class ProtocolError extends GatewayError {
  readonly offset: number;
  readonly reason: string;
  constructor(reason: string, offset: number) {
    super('GW_ERR_PROTO_INVALID', `fastcgi protocol error at byte ${offset}: ${reason}`);
    this.offset = offset;
    this.reason = reason;
  }
}

/** One name-value pair does not fit a single PARAMS record (php-fpm cannot take it). */
export class ParamsTooLargeError extends GatewayError {
  readonly paramName: string;
  readonly size: number;
  readonly limit: number;
  constructor(paramName: string, size: number, limit: number) {
    super(
      'GW_ERR_PROTO_PARAMS_TOO_LARGE',
      `param ${JSON.stringify(paramName.slice(0, 64))} needs ${size} bytes, more than one FastCGI record holds (${limit} bytes)`,
    );
    this.paramName = paramName;
    this.size = size;
    this.limit = limit;
  }
}

/** The CGI response head exceeded `maxHeadSize`. */
export class CgiHeadTooLargeError extends GatewayError {
  constructor(limit: number) {
    super('GW_ERR_CGI_HEAD_TOO_LARGE', `upstream response head exceeds ${limit} bytes`);
  }
}

/** The CGI response head is malformed (bad header line, bad Status, no blank line). */
export class CgiHeadInvalidError extends GatewayError {
  constructor(reason: string) {
    super('GW_ERR_CGI_HEAD_INVALID', `invalid upstream response head: ${reason}`);
  }
}

/** The request body source failed (stream error, wrong length). */
export class BodySourceError extends GatewayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GW_ERR_BODY_SOURCE', message, options);
  }
}

/** The request body is larger than allowed. */
export class BodyTooLargeError extends GatewayError {
  constructor(limit: number) {
    super('GW_ERR_BODY_TOO_LARGE', `request body exceeds ${limit} bytes`);
  }
}

/** The client sent no request-body bytes for `clientBodyTimeout` ms (nginx client_body_timeout). */
export class BodyTimeoutError extends GatewayError {
  constructor(timeoutMs: number) {
    super('GW_ERR_BODY_TIMEOUT', `client sent no request body bytes for ${timeoutMs} ms`);
  }
}

/** The client read nothing of the response for `sendTimeout` ms (nginx send_timeout): dropped. */
export class ClientSendTimeoutError extends GatewayError {
  constructor(timeoutMs: number) {
    super('GW_ERR_CLIENT_SEND_TIMEOUT', `client read nothing of the response for ${timeoutMs} ms`);
  }
}

/** A response spill file could not be written or read. */
export class ResponseSpillError extends GatewayError {
  constructor(cause: unknown) {
    super('GW_ERR_RESPONSE_SPILL', `cannot spill the response to a temp file: ${describeSystemError(cause)}`, { cause });
  }
}

/** Every server of an upstream group is marked down, or was tried and could not be reached. */
export class UpstreamUnavailableError extends GatewayError {
  readonly retryAfterMs: number;
  constructor(group: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super('GW_ERR_UPSTREAM_UNAVAILABLE', `no server of upstream ${group} is available`, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** A proxy route's HTTP upstream refused, reset or answered with something unusable. */
export class ProxyError extends GatewayError {
  constructor(origin: string, cause: unknown) {
    super('GW_ERR_PROXY_FAILED', `proxy to ${origin} failed: ${describeSystemError(cause)}`, { cause });
  }
}

/** A proxy route's HTTP upstream did not connect or answer in time. */
export class ProxyTimeoutError extends GatewayError {
  constructor(origin: string, cause: unknown) {
    super('GW_ERR_PROXY_TIMEOUT', `proxy to ${origin} timed out: ${describeSystemError(cause)}`, { cause });
  }
}

/** A script kept answering with local redirects (RFC 3875 §6.2.2) past maxLocalRedirects. */
export class CgiRedirectLoopError extends GatewayError {
  readonly location: string;
  constructor(limit: number, location: string) {
    super('GW_ERR_CGI_REDIRECT_LOOP', `more than ${limit} local redirects (last to ${location})`);
    this.location = location;
  }
}

/** An X-Accel-Redirect / X-Sendfile answer named a path outside sendfile.root. */
export class SendfileOutsideError extends GatewayError {
  readonly path: string;
  constructor(path: string) {
    super('GW_ERR_CGI_SENDFILE_OUTSIDE', 'sendfile path outside the allowed directory');
    this.path = path;
  }
}

/** The upstream ended its answer before the Content-Length it declared: the client connection is cut. */
export class UpstreamShortBodyError extends GatewayError {
  readonly declared: number;
  readonly sent: number;
  constructor(declared: number, sent: number) {
    super('GW_ERR_UPSTREAM_SHORT_BODY', `upstream sent ${sent} of the ${declared} body bytes it declared`);
    this.declared = declared;
    this.sent = sent;
  }
}

/**
 * Every error code, with the HTTP status the gateway answers (before the response head) and
 * how the command line exits for it. The one place both are picked: a class whose code is not
 * here, or a code without its status or exit kind, does not compile; docs/errors.md is checked
 * against it by a test.
 */
export const ERRORS = {
  GW_ERR_CONFIG_INVALID: { status: 500, exit: 'usage' },
  GW_ERR_CONFIG_ADDRESS: { status: 500, exit: 'usage' },
  GW_ERR_CONNECT_FAILED: { status: 502, exit: 'connect' },
  GW_ERR_CONNECT_TIMEOUT: { status: 504, exit: 'connect' },
  GW_ERR_POOL_QUEUE_FULL: { status: 503, exit: 'busy' },
  GW_ERR_POOL_QUEUE_TIMEOUT: { status: 503, exit: 'busy' },
  GW_ERR_POOL_CLOSED: { status: 503, exit: 'usage' },
  GW_ERR_UPSTREAM_READ_TIMEOUT: { status: 504, exit: 'protocol' },
  GW_ERR_UPSTREAM_WRITE_TIMEOUT: { status: 504, exit: 'protocol' },
  GW_ERR_UPSTREAM_CLOSED: { status: 502, exit: 'protocol' },
  GW_ERR_UPSTREAM_CANT_MPX_CONN: { status: 502, exit: 'protocol' },
  GW_ERR_UPSTREAM_OVERLOADED: { status: 503, exit: 'busy' },
  GW_ERR_UPSTREAM_UNKNOWN_ROLE: { status: 502, exit: 'protocol' },
  GW_ERR_UPSTREAM_ABORTED: { status: 499, exit: 'usage' },
  GW_ERR_UPSTREAM_HANDLER: { status: 500, exit: 'usage' },
  GW_ERR_PROTO_INVALID: { status: 502, exit: 'protocol' },
  GW_ERR_PROTO_PARAMS_TOO_LARGE: { status: 431, exit: 'usage' },
  GW_ERR_CGI_HEAD_TOO_LARGE: { status: 502, exit: 'protocol' },
  GW_ERR_CGI_HEAD_INVALID: { status: 502, exit: 'protocol' },
  GW_ERR_BODY_SOURCE: { status: 400, exit: 'usage' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, exit: 'usage' },
  GW_ERR_BODY_TIMEOUT: { status: 408, exit: 'usage' },
  GW_ERR_CLIENT_SEND_TIMEOUT: { status: 408, exit: 'usage' },
  GW_ERR_RESPONSE_SPILL: { status: 502, exit: 'usage' },
  GW_ERR_UPSTREAM_UNAVAILABLE: { status: 503, exit: 'busy' },
  GW_ERR_PROXY_FAILED: { status: 502, exit: 'usage' },
  GW_ERR_PROXY_TIMEOUT: { status: 504, exit: 'usage' },
  GW_ERR_CGI_REDIRECT_LOOP: { status: 502, exit: 'protocol' },
  GW_ERR_CGI_SENDFILE_OUTSIDE: { status: 502, exit: 'protocol' },
  GW_ERR_UPSTREAM_SHORT_BODY: { status: 502, exit: 'protocol' },
  GW_ERR_EXCHANGE_TIMEOUT: { status: 504, exit: 'protocol' },
  GW_ERR_OUTPUT_FAILED: { status: 500, exit: 'usage' },
} as const satisfies Record<string, { readonly status: number; readonly exit: ExitKind }>;

/** How a failure shows at the command line (cli/exit-codes.ts gives each its number). */
export type ExitKind = 'usage' | 'connect' | 'busy' | 'protocol';

/** Every code there is. */
export type GatewayErrorCode = keyof typeof ERRORS;

/** Code → HTTP status (the `ERRORS` column, for callers that only need the status). */
export const ERROR_STATUS: Readonly<Record<GatewayErrorCode, number>> = Object.freeze(
  Object.fromEntries(Object.entries(ERRORS).map(([code, e]) => [code, e.status])) as Record<GatewayErrorCode, number>,
);

/** HTTP status for an error: its code's entry, else 500. */
export function statusFor(err: unknown): number {
  if (err instanceof GatewayError) return ERRORS[err.code]?.status ?? 500;
  return 500;
}

/** "ECONNREFUSED (connection refused)" style text for a Node system error. */
export function describeSystemError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; message?: unknown };
    const hint = typeof e.code === 'string' ? SYSTEM_HINTS[e.code] : undefined;
    if (typeof e.code === 'string') return hint ? `${e.code} (${hint})` : `${e.code}`;
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}

const SYSTEM_HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing is listening there',
  ENOENT: 'no such socket file',
  EACCES: 'permission denied on the socket',
  ECONNRESET: 'connection reset by peer',
  EPIPE: 'peer closed the connection',
  ENOTFOUND: 'host name not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTSOCK: 'not a socket',
  ECONNABORTED: 'connection aborted',
};
