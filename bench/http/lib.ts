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
import { FASTCGI_CONF } from '../../test/helpers/nginx.js';
// One search for php-fpm (newest version first, compared as numbers): the launcher's.
import { findPhpFpm, type PhpFpmProcess, startPhpFpm as launchPhpFpm } from '../../src/fpm/launcher.js';
import { procStatusKb } from '../../test/helpers/gateway-process.js';
import { freePort } from '../../test/helpers/ports.js';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export { freePort, procStatusKb };

/** Repository root (two levels above this file). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Where result JSON files go. */
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
/** PHP fixtures copied into every bench docroot. */
export const PHP_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'php');

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

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

/** Median (mean of the two middle values for even lengths); NaN for an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
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

// ── cleanup on exit and Ctrl-C ─────────────────────────────────────────────────────────────

const cleanups = new Set<() => Promise<void>>();
let cleanupInstalled = false;

/** Register a stop function to run on SIGINT / SIGTERM; returns the unregister function. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Make SIGINT / SIGTERM stop every process these helpers started, then exit 130 / 143. */
export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const handler = (signal: NodeJS.Signals): void => {
    console.error(`\n${signal}: stopping benchmark processes`);
    void Promise.allSettled([...cleanups].map((fn) => fn())).then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

// ── /proc sampling ─────────────────────────────────────────────────────────────────────────

let clockTicks: number | null = null;

/** Kernel clock ticks per second (utime/stime unit), from `getconf CLK_TCK`, else 100. */
export function clockTicksPerSecond(): number {
  if (clockTicks === null) {
    const n = Number(tryExec('getconf', ['CLK_TCK']));
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** The fields of /proc/PID/stat these helpers use; times in clock ticks. */
export interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  readonly utime: number;
  readonly stime: number;
  /** CPU of children this process has waited for (reaped workers end up here). */
  readonly cutime: number;
  readonly cstime: number;
  /** Start time since boot in ticks: with the pid, identifies one process for good. */
  readonly starttime: number;
}

/** Parse /proc/PID/stat; null when the process is gone. */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm is in parentheses and may contain spaces or ')': split after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  // rest[0] is field 3 (state), so field n (1-based, proc(5)) is rest[n - 3].
  const rest = text.slice(close + 2).split(' ');
  const field = (n: number): number => Number(rest[n - 3]);
  return {
    pid,
    comm,
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
    starttime: field(22),
  };
}

/** Live children of `pid` (scans /proc: /proc/PID/task/TID/children is not always built in). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readProcStat(Number(name));
    if (st !== null && st.ppid === pid) out.push(st.pid);
  }
  return out;
}

/** `pid` and all its live descendants. */
export function processTree(pid: number): number[] {
  const all: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (readProcStat(p) === null) continue;
    all.push(p);
    todo.push(...childPids(p));
  }
  return all;
}

/**
 * CPU time (user + system, µs) of a process tree: every live member plus what each has
 * reaped from its children, so a worker that exits during a window is still counted (it moves
 * from the live sum into its parent's cutime/cstime). Differences of two calls give the CPU a
 * server spent in between, at clock-tick resolution (10 ms at 100 Hz).
 */
export function treeCpuTimeUs(rootPid: number): number {
  let ticks = 0;
  for (const pid of processTree(rootPid)) {
    const st = readProcStat(pid);
    if (st !== null) ticks += st.utime + st.stime + st.cutime + st.cstime;
  }
  return (ticks * 1e6) / clockTicksPerSecond();
}

/** CPU time (µs) of this process's reaped children (e.g. a finished wrk). */
export function reapedChildrenCpuUs(): number {
  const st = readProcStat(process.pid);
  return st === null ? 0 : ((st.cutime + st.cstime) * 1e6) / clockTicksPerSecond();
}


/**
 * Peak RSS (VmHWM, kB) of each live process in a tree and their sum. The sum counts shared
 * pages (code, shared memory) once per process, so it overstates a forking server's footprint.
 */
