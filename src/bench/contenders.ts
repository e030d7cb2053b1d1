/**
 * The servers a bench puts in front of the same backend. Each turn starts a fresh one and
 * stops it after: an idle kept-alive upstream connection pins a php-fpm worker, so a server
 * left running would starve the next. The gateway runs as the user runs it, `fastcgi-gateway
 * serve` in its own process with default options (access log off unless the contender logs);
 * nginx runs with one worker, stock or with upstream keepalive.
 *
 *   gateway            serve, 1 process          nginx-stock       1 worker, a php-fpm connection per request
 *   gateway-w2         serve --workers 2         nginx-keepalive   1 worker, keepalive N + fastcgi_keep_conn
 *   gateway-log        serve, JSON access log    nginx-log         keepalive, combined access log
 *   gateway-base       another build's serve (--baseline), for a before/after in one run
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SERVER_NODE_FLAGS } from '../node-flags.js';
import { startNginx } from './nginx.js';
import { checkNotAborting, freePort, onInterrupt, processTree, procStatusKb, stopTree, treeCpuTimeUs } from './procs.js';

export type ContenderName = 'gateway' | 'gateway-w2' | 'gateway-log' | 'gateway-base' | 'nginx-stock' | 'nginx-keepalive' | 'nginx-log';

export const CONTENDERS: Readonly<Record<ContenderName, string>> = {
  gateway: 'fastcgi-gateway serve, 1 process, access log off',
  'gateway-w2': 'fastcgi-gateway serve --workers 2, access log off',
  'gateway-log': 'fastcgi-gateway serve, 1 process, JSON access log to a file',
  'gateway-base': 'another build of fastcgi-gateway (--baseline DIST), as `gateway`: a before/after in one run',
  'nginx-stock': 'nginx, 1 worker, a new php-fpm connection per request (no upstream keepalive)',
  'nginx-keepalive': 'nginx, 1 worker, upstream keepalive + fastcgi_keep_conn on',
  'nginx-log': 'nginx, 1 worker, upstream keepalive, combined access log to a file',
};
export const DEFAULT_CONTENDERS: readonly ContenderName[] = ['nginx-keepalive', 'nginx-stock', 'gateway', 'gateway-w2'];

/** Where the contenders send FastCGI and what they serve. */
export interface Backend {
  /** `unix:PATH` or `HOST:PORT`. */
  readonly address: string;
  readonly root: string;
  /** `/index.php`, or null for none. */
  readonly frontController: string | null;
  /** Upstream connections (the gateway's pool, nginx's keepalive): php-fpm's workers. */
  readonly connections: number;
}

export interface Running {
  readonly origin: string;
  /** The server's main process (nginx master, the gateway's primary). */
  readonly pid: number;
  /** CPU-seconds of the server's processes so far. */
  cpuS(): number;
  /** Peak RSS (VmHWM) summed over the server's processes, in KiB. */
  peakRssKb(): number;
  stop(): Promise<void>;
}

/**
 * How the CLI is started: dist/cli/main.js under plain node, src/cli/main.ts under tsx (the
 * tests; figures from there include tsx's loader and are not the product's: `npm run bench`
 * builds and runs dist/).
 */
export function cliCommand(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return { file: fileURLToPath(new URL('../cli/main.ts', import.meta.url)), execArgv: ['--import', 'tsx'] };
  return { file: fileURLToPath(new URL('../cli/main.js', import.meta.url)), execArgv: [] };
}

export interface ContenderOptions {
  /** Extra `serve` flags for a gateway (e.g. --max-body-size 0). */
  readonly serveArgs?: readonly string[];
  /** The dist/ directory of the build `gateway-base` runs. */
  readonly baseline?: string | undefined;
  /**
   * The dist/ directory `gateway` runs under plain node, instead of the one next to this file.
   * For the bench/ scripts, which run under tsx: a gateway started the tsx way carries the
   * loader (about 50 MiB of RSS) into every figure.
   */
  readonly dist?: string;
}

