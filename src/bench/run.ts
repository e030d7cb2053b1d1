/**
 * `fastcgi-gateway bench`: the gateway and nginx in front of the same backend, on the same
 * machine, in one run.
 *
 *   php-fpm (static pool, opcache on)  ◀── contender (fresh per turn) ◀── wrk -t1 -cC -dD
 *   minimal responder (our codec)      ◀──    "                       ◀── open loop at ½ nginx
 *
 * For every workload and concurrency the rounds are interleaved: round r runs the contenders
 * rotated by r (A B C, B C A, …) so drift in the machine's load hits all of them. A turn starts
 * the contender, checks its answer (against the workload's expected one, or for the user's own
 * URLs against the first contender's), warms up, measures, and stops it. After the rounds of
 * each workload one constant-rate run per contender at half of nginx's median throughput shows
 * latency that a closed loop would hide. Medians are reported; a contender with errors or
 * wrong answers is flagged and not ranked.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPhpFpm, type PhpFpmProcess, startPhpFpm } from '../fpm/launcher.js';
import { type Backend, type ContenderName, type Running, startContender } from './contenders.js';
import { type LoadResult, runConstantRate, runWrk, WRK_BIN, WRK_INSTALL_HINT, type WrkRun } from './load.js';
import { NGINX_BIN, NGINX_INSTALL_HINT } from './nginx.js';
import { BenchInterrupted, installCleanup, isAborting, onInterrupt, stopTree, treeCpuTimeUs } from './procs.js';
import { postBody, type Workload, writeBenchRoot } from './workloads.js';

export interface BenchOptions {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  /**
   * The warm-up goes on until this many requests (within MAX_WARMUP_S): a slow workload's
   * first seconds are V8 still compiling the gateway's hot paths, which a server pays once.
   */
  readonly warmupRequests: number;
  readonly workloads: readonly Workload[];
  readonly contenders: readonly ContenderName[];
  readonly concurrency: readonly number[];
  /** The constant-rate run at half of nginx's throughput (default on). */
  readonly constantRate: boolean;
  /** An existing php-fpm pool instead of a private one. */
  readonly fpm?: string | undefined;
  /** Workers of the private pool, and upstream connections of every contender. */
  readonly fpmWorkers: number;
  /** The user's app: its document root and front controller (null: none). */
  readonly app?: { readonly root: string; readonly frontController: string | null } | undefined;
  /** dist/ of another build, for the gateway-base contender. */
  readonly baseline?: string | undefined;
  /** Progress lines (the terminal). */
  readonly say: (line: string) => void;
}

/** One measured turn. */
export interface Turn {
  readonly workload: string;
  readonly concurrency: number;
  readonly contender: ContenderName;
  readonly round: number;
  readonly load: LoadResult;
  readonly serverCpuS: number;
  /** CPU-seconds of the backend (php-fpm or the responder) over the same run; null: not ours to measure. */
  readonly backendCpuS: number | null;
  readonly peakRssKb: number;
  /** Seconds of warm-up load this turn had (warmupS, extended for warmupRequests). */
  readonly warmupS: number;
}

/** Medians per workload, concurrency and contender. */
export interface Summary {
  readonly workload: string;
  readonly concurrency: number;
  readonly contender: ContenderName;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** Server CPU-seconds per request, in µs. */
  readonly cpuUsPerReq: number;
  /** The load generator's CPU per request, in µs. */
  readonly generatorCpuUsPerReq: number;
  /** The backend's CPU per request (php-fpm or the responder), in µs; null for a pool given with --fpm. */
  readonly backendCpuUsPerReq: number | null;
  readonly peakRssMiB: number;
  readonly errors: number;
  readonly non2xx: number;
  /** Why this contender is not ranked (errors, wrong answers), or null. */
  readonly flagged: string | null;
  /** rps ÷ the same nginx contender's rps. */
  readonly vsNginxKeepalive: number | null;
  readonly vsNginxStock: number | null;
  readonly cpuVsNginxKeepalive: number | null;
}

