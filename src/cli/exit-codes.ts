/**
 * Exit codes of the `fastcgi-gateway` operator commands, in one table (README.md mirrors it;
 * a unit test keeps the two in sync), and the mapping from library errors to them.
 *
 * Scripts and health checks branch on these numbers, so they are API: never renumber one.
 */
import { ERRORS, type ExitKind, GatewayError, type GatewayErrorCode, UpstreamClosedError } from '../errors.js';

/** Exit codes by meaning. */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** Usage error (bad flag, bad address, refused param) or any other failure. */
  Usage: 1,
  /** Cannot connect to the upstream: refused, no socket file, permission denied, connect timeout. */
  Connect: 2,
  /** Not found at the upstream: status or ping page not enabled, or php-fpm cannot find/allow the script. */
  NotFound: 3,
  /** The pool is busy: HTTP 503 or FCGI_OVERLOADED. */
  Busy: 4,
  /** Protocol error, upstream closed early, or timeout while waiting for the answer. */
  Protocol: 5,
  /** Unexpected answer (ping body is not the expected one, status page not parseable, other status). */
  Unexpected: 6,
  /** `run`: the script answered with a 5xx status. */
  ScriptError: 7,
} as const;

/** One of the exit codes. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Each exit code with a one-line description, in numeric order (README.md lists the same). */
export const EXIT_CODE_TABLE: ReadonlyArray<{ readonly code: ExitCodeValue; readonly meaning: string }> = Object.freeze([
  { code: ExitCode.Ok, meaning: 'success' },
  { code: ExitCode.Usage, meaning: 'usage error (bad flag, bad --upstream, refused --param) or other failure' },
  { code: ExitCode.Connect, meaning: 'cannot connect to the upstream (refused, no socket file, permission denied, connect timeout)' },
  { code: ExitCode.NotFound, meaning: 'not found: status/ping page not enabled in the pool, or php-fpm cannot find or refuses the script' },
  { code: ExitCode.Busy, meaning: 'pool busy (HTTP 503 or FCGI_OVERLOADED)' },
  { code: ExitCode.Protocol, meaning: 'protocol error, upstream closed the connection early, or timeout while waiting for the answer' },
  { code: ExitCode.Unexpected, meaning: 'unexpected answer (wrong ping body, unparseable status page, unexpected HTTP status)' },
  { code: ExitCode.ScriptError, meaning: 'run: the script answered with a 5xx status' },
]);

/** A failure the CLI reports: a message for stderr and the exit code. */
export class CliError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(exitCode: ExitCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
    this.name = 'CliError';
  }
}

/** The exit code of each exit kind of the error table (src/errors.ts `ERRORS`). */
const EXIT_OF_KIND = { usage: ExitCode.Usage, connect: ExitCode.Connect, busy: ExitCode.Busy, protocol: ExitCode.Protocol } as const satisfies Record<ExitKind, ExitCodeValue>;

/** Exit code for each library error code, from the error table. */
export const GATEWAY_EXIT_CODES: Readonly<Record<GatewayErrorCode, ExitCodeValue>> = Object.freeze(
  Object.fromEntries(Object.entries(ERRORS).map(([code, e]) => [code, EXIT_OF_KIND[e.exit]])) as Record<GatewayErrorCode, ExitCodeValue>,
);

/** Exit code for any thrown value: CliError carries its own, GatewayError maps by code, else 1. */
export function exitCodeFor(err: unknown): ExitCodeValue {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof GatewayError) return GATEWAY_EXIT_CODES[err.code] ?? ExitCode.Usage;
  return ExitCode.Usage;
}

/** Exit code for an HTTP status in an answer that was expected to be 200 (status, ping). */
export function exitCodeForStatus(status: number): ExitCodeValue {
  if (status >= 200 && status < 300) return ExitCode.Ok;
  if (status === 404) return ExitCode.NotFound;
  if (status === 503) return ExitCode.Busy;
  return ExitCode.Unexpected;
}

/** The message the CLI prints for a failure, with a hint where the cause is a common setup mistake. */
export function describeFailure(err: unknown): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof GatewayError) {
    if (err instanceof UpstreamClosedError && err.beforeResponse) {
      // php-fpm closes TCP connections from addresses outside listen.allowed_clients at once.
      return `${err.message} (if this is a TCP address, check listen.allowed_clients in the pool config)`;
    }
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
