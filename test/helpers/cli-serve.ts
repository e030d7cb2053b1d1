/**
 * The real CLI in a child process (spawnCli), and `fastcgi-gateway serve` on top of it as the
 * operator runs it: its stderr events and stdout (access log) lines kept, signals sent by PID, and a teardown that
 * kills what is left of its process tree (the primary and its workers) by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import { argvOf, childrenOf, signalTree } from './procs.js';

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

/** The CLI in a child process, its output kept: stderr, stdout, and both in arrival order. */
export interface CliChild {
  readonly child: ChildProcess;
  stderr(): string;
  stdout(): string;
  /** Both streams, in arrival order. */
  all(): string;
  /** Resolves when `which` output matches `re` (after `from` characters of it), with the match. */
  waitFor(which: 'stderr' | 'all', re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpExecArray>;
  /** Exit code (null if killed by a signal). */
  readonly exited: Promise<number | null>;
}

/** Spawn `fastcgi-gateway ARGS` (from src/ under tsx, with the command's node flags) in the repository root. */
export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env): CliChild {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  const text = { stderr: '', stdout: '', all: '' };
  const waiters = new Set<() => void>();
  for (const name of ['stderr', 'stdout'] as const) {
    child[name]!.setEncoding('utf8').on('data', (c: string) => {
      text[name] += c;
      text.all += c;
      for (const w of [...waiters]) w();
    });
  }
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitFor = (which: 'stderr' | 'all', re: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpExecArray> =>
    new Promise((res, rej) => {
      const check = (): boolean => {
        const m = re.exec(text[which].slice(from));
        if (!m) return false;
        waiters.delete(check);
        clearTimeout(timer);
        res(m);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        rej(new Error(`${args[0]} output never matched ${re}:\n${text.all}`));
      }, timeoutMs);
      // After the exit, the last data may still be on its way: one more look, then give up.
      void exited.then(() =>
        setTimeout(() => {
          if (waiters.has(check) && !check()) {
            waiters.delete(check);
            clearTimeout(timer);
            rej(new Error(`${args[0]} exited before its output matched ${re}:\n${text.all}`));
          }
        }, 50),
      );
      waiters.add(check);
      check();
    });
  return { child, stderr: () => text.stderr, stdout: () => text.stdout, all: () => text.all, waitFor, exited };
}

export async function startServe(args: readonly string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const cli = spawnCli(['serve', ...args], o.env);
  const { child, exited } = cli;
  const waitForStderr = (re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpExecArray> => cli.waitFor('stderr', re, timeoutMs, from);
  const pid = child.pid!;
  const m = await waitForStderr(/serving .*? on ([^\s,]+(?:, [^\s,]+)*)/, o.timeoutMs ?? 60_000).catch(async (err: unknown) => {
    signalTree(pid, 'SIGKILL');
    throw err;
  });
  return {
    urls: m[1]!.split(', '),
    pid,
    child,
    stderr: cli.stderr,
    logLines: () =>
      cli
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    // Children running the worker entry (tsx's esbuild service is a child too).
    workers: () => childrenOf(pid).filter((c) => argvOf(c).some((a) => a.includes('server/worker.'))),
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

/** `fastcgi-gateway dev` in a child process, started once its URL is printed. */
export interface Dev {
  readonly child: ChildProcess;
  readonly url: string;
  stderr(): string;
  stdout(): string;
  /** Length of everything output so far: a `from` for waitFor. */
  mark(): number;
  waitFor(re: RegExp, from?: number): Promise<RegExpExecArray>;
  readonly exited: Promise<number | null>;
}

export function startDev(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Dev> {
  const cli = spawnCli(['dev', ...args], env);
  const waitFor = (re: RegExp, from = 0): Promise<RegExpExecArray> => cli.waitFor('all', re, 30_000, from);
  return waitFor(/\n {2}(http:\/\/\S+)\n/).then(
    (m) => ({ child: cli.child, url: m[1]!, stderr: cli.stderr, stdout: cli.stdout, mark: () => cli.all().length, waitFor, exited: cli.exited }),
    async (e: unknown) => {
      if (cli.child.pid) signalTree(cli.child.pid, 'SIGKILL');
      throw e;
    },
  );
}