export interface RateSummary {
  readonly workload: string;
  readonly contender: ContenderName;
  /** Half of this contender's median req/s at the same concurrency is the rate. */
  readonly reference: ContenderName;
  readonly rate: number;
  readonly connections: number;
  readonly load: LoadResult & { readonly maxSendLagMs: number };
}

export interface BenchResult {
  readonly turns: readonly Turn[];
  readonly summary: readonly Summary[];
  readonly constantRate: readonly RateSummary[];
  /** Answers that differed between contenders (user URLs) or from the expected one. */
  readonly mismatches: readonly string[];
  /** Turns that failed (a contender that did not start, a check or a wrk run that failed). */
  readonly failures: readonly string[];
  readonly backend: { readonly php: string; readonly workers: number; readonly root: string };
}

/** What is missing to run these contenders, as install commands; empty when all is there. */
export function missingTools(o: Pick<BenchOptions, 'contenders' | 'fpm'>): string[] {
  const missing: string[] = [];
  if (!existsSync(WRK_BIN)) missing.push(`wrk: ${WRK_INSTALL_HINT}`);
  if (o.contenders.some((c) => c.startsWith('nginx')) && !existsSync(NGINX_BIN)) missing.push(`nginx: ${NGINX_INSTALL_HINT}`);
  if (o.fpm === undefined) {
    try {
      findPhpFpm(process.env);
    } catch (err) {
      missing.push(`php-fpm: ${(err as Error).message}`);
    }
  }
  return missing;
}

