/**
 * `fastcgi-gateway serve` as the operator runs it: the real CLI in a child process, with its
 * stderr events and stdout (access log) lines kept, signals sent by PID, and a teardown that
 * kills what is left of its process tree (the primary and its workers) by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenOf, signalTree } from './procs.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface ServeProcess {
  /** Every listener URL from the "serving … on URL, URL" line. */
  readonly urls: readonly string[];
  readonly pid: number;
  readonly child: ChildProcess;
  stderr(): string;
  /** Parsed JSON lines of stdout (the access log). */
  logLines(): Array<Record<string, unknown>>;
  /** Current worker pids (children of the primary that are node processes). */
  workers(): number[];
  signal(sig: NodeJS.Signals): void;
  /** Resolves when stderr matches `re` (after `from` characters), with the match. */
  waitForStderr(re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpExecArray>;
  /** Exit code (null if killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGKILL the whole tree if it is still running. */
  kill(): Promise<void>;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

export async function startServe(args: readonly string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  let stderr = '';
  let stdout = '';
  const waiters = new Set<() => void>();
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
    for (const w of [...waiters]) w();
  });
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitForStderr = (re: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpExecArray> =>
    new Promise((res, rej) => {
      const check = (): void => {
        const m = re.exec(stderr.slice(from));
        if (m) {
          waiters.delete(check);
          clearTimeout(timer);
          res(m);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        rej(new Error(`stderr never matched ${re}: ${stderr}`));
      }, timeoutMs);
      waiters.add(check);
      void exited.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(timer);
          rej(new Error(`serve exited before stderr matched ${re}: ${stderr}`));
        }
      });
      check();
    });
  const pid = child.pid!;
  const m = await waitForStderr(/serving .*? on ([^\s,]+(?:, [^\s,]+)*)/, o.timeoutMs ?? 60_000).catch(async (err: unknown) => {
    signalTree(pid, 'SIGKILL');
    throw err;
  });
  return {
    urls: m[1]!.split(', '),
    pid,
    child,
    stderr: () => stderr,
    logLines: () =>
      stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    // Children running the worker entry (tsx's esbuild service is a child too).
    workers: () => childrenOf(pid).filter((c) => cmdline(c).includes('server/worker.')),
    signal: (sig) => {
      process.kill(pid, sig);
    },
    waitForStderr,
    exited,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalTree(pid, 'SIGKILL');
      await exited;
    },
  };
}
