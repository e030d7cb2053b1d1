/**
 * Live reload for `dev` (never on elsewhere): the project is watched (vendor/, node_modules/
 * and .git/ skipped); after a change to a script, template or asset every open tab reloads,
 * and a change to stylesheets only swaps them in place. Tabs learn of changes through a
 * server-sent-events endpoint, and text/html answers get the small script that listens to it.
 *
 *   edit ─▶ chokidar (write settled 50 ms) ─▶ 60 ms debounce ─▶ SSE `reload` (or `css` with the paths) ─▶ tabs
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { relative, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

/** The endpoints, under a prefix no application uses. */
export const LIVE_PREFIX = '/__fastcgi-gateway/';
const EVENTS_PATH = `${LIVE_PREFIX}live`;
const SCRIPT_PATH = `${LIVE_PREFIX}live.js`;
/** Appended to HTML answers: browsers move a script after </html> into the body. */
export const SCRIPT_TAG = `\n<script src="${SCRIPT_PATH}" async></script>\n`;

/** Files whose change reloads the tabs (templates of the usual PHP engines included). */
const WATCHED = /\.(php|phtml|inc|css|js|mjs|html?|twig|tpl|latte|mustache|hbs|blade\.php|json|ya?ml|env)$/i;
const IGNORED = /(^|[/\\])(vendor|node_modules|\.git)([/\\]|$)/;

const CLIENT = `(() => {
  const es = new EventSource(${JSON.stringify(EVENTS_PATH)});
  es.addEventListener('reload', () => location.reload());
  es.addEventListener('css', (e) => {
    const changed = JSON.parse(e.data);
    for (const link of document.querySelectorAll('link[rel~="stylesheet"]')) {
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin) continue;
      if (changed.length && !changed.some((p) => url.pathname === p)) continue;
      url.searchParams.set('livereload', String(Date.now()));
      link.href = url.href;
    }
  });
})();
`;

export interface LiveReload {
  /** Answer the endpoints, or prepare an HTML answer for the script; true when answered. */
  intercept(req: IncomingMessage, res: ServerResponse): boolean;
  /** Tabs connected now. */
  readonly clients: number;
  /** Resolves once the watcher has scanned the project. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** Watch `dir` (the project) for changes; `root` is the document root (URL paths of stylesheets). */
export function startLiveReload(dir: string, root: string, say: (line: string) => void): LiveReload {
  const clients = new Set<ServerResponse>();
  const send = (event: string, data: unknown): void => {
    for (const c of clients) c.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  let pending: string[] = [];
  let timer: NodeJS.Timeout | null = null;
  const changed = (path: string): void => {
    if (!WATCHED.test(path)) return;
    pending.push(path);
    timer ??= setTimeout(() => {
      timer = null;
      const paths = pending;
      pending = [];
      const cssOnly = paths.every((p) => /\.css$/i.test(p));
      const inRoot = paths.map((p) => relative(root, p)).filter((r) => !r.startsWith('..'));
      const shown = paths.map((p) => relative(dir, p)).join(', ');
      if (cssOnly) {
        say(`changed ${shown}: swapping stylesheets in ${clients.size} tab${clients.size === 1 ? '' : 's'}`);
        send('css', inRoot.map((r) => `/${r.split(sep).join('/')}`));
      } else {
        say(`changed ${shown}: reloading ${clients.size} tab${clients.size === 1 ? '' : 's'}`);
        send('reload', shown);
      }
    }, 60);
  };
  // awaitWriteFinish: one event per save. Without it a single write can report a file twice
  // (truncate, then data), and the second report lands in the next batch (seen in CI: a CSS
  // edit just after a PHP one reloaded the page instead of swapping the stylesheet).
  const watcher: FSWatcher = watch(dir, {
    ignored: (p: string) => IGNORED.test(relative(dir, p)),
    ignoreInitial: true,
    awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
  });
  watcher.on('change', changed).on('add', changed).on('unlink', changed);
  const ready = new Promise<void>((r) => watcher.once('ready', () => r()));
  // A comment every 25 s keeps proxies and browsers from timing the stream out.
  const keepAlive = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n');
  }, 25_000);
  keepAlive.unref();

  const intercept = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '/';
    if (url.startsWith(LIVE_PREFIX)) {
      const path = url.split('?')[0];
      if (path === EVENTS_PATH) {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
        res.write(': connected\n\n');
        clients.add(res);
        res.once('close', () => clients.delete(res));
        return true;
      }
      if (path === SCRIPT_PATH) {
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Content-Length': Buffer.byteLength(CLIENT), 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : CLIENT);
        return true;
      }
      return false;
    }
    if (req.method !== 'HEAD') injectInto(res);
    return false;
  };
  return {
    intercept,
    get clients() {
      return clients.size;
    },
    ready,
    async close() {
      clearInterval(keepAlive);
      if (timer !== null) clearTimeout(timer);
      for (const c of clients) c.end();
      await watcher.close();
    },
  };
}

/**
 * Append the script to `res` if it turns out to be HTML: its Content-Length (which no longer
 * holds) is dropped when the head goes out, and the tag is written before the end.
 */
function injectInto(res: ServerResponse): void {
  let html = false;
  const isHtml = (): boolean => /^text\/html\b/i.test(String(res.getHeader('content-type') ?? ''));
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]): ServerResponse {
    const headers = rest[rest.length - 1];
    let type = res.getHeader('content-type');
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'content-type') type = headers[i + 1] as string;
    } else if (headers !== null && typeof headers === 'object') {
      for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'content-type') type = v as string;
    }
    html = status === 200 && /^text\/html\b/i.test(String(type ?? ''));
    if (html) {
      res.removeHeader('content-length');
      if (Array.isArray(headers)) {
        const kept: unknown[] = [];
        for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() !== 'content-length') kept.push(headers[i], headers[i + 1]);
        rest[rest.length - 1] = kept;
      } else if (headers !== null && typeof headers === 'object') {
        const kept = { ...(headers as Record<string, unknown>) };
        for (const k of Object.keys(kept)) if (k.toLowerCase() === 'content-length') delete kept[k];
        rest[rest.length - 1] = kept;
      }
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).call(this, status, ...rest);
  } as typeof res.writeHead;
  const end = res.end;
  res.end = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
    // A head not written yet (end() with the whole body) is decided here.
    if (!res.headersSent && res.statusCode === 200 && isHtml()) {
      html = true;
      res.removeHeader('content-length');
    }
    if (html) {
      html = false;
      const [chunk, encoding, cb] = args;
      if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') res.write(chunk as Buffer, encoding as BufferEncoding);
      const callback = typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb;
      return (end as (...a: unknown[]) => ServerResponse).call(this, SCRIPT_TAG, callback);
    }
    return (end as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.end;
}
