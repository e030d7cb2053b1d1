/**
 * The load runners. wrk (closed loop: each connection sends its next request when the last one
 * is answered) gives throughput; its Lua `done` hook prints the percentiles of its latency
 * histogram and the error counts as one JSON line, so nothing is parsed from the human report.
 * (wrk 4.1 corrects that histogram for coordinated omission before `done` runs: it adds
 * samples for every latency over twice the mean interval, so its tails weigh rare stalls.) The constant-rate runner (open loop) sends at a fixed rate whatever
 * the answers do and times each request from when it was due, so a stall shows up as latency
 * instead of as fewer requests sent (coordinated omission).
 *
 * The CPU a load generator burns is measured too: on a 2-core box it competes with the servers.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { Pool } from 'undici';
import { checkNotAborting, onInterrupt, reapedChildrenCpuUs, stopTree } from './procs.js';

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
      // The same bytes as postBody(n): the pattern repeated, cut to n.
      `wrk.body = string.sub(string.rep("0123456789abcdef", ${Math.ceil(postBytes / 16)}), 1, ${postBytes})`,
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
  // No answer at all: wrk's empty histogram reports 0 for every percentile, which is no latency.
  const ms = (k: string): number => (num('requests') === 0 ? Number.NaN : num(k) / 1000);
  return {
    requests: num('requests'),
    durationS,
    rps: num('requests') / durationS,
    p50Ms: ms('p50'),
    p99Ms: ms('p99'),
    p999Ms: ms('p999'),
    maxMs: ms('max'),
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
  checkNotAborting();
  // wrk's CPU: what this process's reaped children used across the run (wrk is the only child
  // that exits meanwhile), exact to the clock tick.
  const reaped0 = reapedChildrenCpuUs();
  const proc = spawn(WRK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onInterrupt(() => stopTree(proc, 'SIGKILL', 500));
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const code = await new Promise<number | null>((res, rej) => {
    proc.once('error', rej);
    proc.once('close', (c) => res(c));
  }).finally(unregister);
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${err}\n${out}`);
  return parseWrkSummary(out, (reapedChildrenCpuUs() - reaped0) / 1e6);
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
 * free connection is latency too. Requests still unanswered 5 s after the end count as errors
 * (and as latencies of at least that long). `maxSendLagMs` says how late the generator itself
 * was: a large value means the figures measure this process as much as the server.
 */
export async function runConstantRate(run: RateRun): Promise<LoadResult & { readonly maxSendLagMs: number }> {
  const pool = new Pool(run.origin, { connections: run.connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const body = run.postBytes !== undefined ? Buffer.alloc(run.postBytes, '0123456789abcdef') : undefined;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let closed = false;
  let lastDone = 0;
  /** How late the generator itself sent a request: on a busy box it can lag like a server. */
  let maxSendLagMs = 0;
  const total = Math.max(1, Math.round(run.rate * run.durationS));
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const inFlight = new Map<Promise<void>, number>();
  const one = (due: number): Promise<void> =>
    pool
      .request({ path: run.path, method: body ? 'POST' : 'GET', headers: { ...run.headers, ...(body ? { 'content-type': 'application/octet-stream' } : {}) }, ...(body ? { body } : {}) })
      .then(async (r) => {
        await r.body.dump({ limit: Number.POSITIVE_INFINITY });
        if (closed) return;
        if (r.statusCode >= 400) non2xx++;
        lastDone = performance.now();
        latencies.push(lastDone - due);
      })
      .catch(() => {
        if (!closed) errors++;
      });
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    const dueCount = Math.min(total, Math.floor(((now - start) / 1000) * run.rate) + 1);
    while (sent < dueCount) {
      const due = start + (sent / run.rate) * 1000;
      maxSendLagMs = Math.max(maxSendLagMs, performance.now() - due);
      const p = one(due);
      inFlight.set(p, due);
      void p.finally(() => inFlight.delete(p));
      sent++;
    }
    // Sleep until the next request is due (timers have ~1 ms granularity: send in small bursts).
    const next = start + (sent / run.rate) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  const drained = Promise.all([...inFlight.keys()]);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  // Requests still unanswered count as errors, and as latency too (at least this long), so a
  // contender that falls behind does not show a better tail than one that keeps up.
  closed = true;
  const end = performance.now();
  const unanswered = [...inFlight.values()];
  for (const due of unanswered) latencies.push(end - due);
  const failed = errors;
  await pool.destroy();
  const cpu = process.cpuUsage(cpu0);
  const answered = latencies.length - unanswered.length;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => (latencies.length === 0 ? Number.NaN : latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!);
  const durationS = ((lastDone > 0 ? lastDone : end) - start) / 1000;
  return {
    requests: answered,
    durationS,
    rps: answered / durationS,
    p50Ms: pct(50),
    p99Ms: pct(99),
    p999Ms: pct(99.9),
    maxMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1]!,
    non2xx,
    errors: failed + unanswered.length,
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
    maxSendLagMs,
  };
}
