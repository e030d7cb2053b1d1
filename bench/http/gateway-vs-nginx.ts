/**
 * The gateway against nginx, side by side in one run, in front of the same php-fpm pool and
 * loaded by the same wrk. Each server runs in its own process (the gateway from dist/, plain
 * node), so its CPU (utime + stime) and peak RSS (VmHWM) come from /proc like nginx's.
 *
 *   node --import tsx bench/http/gateway-vs-nginx.ts
 *   CONNECTIONS=50 DURATION=10 RUNS=3 WARMUP=2 WORKERS=8 WRK_TIMEOUT=5     (defaults)
 *   SCENARIOS=hello,100k,static,post1m   CONFIGS=nginx-keepalive,gateway,nginx-no-keepalive,gateway-log
 *   BUILD=0   (use dist/ as it is instead of running `tsc -p tsconfig.build.json` first)
 *
 *   php-fpm (static, WORKERS) ◀── nginx 1 worker, upstream keepalive WORKERS + fastcgi_keep_conn
 *                            ◀── nginx 1 worker, a new upstream connection per request
 *                            ◀── gateway, pool.connections = WORKERS (kept alive)
 *                            ◀── gateway, same, with the JSON access log written to a file
 *
 * Per scenario and run the configurations take turns (nginx, gateway, nginx, gateway) so drift
 * in the machine's load hits all of them; every turn starts a fresh server, checks one
 * response, warms up for WARMUP s, measures one wrk run, and stops the server. Only one server
 * exists at a time: an idle kept-alive upstream connection pins a php-fpm worker, so a server
 * left running would starve the next one. Medians over RUNS are reported.
 * Writes bench/results/gateway-vs-nginx-<timestamp>.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, openSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import {
  type BenchPhpFpm,
  type WrkResult,
  REPO_ROOT,
  benchMeta,
  clockTicksPerSecond,
  envInt,
  installCleanup,
  listenQueueAfterLoad,
  median,
  onInterrupt,
  printTable,
  processTree,
  procStatusKb,
  readProcStat,
  reapedChildrenCpuUs,
  round,
  runWrk,
  startBenchPhpFpm,
  startNginx,
  stopTree,
  toolVersions,
  treeCpuTimeUs,
  treePeakRssKb,
  watchListenQueue,
  writeResult,
} from './lib.js';

const CONNECTIONS = envInt('CONNECTIONS', 50);
const DURATION_S = envInt('DURATION', 10);
const RUNS = envInt('RUNS', 3);
const WARMUP_S = envInt('WARMUP', 2);
const WORKERS = envInt('WORKERS', 8);
/**
 * wrk --timeout (s). Shorter than the run, so requests stuck behind pinned php-fpm workers
 * show up as wrk "timeout" errors instead of vanishing; long enough that an honest slow
 * response stays in the latency histogram.
 */
const WRK_TIMEOUT_S = envInt('WRK_TIMEOUT', 5);
const BUILD = process.env['BUILD'] !== '0';

const GATEWAY_RUNNER = join(REPO_ROOT, 'bench', 'http', 'gateway-server.mjs');
const DIST_SERVER = join(REPO_ROOT, 'dist', 'server.js');
/** dist/ of another build (e.g. a worktree of an older commit), for the gateway-base contender. */
const BASELINE_DIST = process.env['BASELINE_DIST'];

// ── scenarios ──────────────────────────────────────────────────────────────────────────────

const POST_BODY = Buffer.from('0123456789abcdef'.repeat(65536)); // 1 MiB
const POST_MD5 = createHash('md5').update(POST_BODY).digest('hex');
const STATIC_BYTES = deterministicBytes(10 * 1024);
const BIG_SIZE = 100 * 1024;
const MIB_SIZE = 1024 * 1024;

interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly path: string;
  readonly method: 'GET' | 'POST';
  /** wrk Lua script (for the POST). */
  readonly wrkScript?: string;
  /** Why a response is wrong, or null. */
  check(status: number, body: Buffer): string | null;
}

