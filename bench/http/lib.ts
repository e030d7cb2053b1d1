/**
 * Helpers for the request benchmarks: a private php-fpm and nginx in temp dirs, wrk runs with
 * parsed output, CPU and peak-RSS sampling from /proc, result files with run metadata.
 *
 *   startBenchPhpFpm ──unix socket──▶ php-fpm master + N static workers
 *   startNginx ──fastcgi_pass (upstream keepalive)──▶ the same socket
 *   runWrk ──HTTP──▶ nginx           treeCpuTimeUs / treePeakRssKb ◀── /proc/PID/{stat,status}
 *
 * Every process is started by us and stopped by its PID (and the PIDs of its children,
 * checked against their start time so a reused PID is never signalled). `installCleanup()`
 * makes Ctrl-C run the same stops. Linux only (/proc). Never used by tests.
 */
// One search for php-fpm (newest version first, compared as numbers): the launcher's. The
// /proc readers, nginx and wrk come from the `fastcgi-gateway bench` harness (src/bench/).
import { findPhpFpm, type PhpFpmProcess, startPhpFpm as launchPhpFpm } from '../../src/fpm/launcher.js';
import { buildCgiParams } from '../../src/cgi/params-builder.js';
import { writeBenchRoot } from '../../src/bench/workloads.js';
import { NGINX_BIN } from '../../src/bench/nginx.js';
import { WRK_BIN } from '../../src/bench/load.js';
import { onInterrupt } from '../../src/bench/procs.js';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export {
  childPids,
  clockTicksPerSecond,
  freePort,
  installCleanup,
  onInterrupt,
  processTree,
  procStatusKb,
  readProcStat,
  reapedChildrenCpuUs,
  stopTree,
  treeCpuTimeUs,
  treePeakRssKb,
} from '../../src/bench/procs.js';
export { type BenchNginx, NGINX_BIN, type NginxOptions, startNginx } from '../../src/bench/nginx.js';
export { type LoadResult, runWrk, WRK_BIN } from '../../src/bench/load.js';
export { median } from '../../src/bench/run.js';

/** Repository root (two levels above this file). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Where result JSON files go. */
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

// ── env knobs and small statistics ─────────────────────────────────────────────────────────