export function treePeakRssKb(rootPid: number): { totalKb: number; byPid: Record<string, number> } {
  const byPid: Record<string, number> = {};
  let totalKb = 0;
  for (const pid of processTree(rootPid)) {
    const kb = procStatusKb(pid, 'VmHWM');
    if (kb !== null) {
      byPid[String(pid)] = kb;
      totalKb += kb;
    }
  }
  return { totalKb, byPid };
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

// ── process management ─────────────────────────────────────────────────────────────────────

function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/**
 * Stop a server we spawned: `signal` to the master, SIGKILL after `graceMs`, then SIGKILL to
 * any child that outlived it (a php-fpm worker survives a SIGKILLed master). Children are
 * recorded before the signal and matched by start time, so a recycled PID is left alone.
 */
export async function stopTree(proc: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const pid = proc.pid;
  if (pid === undefined || exited(proc)) return;
  const children = processTree(pid)
    .filter((p) => p !== pid)
    .map((p) => readProcStat(p))
    .filter((s): s is ProcStat => s !== null);
  const done = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
  for (const child of children) {
    const now = readProcStat(child.pid);
    if (now !== null && now.starttime === child.starttime) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}


function canConnect(target: { path: string } | { host: string; port: number }): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect(target);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** Spawn and wait until `target` accepts connections, or throw with the process output. */
async function spawnUntilListening(
  bin: string,
  args: readonly string[],
  target: { path: string } | { host: string; port: number },
  logFile: string,
): Promise<ChildProcess> {
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const gone = new Promise<void>((res) => proc.once('exit', () => res()));
  const deadline = Date.now() + 10_000;
  while (!exited(proc) && Date.now() < deadline) {
    if (await canConnect(target)) return proc;
    await Promise.race([new Promise((r) => setTimeout(r, 25)), gone]);
  }
  if (!exited(proc)) await stopTree(proc, 'SIGKILL', 1000);
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  throw new Error(`${bin} did not start listening: ${stderr}\n${log}`);
}

// ── docroot and CGI params ─────────────────────────────────────────────────────────────────

/**
 * A bench docroot in `dir/www`: the PHP fixtures plus opcache-check.php, which reports
 * whether opcache is on in the worker that runs it.
 */
export function createDocRoot(dir: string): string {
  const root = join(dir, 'www');
  mkdirSync(root, { recursive: true });
  for (const name of readdirSync(PHP_FIXTURES)) {
    if (name.endsWith('.php')) copyFileSync(join(PHP_FIXTURES, name), join(root, name));
  }
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
 * table, HTTP_PROXY "" (httpoxy), SCRIPT_FILENAME, PATH_INFO, then the request headers. The
 * client bench sends this so both sides of a comparison give php-fpm the same work.
 */
export function nginxLikeParams(shape: CgiRequestShape): Array<[string, string]> {
  const query = shape.query ?? '';
  const uri = query === '' ? shape.script : `${shape.script}?${query}`;
  const host = shape.host ?? 'localhost';
  const params: Array<[string, string]> = [
    ['QUERY_STRING', query],
    ['REQUEST_METHOD', shape.method ?? 'GET'],
    ['CONTENT_TYPE', ''],
    ['CONTENT_LENGTH', ''],
    ['SCRIPT_NAME', shape.script],
    ['REQUEST_URI', uri],
    ['DOCUMENT_URI', shape.script],
    ['DOCUMENT_ROOT', shape.docRoot],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', 'http'],
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', 'fastcgi-gateway'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REMOTE_PORT', String(shape.remotePort ?? 51234)],
    ['REMOTE_USER', ''],
    ['SERVER_ADDR', '127.0.0.1'],
    ['SERVER_PORT', String(shape.serverPort ?? 8080)],
    ['SERVER_NAME', 'localhost'],
    ['REDIRECT_STATUS', '200'],
    ['HTTP_PROXY', ''],
    ['SCRIPT_FILENAME', join(shape.docRoot, shape.script)],
    ['PATH_INFO', ''],
    ['HTTP_HOST', host],
  ];
  for (const [name, value] of shape.headers ?? []) params.push([`HTTP_${name.toUpperCase().replace(/-/g, '_')}`, value]);
  return params;
}

// ── php-fpm ────────────────────────────────────────────────────────────────────────────────

/** Options for `startBenchPhpFpm`. */
export interface BenchPhpFpmOptions {
  /** pm = static with this many workers (default 4). */
  readonly workers?: number;
  /** pm.max_requests (default 0: never recycle). */
  readonly maxRequests?: number;
  /** Extra lines for the pool section. */
  readonly extraPool?: string;
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

/**
 * Stop a process tree started by a bench (then remove its dir), at most once: Ctrl-C and a
 * finally block may both call it.
 */
function stopOnce(proc: ChildProcess, signal: NodeJS.Signals, dir: string): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      unregister();
      await stopTree(proc, signal, 3000);
      rmSync(dir, { recursive: true, force: true });
    })());
  const unregister = onInterrupt(stop);
  return stop;
}

// ── nginx ──────────────────────────────────────────────────────────────────────────────────

