/**
 * `run` arguments → CGI params, as a web server would have sent them for the same request.
 * Pure: paths are resolved with node:path string functions only (the script path is what
 * php-fpm will open, on its side; nothing is checked on the local disk here).
 *
 * Order: base CGI variables, script path, body variables, -H headers as HTTP_*, then each
 * --param (replacing a param of the same name in place, else appended).
 */
import path from 'node:path';
import { collectHeaders } from '../cgi/params-builder.js';
import { CliError, ExitCode } from './exit-codes.js';

/** What `run` was asked for, after the body source was opened (its length is known). */
export interface RunParamsInput {
  /** SCRIPT argument, absolute or relative to `cwd`. */
  readonly script: string;
  readonly cwd: string;
  /** --root, absolute or relative to `cwd`; null = the script's directory. */
  readonly root: string | null;
  /** -X; null = GET, or POST when there is a body. */
  readonly method: string | null;
  /** Exact body length in bytes; null = no -d. */
  readonly contentLength: number | null;
  /** --query, with or without a leading "?". */
  readonly query: string;
  /** -H "Name: value", in order. */
  readonly headers: readonly string[];
  /** --param NAME=VALUE, in order. */
  readonly params: readonly string[];
  readonly allowPhpValue: boolean;
  /** SERVER_SOFTWARE. */
  readonly serverSoftware: string;
}

/** Params that change php.ini settings inside the php-fpm worker. */
const PHP_INI_PARAMS = new Set(['PHP_VALUE', 'PHP_ADMIN_VALUE']);

/** RFC 9110 token (header names, methods). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The params, and warnings for stderr. */
export interface RunParams {
  readonly params: Array<[string, string]>;
  /** SCRIPT_FILENAME, for messages. */
  readonly scriptFilename: string;
  readonly warnings: string[];
}

/** Build the params; throws CliError(Usage) for input that cannot be sent. */
export function buildRunParams(input: RunParamsInput): RunParams {
  const warnings: string[] = [];
  const scriptFilename = path.resolve(input.cwd, input.script);
  let documentRoot: string;
  let scriptName: string;
  if (input.root !== null) {
    documentRoot = path.resolve(input.cwd, input.root);
    const rel = path.relative(documentRoot, scriptFilename);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new CliError(ExitCode.Usage, `script ${scriptFilename} is not inside --root ${documentRoot}`);
    }
    scriptName = '/' + rel.split(path.sep).join('/');
  } else {
    documentRoot = path.dirname(scriptFilename);
    scriptName = '/' + path.basename(scriptFilename);
  }

  const hasBody = input.contentLength !== null;
  let method = input.method ?? (hasBody ? 'POST' : 'GET');
  if (!TOKEN.test(method)) throw new CliError(ExitCode.Usage, `-X ${JSON.stringify(method)} is not a valid HTTP method`);
  method = method.toUpperCase();

  const query = input.query.startsWith('?') ? input.query.slice(1) : input.query;
  const headers = mapHeaders(input.headers);

  const params: Array<[string, string]> = [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', input.serverSoftware],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_NAME', 'localhost'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REQUEST_METHOD', method],
    ['REQUEST_URI', query === '' ? scriptName : `${scriptName}?${query}`],
    ['QUERY_STRING', query],
    ['SCRIPT_NAME', scriptName],
    ['SCRIPT_FILENAME', scriptFilename],
    ['DOCUMENT_ROOT', documentRoot],
    // php-cgi with cgi.force_redirect refuses requests without it; php-fpm ignores it.
    ['REDIRECT_STATUS', '200'],
  ];
  const contentType = headers.contentType ?? (hasBody ? 'application/x-www-form-urlencoded' : null);
  if (contentType !== null) params.push(['CONTENT_TYPE', contentType]);
  if (hasBody) params.push(['CONTENT_LENGTH', String(input.contentLength)]);
  params.push(...headers.mapped);

  for (const spec of input.params) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new CliError(ExitCode.Usage, `--param ${JSON.stringify(spec)} must be NAME=VALUE`);
    const name = spec.slice(0, eq);
    const value = spec.slice(eq + 1);
    if (PHP_INI_PARAMS.has(name.toUpperCase())) {
      if (!input.allowPhpValue) {
        throw new CliError(
          ExitCode.Usage,
          `--param ${name} refused: it changes php.ini settings inside the php-fpm worker, and the change stays ` +
            'in that worker for the requests it serves later (other users and scripts included). ' +
            'Pass --allow-php-value if that is what you want.',
        );
      }
      warnings.push(`${name} stays set in the php-fpm worker that serves this request until it exits`);
    }
    if (name === 'CONTENT_LENGTH' && hasBody) {
      throw new CliError(ExitCode.Usage, '--param CONTENT_LENGTH conflicts with -d: the length is taken from the body');
    }
    const i = params.findIndex(([n]) => n === name);
    if (i >= 0) params[i] = [name, value];
    else params.push([name, value]);
  }
  return { params, scriptFilename, warnings };
}

/**
 * -H lines → HTTP_* params by the gateway's own mapping (cgi/params-builder `collectHeaders`):
 * upper case, "-" → "_", repeats joined with ", " ("; " for Cookie, as nginx does), `Proxy`
 * dropped (httpoxy). Names with `_` are kept: the operator typed them. Content-Type becomes
 * CONTENT_TYPE; Content-Length is refused since php-fpm reads exactly CONTENT_LENGTH bytes and
 * the CLI computes it from the body.
 */
export function mapHeaders(lines: readonly string[]): { mapped: Array<[string, string]>; contentType: string | null } {
  const raw: string[] = [];
  let contentType: string | null = null;
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim();
    if (colon < 0 || !TOKEN.test(name)) {
      throw new CliError(ExitCode.Usage, `-H ${JSON.stringify(line)} must look like "Name: value" with a valid header name`);
    }
    const value = line.slice(colon + 1).trim();
    if (/[\r\n\0]/.test(value)) throw new CliError(ExitCode.Usage, `-H ${name}: the value contains CR, LF or NUL`);
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      throw new CliError(ExitCode.Usage, '-H Content-Length is not allowed: the length is computed from -d');
    }
    if (lower === 'content-type') {
      contentType = value;
      continue;
    }
    // What collectHeaders would drop is refused instead, so that nothing typed vanishes.
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new CliError(ExitCode.Usage, `-H ${name}: a header name that becomes an HTTP_* param has letters, digits, "-" and "_" only`);
    if (lower === 'proxy') throw new CliError(ExitCode.Usage, '-H Proxy is never passed to PHP (httpoxy, CVE-2016-5385: it would become HTTP_PROXY)');
    raw.push(name, value);
  }
  return { mapped: [...collectHeaders(raw, true)], contentType };
}
