/**
 * `fastcgi-gateway dev [DIR]`: a PHP dev server on real php-fpm, in one command.
 *
 *   DIR ─▶ guess the document root (public/, web/, htdocs/, else DIR) and the front controller
 *       ─▶ reap a php-fpm left by a dev run that was SIGKILLed (its state file)
 *       ─▶ private php-fpm (errors shown, opcache revalidating every request, the environment
 *          passed through, DIR/php.ini applied) on a socket in a temp dir, restarted with a
 *          backoff when it dies
 *       ─▶ the gateway on 127.0.0.1:8000 (the next free port when that one is taken and
 *          --listen was not given), one readable line per request, PHP's warnings inline
 *
 * Ctrl-C or SIGTERM stops the gateway, then php-fpm, and removes the temp dirs.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigError } from '../errors.js';
import { findPhpFpm, PHP_FPM_INSTALL_HINT, type PhpFpmProcess, startPhpFpm } from '../fpm/launcher.js';
import { formatPretty } from '../logging/access-log.js';
import { type GatewayServer, startGatewayServer } from '../server.js';
import { CliError, ExitCode } from './exit-codes.js';
import { startLiveReload } from './live-reload.js';
import { type CliIo, untilStopSignal } from './common.js';

export interface DevArgs {
  readonly dir?: string | undefined;
  readonly listen?: string | undefined;
  readonly root?: string | undefined;
  readonly frontController?: string | undefined;
  readonly workers?: number | undefined;
  readonly php?: string | undefined;
  readonly phpIni?: string | undefined;
  readonly log?: 'pretty' | 'json' | undefined;
  /** Live reload of open tabs (default true; `--no-live`). */
  readonly live?: boolean | undefined;
}

/** Document roots tried in order; DIR itself when none exists. */
const ROOT_GUESSES = ['public', 'web', 'htdocs'];
const DEFAULT_PORT = 8000;
/** Ports tried after a taken default one. */
const PORT_TRIES = 20;

/** The document root of a project: --root, else public/, web/ or htdocs/, else DIR. */
export function guessRoot(dir: string, root?: string): string {
  if (root !== undefined) return resolve(dir, root);
  for (const g of ROOT_GUESSES) {
    const p = join(dir, g);
    if (existsSync(p) && statSync(p).isDirectory()) return p;
  }
  return dir;
}

/**
 * php-fpm for `--php VERSION` (php-fpm8.2), else PHP_FPM_BIN or the newest on PATH. The error
 * says how to install it.
 */
export function phpFpmFor(version: string | undefined, env: NodeJS.ProcessEnv): string {
  try {
    if (version === undefined) return findPhpFpm(env);
    if (!/^\d+(\.\d+)?$/.test(version)) throw new Error(`--php ${JSON.stringify(version)} must be a version such as 8.2`);
    for (const dir of [...(env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
      const p = join(dir, `php-fpm${version}`);
      if (dir && existsSync(p)) return p;
    }
    throw new Error(`php-fpm${version} not found on PATH or in /usr/sbin; install it with: sudo apt-get install -y php${version}-fpm`);
  } catch (err) {
    const message = (err as Error).message;
    throw new CliError(ExitCode.Usage, message.includes('apt-get') ? message : `${message}; install php-fpm with: ${PHP_FPM_INSTALL_HINT}`);
  }
}

/** `key = value` lines of a php.ini, for php_value lines of the pool (sections and comments skipped). */
export function iniValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#') || line.startsWith('[')) continue;
    const m = /^([A-Za-z0-9_.]+)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const value = m[2]!.replace(/^"(.*)"$/, '$1').trim();
    if (value !== '') out[m[1]!] = value;
  }
  return out;
}