const ALL_SCENARIOS: readonly Scenario[] = [
  {
    name: 'hello',
    description: 'GET /hello.php ("Hello, World!", 13 B)',
    path: '/hello.php',
    method: 'GET',
    check: (status, body) => (status === 200 && body.toString() === 'Hello, World!' ? null : `status ${status}, body ${JSON.stringify(body.toString().slice(0, 100))}`),
  },
  {
    // big.php builds its 64 KiB block in a 65536-step PHP loop per request, which would make this
    // a PHP benchmark; bench-100k.php echoes a ready string, so the relay is what is measured.
    name: '100k',
    description: 'GET /bench-100k.php (102400 B from PHP, Content-Length set)',
    path: '/bench-100k.php',
    method: 'GET',
    check: (status, body) => (status === 200 && body.equals(bench100k()) ? null : `status ${status}, ${body.length} bytes`),
  },
  {
    name: '1m',
    description: 'GET /bench-1m.php (1048576 B from PHP, Content-Length set)',
    path: '/bench-1m.php',
    method: 'GET',
    check: (status, body) => (status === 200 && body.equals(bench1m()) ? null : `status ${status}, ${body.length} bytes`),
  },
  {
    name: 'static',
    description: 'GET /static-10k.bin (10240 B file, no PHP)',
    path: '/static-10k.bin',
    method: 'GET',
    check: (status, body) => (status === 200 && body.equals(STATIC_BYTES) ? null : `status ${status}, ${body.length} bytes`),
  },
  {
    name: 'post1m',
    description: 'POST /echo.php with a 1 MiB body (PHP reads it, answers md5 + length)',
    path: '/echo.php',
    method: 'POST',
    wrkScript: [
      '-- 1 MiB body, the same bytes as the sanity check (md5 checked there).',
      'wrk.method = "POST"',
      'wrk.body = string.rep("0123456789abcdef", 65536)',
      'wrk.headers["Content-Type"] = "application/octet-stream"',
      '',
    ].join('\n'),
    check: (status, body) => {
      if (status !== 200) return `status ${status}`;
      try {
        const o = JSON.parse(body.toString()) as { md5?: string; len?: number };
        return o.md5 === POST_MD5 && o.len === POST_BODY.length ? null : `echo.php saw ${body.toString().slice(0, 120)}`;
      } catch {
        return `not JSON: ${JSON.stringify(body.toString().slice(0, 100))}`;
      }
    },
  },
];

function deterministicBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i % 65536) % 251;
  return b;
}

let bench100kCache: Buffer | null = null;
function bench100k(): Buffer {
  bench100kCache ??= Buffer.from('0123456789abcdef'.repeat(BIG_SIZE / 16));
  return bench100kCache;
}

let bench1mCache: Buffer | null = null;
function bench1m(): Buffer {
  bench1mCache ??= Buffer.from('0123456789abcdef'.repeat(MIB_SIZE / 16));
  return bench1mCache;
}

/** Bench-only files next to the copied PHP fixtures. */
function addBenchFiles(docRoot: string): void {
  writeFileSync(join(docRoot, 'static-10k.bin'), STATIC_BYTES);
  writeFileSync(
    join(docRoot, 'bench-1m.php'),
    ['<?php', "header('Content-Type: application/octet-stream');", `header('Content-Length: ${MIB_SIZE}');`, `echo str_repeat('0123456789abcdef', ${MIB_SIZE / 16});`, ''].join('\n'),
  );
  writeFileSync(
    join(docRoot, 'bench-100k.php'),
    ['<?php', "header('Content-Type: application/octet-stream');", `header('Content-Length: ${BIG_SIZE}');`, `echo str_repeat('0123456789abcdef', ${BIG_SIZE / 16});`, ''].join('\n'),
  );
}

// ── configurations: the servers ────────────────────────────────────────────────────────────

interface ConfigDef {
  readonly name: string;
  readonly kind: 'nginx' | 'gateway';
  readonly description: string;
}