/** Start `name` in front of `backend`. */
export async function startContender(name: ContenderName, backend: Backend, o: ContenderOptions = {}): Promise<Running> {
  if (name.startsWith('nginx')) return startNginxContender(name, backend);
  let cli = o.dist !== undefined ? { file: join(o.dist, 'cli', 'main.js'), execArgv: [] } : cliCommand();
  // The node flags the installed command adds (bin/fastcgi-gateway), for the build that runs.
  let flags = SERVER_NODE_FLAGS;
  if (name === 'gateway-base') {
    if (o.baseline === undefined) throw new Error('gateway-base needs --baseline DIST (the dist/ directory of another build)');
    cli = { file: join(o.baseline, 'cli', 'main.js'), execArgv: [] };
    flags = await nodeFlagsOf(o.baseline);
  }
  return startGateway(name, backend, { ...cli, flags }, o.serveArgs ?? []);
}

/**
 * The node flags another build's command ran with: its dist/node-flags.js, or none for a build
 * from before that file, whose command was dist/cli/main.js under plain node.
 */
export async function nodeFlagsOf(dist: string): Promise<readonly string[]> {
  const file = join(dist, 'node-flags.js');
  if (!existsSync(file)) return [];
  return ((await import(pathToFileURL(file).href)) as { SERVER_NODE_FLAGS: readonly string[] }).SERVER_NODE_FLAGS;
}

async function startNginxContender(name: ContenderName, backend: Backend): Promise<Running> {
  const nginx = await startNginx({
    fpmSocket: backend.address.replace(/^unix:/, ''),
    docRoot: backend.root,
    keepalive: name === 'nginx-stock' ? 0 : backend.connections,
    workers: 1,
    frontController: backend.frontController,
    accessLog: name === 'nginx-log',
  });
  return {
    origin: nginx.origin,
    pid: nginx.pid,
    cpuS: () => treeCpuTimeUs(nginx.pid) / 1e6,
    peakRssKb: () => sumHwm(nginx.pid),
    stop: () => nginx.stop(),
  };
}

function sumHwm(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) kb += procStatusKb(p, 'VmHWM') ?? 0;
  return kb;
}

async function startGateway(name: ContenderName, backend: Backend, cli: { file: string; execArgv: string[]; flags: readonly string[] }, serveArgs: readonly string[]): Promise<Running> {
  checkNotAborting();
  const port = await freePort();
  const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-gw-'));
  const args = [
    ...cli.flags,
    ...cli.execArgv,
    cli.file,
    'serve',
    '--upstream',
    backend.address,
    '--root',
    backend.root,
    '--listen',
    `127.0.0.1:${port}`,
    '--connections',
    String(backend.connections),
    '--front-controller',
    backend.frontController ?? 'none',
    '--log',
    name === 'gateway-log' ? 'json' : 'off',
    ...(name === 'gateway-w2' ? ['--workers', '2'] : []),
    ...serveArgs,
  ];
  const logFd = openSync(join(dir, 'access.log'), 'w');
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, args, { stdio: ['ignore', logFd, 'pipe'] });
  } finally {
    closeSync(logFd);
  }
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const stopProc = async (): Promise<void> => {
    await stopTree(proc, 'SIGTERM', 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  const unregister = onInterrupt(stopProc);
  try {
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${name} did not start within 20 s:\n${stderr}`)), 20_000);
      const check = (): void => {
        if (/serving .* on /.test(stderr)) {
          clearTimeout(timer);
          res();
        }
      };
      proc.stderr?.on('data', check);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        rej(new Error(`${name} exited (${code ?? signal}) before serving:\n${stderr}`));
      });
    });
  } catch (err) {
    unregister();
    await stopProc();
    throw err;
  }
  const pid = proc.pid ?? 0;
  return {
    origin: `http://127.0.0.1:${port}`,
    pid,
    cpuS: () => treeCpuTimeUs(pid) / 1e6,
    peakRssKb: () => sumHwm(pid),
    async stop() {
      unregister();
      await stopProc();
    },
  };
}