/** What a dev run leaves on disk while it runs, so that the next one can clean up after a SIGKILL. */
interface DevState {
  readonly devPid: number;
  readonly fpmPid: number;
  readonly fpmDir: string;
  readonly devDir: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Stop a php-fpm left over by a killed dev run for this project; returns what was done. */
async function reapLeftover(stateFile: string, say: (line: string) => void): Promise<void> {
  let state: DevState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as DevState;
  } catch {
    return;
  }
  if (state.devPid !== process.pid && alive(state.devPid) && cmdline(state.devPid).includes(' dev')) {
    throw new CliError(ExitCode.Usage, `another dev server runs for this project (pid ${state.devPid}); stop it first`);
  }
  // Only the php-fpm master started with that run's config: never another process that got the pid since.
  if (alive(state.fpmPid) && cmdline(state.fpmPid).includes(state.fpmDir)) {
    say(`stopping php-fpm ${state.fpmPid}, left running by a dev run (pid ${state.devPid}) that was killed`);
    try {
      process.kill(state.fpmPid, 'SIGQUIT');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 30 && alive(state.fpmPid); i++) await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(-state.fpmPid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(state.fpmDir, { recursive: true, force: true });
  rmSync(state.devDir, { recursive: true, force: true });
  rmSync(stateFile, { force: true });
}

const COLOURS = { 2: '\x1b[32m', 3: '\x1b[36m', 4: '\x1b[33m', 5: '\x1b[31m' } as Record<number, string>;

/** The dev log: readable lines (status coloured by class on a terminal, PHP's output highlighted), or JSON. */
function devLogStream(out: Writable, json: boolean, colour: boolean): { write(line: string): void } {
  if (json) return { write: (line: string) => void out.write(line) };
  return {
    write(line: string) {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      if (typeof o['stderr'] === 'string') {
        // PHP's warnings and errors (FastCGI STDERR of a request), one highlighted line each.
        const time = new Date(typeof o['time'] === 'number' ? o['time'] : Date.now()).toISOString().slice(11, 23);
        for (const raw of (o['stderr'] as string).split('\n').filter((x) => x.trim() !== '')) {
          const l = raw.replace(/^PHP message: /, '');
          out.write(colour ? `${time} \x1b[1;35mPHP\x1b[0m \x1b[35m${l}\x1b[0m\n` : `${time} PHP ${l}\n`);
        }
        return;
      }
      const text = formatPretty(line);
      const status = (o['res'] as { statusCode?: number } | undefined)?.statusCode;
      const c = status !== undefined ? COLOURS[Math.floor(status / 100)] : undefined;
      out.write(colour && c && status !== undefined ? text.replace(` ${status} `, ` ${c}${status}\x1b[0m `) : text);
    },
  };
}

/** Run the dev server until SIGINT/SIGTERM; resolves to the exit code. */
export async function devCommand(args: DevArgs, io: CliIo & { readonly cwd: string; readonly env?: NodeJS.ProcessEnv }, signals: NodeJS.EventEmitter = process): Promise<number> {
  const env = io.env ?? process.env;
  const say = (line: string): void => void io.stderr.write(`fastcgi-gateway dev: ${line}\n`);
  const dir = resolve(io.cwd, args.dir ?? '.');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(`${dir} is not a directory`);
  const root = guessRoot(dir, args.root);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new ConfigError(`document root ${root} is not a directory`);
  const frontController = args.frontController ?? (existsSync(join(root, 'index.php')) ? '/index.php' : null);
  const bin = phpFpmFor(args.php, env);
  const iniFile = args.phpIni !== undefined ? resolve(io.cwd, args.phpIni) : join(dir, 'php.ini');
  if (args.phpIni !== undefined && !existsSync(iniFile)) throw new ConfigError(`--php-ini ${iniFile} does not exist`);
  const projectIni = existsSync(iniFile) ? iniValues(readFileSync(iniFile, 'utf8')) : {};

  const stateDir = join(tmpdir(), 'fastcgi-gateway-dev');
  mkdirSync(stateDir, { recursive: true });
  const stateFile = join(stateDir, `${createHash('sha1').update(realpathSync(dir)).digest('hex').slice(0, 16)}.json`);
  await reapLeftover(stateFile, say);

  const devDir = mkdtempSync(join(tmpdir(), 'fastcgi-gateway-dev-'));
  const socketPath = join(devDir, 'php-fpm.sock');
  const workers = args.workers ?? 4;
  let fpm: PhpFpmProcess | null = null;
  let stopping = false;
  const writeState = (): void => {
    if (fpm !== null) writeFileSync(stateFile, JSON.stringify({ devPid: process.pid, fpmPid: fpm.pid, fpmDir: fpm.dir, devDir } satisfies DevState));
  };
  const launch = (): Promise<PhpFpmProcess> =>
    startPhpFpm({
      bin,
      workers,
      socketPath,
      poolName: 'dev',
      keepEnv: true,
      phpValues: {
        display_errors: 'On',
        error_reporting: 'E_ALL',
        'opcache.validate_timestamps': '1',
        'opcache.revalidate_freq': '0',
        ...projectIni,
      },
      phpAdminValues: {
        // With no error_log, php-fpm sends PHP's messages as FastCGI STDERR of the request
        // ("PHP message: …", what nginx logs as "FastCGI sent in stderr"): shown inline here.
        log_errors: 'On',
        upload_max_filesize: '256M',
        post_max_size: '256M',
      },
      onLog: (line) => {
        // php-fpm's own start and stop notices are noise here; warnings, errors and what
        // workers write to their stderr are shown.
        // PHP's messages come with their request (FastCGI STDERR) and are shown there.
        if (!/NOTICE: (fpm is running|ready to handle|Terminating|exiting|Finishing|using inherited|systemd monitor|PHP message:)/.test(line)) say(`php-fpm: ${line}`);
      },
    });
  const cleanup = (): void => {
    rmSync(devDir, { recursive: true, force: true });
    rmSync(stateFile, { force: true });
  };

  try {
    fpm = await launch();
  } catch (err) {
    cleanup();
    throw new CliError(ExitCode.Usage, `php-fpm did not start: ${(err as Error).message}`);
  }
  writeState();

  // Supervision: a php-fpm that dies is started again on the same socket, waiting longer after
  // each quick death (100 ms doubling to 10 s; reset after 10 s up).
  let backoff = 100;
  const supervise = (p: PhpFpmProcess): void => {
    const born = Date.now();
    void p.exited.then(async (code) => {
      if (stopping || fpm !== p) return;
      if (Date.now() - born > 10_000) backoff = 100;
      say(`php-fpm ${p.pid} exited (${code === null ? 'killed' : `code ${code}`}); starting it again in ${backoff} ms`);
      await p.stop();
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(10_000, backoff * 2);
      if (stopping) return;
      try {
        fpm = await launch();
        writeState();
        say(`php-fpm ${fpm.pid} started again`);
        supervise(fpm);
      } catch (err) {
        say(`php-fpm did not start again: ${(err as Error).message}`);
        fpm = p;
        supervise(p);
      }
    });
  };
  supervise(fpm);

  const json = args.log === 'json';
  const colour = !json && (io.stdout as { isTTY?: boolean }).isTTY === true;
  const logger = pino({ level: 'info', base: null }, devLogStream(io.stdout as Writable, json, colour));
  const live = args.live === false ? null : startLiveReload(dir, root, say);
  const options = {
    root,
    upstream: `unix:${socketPath}`,
    frontController,
    logger,
    pool: { connections: workers, idleTimeout: '1s' },
    // Edits show at once: no remembered stat results or small-file bodies (production keeps them 1 s).
    statCacheTtl: 0,
    ...(live !== null ? { intercept: live.intercept } : {}),
  } as const;

  let gw: GatewayServer | null = null;
  try {
    if (args.listen !== undefined) {
      try {
        gw = await startGatewayServer({ ...options, listen: args.listen });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        throw new CliError(ExitCode.Usage, `${args.listen} is already in use (another dev server?); choose another with --listen, or leave --listen out to take the next free port`);
      }
    } else {
      for (let port = DEFAULT_PORT; gw === null; port++) {
        try {
          gw = await startGatewayServer({ ...options, listen: `127.0.0.1:${port}` });
          if (port !== DEFAULT_PORT) say(`port ${DEFAULT_PORT} is taken; using ${port}`);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port >= DEFAULT_PORT + PORT_TRIES) throw err;
        }
      }
    }
  } catch (err) {
    stopping = true;
    await live?.close();
    await fpm.stop();
    cleanup();
    throw err;
  }
  await live?.ready;

  say(`serving ${root}${frontController ? ` (front controller ${frontController})` : ''} with php-fpm ${bin.split('/').pop()} (${workers} workers)${live !== null ? ', live reload on' : ''}`);
  io.stderr.write(`\n  ${gw.url}\n\n`);
  await untilStopSignal(signals);
  stopping = true;
  say('stopping');
  // Open event streams would keep the close waiting.
  await live?.close();
  await gw.close();
  await fpm.stop();
  cleanup();
  return 0;
}
