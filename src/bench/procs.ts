/**
 * What a benchmark reads from /proc and how it stops what it started: CPU (utime + stime, reaped
 * children included) and peak RSS of a process tree, I/O counters, an RSS watch, and a stop that
 * signals only PIDs it recorded (checked against their start time, so a reused PID is never hit).
 * Ctrl-C runs the same stops (`onInterrupt`). Linux only. Shared by `fastcgi-gateway bench`,
 * the scripts in bench/ and the tests that measure memory.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';

/** A free TCP port on 127.0.0.1 (bind to 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => res(port));
    });
  });
}


// ── cleanup on exit and Ctrl-C ─────────────────────────────────────────────────────────────

const cleanups = new Set<() => Promise<void>>();
let cleanupInstalled = false;
/** Set by the first signal: from then on nothing new may start, and every stop runs at once. */
let aborting = false;
/** Stops registered after the cleanup began: the exit waits for them too. */
const lateStops = new Set<Promise<void>>();

/** Whether a signal has begun the cleanup. */
export function isAborting(): boolean {
  return aborting;
}

/** Thrown by `checkNotAborting` once a signal has begun the cleanup. */
export class BenchInterrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** Throw when a signal has begun the cleanup: call before starting anything. */
export function checkNotAborting(): void {
  if (aborting) throw new BenchInterrupted();
}

/**
 * Register a stop function to run on SIGINT / SIGTERM / SIGHUP; returns the unregister function.
 * Registered after the cleanup began (a process that was starting meanwhile), it runs at once.
 */
export function onInterrupt(fn: () => Promise<void>): () => void {
  if (aborting) {
    const stopping = fn().catch(() => {});
    lateStops.add(stopping);
    void stopping.finally(() => lateStops.delete(stopping));
    return () => {};
  }
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/**
 * Make SIGINT / SIGTERM / SIGHUP stop every process these helpers started, then exit 130 / 143
 * / 129. Stops registered while others run are run too; a second signal exits at once (the
 * php-fpm launcher's exit hook still kills php-fpm's process group).
 */
export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const codes: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  const handler = (signal: NodeJS.Signals): void => {
    const code = codes[signal] ?? 1;
    if (aborting) process.exit(code);
    aborting = true;
    console.error(`\n${signal}: stopping benchmark processes (again to exit at once)`);
    void (async () => {
      while (cleanups.size > 0 || lateStops.size > 0) {
        const batch = [...cleanups];
        cleanups.clear();
        await Promise.allSettled([...batch.map((fn) => fn()), ...lateStops]);
      }
      process.exit(code);
    })();
  };
  for (const signal of Object.keys(codes) as NodeJS.Signals[]) process.on(signal, handler);
}

// ── /proc sampling ─────────────────────────────────────────────────────────────────────────



let clockTicks: number | null = null;