const ALL_CONFIGS: readonly ConfigDef[] = [
  { name: 'nginx-keepalive', kind: 'nginx', description: `nginx 1 worker, upstream keepalive ${WORKERS} + fastcgi_keep_conn on` },
  { name: 'gateway', kind: 'gateway', description: `gateway, pool.connections ${WORKERS} (kept alive), access log off` },
  { name: 'nginx-no-keepalive', kind: 'nginx', description: 'nginx 1 worker, a new upstream connection per request' },
  { name: 'gateway-log', kind: 'gateway', description: `gateway, pool.connections ${WORKERS}, JSON access log to a file` },
  // A before/after in one run: the same harness, an older build (BASELINE_DIST=/path/to/dist).
  { name: 'gateway-base', kind: 'gateway', description: `gateway from BASELINE_DIST (${BASELINE_DIST ?? 'unset'}), same options as gateway` },
  // The config-file server: the request crosses the site and route lookups of a real config.
  { name: 'gateway-sites', kind: 'gateway', description: `gateway from a config of 3 sites; the one served (the default, after an exact and a wildcard miss) has 5 routes, php last` },
];

/** A server under test, started for one turn. */
interface RunningServer {
  readonly origin: string;
  /** PID of the server's main process (nginx master, node). */
  readonly pid: number;
  /** Peak RSS (kB) of the server's processes (nginx: master + worker). */
  peakRssKb(): number;
  /** Stop; returns what the server reported on the way out. */
  stop(): Promise<Record<string, unknown>>;
  readonly config: string;
}

/** Start a server; its stop() runs once, later calls get the first call's promise. */
async function startServer(def: ConfigDef, fpm: BenchPhpFpm): Promise<RunningServer> {
  const server = await startServerOnce(def, fpm);
  let stopped: Promise<Record<string, unknown>> | null = null;
  return { ...server, stop: () => (stopped ??= server.stop()) };
}

async function startServerOnce(def: ConfigDef, fpm: BenchPhpFpm): Promise<RunningServer> {
  if (def.kind === 'nginx') {
    const nginx = await startNginx({ fpmSocket: fpm.socketPath, docRoot: fpm.docRoot, keepalive: def.name === 'nginx-keepalive' ? WORKERS : 0, workers: 1 });
    return {
      origin: nginx.origin,
      pid: nginx.pid,
      peakRssKb: () => treePeakRssKb(nginx.pid).totalKb,
      config: nginx.config,
      async stop() {
        const problems = nginx
          .errorLog()
          .split('\n')
          .filter((l) => / \[(warn|error|crit|alert|emerg)\] /.test(l));
        await nginx.stop();
        return { errorLogLines: problems.length, errorLogSample: problems.slice(0, 5) };
      },
    };
  }
  if (def.name === 'gateway-base' && BASELINE_DIST === undefined) throw new Error('gateway-base needs BASELINE_DIST=/path/to/other/dist');
  return startGateway(fpm, def.name === 'gateway-log', def.name === 'gateway-base' ? BASELINE_DIST : undefined, def.name === 'gateway-sites');
}

/** 3 sites; requests to 127.0.0.1 reach the default one, whose php route is the 5th prefix tried. */
function sitesConfig(fpm: BenchPhpFpm): Record<string, unknown> {
  const root = fpm.docRoot;
  return {
    listen: ['127.0.0.1:0'],
    accessLog: false,
    upstreams: { app: { servers: [fpm.address], connections: WORKERS } },
    sites: [
      { hosts: ['shop.example.com', 'www.shop.example.com'], root, routes: [{ path: '/', php: { upstream: 'app' } }, { path: '/assets/', static: {} }] },
      { hosts: ['*.tenants.example.com'], root, routes: [{ path: '/', php: { upstream: 'app' } }] },
      {
        hosts: ['*'],
        root,
        routes: [
          { path: '/assets/', static: {} },
          { path: '/api/', proxy: { url: 'http://127.0.0.1:9' } },
          { path: '/old/', redirect: { to: '/new/' } },
          { path: '/git/', fastcgi: { upstream: 'app', script: '/usr/lib/git-core/git-http-backend' } },
          { path: '/', php: { upstream: 'app' } },
        ],
      },
    ],
  };
}

