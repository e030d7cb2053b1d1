/**
 * The gateway in a child process, so its memory can be measured apart from the test's own
 * HTTP client, plus /proc readers for memory and I/O counters. Linux only (/proc).
 *
 *   test ──undici──▶ child: node --import tsx gateway-child.ts ──FastCGI──▶ php-fpm
 *     │                 ▲
 *     └─ watchRss(pid) ─┘  VmRSS every 50 ms + VmHWM (reset through /proc/PID/clear_refs)
 *
 * The child is stopped by its PID (SIGTERM, SIGKILL after a grace period); its stdin is a pipe
 * from this process, so it also exits when the test process dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildGatewayOptions, ChildReady } from './gateway-child.js';

export type { ChildGatewayOptions } from './gateway-child.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));
const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** A gateway running in a child process. */
export interface GatewayProcess {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly pid: number;
  /** What the child wrote to stderr so far (last 64 KiB). */
  stderr(): string;
  /** SIGTERM (graceful close), SIGKILL after `graceMs`; resolves once the child exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Start the gateway in a child process; resolves once it prints its URL. */
export async function startGatewayProcess(options: ChildGatewayOptions, startTimeoutMs = 30_000): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD_SCRIPT, JSON.stringify(options)], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    stderr = (stderr + s).slice(-65536);
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));

  let ready: ChildReady;
  try {
    ready = await new Promise<ChildReady>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error(`gateway child did not start within ${startTimeoutMs} ms: ${stderr}`)), startTimeoutMs);
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => {
        out += s;
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        try {
          res(JSON.parse(out.slice(0, nl)) as ChildReady);
        } catch {
          rej(new Error(`gateway child printed ${JSON.stringify(out.slice(0, 300))}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        rej(new Error(`gateway child exited (${code ?? signal}) before listening: ${stderr}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        rej(err);
      });
    });
  } catch (err) {
    await killChild(child, exited, 0);
    throw err;
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  child.stdout!.resume();

  let stopping: Promise<void> | null = null;
  return {
    url: ready.url,
    pid: ready.pid,
    stderr: () => stderr,
    stop(graceMs = 5000) {
      stopping ??= killChild(child, exited, graceMs);
      return stopping;
    },
  };
}

/** SIGTERM the child by its PID (or SIGKILL at once with graceMs 0), SIGKILL after graceMs. */
async function killChild(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  child.stdin?.destroy();
}

// ── /proc readers ────────────────────────────────────────────────────────────────────────────

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

/** Live children of `pid`, found by scanning /proc/N/stat for the parent PID. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the parenthesised command name: state, ppid, ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[1]) === pid) out.push(Number(name));
  }
  return out;
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
