/**
 * Pieces shared by the commands: the output streams they write to, the upstream address
 * check, and the php-fpm built-in pages (status, ping) — their params and the meaning of
 * their answers.
 */
import { STATUS_CODES } from 'node:http';
import type { Writable } from 'node:stream';
import { GatewayError } from '../errors.js';
import { type UpstreamAddress, parseAddress } from '../upstream/address.js';
import { CliError, ExitCode, exitCodeForStatus } from './exit-codes.js';
import type { OneShotResult } from '../client/one-shot.js';
import { serverSoftware } from './version.js';

/** Where a command writes. `main` passes process.stdout / process.stderr. */
export interface CliIo {
  readonly stdout: Writable & { readonly isTTY?: boolean; readonly columns?: number };
  readonly stderr: Writable;
}

/** Parse `--upstream`; a bad address is a usage error (exit 1) with the parser's reason. */
export function parseUpstream(text: string): UpstreamAddress {
  try {
    return parseAddress(text);
  } catch (err) {
    if (err instanceof GatewayError) throw new CliError(ExitCode.Usage, `bad --upstream: ${err.message}`);
    throw err;
  }
}

/** Check `--timeout`: an integer ≥ 0 (ms); 0 disables the deadline. */
export function checkTimeout(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new CliError(ExitCode.Usage, '--timeout must be an integer ≥ 0 (ms)');
  }
  return value;
}

/** Check a page path such as `/status`: absolute, no query, no control characters. */
export function checkPagePath(flag: string, path: string): string {
  if (!path.startsWith('/') || /[?#\s\u0000-\u001f\u007f]/.test(path)) {
    throw new CliError(ExitCode.Usage, `${flag} must be an absolute path such as /status (no query, no spaces), got ${JSON.stringify(path)}`);
  }
  return path;
}

/**
 * Params for a php-fpm built-in page. php-fpm matches the page on SCRIPT_NAME before looking
 * for a script, so SCRIPT_FILENAME does not have to exist.
 */
export function pageParams(path: string, query: string): Array<[string, string]> {
  return [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', serverSoftware()],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_METHOD', 'GET'],
    ['SCRIPT_NAME', path],
    ['SCRIPT_FILENAME', path],
    ['QUERY_STRING', query],
    ['REQUEST_URI', query === '' ? path : `${path}?${query}`],
  ];
}

/** Which built-in page was asked for: names the php-fpm setting in the hint. */
export type PageKind = 'status' | 'ping';

const PAGE_SETTING: Record<PageKind, string> = { status: 'pm.status_path', ping: 'ping.path' };

/** "503 Service Unavailable" style text for a head. */
export function statusLine(status: number, reason: string): string {
  const text = reason !== '' ? reason : (STATUS_CODES[status] ?? '');
  return text === '' ? String(status) : `${status} ${text}`;
}

/**
 * Throw the CliError an answer from a built-in page means when it is not a 2xx: 404 → exit 3
 * with the setting to enable, 503 → exit 4, anything else → exit 6.
 */
export function checkPageAnswer(kind: PageKind, path: string, address: UpstreamAddress, res: OneShotResult): void {
  const code = exitCodeForStatus(res.head.status);
  if (code === ExitCode.Ok) return;
  const line = statusLine(res.head.status, res.head.reason);
  if (code === ExitCode.NotFound) {
    throw new CliError(
      code,
      `php-fpm at ${address.text} has no ${kind} page at ${path} (answered ${line}): ` +
        `set ${PAGE_SETTING[kind]} = ${path} in the pool config and reload php-fpm`,
    );
  }
  if (code === ExitCode.Busy) {
    throw new CliError(code, `php-fpm at ${address.text} answered ${line} for ${path}: the pool is busy`);
  }
  const snippet = res.body.subarray(0, 200).toString('utf8').trim();
  throw new CliError(code, `unexpected answer from ${address.text} for ${path}: ${line}${snippet ? ` ${JSON.stringify(snippet)}` : ''}`);
}

/** Resolves at the first SIGINT or SIGTERM (the long-running commands' stop). */
export function untilStopSignal(signals: NodeJS.EventEmitter): Promise<void> {
  return new Promise((done) => {
    const stop = (): void => {
      signals.removeListener('SIGINT', stop);
      signals.removeListener('SIGTERM', stop);
      done();
    };
    signals.on('SIGINT', stop);
    signals.on('SIGTERM', stop);
  });
}