/** Kernel clock ticks per second (utime/stime unit), from `getconf CLK_TCK`, else 100. */
export function clockTicksPerSecond(): number {
  if (clockTicks === null) {
    let n = Number.NaN;
    try {
      n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    } catch {
      // no getconf: Linux's usual 100 Hz
    }
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
  const { user, sys } = treeCpuSplitUs(rootPid);
  return user + sys;
}

/** `treeCpuTimeUs` split into user and system (kernel) time: syscalls show in `sys`. */
export function treeCpuSplitUs(rootPid: number): { readonly user: number; readonly sys: number } {
  let user = 0;
  let sys = 0;
  for (const pid of processTree(rootPid)) {
    const st = readProcStat(pid);
    if (st === null) continue;
    user += st.utime + st.cutime;
    sys += st.stime + st.cstime;
  }
  const k = 1e6 / clockTicksPerSecond();
  return { user: user * k, sys: sys * k };
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

/** A `kB` field of /proc/PID/status (VmRSS, VmHWM, ...); null when the process is gone. */
export function procStatusKb(pid: number, field: string): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/**
 * Reset the peak RSS (VmHWM) of a process to its current RSS (`echo 5 > clear_refs`,
 * Linux ≥ 4.0). False when the kernel or permissions do not allow it.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** A byte counter of /proc/PID/io: `rchar` (read) or `wchar` (written). */
export type IoCounter = 'rchar' | 'wchar';

/**
 * Bytes a process has passed through read(2) / write(2) and friends (/proc/PID/io), sockets
 * included: for a php-fpm worker, `rchar` counts the FastCGI records it read (the request body
 * among them) and `wchar` those it wrote (the response). Null when the process is gone.
 */
export function ioBytes(pid: number, counter: IoCounter): number | null {
  try {
    const m = new RegExp(`^${counter}:\\s+(\\d+)$`, 'm').exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The summed counter of several processes (e.g. php-fpm's workers); gone ones count 0. */
export function sumIoBytes(pids: readonly number[], counter: IoCounter): number {
  let sum = 0;
  for (const pid of pids) sum += ioBytes(pid, counter) ?? 0;
  return sum;
}

// ── RSS watch ────────────────────────────────────────────────────────────────────────────────

/** What a finished RSS watch saw, all in kB. */
export interface RssReport {
  /** VmRSS when the watch started. */
  readonly baselineKb: number;
  /** Largest sampled VmRSS. */
  readonly maxSampleKb: number;
  /** VmHWM at the end when it could be reset at the start (the exact peak), else null. */
  readonly hwmKb: number | null;
  /** max(maxSampleKb, hwmKb). */
  readonly peakKb: number;
  /** peakKb − baselineKb. */
  readonly growthKb: number;
  readonly samples: number;
}

/** A running RSS watch. */
export interface RssWatch {
  /** VmRSS now (kB); throws when the process is gone. */
  current(): number;
  /** Stop sampling and report. */
  stop(): RssReport;
}

/**
 * Watch a process's resident memory: baseline VmRSS now, VmHWM reset to it, VmRSS sampled
 * every `intervalMs`. The sampled maximum can miss a short spike; the reset VmHWM cannot, so
 * the report takes the larger of the two.
 */
export function watchRss(pid: number, intervalMs = 50): RssWatch {
  const read = (): number => {
    const kb = procStatusKb(pid, 'VmRSS');
    if (kb === null) throw new Error(`process ${pid} is gone`);
    return kb;
  };
  const baselineKb = read();
  const hwmReset = resetPeakRss(pid);
  let maxSampleKb = baselineKb;
  let samples = 1;
  const sample = (): void => {
    const kb = procStatusKb(pid, 'VmRSS');
    if (kb === null) return;
    samples++;
    if (kb > maxSampleKb) maxSampleKb = kb;
  };
  const timer = setInterval(sample, intervalMs);
  let report: RssReport | null = null;
  return {
    current(): number {
      const kb = read();
      if (kb > maxSampleKb) maxSampleKb = kb;
      return kb;
    },
    stop(): RssReport {
      if (report) return report;
      clearInterval(timer);
      sample();
      const hwmKb = hwmReset ? procStatusKb(pid, 'VmHWM') : null;
      const peakKb = Math.max(maxSampleKb, hwmKb ?? 0);
      report = { baselineKb, maxSampleKb, hwmKb, peakKb, growthKb: peakKb - baselineKb, samples };
      return report;
    },
  };
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
export async function spawnUntilListening(
  bin: string,
  args: readonly string[],
  target: { path: string } | { host: string; port: number },
  logFile: string,
): Promise<ChildProcess> {
  checkNotAborting();
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  // Stopped on Ctrl-C while it starts too (nginx runs with `daemon off` and would outlive us).
  const unregister = onInterrupt(() => stopTree(proc, 'SIGKILL', 1000));
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const gone = new Promise<void>((res) => proc.once('exit', () => res()));
  const deadline = Date.now() + 10_000;
  try {
    while (!exited(proc) && Date.now() < deadline) {
      if (await canConnect(target)) return proc;
      await Promise.race([new Promise((r) => setTimeout(r, 25)), gone]);
    }
  } finally {
    unregister();
  }
  if (!exited(proc)) await stopTree(proc, 'SIGKILL', 1000);
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  throw new Error(`${bin} did not start listening: ${stderr}\n${log}`);
}

/**
 * Stop a process tree started by a bench (then remove its dir), at most once: Ctrl-C and a
 * finally block may both call it.
 */
export function stopOnce(proc: ChildProcess, signal: NodeJS.Signals, dir: string): () => Promise<void> {
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
