/**
 * HTTP request → CGI/1.1 params (RFC 3875 §4.1, nginx `fastcgi.conf` parity). Pure: takes a
 * snapshot of the request (no node:http types) and the resolved script, returns ordered pairs.
 *
 * Order of steps, later entries winning in php-fpm (its param table keeps the last value):
 *   1. base CGI variables (nginx fastcgi.conf)  2. script path (SCRIPT_*, PATH_INFO)
 *   3. request headers as HTTP_*               4. params from configuration (override all)
 */

/** A param value: ASCII text as a string, anything else as raw bytes. */
export type ParamBytes = string | Buffer;

/** What the params builder needs to know about the HTTP request. */
export interface CgiRequestInfo {
  readonly method: string;
  /** Request target exactly as the client sent it (`$request_uri`). */
  readonly rawUrl: string;
  /** '1.1', '1.0', '2.0'. */
  readonly httpVersion: string;
  /** Alternating names and values, as node:http's `req.rawHeaders`. */
  readonly rawHeaders: readonly string[];
  /** Client address after trusted-proxy resolution. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly serverAddress: string;
  readonly serverPort: number;
  /** TLS on this hop, or a trusted proxy said the client used https. */
  readonly https: boolean;
}

/** Where the request goes in the document root. */
export interface ScriptTarget {
  /** URL path of the script (`$fastcgi_script_name`), e.g. `/index.php`. */
  readonly scriptName: string;
  /** Extra path after the script (`$fastcgi_path_info`), '' when none. */
  readonly pathInfo: string;
  /** Decoded, normalised path after any rewrite (`$document_uri`). */
  readonly documentUri: string;
  /** Query string without `?` (`$query_string`). */
  readonly query: string;
  /** Absolute document root, no trailing slash. */
  readonly documentRoot: string;
  /** SCRIPT_FILENAME when it is not documentRoot + scriptName (one fixed script for a prefix). */
  readonly scriptFilename?: string;
}

/** Settings that shape the params. */
export interface CgiParamsSettings {
  /** SERVER_SOFTWARE value. */
  readonly serverSoftware: string;
  /** SERVER_NAME; when null, the Host header's host part (else the server address). */
  readonly serverName: string | null;
  /** Extra params from configuration; they override everything above them. */
  readonly extraParams: Readonly<Record<string, string>>;
  /** Header names to forward even though they contain `_` (default none, as nginx). */
  readonly allowUnderscoreHeaders?: boolean;
}

/** Names only configuration may set: they change php-fpm's behaviour for the request. */
export const PRIVILEGED_PARAMS: readonly string[] = ['PHP_VALUE', 'PHP_ADMIN_VALUE', 'REQUEST_BODY_FILE'];

/** Header names are tokens of letters, digits and `-` only: `_` would alias `-` once mapped. */
const SAFE_HEADER_NAME = /^[A-Za-z0-9-]+$/;

/** Build the ordered CGI params for one request. */
export function buildCgiParams(
  req: CgiRequestInfo,
  target: ScriptTarget,
  settings: CgiParamsSettings,
  body: { readonly contentLength: number | null; readonly contentType: string | null },
): Array<[string, ParamBytes]> {
  const out: Array<[string, ParamBytes]> = [];
  const headers = collectHeaders(req.rawHeaders, settings.allowUnderscoreHeaders === true);
  const scriptFilename = target.scriptFilename ?? target.documentRoot + target.scriptName;
  const host = headers.get('HTTP_HOST');
  out.push(
    ['SCRIPT_FILENAME', scriptFilename],
    ['QUERY_STRING', bytesOf(target.query)],
    ['REQUEST_METHOD', req.method],
    ['CONTENT_TYPE', body.contentType ?? ''],
    ['CONTENT_LENGTH', body.contentLength === null ? '' : String(body.contentLength)],
    ['SCRIPT_NAME', target.scriptName],
    ['REQUEST_URI', bytesOf(req.rawUrl)],
    ['DOCUMENT_URI', target.documentUri],
    ['DOCUMENT_ROOT', target.documentRoot],
    ['SERVER_PROTOCOL', `HTTP/${req.httpVersion}`],
    ['REQUEST_SCHEME', req.https ? 'https' : 'http'],
  );
  if (req.https) out.push(['HTTPS', 'on']);
  out.push(
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', settings.serverSoftware],
    ['REMOTE_ADDR', req.remoteAddress],
    ['REMOTE_PORT', String(req.remotePort)],
    ['SERVER_ADDR', req.serverAddress],
    ['SERVER_PORT', String(req.serverPort)],
    ['SERVER_NAME', settings.serverName ?? hostName(host) ?? req.serverAddress],
    ['REDIRECT_STATUS', '200'],
  );
  if (target.pathInfo !== '') {
    out.push(['PATH_INFO', target.pathInfo], ['PATH_TRANSLATED', target.documentRoot + target.pathInfo]);
  }
  for (const [name, value] of headers) out.push([name, bytesOf(value)]);
  for (const name of Object.keys(settings.extraParams)) out.push([name, settings.extraParams[name]!]);
  return out;
}

/**
 * Request headers as HTTP_* names, repeated headers joined with ", " ("; " for Cookie, as
 * nginx does). `Proxy` is dropped (httpoxy, CVE-2016-5385); names with anything but letters,
 * digits and `-` are dropped (`X_Forwarded_For` would alias `X-Forwarded-For`).
 */
export function collectHeaders(rawHeaders: readonly string[], allowUnderscore = false): Map<string, string> {
  const map = new Map<string, string>();
  const names = allowUnderscore ? PARAM_NAMES_UNDERSCORE : PARAM_NAMES;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    let key = names.get(name);
    if (key === undefined) {
      key = paramNameOf(name, allowUnderscore);
      // Header names repeat from request to request; the map is bounded so odd names cannot grow it.
      if (names.size < PARAM_NAME_CACHE) names.set(name, key);
    }
    // (Content-Type/Length also go as HTTP_*, as nginx passes them; CONTENT_TYPE and
    // CONTENT_LENGTH carry what the gateway actually sends.)
    if (key === null) continue;
    const value = rawHeaders[i + 1]!;
    const prev = map.get(key);
    map.set(key, prev === undefined ? value : prev + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value);
  }
  return map;
}

/** The HTTP_* name of a header, or null when it is not passed (unsafe name, or httpoxy's Proxy). */
function paramNameOf(name: string, allowUnderscore: boolean): string | null {
  if (!SAFE_HEADER_NAME.test(name) && !(allowUnderscore && /^[A-Za-z0-9_-]+$/.test(name))) return null;
  const key = 'HTTP_' + name.toUpperCase().replaceAll('-', '_');
  return key === 'HTTP_PROXY' ? null : key; // httpoxy (CVE-2016-5385)
}

/** Header name → param name (null: dropped), as computed by paramNameOf, per underscore setting. */
const PARAM_NAMES = new Map<string, string | null>();
const PARAM_NAMES_UNDERSCORE = new Map<string, string | null>();
const PARAM_NAME_CACHE = 1024;

/** Host header without port; null when absent or malformed. */
function hostName(host: string | undefined): string | null {
  if (!host) return null;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    return close > 0 ? host.slice(0, close + 1) : null;
  }
  const colon = host.indexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

/**
 * node:http hands header values and the URL over as latin1 strings (one char per byte).
 * ASCII goes as is; anything else becomes the original bytes, not a UTF-8 re-encoding.
 */
function bytesOf(s: string): ParamBytes {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.from(s, 'latin1');
  return s;
}