/** nginx binary (NGINX_BIN, default /usr/sbin/nginx). */
export const NGINX_BIN = process.env['NGINX_BIN'] ?? '/usr/sbin/nginx';

/**
 * nginx's fastcgi.conf table (fastcgi_params + SCRIPT_FILENAME), shared with the differential
 * test's nginx so both measure and compare the same configuration.
 */
export const CANONICAL_FASTCGI_PARAMS = FASTCGI_CONF;

/** Options for `startNginx`. */
export interface NginxOptions {
  /** php-fpm unix socket path. */
  readonly fpmSocket: string;
  /** Document root holding the scripts (a `createDocRoot` dir). */
  readonly docRoot: string;
  /**
   * Idle upstream connections each worker keeps (`keepalive N` + `fastcgi_keep_conn on`;
   * default 4 = php-fpm workers). 0: neither directive, one php-fpm connection per request.
   */
  readonly keepalive?: number;
  /** worker_processes (default 1). */
  readonly workers?: number;
  /** `listen … ssl http2` with this certificate and key (default: plain HTTP). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** worker_connections (default 1024); worker_rlimit_nofile follows it. */
  readonly workerConnections?: number;
  /** keepalive_requests (default nginx's 1000; also HTTP/2 streams per connection). */
  readonly keepaliveRequests?: number;
}