export const median = (values: readonly number[]): number => {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** CPU µs per request; NaN when nothing was answered (not "all the CPU per one request"). */
const perRequestUs = (cpuS: number, requests: number): number => (requests > 0 ? (cpuS * 1e6) / requests : Number.NaN);

/** Contender order of round `r`: rotated by r. */
export function rotation<T>(items: readonly T[], r: number): T[] {
  const k = items.length === 0 ? 0 : r % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** One request on a fresh connection, for the answer check. */
async function fetchAnswer(origin: string, w: Workload): Promise<{ status: number; body: Buffer }> {
  const body = w.postBytes !== undefined ? postBody(w.postBytes) : undefined;
  const r = await fetch(`${origin}${w.path}`, {
    method: body ? 'POST' : 'GET',
    headers: { ...(w.headers ?? {}), ...(body ? { 'content-type': 'application/octet-stream' } : {}) },
    ...(body ? { body } : {}),
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

function startResponderProcess(socketPath: string, body: string): Promise<{ address: string; pid: number; stop(): Promise<void> }> {
  const here = fileURLToPath(import.meta.url);
  const file = join(here, '..', here.endsWith('.ts') ? 'responder.ts' : 'responder.js');
  const child: ChildProcess = fork(file, [socketPath, body], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const stop = (): Promise<void> => stopTree(child, 'SIGTERM', 2000);
  const unregister = onInterrupt(stop);
  return new Promise((res, rej) => {
    child.once('message', () =>
      res({
        address: `unix:${socketPath}`,
        pid: child.pid ?? 0,
        stop: async () => {
          unregister();
          await stop();
        },
      }),
    );
    const timer = setTimeout(() => {
      void stop();
      rej(new Error('the minimal responder did not start within 10 s'));
    }, 10_000);
    child.once('message', () => clearTimeout(timer));
    child.once('error', (err) => {
      clearTimeout(timer);
      rej(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`the minimal responder exited (${code}) before listening`));
    });
  });
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  installCleanup();
  const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-'));
  const benchRoot = writeBenchRoot(dir);
  let fpm: PhpFpmProcess | null = null;
  let responder: { address: string; pid: number; stop(): Promise<void> } | null = null;
  const turns: Turn[] = [];
  const rates: RateSummary[] = [];
  const mismatches: string[] = [];
  const failures: string[] = [];
  const flags = new Map<string, string>();
  const cleanup = async (): Promise<void> => {
    await responder?.stop();
    await fpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  // Ctrl-C: the contender of the running turn is stopped by its own registration, this the rest.
  const unregister = onInterrupt(cleanup);
  try {
    let fpmAddress = o.fpm;
    let php = 'an existing pool';
    if (fpmAddress === undefined) {
      const bin = findPhpFpm(process.env);
      php = bin;
      fpm = await startPhpFpm({
        bin,
        workers: o.fpmWorkers,
        poolName: 'bench',
        // nginx's workers may run as another user; a deep backlog as a stock pool has.
        extraPoolConfig: 'listen.mode = 0666\nlisten.backlog = 511',
      });
      fpmAddress = fpm.address;
    }
    if (o.workloads.some((w) => w.backend === 'responder')) responder = await startResponderProcess(join(dir, 'responder.sock'), 'Hello, World!');
    const backendCpuS = (w: Workload): number | null => {
      const pid = w.backend === 'responder' ? (responder?.pid ?? null) : (fpm?.pid ?? null);
      return pid === null ? null : treeCpuTimeUs(pid) / 1e6;
    };
    /** One turn's work; a failure flags the contender and the bench goes on (Ctrl-C does not). */
    const attempt = async (what: string, key: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        // A wrk or server killed by the cleanup fails too: after a signal nothing is a turn's failure.
        if (err instanceof BenchInterrupted || isAborting()) throw err;
        const line = `${what}: ${(err as Error).message.split('\n')[0]}`;
        failures.push(line);
        if (!flags.has(key)) flags.set(key, `failed: ${(err as Error).message.split('\n')[0]}`);
        o.say(`failed: ${line}`);
      }
    };
    const backendFor = (w: Workload): Backend => ({
      address: w.backend === 'responder' ? responder!.address : fpmAddress!,
      root: w.name.startsWith('app ') && o.app ? o.app.root : benchRoot,
      frontController: w.name.startsWith('app ') && o.app ? o.app.frontController : '/index.php',
      connections: o.fpmWorkers,
    });

    const turnsTotal = o.workloads.length * o.concurrency.length * o.rounds * o.contenders.length;
    const turnS = o.durationS + o.warmupS + 1;
    const rateTotal = o.constantRate ? o.workloads.length * o.contenders.length : 0;
    let done = 0;
    let ratesDone = 0;
    // Warm-up beyond warmupS (for warmupRequests) in this workload's turns so far: the guess
    // for its remaining ones. Another workload's rate is unknown until it runs.
    const perWorkload = o.concurrency.length * o.rounds * o.contenders.length;
    let doneHere = 0;
    let extraHereS = 0;
    const left = (): string => {
      const extra = doneHere > 0 ? ((perWorkload - doneHere) * extraHereS) / doneHere : 0;
      const s = Math.round((turnsTotal - done) * turnS + extra + (rateTotal - ratesDone) * (o.durationS + 1));
      return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
    };
    for (const w of o.workloads) {
      doneHere = 0;
      extraHereS = 0;
      const reference = new Map<string, { status: number; body: Buffer; from: ContenderName }>();
      const check = async (server: Running, c: ContenderName): Promise<void> => {
        const a = await fetchAnswer(server.origin, w);
        let why: string | null = null;
        if (w.expect !== null) why = w.expect(a.status, a.body);
        else {
          const ref = reference.get(w.name);
          if (ref === undefined) reference.set(w.name, { ...a, from: c });
          else if (ref.status !== a.status) why = `status ${a.status}, but ${ref.from} answered ${ref.status}`;
          else if (!ref.body.equals(a.body)) why = `body of ${a.body.length} bytes differs from ${ref.from}'s (${ref.body.length} bytes)`;
        }
        if (why !== null) {
          const line = `${w.name}: ${c}: ${why}`;
          if (!mismatches.includes(line)) mismatches.push(line);
          if (w.expect !== null || a.status !== reference.get(w.name)?.status) flags.set(`${w.name} ${c}`, why);
        }
      };
      for (const conc of o.concurrency) {
        for (let r = 0; r < o.rounds; r++) {
          for (const c of rotation(o.contenders, r)) {
            o.say(`${w.name} c=${conc}  round ${r + 1}/${o.rounds}  ${c.padEnd(15)}  ${left()} left`);
            await attempt(`${w.name} c=${conc} round ${r + 1} ${c}`, `${w.name} ${c}`, async () => {
              const server = await startContender(c, backendFor(w), { baseline: o.baseline });
              try {
                await check(server, c);
                const run = wrkRunFor(w, server.origin, conc);
                const script = join(dir, 'wrk.lua');
                const warmedS = await warmUp(run, script, o);
                extraHereS += warmedS - o.warmupS;
                const cpu0 = server.cpuS();
                const backend0 = backendCpuS(w);
                const load = await runWrk({ ...run, durationS: o.durationS }, script);
                const backend1 = backendCpuS(w);
                turns.push({
                  workload: w.name,
                  concurrency: conc,
                  contender: c,
                  round: r,
                  load,
                  serverCpuS: server.cpuS() - cpu0,
                  backendCpuS: backend0 !== null && backend1 !== null ? backend1 - backend0 : null,
                  peakRssKb: server.peakRssKb(),
                  warmupS: warmedS,
                });
              } finally {
                await server.stop();
              }
            });
            done++;
            doneHere++;
          }
        }
      }
      if (o.constantRate) {
        const conc = o.concurrency.includes(50) ? 50 : o.concurrency[Math.floor(o.concurrency.length / 2)]!;
        // nginx-stock first: nginx-keepalive's req/s counts only the connections its pinned php-fpm
        // workers serve (bench/README.md), so half of it can be more than any contender sustains.
        const ref = o.contenders.find((c) => c === 'nginx-stock') ?? o.contenders.find((c) => c.startsWith('nginx')) ?? o.contenders[0]!;
        const nginxRps = median(turns.filter((t) => t.workload === w.name && t.concurrency === conc && t.contender === ref).map((t) => t.load.rps));
        if (!Number.isFinite(nginxRps) || nginxRps < 2) {
          o.say(`${w.name}: no constant-rate run, ${ref} has no throughput to take half of`);
          ratesDone += o.contenders.length;
          continue;
        }
        const rate = Math.round(nginxRps / 2);
        for (const c of o.contenders) {
          o.say(`${w.name} constant rate ${rate}/s  ${c.padEnd(15)}  ${left()} left`);
          await attempt(`${w.name} constant rate ${c}`, `${w.name} ${c}`, async () => {
            const server = await startContender(c, backendFor(w), { baseline: o.baseline });
            try {
              // A fresh process: answer checked and warmed up first, or the tail is its cold start.
              await check(server, c);
              await warmUp(wrkRunFor(w, server.origin, conc), join(dir, 'wrk.lua'), o);
              const load = await runConstantRate({ origin: server.origin, path: w.path, rate, connections: conc, durationS: o.durationS, ...(w.postBytes !== undefined ? { postBytes: w.postBytes } : {}), ...headersOf(w) });
              rates.push({ workload: w.name, contender: c, reference: ref, rate, connections: conc, load });
            } finally {
              await server.stop();
            }
          });
          ratesDone++;
        }
      }
    }
    return {
      turns,
      summary: summarize(turns, flags),
      constantRate: rates,
      mismatches,
      failures,
      backend: { php, workers: o.fpmWorkers, root: o.app?.root ?? benchRoot },
    };
  } finally {
    unregister();
    await cleanup();
  }
}

/** The workload's request headers for wrk (the Lua script sets them). */
function headersOf(w: Workload): { headers?: Readonly<Record<string, string>> } {
  return w.headers !== undefined ? { headers: w.headers } : {};
}

/** What wrk needs to load workload `w` on `origin` with `connections` (the duration apart). */
function wrkRunFor(w: Workload, origin: string, connections: number): Omit<WrkRun, 'durationS'> {
  return { url: `${origin}${w.path}`, connections, ...(w.postBytes !== undefined ? { postBytes: w.postBytes } : {}), ...headersOf(w) };
}

/** Medians over rounds, ratios to nginx, flags. */
export function summarize(turns: readonly Turn[], flags: ReadonlyMap<string, string> = new Map()): Summary[] {
  const groups = new Map<string, Turn[]>();
  for (const t of turns) {
    const k = `${t.workload}\0${t.concurrency}\0${t.contender}`;
    const g = groups.get(k);
    if (g) g.push(t);
    else groups.set(k, [t]);
  }
  const base: Omit<Summary, 'vsNginxKeepalive' | 'vsNginxStock' | 'cpuVsNginxKeepalive'>[] = [];
  for (const g of groups.values()) {
    const t0 = g[0]!;
    const errors = g.reduce((n, t) => n + t.load.errors, 0);
    const non2xx = g.reduce((n, t) => n + t.load.non2xx, 0);
    const answer = flags.get(`${t0.workload} ${t0.contender}`) ?? null;
    const flagged = answer !== null ? `wrong answer: ${answer}` : errors > 0 ? `${errors} errors` : non2xx > 0 ? `${non2xx} non-2xx` : null;
    base.push({
      workload: t0.workload,
      concurrency: t0.concurrency,
      contender: t0.contender,
      rps: median(g.map((t) => t.load.rps)),
      p50Ms: median(g.map((t) => t.load.p50Ms)),
      p99Ms: median(g.map((t) => t.load.p99Ms)),
      p999Ms: median(g.map((t) => t.load.p999Ms)),
      cpuUsPerReq: median(g.map((t) => perRequestUs(t.serverCpuS, t.load.requests))),
      generatorCpuUsPerReq: median(g.map((t) => perRequestUs(t.load.generatorCpuS, t.load.requests))),
      backendCpuUsPerReq: g.every((t) => t.backendCpuS !== null) ? median(g.map((t) => perRequestUs(t.backendCpuS!, t.load.requests))) : null,
      peakRssMiB: Math.max(...g.map((t) => t.peakRssKb)) / 1024,
      errors,
      non2xx,
      flagged,
    });
  }
  const find = (s: (typeof base)[number], c: ContenderName) => base.find((b) => b.workload === s.workload && b.concurrency === s.concurrency && b.contender === c);
  return base.map((s) => {
    // A flagged nginx is no yardstick.
    const ka = find(s, 'nginx-keepalive');
    const stockRow = find(s, 'nginx-stock');
    const stock = stockRow?.flagged === null ? stockRow : undefined;
    return {
      ...s,
      vsNginxKeepalive: ka && ka.flagged === null ? s.rps / ka.rps : null,
      vsNginxStock: stock ? s.rps / stock.rps : null,
      cpuVsNginxKeepalive: ka && ka.flagged === null ? s.cpuUsPerReq / ka.cpuUsPerReq : null,
    };
  });
}

/** The longest warm-up that warmupRequests can ask for. */
export const MAX_WARMUP_S = 20;

/**
 * Load before a measured run: warmupS seconds, then, if that made fewer than warmupRequests
 * requests, as many seconds more as its rate says the rest needs (within MAX_WARMUP_S in all).
 * Every contender gets the same rule; nginx, which has nothing to compile, loses nothing by it.
 */
async function warmUp(run: Omit<WrkRun, 'durationS'>, script: string, o: Pick<BenchOptions, 'warmupS' | 'warmupRequests'>): Promise<number> {
  if (o.warmupS <= 0) return 0;
  const first = await runWrk({ ...run, durationS: o.warmupS }, script);
  const more = warmupExtensionS(first.requests, first.rps, o.warmupS, o.warmupRequests);
  if (more > 0) await runWrk({ ...run, durationS: more }, script);
  return o.warmupS + more;
}

/** Seconds of warm-up still needed after `done` requests at `rps` in `spentS` seconds (0: none). */
export function warmupExtensionS(done: number, rps: number, spentS: number, wanted: number): number {
  if (done >= wanted || !(rps > 0)) return 0;
  return Math.max(0, Math.min(MAX_WARMUP_S - spentS, Math.ceil((wanted - done) / rps)));
}
