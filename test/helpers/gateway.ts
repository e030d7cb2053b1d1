/**
 * Starts a real php-fpm and the gateway server in front of it for integration tests, on a
 * fresh copy of `test/fixtures/gateway-root`, plus small HTTP client helpers:
 *
 *   startGateway() ─▶ temp dir ─┬─ root/            copy of the fixture root (+ .git/config, which git cannot hold)
 *                               ├─ outside-secret.txt   marker just outside the root (traversal target)
 *                               └─ tmp/             the gateway's tmpDir for spooled bodies
 *                   php-fpm (private, unix socket) ◀─ gateway (127.0.0.1:0) ◀─ undici Client
 *
 * Everything is torn down by `close()`: client, gateway, php-fpm (by its PID), temp dir.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { Client } from 'undici';
import { type GatewayServer, type GatewayServerOptions, startGatewayServer } from '../../src/server.js';
import { type PhpFpm, type PhpFpmOptions, startPhpFpm } from './php-fpm.js';

/** The committed document root for gateway tests. */
export const GATEWAY_ROOT_FIXTURE = resolve(fileURLToPath(new URL('../fixtures/gateway-root', import.meta.url)));

/** Content of the file placed just outside the served root. */
export const OUTSIDE_MARKER = 'OUTSIDE_ROOT_MARKER_7f3a';

/** A fresh, writable copy of the fixture root and its surroundings. */
export interface GatewayRoot {
  /** Temp base directory (removed by `remove()`). */
  readonly base: string;
  /** The document root to serve. */
  readonly root: string;
  /** A file in `base`, next to `root`, holding OUTSIDE_MARKER. */
  readonly outside: string;
  /** An empty directory for the gateway's spooled bodies. */
  readonly tmp: string;
  remove(): void;
}

/** Copy the fixture root into a temp dir; adds the files git cannot store (`.git/config`). */
export function makeGatewayRoot(): GatewayRoot {
  const base = mkdtempSync(join(tmpdir(), 'fcgi-gw-'));
  const root = join(base, 'root');
  cpSync(GATEWAY_ROOT_FIXTURE, root, { recursive: true });
  mkdirSync(join(root, '.git'), { recursive: true });
  writeFileSync(join(root, '.git', 'config'), '[core]\n\tSECRET_GIT_MARKER = 1\n');
  const outside = join(base, 'outside-secret.txt');
  writeFileSync(outside, OUTSIDE_MARKER + '\n');
  const tmp = join(base, 'tmp');
  mkdirSync(tmp);
  return { base, root, outside, tmp, remove: () => rmSync(base, { recursive: true, force: true }) };
}

/** pino log lines captured in memory. */
export interface LogCapture {
  readonly logger: Logger;
  readonly lines: Array<Record<string, unknown>>;
}

/** A pino logger (level debug) that keeps every line as a parsed object. */
export function captureLogs(): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug', base: null }, {
    write(line: string) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines };
}

/** A buffered HTTP response. */
export interface SimpleResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  /** The body as UTF-8 text. */
  readonly text: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string | string[]>;
  readonly body?: string | Buffer | Uint8Array | NodeJS.ReadableStream | AsyncIterable<Uint8Array> | FormData | null;
}

/** A started php-fpm + gateway pair. */
export interface GatewayFixture {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** The php-fpm behind it; null when started with `upstream` (a fake responder, nothing). */
  readonly fpm: PhpFpm | null;
  readonly gw: GatewayServer;
  readonly dirs: GatewayRoot;
  /** Captured log lines (the gateway's logger writes here). */
  readonly logs: LogCapture;
  /** An undici Client for `url`, closed by `close()`. */
  readonly client: Client;
  /** Request `path` (sent as is, no normalisation) and buffer the response. */
  fetch(path: string, options?: RequestOptions): Promise<SimpleResponse>;
  /** GET a path and parse the body as JSON. */
  json<T = Record<string, unknown>>(path: string, options?: RequestOptions): Promise<{ res: SimpleResponse; data: T }>;
  close(): Promise<void>;
}

export interface StartGatewayOptions {
  /** Options for a new php-fpm, or an existing one to use (not stopped by `close()`). */
  readonly fpm?: PhpFpmOptions | PhpFpm;
  /** Use this upstream address and start no php-fpm (fault injection with a fake responder). */
  readonly upstream?: string;
  /** Gateway options on top of root/upstream/listen/logger. */
  readonly gateway?: Partial<GatewayServerOptions>;
  /** Use this root instead of a fresh copy (not removed by `close()`). */
  readonly dirs?: GatewayRoot;
}

function isPhpFpm(x: PhpFpmOptions | PhpFpm | undefined): x is PhpFpm {
  return x !== undefined && typeof (x as PhpFpm).stop === 'function';
}