/** A positive number from the environment, else `fallback`. Throws on garbage. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/** A positive integer from the environment, else `fallback`. */
export function envInt(name: string, fallback: number): number {
  const n = envNumber(name, fallback);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${n}`);
  return n;
}

/** A comma-separated list of positive integers from the environment. */
export function envIntList(name: string, fallback: readonly number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return [...fallback];
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`${name} must be a list of positive integers, got ${JSON.stringify(raw)}`);
  return list;
}

/** Nearest-rank percentile (p in 0..100) of an unsorted list; NaN for an empty list. */
export function percentile(values: readonly number[] | Float64Array, p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = Float64Array.from(values).sort();
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

/** Round for display and JSON: 3 significant decimals at most. */
export function round(n: number, digits = 3): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Print rows as an aligned text table (first row is the header). */
export function printTable(rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  const text = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths: number[] = [];
  for (const r of text) {
    for (let i = 0; i < r.length; i++) widths[i] = Math.max(widths[i] ?? 0, r[i]!.length);
  }
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const [head, ...body] = text;
  if (!head) return;
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

// ── run metadata and result files ──────────────────────────────────────────────────────────

function tryExec(file: string, args: readonly string[], cwd = REPO_ROOT): string | null {
  try {
    return execFileSync(file, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** First line a tool prints for its version flag (nginx and wrk print to stderr). */
function versionOf(file: string, args: readonly string[]): string | null {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.error) return null;
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text === '' ? null : (text.split('\n')[0] ?? null);
}

/** Facts every result file carries: when, where, which code and tools. */
export interface BenchMeta {
  readonly date: string;
  readonly commit: string | null;
  /** Uncommitted changes in the working tree when the bench ran. */
  readonly dirty: boolean | null;
  readonly node: string;
  /** The node flags a gateway started by these scripts runs under (src/node-flags.ts). */
  readonly gatewayNodeFlags: readonly string[];
  readonly platform: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly totalMemMb: number;
  /** 1/5/15-minute load averages at start: the machine is shared, read figures with this. */
  readonly loadavg: readonly number[];
}

/** Collect `BenchMeta` (git via `git rev-parse --short HEAD`, read only). */
export function benchMeta(): BenchMeta {
  const commit = tryExec('git', ['rev-parse', '--short', 'HEAD']);
  const status = tryExec('git', ['--no-optional-locks', 'status', '--porcelain']);
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    commit,
    dirty: status === null ? null : status.length > 0,
    node: process.version,
    gatewayNodeFlags: SERVER_NODE_FLAGS,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    totalMemMb: Math.round(os.totalmem() / 2 ** 20),
    loadavg: os.loadavg().map((n) => round(n, 2)),
  };
}

/** Versions of the external tools, null when absent. */
export function toolVersions(): { phpFpm: string | null; nginx: string | null; wrk: string | null } {
  let phpFpm: string | null = null;
  try {
    phpFpm = versionOf(findPhpFpm(), ['-v']);
  } catch {
    phpFpm = null;
  }
  return {
    phpFpm,
    nginx: existsSync(NGINX_BIN) ? versionOf(NGINX_BIN, ['-v']) : null,
    wrk: existsSync(WRK_BIN) ? versionOf(WRK_BIN, ['-v']) : null,
  };
}

/** Write `data` to bench/results/<name>-<UTC timestamp>.json; returns the path. */
export function writeResult(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const file = join(RESULTS_DIR, `${name}-${stamp}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

/**
 * Connections waiting in a unix listening socket's accept queue (the Recv-Q that `ss -xl`
 * shows for a LISTEN socket); null when `ss` is missing or the socket is not listed. For
 * php-fpm this is the number of connections no worker has accepted yet.
 */
export function listenQueueLength(socketPath: string): Promise<number | null> {
  return new Promise((res) => {
    execFile('ss', ['-xlH'], { encoding: 'utf8' }, (err, stdout) => {
      if (err) {
        res(null);
        return;
      }
      for (const line of stdout.split('\n')) {
        const cols = line.trim().split(/\s+/);
        // Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port
        if (cols[4] === socketPath) {
          res(Number(cols[2]));
          return;
        }
      }
      res(null);
    });
  });
}

/** Poll `listenQueueLength` every `intervalMs` until `stop()`; returns the samples. */
export function watchListenQueue(socketPath: string, intervalMs = 250): { stop(): Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const n = await listenQueueLength(socketPath);
      if (n !== null) samples.push(n);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/**
 * Poll the accept queue until it is empty or `timeoutMs` passes; returns the last length (0:
 * drained). Once load has stopped, a queue that stays non-empty means no worker will accept
 * those connections (every worker pinned by an idle kept-alive connection).
 */
export async function listenQueueAfterLoad(socketPath: string, timeoutMs = 2000): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await listenQueueLength(socketPath);
    if (n === null || n === 0 || Date.now() >= deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ── docroot and CGI params ─────────────────────────────────────────────────────────────────

/**
 * A bench docroot in `dir/www`: the `fastcgi-gateway bench` workloads' scripts (hello.php and
 * the rest) plus opcache-check.php, which reports whether opcache is on in the worker that runs it.
 */
export function createDocRoot(dir: string): string {
  const root = writeBenchRoot(dir);
  writeFileSync(
    join(root, 'opcache-check.php'),
    [
      '<?php',
      '$s = function_exists("opcache_get_status") ? opcache_get_status(false) : false;',
      'header("Content-Type: application/json");',
      'echo json_encode(["php" => PHP_VERSION, "opcache" => is_array($s) && !empty($s["opcache_enabled"]),',
      '  "jit" => is_array($s) && !empty($s["jit"]["enabled"]), "output_buffering" => ini_get("output_buffering")]);',
      '',
    ].join('\n'),
  );
  return root;
}

/** Inputs for `nginxLikeParams`. */
export interface CgiRequestShape {
  readonly docRoot: string;
  /** Script path under the docroot, with a leading slash: "/hello.php". */
  readonly script: string;
  readonly method?: string;
  readonly query?: string;
  readonly host?: string;
  readonly serverPort?: number;
  readonly remotePort?: number;
  /** Request headers as HTTP_* params, appended after the table (nginx order). */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
}

/**
 * The params nginx sends for a GET with the canonical config (startNginx): its fastcgi_params
 * table, SCRIPT_FILENAME, then the request headers as HTTP_*. The client bench sends this so
 * both sides of a comparison give php-fpm the same work.
 */
export function nginxLikeParams(shape: CgiRequestShape): Array<[string, string]> {
  const query = shape.query ?? '';
  const rawUrl = query === '' ? shape.script : `${shape.script}?${query}`;
  const rawHeaders = ['Host', shape.host ?? 'localhost', ...(shape.headers ?? []).flat()];
  // The gateway's own params builder: nginx's table, in nginx's order (the differential test holds it to that).
  const params = buildCgiParams(
    { method: shape.method ?? 'GET', rawUrl, httpVersion: '1.1', rawHeaders, remoteAddress: '127.0.0.1', remotePort: shape.remotePort ?? 51234, serverAddress: '127.0.0.1', serverPort: shape.serverPort ?? 8080, https: false },
    { scriptName: shape.script, pathInfo: '', documentUri: shape.script, query, documentRoot: shape.docRoot },
    { serverSoftware: 'fastcgi-gateway', serverName: 'localhost', extraParams: {} },
    { contentLength: null, contentType: null },
  );
  return params.map(([n, v]) => [n, String(v)]);
}

// ── php-fpm ────────────────────────────────────────────────────────────────────────────────

/** This repository's dist/, which the scripts run the gateway from; refuses a missing build. */
export function builtDist(): string {
  const dist = join(REPO_ROOT, 'dist');
  if (!existsSync(join(dist, 'cli', 'main.js'))) throw new Error('no build in dist/: run `npm run build` first');
  return dist;
}

/** Options for `startBenchPhpFpm`. */
export interface BenchPhpFpmOptions {
  /** pm = static with this many workers (default 4). */
  readonly workers?: number;
  /** pm.max_requests (default 0: never recycle). */
  readonly maxRequests?: number;
  /** Extra lines for the pool section. */
  readonly extraPool?: string;
  /** `php_admin_value`s over the launcher's (its upload limits are 100M: a larger body needs these). */
  readonly phpAdminValues?: Readonly<Record<string, string>>;
}

/** A running private php-fpm. */
export interface BenchPhpFpm {
  /** `unix:/tmp/.../fpm.sock`, for ConnectionPool. */
  readonly address: string;
  readonly socketPath: string;
  readonly dir: string;
  readonly docRoot: string;
  /** Master PID (workers are its children). */
  readonly pid: number;
  /** The generated php-fpm.conf. */
  readonly config: string;
  log(): string;
  /** SIGQUIT (graceful), SIGKILL after 3 s and for surviving workers; removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Start php-fpm for benchmarking through the product's launcher: pm = static, a unix socket in
 * a temp dir, and the distro's php.ini and conf.d (opcache included; the launcher adds only the
 * upload limits and an upload dir), so PHP runs as it does in a stock install. Resolves once the
 * socket accepts connections.
 */
export async function startBenchPhpFpm(options: BenchPhpFpmOptions = {}): Promise<BenchPhpFpm> {
  // The product's launcher (src/fpm/launcher.ts), as the tests and `dev` use it; the document
  // root and the socket live in the bench's own dir.
  const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-fpm-'));
  const docRoot = createDocRoot(dir);
  const socketPath = join(dir, 'fpm.sock');
  let fpm: PhpFpmProcess;
  try {
    fpm = await launchPhpFpm({
      workers: options.workers ?? 4,
      maxRequests: options.maxRequests ?? 0,
      socketPath,
      poolName: 'bench',
      ...(options.phpAdminValues ? { phpAdminValues: options.phpAdminValues } : {}),
      // nginx workers may run as another user than php-fpm; a deep backlog as a stock pool has.
      extraPoolConfig: ['listen.mode = 0666', 'listen.backlog = 511', options.extraPool ?? ''].join('\n'),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const config = readFileSync(join(fpm.dir, 'php-fpm.conf'), 'utf8');
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      unregister();
      await fpm.stop();
      rmSync(dir, { recursive: true, force: true });
    })());
  const unregister = onInterrupt(stop);
  return { address: fpm.address, socketPath, dir, docRoot, pid: fpm.pid, config, log: () => fpm.logTail(10_000), stop };
}

// ── one-off HTTP checks ────────────────────────────────────────────────────────────────────

/** GET `url` on a fresh connection (no agent, nothing left open): status, headers and body. */
export function httpGet(url: string, timeoutMs = 5000): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((res, rej) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => res({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
      response.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', rej);
  });
}