/** A running private nginx. */
export interface BenchNginx {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly origin: string;
  readonly port: number;
  readonly dir: string;
  /** Master PID; workers are its children. */
  readonly pid: number;
  /** The generated nginx.conf. */
  readonly config: string;
  errorLog(): string;
  /** SIGTERM (fast shutdown), SIGKILL after 3 s and for surviving workers; removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Start nginx (`nginx -p DIR -c DIR/nginx.conf -e DIR/error.log -g 'daemon off;'`) with the
 * canonical nginx + php-fpm setup: `location ~ \.php$`, `try_files $uri =404`,
 * `fastcgi_split_path_info`, the stock fastcgi_params, `SCRIPT_FILENAME
 * $document_root$fastcgi_script_name`, and an upstream block with `keepalive` plus
 * `fastcgi_keep_conn on` so php-fpm connections are reused. Access log off, one worker.
 */
export async function startNginx(options: NginxOptions): Promise<BenchNginx> {
  if (!existsSync(NGINX_BIN)) throw new Error(`nginx not found at ${NGINX_BIN} (Debian: apt-get install nginx-light) — or set NGINX_BIN`);
  const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-nginx-'));
  const port = await freePort();
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  writeFileSync(join(dir, 'fastcgi_params'), CANONICAL_FASTCGI_PARAMS);
  const errorLog = join(dir, 'error.log');
  const keepalive = options.keepalive ?? 4;
  const config =
    [
      // As root the workers would default to "nobody", which cannot enter a 0700 temp dir.
      ...(IS_ROOT ? ['user root root;'] : []),
      `worker_processes ${options.workers ?? 1};`,
      `worker_rlimit_nofile ${2 * (options.workerConnections ?? 1024) + 64};`,
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${errorLog} warn;`,
      '',
      'events {',
      `    worker_connections ${options.workerConnections ?? 1024};`,
      '}',
      '',
      'http {',
      '    access_log off;',
      ...(options.keepaliveRequests !== undefined ? [`    keepalive_requests ${options.keepaliveRequests};`] : []),
      `    client_body_temp_path ${join(tmp, 'body')};`,
      `    fastcgi_temp_path ${join(tmp, 'fastcgi')};`,
      `    proxy_temp_path ${join(tmp, 'proxy')};`,
      `    scgi_temp_path ${join(tmp, 'scgi')};`,
      `    uwsgi_temp_path ${join(tmp, 'uwsgi')};`,
      '',
      '    upstream php {',
      `        server unix:${options.fpmSocket};`,
      ...(keepalive > 0 ? [`        keepalive ${keepalive};`] : []),
      '    }',
      '',
      '    server {',
      ...(options.tls
        ? [`        listen 127.0.0.1:${port} ssl http2;`, `        ssl_certificate ${options.tls.cert};`, `        ssl_certificate_key ${options.tls.key};`]
        : [`        listen 127.0.0.1:${port};`]),
      '        server_name localhost;',
      `        root ${options.docRoot};`,
      '        index index.php;',
      '',
      '        location ~ \\.php$ {',
      '            try_files $uri =404;',
      '            fastcgi_split_path_info ^(.+?\\.php)(/.*)$;',
      '            fastcgi_pass php;',
      ...(keepalive > 0 ? ['            fastcgi_keep_conn on;'] : []),
      '            fastcgi_index index.php;',
      `            include ${join(dir, 'fastcgi_params')};`,
      '            fastcgi_param HTTP_PROXY "";',
      '            fastcgi_param PATH_INFO $fastcgi_path_info;',
      '        }',
      '    }',
      '}',
    ].join('\n') + '\n';
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, config);
  const args = ['-p', `${dir}/`, '-c', confPath, '-e', errorLog, '-g', 'daemon off;'];
  let proc: ChildProcess;
  try {
    proc = await spawnUntilListening(NGINX_BIN, args, { host: '127.0.0.1', port }, errorLog);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = stopOnce(proc, 'SIGTERM', dir);
  return {
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    dir,
    pid: proc.pid ?? 0,
    config,
    errorLog: () => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''),
    stop,
  };
}

// ── wrk ────────────────────────────────────────────────────────────────────────────────────

/** wrk binary (WRK_BIN, default /usr/bin/wrk). */
export const WRK_BIN = process.env['WRK_BIN'] ?? '/usr/bin/wrk';

/** One wrk run. */
export interface WrkOptions {
  readonly url: string;
  /** -c (default 50). */
  readonly connections?: number;
  /** -d in seconds (default 10). */
  readonly durationS?: number;
  /** -t (default 1). */
  readonly threads?: number;
  /**
   * --timeout in seconds (default 30). wrk's own default (2 s) drops slower responses from the
   * latency histogram and only counts them as "timeout" errors, which hides stalls.
   */
  readonly timeoutS?: number;
  /** Lua script for -s (e.g. one that sets wrk.method and wrk.body for a POST). */
  readonly script?: string;
}

/** Parsed `wrk --latency` output; latencies in ms. */
export interface WrkResult {
  readonly requests: number;
  readonly elapsedS: number;
  readonly requestsPerSec: number;
  readonly latencyAvgMs: number;
  readonly p50Ms: number;
  readonly p75Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly non2xx3xx: number;
  readonly socketErrors: { connect: number; read: number; write: number; timeout: number };
  readonly bytesRead: string;
  readonly raw: string;
}

const TIME_UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseDurationMs(value: string, unit: string): number {
  const f = TIME_UNIT_MS[unit];
  if (f === undefined) throw new Error(`unknown wrk time unit ${unit}`);
  return round(Number(value) * f, 4);
}

/** Parse wrk 4.x output (run with --latency); throws when an expected line is missing. */
export function parseWrkOutput(raw: string): WrkResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(raw);
    if (!m) throw new Error(`wrk output has no ${what}:\n${raw}`);
    return m;
  };
  const pct = (p: string): number => {
    const m = need(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm'), `${p}% latency`);
    return parseDurationMs(m[1]!, m[2]!);
  };
  const total = need(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), (\S+) read/m, 'request total');
  const avg = need(/^\s*Latency\s+([\d.]+)(us|ms|s|m|h)/m, 'latency average');
  const rps = need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec');
  const non = /Non-2xx or 3xx responses:\s+(\d+)/.exec(raw);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  return {
    requests: Number(total[1]),
    elapsedS: parseDurationMs(total[2]!, total[3]!) / 1000,
    requestsPerSec: Number(rps[1]),
    latencyAvgMs: parseDurationMs(avg[1]!, avg[2]!),
    p50Ms: pct('50'),
    p75Ms: pct('75'),
    p90Ms: pct('90'),
    p99Ms: pct('99'),
    non2xx3xx: non ? Number(non[1]) : 0,
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    bytesRead: total[4]!,
    raw,
  };
}

/** Run `wrk -tT -cC -dDs --timeout Ss --latency URL` to completion and parse its report. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  if (!existsSync(WRK_BIN)) throw new Error(`wrk not found at ${WRK_BIN} (Debian: apt-get install wrk) — or set WRK_BIN`);
  const args = [
    `-t${options.threads ?? 1}`,
    `-c${options.connections ?? 50}`,
    `-d${options.durationS ?? 10}s`,
    `--timeout`,
    `${options.timeoutS ?? 30}s`,
    '--latency',
    ...(options.script !== undefined ? ['-s', options.script] : []),
    options.url,
  ];
  const proc = spawn(WRK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onInterrupt(() => stopTree(proc, 'SIGKILL', 1000));
  let out = '';
  let err = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((res, rej) => {
    proc.once('error', rej);
    proc.once('close', (c) => res(c));
  }).finally(unregister);
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${err}\n${out}`);
  return parseWrkOutput(out);
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
