/**
 * Request-target handling (pure): split the raw target into path and query, percent-decode
 * the path byte-wise, normalise it the way nginx builds `$uri` (merge slashes, resolve `.` and
 * `..`), and refuse what must never reach the file system or php-fpm.
 */

/** A request target, decoded and normalised. */
export interface RequestTarget {
  /** Decoded, normalised path (`$uri` in nginx terms), always starting with `/`. */
  readonly path: string;
  /** Raw query string without `?` (`$query_string`/`$args`), '' when absent. */
  readonly query: string;
}

/** Why a target was refused; `status` is the HTTP answer. */
export interface TargetRejection {
  readonly status: 400;
  readonly reason: string;
}

const HEX: Record<string, number> = {};
for (let i = 0; i < 16; i++) {
  HEX[i.toString(16)] = i;
  HEX[i.toString(16).toUpperCase()] = i;
}

/**
 * Parse `req.url` (origin-form, or absolute-form from a proxy). Decoded bytes are interpreted
 * as UTF-8; a path whose bytes are not valid UTF-8 is refused (file names are looked up as
 * UTF-8 strings). NUL, CR and LF, raw or encoded, are refused (CVE-2019-11043 used `%0a`), as
 * is a `..` that would climb above the root.
 */
export function parseRequestTarget(rawUrl: string): RequestTarget | TargetRejection {
  let url = rawUrl;
  if (!url.startsWith('/')) {
    // absolute-form (RFC 9112 §3.2.2): keep only the path and query.
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
    if (!m) return { status: 400, reason: 'request target must start with /' };
    url = url.slice(m[0].length) || '/';
    if (!url.startsWith('/')) url = '/' + url;
  }
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const hash = rawPath.indexOf('#');
  const pathPart = hash < 0 ? rawPath : rawPath.slice(0, hash);
  if (/[\0\r\n]/.test(url)) return { status: 400, reason: 'control character in request target' };
  let decoded: string;
  if (pathPart.includes('%')) {
    const bytes = percentDecode(pathPart);
    if (bytes === null) return { status: 400, reason: 'bad percent-encoding in path' };
    if (bytes.includes(0) || bytes.includes(0x0a) || bytes.includes(0x0d)) {
      return { status: 400, reason: 'encoded control character in path' };
    }
    decoded = bytes.toString('utf8');
    if (!Buffer.from(decoded, 'utf8').equals(bytes)) return { status: 400, reason: 'path is not valid UTF-8' };
  } else if (/[^\x20-\x7e]/.test(pathPart)) {
    // Raw non-ASCII bytes arrive as latin1 characters from node:http.
    const bytes = Buffer.from(pathPart, 'latin1');
    decoded = bytes.toString('utf8');
    if (!Buffer.from(decoded, 'utf8').equals(bytes)) return { status: 400, reason: 'path is not valid UTF-8' };
  } else {
    decoded = pathPart;
  }
  const path = normalizePath(decoded);
  if (path === null) return { status: 400, reason: 'path climbs above the document root' };
  return { path, query };
}

/** True when parseRequestTarget refused the target. */
export function isRejection(t: RequestTarget | TargetRejection): t is TargetRejection {
  return 'status' in t;
}

function percentDecode(s: string): Buffer | null {
  const out = Buffer.allocUnsafe(Buffer.byteLength(s, 'latin1'));
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hi = HEX[s[i + 1] ?? ''];
      const lo = HEX[s[i + 2] ?? ''];
      if (hi === undefined || lo === undefined) return null;
      out[o++] = hi * 16 + lo;
      i += 2;
    } else {
      out[o++] = c & 0xff;
    }
  }
  return out.subarray(0, o);
}

/**
 * Merge slashes, drop `.` segments, resolve `..`; keep a trailing slash. Returns null when
 * `..` would leave the root. The input is already decoded, so `%2e%2e` and `%2f` are resolved
 * here like their literal forms and cannot smuggle a traversal past this point.
 */
export function normalizePath(path: string): string | null {
  if (!path.includes('//') && !path.includes('/.')) return path.startsWith('/') ? path : '/' + path;
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i]!;
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(seg);
  }
  const last = parts[parts.length - 1];
  const trailing = last === '' || last === '.' || last === '..';
  const joined = '/' + out.join('/');
  return trailing && out.length > 0 ? joined + '/' : joined;
}

/**
 * Split a normalised path at the first segment that ends with one of `extensions`
 * (`/index.php/a/b` → `/index.php` + `/a/b`). Byte-wise ASCII comparison, case-sensitive like
 * nginx's `\.php` match and php-fpm's security.limit_extensions; look-alike Unicode characters
 * never match. Returns null when no segment qualifies.
 */
export function splitScriptPath(path: string, extensions: readonly string[]): { scriptName: string; pathInfo: string } | null {
  let start = 1;
  while (start <= path.length) {
    let end = path.indexOf('/', start);
    if (end < 0) end = path.length;
    if (end > start) {
      for (const ext of extensions) {
        if (end - start > ext.length && path.startsWith(ext, end - ext.length)) {
          return { scriptName: path.slice(0, end), pathInfo: path.slice(end) };
        }
      }
    }
    start = end + 1;
  }
  return null;
}

/** True when a segment of `path` starts with `.` and is not in `allowed` (dotfiles: `.env`, `.git/`). */
export function hasHiddenSegment(path: string, allowed: readonly string[]): boolean {
  if (!path.includes('/.')) return false;
  for (const seg of path.split('/')) {
    if (seg.startsWith('.') && !allowed.includes(seg)) return true;
  }
  return false;
}