/** Start php-fpm (unless given) and the gateway on 127.0.0.1:0 for a copy of the fixture root. */
export async function startGateway(options: StartGatewayOptions = {}): Promise<GatewayFixture> {
  const ownDirs = options.dirs === undefined;
  const dirs = options.dirs ?? makeGatewayRoot();
  const ownFpm = options.upstream === undefined && !isPhpFpm(options.fpm);
  let fpm: PhpFpm | null;
  try {
    fpm =
      options.upstream !== undefined ? null : isPhpFpm(options.fpm) ? options.fpm : await startPhpFpm({ workers: 2, ...(options.fpm ?? {}) });
  } catch (err) {
    if (ownDirs) dirs.remove();
    throw err;
  }
  const logs = captureLogs();
  let gw: GatewayServer;
  try {
    gw = await startGatewayServer({
      root: dirs.root,
      upstream: options.upstream ?? fpm!.address,
      listen: '127.0.0.1:0',
      tmpDir: dirs.tmp,
      logger: logs.logger,
      ...options.gateway,
    });
  } catch (err) {
    if (ownFpm) await fpm?.stop();
    if (ownDirs) dirs.remove();
    throw err;
  }
  const client = new Client(gw.url, { pipelining: 1 });
  const port = Number(new URL(gw.url).port);
  const fetch = (path: string, o: RequestOptions = {}): Promise<SimpleResponse> => httpRequest(client, path, o);
  return {
    url: gw.url,
    port,
    fpm,
    gw,
    dirs,
    logs,
    client,
    fetch,
    async json<T>(path: string, o: RequestOptions = {}) {
      const res = await fetch(path, o);
      let data: T;
      try {
        data = JSON.parse(res.text) as T;
      } catch {
        assert.fail(`${path}: expected JSON, got ${res.status} ${JSON.stringify(res.text.slice(0, 300))}`);
      }
      return { res, data };
    },
    async close() {
      await client.close().catch(() => {});
      await gw.close();
      if (ownFpm) await fpm?.stop();
      if (ownDirs) dirs.remove();
    },
  };
}

/** One request through an undici dispatcher, body buffered. */
export async function httpRequest(client: Client, path: string, o: RequestOptions = {}): Promise<SimpleResponse> {
  const res = await client.request({
    path,
    method: (o.method ?? 'GET') as 'GET',
    ...(o.headers ? { headers: o.headers } : {}),
    ...(o.body !== undefined && o.body !== null ? { body: o.body as never } : {}),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') };
}

/** A raw HTTP/1.1 response as parsed by {@link parseRawResponses}. */
export interface RawResponse {
  readonly status: number;
  readonly reason: string;
  /** Header lines in order, names lower-cased. */
  readonly headers: Array<[string, string]>;
  readonly body: Buffer;
}

/**
 * Write `bytes` on a fresh TCP connection and collect everything until the server closes it
 * (or `untilClosed` false: until `done(buffer)` says so). Times out after `timeoutMs` with an
 * assertion error rather than hanging the suite.
 */
export function rawExchange(
  port: number,
  bytes: string | Buffer,
  opts: { done?: (received: Buffer) => boolean; timeoutMs?: number } = {},
): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolvePromise(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(new Error(`raw exchange did not finish; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 300))}`));
    }, opts.timeoutMs ?? 10_000);
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.done?.(Buffer.concat(chunks))) finish();
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', () => finish());
    sock.write(bytes);
  });
}

/**
 * Parse one or more HTTP/1.1 responses from raw bytes (Content-Length or chunked bodies; a
 * response without either runs to the end). `headRequests` marks which responses answer HEAD
 * (no body whatever the headers say).
 */
export function parseRawResponses(buf: Buffer, headRequests: readonly boolean[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const end = buf.indexOf('\r\n\r\n', pos);
    assert.ok(end >= 0, `incomplete response head: ${JSON.stringify(buf.subarray(pos, pos + 200).toString('latin1'))}`);
    const lines = buf.subarray(pos, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
    assert.ok(m, `bad status line ${JSON.stringify(lines[0])}`);
    const headers: Array<[string, string]> = lines.slice(1).map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
    });
    const status = Number(m[1]);
    pos = end + 4;
    const get = (n: string): string | undefined => headers.find(([k]) => k === n)?.[1];
    let body: Buffer = Buffer.alloc(0);
    const noBody = headRequests[out.length] === true || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (!noBody) {
      if (get('transfer-encoding')?.toLowerCase() === 'chunked') {
        const parts: Buffer[] = [];
        for (;;) {
          const le = buf.indexOf('\r\n', pos);
          assert.ok(le >= 0, 'incomplete chunk size line');
          const size = parseInt(buf.subarray(pos, le).toString('latin1'), 16);
          assert.ok(Number.isInteger(size), 'bad chunk size');
          pos = le + 2;
          if (size === 0) {
            const te = buf.indexOf('\r\n\r\n', pos - 2);
            pos = te + 4;
            break;
          }
          parts.push(buf.subarray(pos, pos + size));
          pos += size + 2;
        }
        body = Buffer.concat(parts);
      } else if (get('content-length') !== undefined) {
        const n = Number(get('content-length'));
        body = buf.subarray(pos, pos + n);
        pos += n;
      } else {
        body = buf.subarray(pos);
        pos = buf.length;
      }
    }
    out.push({ status, reason: m[2] ?? '', headers, body });
  }
  return out;
}

/** GET `path` over a raw connection with `Connection: close`, exactly as written. */
export async function rawGet(port: number, path: string, extraHeaders = ''): Promise<RawResponse> {
  const buf = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extraHeaders}Connection: close\r\n\r\n`);
  const [res] = parseRawResponses(buf);
  assert.ok(res, `no response for ${path}`);
  return res;
}

/**
 * Wait until `cond()` holds, checking every 10 ms; fails with `what` after `timeoutMs`. For
 * states that have no event to await (pool counters, files appearing or going away). The
 * deadline only turns a hang into a failure; no test asserts on how long it took.
 */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Files under `dir` that this process holds open, deleted or not (temp files are unlinked
 * at once, so only their descriptors show that they exist): /proc/self/fd link targets.
 */
export function openFilesUnder(dir: string, pid: number | 'self' = 'self'): string[] {
  const out: string[] = [];
  for (const fd of listDir(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith(dir + '/')) out.push(target);
    } catch {
      // closed between the listing and the readlink
    }
  }
  return out;
}

/** Entries of a directory (empty list when it does not exist). */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