/** The gateway from dist/ in its own node process (bench/http/gateway-server.mjs). */
async function startGateway(fpm: BenchPhpFpm, accessLog: boolean, dist?: string, sites = false): Promise<RunningServer> {
  const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-gw-'));
  const logFile = join(dir, 'access.log');
  const options = sites
    ? sitesConfig(fpm)
    : {
        root: fpm.docRoot,
        upstream: fpm.address,
        listen: '127.0.0.1:0',
        accessLog: accessLog ? 'json' : false,
        pool: { connections: WORKERS },
      };
  const logFd = accessLog ? openSync(logFile, 'w') : null;
  let proc: ChildProcess;
  try {
    const args = [GATEWAY_RUNNER, JSON.stringify(options)];
    proc = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', logFd ?? 'ignore', 'pipe'],
      env: dist === undefined ? process.env : { ...process.env, GATEWAY_DIST: dist },
    });
  } finally {
    if (logFd !== null) closeSync(logFd);
  }
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const stopProc = (): Promise<void> => stopTree(proc, 'SIGTERM', 3000);
  const unregister = onInterrupt(async () => {
    await stopProc();
    rmSync(dir, { recursive: true, force: true });
  });
  const origin = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`gateway did not start within 10 s:\n${stderr}`)), 10_000);
    const onData = (): void => {
      const m = /^listening (http:\/\/\S+)$/m.exec(stderr);
      if (m) {
        clearTimeout(timer);
        proc.stderr?.removeListener('data', onData);
        res(m[1]!);
      }
    };
    proc.stderr?.on('data', onData);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`gateway exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  }).catch(async (err: unknown) => {
    await stopProc();
    unregister();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const pid = proc.pid ?? 0;
  return {
    origin,
    pid,
    peakRssKb: () => procStatusKb(pid, 'VmHWM') ?? 0,
    config: JSON.stringify(options),
    async stop() {
      await stopProc();
      unregister();
      const m = /^stats (\{.*\})$/m.exec(stderr);
      const out: Record<string, unknown> = { poolStats: m ? (JSON.parse(m[1]!) as unknown) : null };
      const other = stderr
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('listening ') && !l.startsWith('stats '));
      if (other.length > 0) out['stderr'] = other.slice(0, 10);
      if (accessLog && existsSync(logFile)) {
        out['accessLogLines'] = await countLines(logFile);
        out['accessLogBytes'] = statSync(logFile).size;
      }
      rmSync(dir, { recursive: true, force: true });
      return out;
    },
  };
}

/** User and system CPU (µs) of a process tree, children it reaped included (see treeCpuTimeUs). */
function treeCpuSplitUs(rootPid: number): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const pid of processTree(rootPid)) {
    const st = readProcStat(pid);
    if (st === null) continue;
    user += st.utime + st.cutime;
    sys += st.stime + st.cstime;
  }
  const f = 1e6 / clockTicksPerSecond();
  return { user: user * f, sys: sys * f };
}

function countLines(file: string): Promise<number> {
  return new Promise((res, rej) => {
    let n = 0;
    createReadStream(file)
      .on('data', (c: string | Buffer) => {
        const b = typeof c === 'string' ? Buffer.from(c) : c;
        for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
      })
      .on('end', () => res(n))
      .on('error', rej);
  });
}

// ── one request, for the sanity checks ─────────────────────────────────────────────────────

function fetchOnce(url: string, method: 'GET' | 'POST', body: Buffer | null, timeoutMs = 10_000): Promise<{ status: number; body: Buffer }> {
  return new Promise((res, rej) => {
    const headers: Record<string, string | number> = body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length } : {};
    const req = http.request(url, { method, agent: false, timeout: timeoutMs, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => res({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', rej);
    req.end(body ?? undefined);
  });
}

// ── measurement ────────────────────────────────────────────────────────────────────────────

interface TurnResult {
  readonly scenario: string;
  readonly config: string;
  readonly run: number;
  readonly loadavg1Start: number;
  readonly warmupRequests: number;
  readonly requests: number;
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly latencyAvgMs: number;
  readonly non2xx3xx: number;
  readonly socketErrors: WrkResult['socketErrors'];
  /** utime + stime of the server's processes during the measured run, per request. */
  readonly serverCpuUsPerReq: number;
  readonly serverUserUsPerReq: number;
  readonly serverSysUsPerReq: number;
  readonly serverPeakRssKb: number;
  readonly fpmCpuUsPerReq: number;
  readonly wrkCpuUsPerReq: number;
  /** Largest php-fpm accept-queue length sampled during the run. */
  readonly fpmListenQueueMax: number | null;
  /** Accept-queue length ≤ 2 s after the load stopped: > 0 = connections no worker will take. */
  readonly fpmListenQueueAfter: number | null;
  readonly serverReport: Record<string, unknown>;
  readonly wrkOutput: string;
}

async function runTurn(scenario: Scenario, def: ConfigDef, run: number, fpm: BenchPhpFpm, scriptPath: string | undefined): Promise<TurnResult> {
  const loadavg1Start = round(os.loadavg()[0] ?? 0, 2);
  const server = await startServer(def, fpm);
  let report: Record<string, unknown> = {};
  try {
    const url = server.origin + scenario.path;
    const first = await fetchOnce(url, scenario.method, scenario.method === 'POST' ? POST_BODY : null);
    const problem = scenario.check(first.status, first.body);
    if (problem !== null) throw new Error(`${def.name} ${scenario.method} ${scenario.path}: ${problem}`);
    configText.set(def.name, server.config);
    if (phpInfo === null) {
      const r = await fetchOnce(`${server.origin}/opcache-check.php`, 'GET', null);
      phpInfo = JSON.parse(r.body.toString()) as unknown;
    }

    const wrkBase = { url, connections: CONNECTIONS, timeoutS: WRK_TIMEOUT_S, ...(scriptPath !== undefined ? { script: scriptPath } : {}) };
    const warm = await runWrk({ ...wrkBase, durationS: WARMUP_S });
    // Let requests the warm-up left in flight finish before the CPU snapshot.
    await listenQueueAfterLoad(fpm.socketPath);

    const server0 = treeCpuSplitUs(server.pid);
    const fpm0 = treeCpuTimeUs(fpm.pid);
    const wrk0 = reapedChildrenCpuUs();
    const queue = watchListenQueue(fpm.socketPath);
    const w = await runWrk({ ...wrkBase, durationS: DURATION_S });
    const server1 = treeCpuSplitUs(server.pid);
    const serverUser = server1.user - server0.user;
    const serverSys = server1.sys - server0.sys;
    const fpmCpu = treeCpuTimeUs(fpm.pid) - fpm0;
    const wrkCpu = reapedChildrenCpuUs() - wrk0;
    const samples = await queue.stop();
    const queueAfter = await listenQueueAfterLoad(fpm.socketPath);
    const peakRss = server.peakRssKb();
    report = await server.stop();
    const n = Math.max(1, w.requests);
    return {
      scenario: scenario.name,
      config: def.name,
      run,
      loadavg1Start,
      warmupRequests: warm.requests,
      requests: w.requests,
      requestsPerSec: w.requestsPerSec,
      p50Ms: w.p50Ms,
      p99Ms: w.p99Ms,
      latencyAvgMs: w.latencyAvgMs,
      non2xx3xx: w.non2xx3xx,
      socketErrors: w.socketErrors,
      serverCpuUsPerReq: round((serverUser + serverSys) / n, 1),
      serverUserUsPerReq: round(serverUser / n, 1),
      serverSysUsPerReq: round(serverSys / n, 1),
      serverPeakRssKb: peakRss,
      fpmCpuUsPerReq: round(fpmCpu / n, 1),
      wrkCpuUsPerReq: round(wrkCpu / n, 1),
      fpmListenQueueMax: samples.length > 0 ? Math.max(...samples) : null,
      fpmListenQueueAfter: queueAfter,
      serverReport: report,
      wrkOutput: w.raw,
    };
  } finally {
    await server.stop();
    // Connections nginx left in php-fpm's accept queue are closed with it; let the workers
    // take and drop them before the next server starts.
    await listenQueueAfterLoad(fpm.socketPath, 5000);
  }
}

/** Generated server configs by configuration name, for the result file. */
const configText = new Map<string, string>();
/** What opcache-check.php reported (opcache, JIT, PHP version), asked on the first turn. */
let phpInfo: unknown = null;

interface Summary {
  readonly scenario: string;
  readonly config: string;
  readonly runs: number;
  readonly requestsPerSec: number;
  /** Median req/s over median req/s of the nginx configuration; null when it did not run. */
  readonly ratioVsNginxKeepalive: number | null;
  readonly ratioVsNginxNoKeepalive: number | null;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx3xx: number;
  readonly timeouts: number;
  readonly socketErrors: number;
  readonly serverCpuUsPerReq: number;
  readonly serverUserUsPerReq: number;
  readonly serverSysUsPerReq: number;
  readonly serverPeakRssKb: number;
  readonly fpmCpuUsPerReq: number;
  readonly wrkCpuUsPerReq: number;
  /** Worst run: php-fpm accept-queue length after the load stopped (stalled upstream connections). */
  readonly stalledUpstreamConnections: number;
}

function summarize(scenario: string, config: string, turns: readonly TurnResult[], all: readonly TurnResult[]): Summary {
  const rps = median(turns.map((t) => t.requestsPerSec));
  const nginxRps = (name: string): number | null => {
    const list = all.filter((t) => t.scenario === scenario && t.config === name);
    return list.length > 0 ? median(list.map((t) => t.requestsPerSec)) : null;
  };
  const ka = nginxRps('nginx-keepalive');
  const noka = nginxRps('nginx-no-keepalive');
  return {
    scenario,
    config,
    runs: turns.length,
    requestsPerSec: round(rps, 1),
    ratioVsNginxKeepalive: ka ? round(rps / ka, 2) : null,
    ratioVsNginxNoKeepalive: noka ? round(rps / noka, 2) : null,
    p50Ms: round(median(turns.map((t) => t.p50Ms))),
    p99Ms: round(median(turns.map((t) => t.p99Ms))),
    non2xx3xx: turns.reduce((a, t) => a + t.non2xx3xx, 0),
    timeouts: turns.reduce((a, t) => a + t.socketErrors.timeout, 0),
    socketErrors: turns.reduce((a, t) => a + t.socketErrors.connect + t.socketErrors.read + t.socketErrors.write, 0),
    serverCpuUsPerReq: round(median(turns.map((t) => t.serverCpuUsPerReq)), 1),
    serverUserUsPerReq: round(median(turns.map((t) => t.serverUserUsPerReq)), 1),
    serverSysUsPerReq: round(median(turns.map((t) => t.serverSysUsPerReq)), 1),
    serverPeakRssKb: Math.max(...turns.map((t) => t.serverPeakRssKb)),
    fpmCpuUsPerReq: round(median(turns.map((t) => t.fpmCpuUsPerReq)), 1),
    wrkCpuUsPerReq: round(median(turns.map((t) => t.wrkCpuUsPerReq)), 1),
    stalledUpstreamConnections: Math.max(0, ...turns.map((t) => t.fpmListenQueueAfter ?? 0)),
  };
}

// ── main ───────────────────────────────────────────────────────────────────────────────────

function pickByName<T extends { name: string }>(envName: string, all: readonly T[]): T[] {
  const raw = process.env[envName];
  if (raw === undefined || raw === '') return [...all];
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return names.map((n) => {
    const hit = all.find((x) => x.name === n);
    if (!hit) throw new Error(`${envName}: unknown name ${JSON.stringify(n)} (known: ${all.map((x) => x.name).join(', ')})`);
    return hit;
  });
}

function build(): { ok: boolean; output: string } {
  if (!BUILD) return { ok: existsSync(DIST_SERVER), output: 'BUILD=0: dist/ used as it was' };
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  // tsc emits JavaScript even when it reports type errors (other work in progress in src/).
  if (!existsSync(DIST_SERVER)) throw new Error(`the build produced no dist/server.js:\n${output}`);
  return { ok: r.status === 0, output };
}

async function main(): Promise<void> {
  installCleanup();
  const scenarios = pickByName('SCENARIOS', ALL_SCENARIOS);
  const configs = pickByName('CONFIGS', ALL_CONFIGS);
  const meta = benchMeta();
  const tools = toolVersions();
  const built = build();
  if (!built.ok) console.log(`WARNING: tsc -p tsconfig.build.json reported errors; measuring the JavaScript it emitted:\n${built.output}\n`);
  console.log(`gateway vs nginx — ${tools.nginx ?? 'nginx ?'}; ${tools.phpFpm ?? 'php-fpm ?'}; ${tools.wrk ?? 'wrk ?'}; node ${process.version}`);
  console.log(
    `php-fpm pm=static workers=${WORKERS}; wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s --timeout ${WRK_TIMEOUT_S}s, ${WARMUP_S} s warm-up per turn, ${RUNS} runs; ` +
      `commit ${meta.commit ?? '?'}${meta.dirty ? ' (dirty)' : ''}; ${meta.cpus} CPUs; load at start ${meta.loadavg.join(' ')}\n`,
  );

  const workDir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-gvn-'));
  let fpm: BenchPhpFpm | null = null;
  const turns: TurnResult[] = [];
  try {
    fpm = await startBenchPhpFpm({ workers: WORKERS });
    addBenchFiles(fpm.docRoot);
    for (const scenario of scenarios) {
      let scriptPath: string | undefined;
      if (scenario.wrkScript !== undefined) {
        scriptPath = join(workDir, `${scenario.name}.lua`);
        writeFileSync(scriptPath, scenario.wrkScript);
      }
      console.log(`── ${scenario.name}: ${scenario.description}`);
      for (let run = 1; run <= RUNS; run++) {
        for (const def of configs) {
          const t = await runTurn(scenario, def, run, fpm, scriptPath);
          turns.push(t);
          const se = t.socketErrors;
          const extra =
            def.kind === 'gateway'
              ? gatewayNote(t.serverReport)
              : (t.serverReport['errorLogLines'] as number) > 0
                ? `, nginx error log ${String(t.serverReport['errorLogLines'])} lines`
                : '';
          console.log(
            `  run ${run} ${def.name.padEnd(18)} ${round(t.requestsPerSec, 0)} req/s, p50 ${t.p50Ms} ms, p99 ${t.p99Ms} ms, ` +
              `server ${t.serverCpuUsPerReq} µs/req (usr ${t.serverUserUsPerReq} + sys ${t.serverSysUsPerReq}), ${round(t.serverPeakRssKb / 1024, 1)} MB peak, php-fpm ${t.fpmCpuUsPerReq} µs/req, ` +
              `non-2xx ${t.non2xx3xx}, timeouts ${se.timeout}, sock ${se.connect + se.read + se.write}, ` +
              `fpm queue max ${t.fpmListenQueueMax ?? '?'} after ${t.fpmListenQueueAfter ?? '?'}, load ${t.loadavg1Start}${extra}`,
          );
        }
      }
    }
  } finally {
    if (fpm) await fpm.stop();
    rmSync(workDir, { recursive: true, force: true });
  }

  const summaries: Summary[] = [];
  for (const scenario of scenarios) {
    for (const def of configs) {
      const list = turns.filter((t) => t.scenario === scenario.name && t.config === def.name);
      if (list.length > 0) summaries.push(summarize(scenario.name, def.name, list, turns));
    }
  }
  const loadEnd = os.loadavg().map((n) => round(n, 2));

  for (const scenario of scenarios) {
    console.log(`\n${scenario.name}: ${scenario.description} — median of ${RUNS}`);
    const rows: Array<Array<string | number>> = [
      ['config', 'req/s', '×nginx-ka', '×nginx-noka', 'p50 ms', 'p99 ms', 'non2xx/tmo/sock', 'server µs/req (usr+sys)', 'peak RSS MB', 'php-fpm µs/req', 'wrk µs/req', 'stalled'],
    ];
    for (const s of summaries.filter((x) => x.scenario === scenario.name)) {
      rows.push([
        s.config,
        s.requestsPerSec,
        s.config.startsWith('gateway') && s.ratioVsNginxKeepalive !== null ? `${s.ratioVsNginxKeepalive.toFixed(2)}` : '',
        s.config.startsWith('gateway') && s.ratioVsNginxNoKeepalive !== null ? `${s.ratioVsNginxNoKeepalive.toFixed(2)}` : '',
        s.p50Ms,
        s.p99Ms,
        `${s.non2xx3xx}/${s.timeouts}/${s.socketErrors}`,
        `${s.serverCpuUsPerReq.toFixed(1)} (${s.serverUserUsPerReq.toFixed(1)}+${s.serverSysUsPerReq.toFixed(1)})`,
        round(s.serverPeakRssKb / 1024, 1),
        s.fpmCpuUsPerReq,
        s.wrkCpuUsPerReq,
        String(s.stalledUpstreamConnections),
      ]);
    }
    printTable(rows);
  }
  console.log(`\nload average (1/5/15 min): start ${meta.loadavg.join(' ')}, end ${loadEnd.join(' ')} on ${meta.cpus} CPUs`);
  const stalled = summaries.filter((s) => s.stalledUpstreamConnections > 0);
  if (stalled.length > 0) {
    console.log(
      `\nSTALLS: ${stalled.map((s) => `${s.scenario}/${s.config} ${s.stalledUpstreamConnections}`).join(', ')} upstream connections were still in php-fpm's\n` +
        `  accept queue after the load stopped: every worker was pinned by a kept-alive connection, so the requests on\n` +
        `  those connections never got an answer during the run (wrk "timeouts" count them every 2 s once older than\n` +
        `  ${WRK_TIMEOUT_S} s). req/s and latency of those rows describe only the connections that were served.`,
    );
  }

  const file = writeResult('gateway-vs-nginx', {
    bench: 'gateway-vs-nginx',
    meta,
    loadavgEnd: loadEnd,
    tools,
    php: phpInfo,
    build: built,
    config: {
      connections: CONNECTIONS,
      durationS: DURATION_S,
      runs: RUNS,
      warmupS: WARMUP_S,
      wrkThreads: 1,
      wrkTimeoutS: WRK_TIMEOUT_S,
      fpmWorkers: WORKERS,
      scenarios: scenarios.map((s) => ({ name: s.name, description: s.description, path: s.path, method: s.method, wrkScript: s.wrkScript ?? null })),
      configs: configs.map((c) => ({ ...c, serverConfig: configText.get(c.name) ?? null })),
      phpFpmConf: fpm?.config ?? null,
    },
    summaries,
    turns,
  });
  console.log(`\nwrote ${file}`);
}

function gatewayNote(report: Record<string, unknown>): string {
  const stats = report['poolStats'] as { connects?: number; failed?: number; retries?: number } | null;
  const parts: string[] = [];
  if (stats) parts.push(`pool connects ${stats.connects ?? '?'}, failed ${stats.failed ?? '?'}, retries ${stats.retries ?? '?'}`);
  if (typeof report['accessLogLines'] === 'number') parts.push(`access log ${report['accessLogLines']} lines`);
  if (Array.isArray(report['stderr'])) parts.push(`stderr: ${(report['stderr'] as string[]).join(' | ')}`);
  return parts.length > 0 ? `; ${parts.join('; ')}` : '';
}

await main();
