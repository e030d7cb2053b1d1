/**
 * The load runners. wrk (closed loop: each connection sends its next request when the last one
 * is answered) gives throughput; its Lua `done` hook prints the exact percentiles of its
 * per-request latency histogram and the error counts as one JSON line, so nothing is parsed
 * from the human report. The constant-rate runner (open loop) sends at a fixed rate whatever
 * the answers do and times each request from when it was due, so a stall shows up as latency
 * instead of as fewer requests sent (coordinated omission).
 *
 * The CPU a load generator burns is measured too: on a 2-core box it competes with the servers.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { Pool } from 'undici';
import { onInterrupt, readProcStat, clockTicksPerSecond, stopTree } from './procs.js';

/** wrk binary (WRK_BIN, default /usr/bin/wrk). */
export const WRK_BIN = process.env['WRK_BIN'] ?? '/usr/bin/wrk';
export const WRK_INSTALL_HINT = 'sudo apt-get install -y wrk (or set WRK_BIN)';

/** One measured run: latencies in ms. */
export interface LoadResult {
  readonly requests: number;
  readonly durationS: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  /** Answers with a status other than 2xx/3xx. */
  readonly non2xx: number;
  /** Connect, read, write errors and timeouts. */
  readonly errors: number;
  /** CPU-seconds the load generator itself used. */
  readonly generatorCpuS: number;
}

export interface WrkRun {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  /** POST this many bytes of a fixed pattern instead of GET. */
  readonly postBytes?: number;
  /** wrk --timeout (s): a slower answer counts as an error. */
  readonly timeoutS?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

const MARK = 'FCGW-BENCH ';

/** The Lua script: optional POST body, and a done() that prints the summary as JSON. */
export function wrkScript(postBytes: number | undefined, headers: Readonly<Record<string, string>> = {}): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(headers)) lines.push(`wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  if (postBytes !== undefined) {
    lines.push(
      'wrk.method = "POST"',
      `wrk.body = string.rep("0123456789abcdef", ${Math.floor(postBytes / 16)}) .. string.rep("x", ${postBytes % 16})`,
      'wrk.headers["Content-Type"] = "application/octet-stream"',
    );
  }
  lines.push(
    'function done(summary, latency, requests)',
    '  local e = summary.errors',
    `  io.write(string.format('${MARK}{"requests":%d,"durationUs":%d,"p50":%d,"p99":%d,"p999":%d,"max":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\\n',`,
    '    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,',
    '    e.status, e.connect, e.read, e.write, e.timeout))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

/** Parse the JSON line of `wrkScript`'s done(). */
export function parseWrkSummary(stdout: string, generatorCpuS: number): LoadResult {
  const line = stdout.split('\n').find((l) => l.startsWith(MARK));
  if (line === undefined) throw new Error(`wrk printed no summary:\n${stdout}`);
  const j = JSON.parse(line.slice(MARK.length)) as Record<string, number>;
  const num = (k: string): number => {
    const v = j[k];
    if (typeof v !== 'number') throw new Error(`wrk summary has no ${k}: ${line}`);
    return v;
  };
  const durationS = num('durationUs') / 1e6;
  return {
    requests: num('requests'),
    durationS,
    rps: num('requests') / durationS,
    p50Ms: num('p50') / 1000,
    p99Ms: num('p99') / 1000,
    p999Ms: num('p999') / 1000,
    maxMs: num('max') / 1000,
    non2xx: num('status'),
    errors: num('connect') + num('read') + num('write') + num('timeout'),
    generatorCpuS,
  };
}

/** Run wrk with one thread (the other core belongs to the server) to completion. */
export async function runWrk(run: WrkRun, scriptPath: string): Promise<LoadResult> {
  if (!existsSync(WRK_BIN)) throw new Error(`wrk not found at ${WRK_BIN}; install it with: ${WRK_INSTALL_HINT}`);
  writeFileSync(scriptPath, wrkScript(run.postBytes, run.headers));
  const args = ['-t1', `-c${run.connections}`, `-d${run.durationS}s`, '--timeout', `${run.timeoutS ?? 10}s`, '-s', scriptPath, run.url];
  const proc = spawn(WRK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onInterrupt(() => stopTree(proc, 'SIGKILL', 500));
  let out = '';
  let err = '';
  let cpuTicks = 0;
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  // wrk's CPU: its /proc stat read just before it exits (it prints its summary at the very end).
  const sampler = setInterval(() => {
    const st = proc.pid !== undefined ? readProcStat(proc.pid) : null;
    if (st !== null) cpuTicks = st.utime + st.stime;
  }, 100);
  const code = await new Promise<number | null>((res, rej) => {
    proc.once('error', rej);
    proc.once('close', (c) => res(c));
  }).finally(() => {
    clearInterval(sampler);
    unregister();
  });
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${err}\n${out}`);
  return parseWrkSummary(out, cpuTicks / clockTicksPerSecond());
}

export interface RateRun {
  readonly origin: string;
  readonly path: string;
  /** Requests per second to send. */
  readonly rate: number;
  readonly connections: number;
  readonly durationS: number;
  readonly postBytes?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Open loop at `rate` req/s over `connections` kept-alive connections (undici Pool): request i
 * is due at start + i/rate and its latency is counted from then, so time spent waiting for a
 * free connection is latency too. Requests still unanswered 5 s after the end count as errors.
 */
export async function runConstantRate(run: RateRun): Promise<LoadResult> {
  const pool = new Pool(run.origin, { connections: run.connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const body = run.postBytes !== undefined ? Buffer.alloc(run.postBytes, '0123456789abcdef') : undefined;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const total = Math.max(1, Math.round(run.rate * run.durationS));
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const inFlight = new Set<Promise<void>>();
  const one = (due: number): Promise<void> =>
    pool
      .request({ path: run.path, method: body ? 'POST' : 'GET', headers: { ...run.headers, ...(body ? { 'content-type': 'application/octet-stream' } : {}) }, ...(body ? { body } : {}) })
      .then(async (r) => {
        await r.body.dump({ limit: Number.POSITIVE_INFINITY });
        if (r.statusCode >= 400) non2xx++;
        latencies.push(performance.now() - due);
      })
      .catch(() => {
        errors++;
      });
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    const dueCount = Math.min(total, Math.floor(((now - start) / 1000) * run.rate) + 1);
    while (sent < dueCount) {
      const due = start + (sent / run.rate) * 1000;
      const p = one(due);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      sent++;
    }
    // Sleep until the next request is due (timers have ~1 ms granularity: send in small bursts).
    const next = start + (sent / run.rate) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  const drained = Promise.all([...inFlight]);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  const unanswered = inFlight.size;
  const failed = errors; // destroying the pool below fails the unanswered ones again
  const durationS = (performance.now() - start) / 1000;
  await pool.destroy();
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => (latencies.length === 0 ? Number.NaN : latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!);
  return {
    requests: latencies.length,
    durationS,
    rps: latencies.length / durationS,
    p50Ms: pct(50),
    p99Ms: pct(99),
    p999Ms: pct(99.9),
    maxMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1]!,
    non2xx,
    errors: failed + unanswered,
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
  };
}
