/**
 * Maps a normalised request path to what serves it, the way the canonical nginx + php-fpm
 * configuration does:
 *
 *   location / { try_files $uri $uri/ /index.php?$query_string; }
 *   location ~ [^/]\.php(/|$) { fastcgi_split_path_info ^(.+?\.php)(/.*)$; try_files $fastcgi_script_name =404; ... }
 *
 * A script must be an existing regular file inside the root before anything goes to php-fpm,
 * so `/uploads/evil.jpg/x.php` is a 404 and never runs the upload.
 */
import { statSync, type Stats } from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { ScriptTarget } from '../cgi/params-builder.js';
import { hasHiddenSegment, splitScriptPath, type RequestTarget } from '../cgi/uri.js';
import type { ResolvedHandlerOptions } from '../config/options.js';

/** Where a request goes. */
export type Route =
  | { readonly kind: 'script'; readonly target: ScriptTarget }
  | { readonly kind: 'static'; readonly path: string }
  | { readonly kind: 'redirect'; readonly location: string }
  | { readonly kind: 'forbidden' }
  /** Never served, never handed to `next()`: dotfiles, script sources under another case. */
  | { readonly kind: 'hidden' }
  | { readonly kind: 'not-found' };

type FileKind = 'file' | 'dir' | null;

/**
 * What exists where, remembered for `ttl` ms (nginx's open_file_cache idea): a stat per request
 * is a syscall on the hot path. Only existing files and directories are remembered, so a file
 * created a moment ago is found at once; a deleted one may still be routed for up to `ttl`
 * (php-fpm then answers 404 itself). Containment never depends on the cache: paths are
 * normalised before they get here.
 */
export class FileKindCache {
  /** Bounded LRU: past `max` paths the least recently used is dropped, not the whole cache. */
  readonly #entries: LRUCache<string, 'file' | 'dir'> | null;

  constructor(ttl: number, max = 10_000) {
    this.#entries = ttl > 0 ? new LRUCache({ max, ttl, updateAgeOnGet: false }) : null;
  }

  kindOf(path: string): FileKind {
    if (this.#entries === null) return statKind(path);
    const hit = this.#entries.get(path);
    if (hit !== undefined) return hit;
    const kind = statKind(path);
    if (kind !== null) this.#entries.set(path, kind);
    return kind;
  }
}

/**
 * Synchronous on purpose. `bench/micro/stat.bench.ts` (50 calls in flight on a 10 KiB file,
 * this machine): statSync 1.7 µs of CPU a call, fs.stat 18.3 µs, fs.promises.stat 19.2 µs (the
 * thread pool round trip costs ten stats). nginx stats in its worker as well; on a slow network
 * file system, where a stat can block, a longer statCacheTtl is the remedy.
 */
function statKind(path: string): FileKind {
  let st: Stats | undefined;
  try {
    st = statSync(path, { throwIfNoEntry: false });
  } catch {
    return null; // ENOTDIR, EACCES, ENAMETOOLONG: treat as absent
  }
  if (!st) return null;
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : null;
}

/** Resolve a request target against the document root. */
/** What routing in a document root needs to know. */
export type RoutingOptions = Pick<ResolvedHandlerOptions, 'root' | 'allowedDotfiles' | 'scriptExtensions' | 'static' | 'index' | 'frontController' | 'frontControllerOnly'>;

export function route(target: RequestTarget, o: RoutingOptions, files: FileKindCache): Route {
  const kindOf = (p: string): FileKind => files.kindOf(p);
  const { path, query } = target;
  // Dotfiles (.env, .git/) are never served or run. A dot path that names nothing on disk goes
  // on to the front controller as nginx's try_files sends it: /uploads/x.jpg/.php is not a
  // script ([^/]\.php in the canonical location) and reveals nothing.
  const hidden = hasHiddenSegment(path, o.allowedDotfiles);
  const split = splitScriptPath(path, o.scriptExtensions);
  if (split !== null) {
    if (hidden) return HIDDEN;
    // Symfony's and Laravel's setups run the front controller and nothing else.
    if (o.frontControllerOnly && split.scriptName !== o.frontController) return NOT_FOUND;
    if (kindOf(o.root + split.scriptName) !== 'file') return NOT_FOUND;
    // DOCUMENT_URI is the script, as nginx's `try_files $fastcgi_script_name` leaves $uri.
    return script(split.scriptName, split.pathInfo, split.scriptName, query, o.root);
  }
  const kind = kindOf(o.root + path);
  if (hidden) {
    if (kind !== null) return HIDDEN;
  } else if (kind === 'file' && !path.endsWith('/')) {
    // `/x.PHP` is not a script (php-fpm's limit_extensions is case-sensitive too), but its
    // source must not be served either.
    if (looksLikeScript(path, o.scriptExtensions)) return HIDDEN;
    return o.static ? { kind: 'static', path } : NOT_FOUND;
  }
  if (kind === 'dir') {
    if (!path.endsWith('/')) return { kind: 'redirect', location: encodePath(path) + '/' + (query ? '?' + query : '') };
    for (const name of o.index) {
      const candidate = path + name;
      if (kindOf(o.root + candidate) !== 'file') continue;
      if (o.scriptExtensions.some((ext) => name.endsWith(ext))) {
        if (o.frontControllerOnly && candidate !== o.frontController) continue;
        return script(candidate, '', candidate, query, o.root);
      }
      if (o.static) return { kind: 'static', path: candidate };
    }
    // Symfony's `try_files $uri /index.php`: a directory without an index is the app's to answer.
    if (!o.frontControllerOnly) return { kind: 'forbidden' };
  }
  const fc = o.frontController;
  if (fc !== null && kindOf(o.root + fc) === 'file') return script(fc, '', fc, query, o.root);
  return NOT_FOUND;
}

const NOT_FOUND: Route = Object.freeze({ kind: 'not-found' });
const HIDDEN: Route = Object.freeze({ kind: 'hidden' });

/** The last segment ends with a script extension in some other letter case. */
function looksLikeScript(path: string, extensions: readonly string[]): boolean {
  const lower = path.toLowerCase();
  return extensions.some((ext) => lower.endsWith(ext.toLowerCase()));
}

function script(scriptName: string, pathInfo: string, documentUri: string, query: string, documentRoot: string): Route {
  return { kind: 'script', target: { scriptName, pathInfo, documentUri, query, documentRoot } };
}

/** Percent-encode a decoded path for a Location header or for `send`, keeping `/`. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}
