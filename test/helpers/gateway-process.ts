/**
 * The gateway in a child process, so its memory can be measured apart from the test's own
 * HTTP client; the /proc readers for memory and I/O counters are src/bench/procs.ts's. Linux only.
 *
 *   test ──undici──▶ child: node --import tsx gateway-child.ts ──FastCGI──▶ php-fpm
 *     │                 ▲
 *     └─ watchRss(pid) ─┘  VmRSS every 50 ms + VmHWM (reset through /proc/PID/clear_refs)
 *
 * The child is stopped by its PID (SIGTERM, SIGKILL after a grace period); its stdin is a pipe
 * from this process, so it also exits when the test process dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildGatewayOptions, ChildReady } from './gateway-child.js';

export type { ChildGatewayOptions } from './gateway-child.js';
// The /proc readers live with the benchmark harness, which measures the same things.
export { childPids, type IoCounter, ioBytes, procStatusKb, resetPeakRss, type RssReport, type RssWatch, sumIoBytes, watchRss } from '../../src/bench/procs.js';

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
