/**
 * Starts a private php-fpm: a temp dir holding a generated config, the socket, the error log and
 * upload temp files; `--nodaemonize` so the master is our child; stopped by the PID we spawned.
 * Used by `npm start` (scripts/start.mjs) and available to anyone who wants a throwaway pool.
 *
 *   startPhpFpm() ─▶ mkdtemp ─▶ write php-fpm.conf ─▶ spawn master (own process group)
 *        │                                                │
 *        │       poll connect() until the socket accepts ◀┘  exits first / no socket in time
 *        ▼                                                       ─▶ kill, rm dir, throw + log tail
 *   { address, pid, exited, stop() }   stop(): SIGQUIT master ─▶ grace ─▶ SIGKILL group ─▶ rm dir
 *
 * The master runs in its own process group (`detached`) so a terminal's Ctrl-C reaches only the
 * Node parent, which then stops php-fpm in order; the group lets the SIGKILL fallback reach
 * workers the master left behind. A process `exit` hook kills the group if the parent exits
 * without calling stop(). Nothing here reads the environment except findPhpFpm (PHP_FPM_BIN, PATH).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The command that installs php-fpm on Debian/Ubuntu, quoted in every "not found" error. */
export const PHP_FPM_INSTALL_HINT = 'sudo apt-get install -y php8.2-fpm';

/** Options for {@link startPhpFpm}. */
export interface PhpFpmLaunchOptions {
  /** php-fpm binary (default: {@link findPhpFpm}). */
  readonly bin?: string;
  /** Worker processes, `pm = static` (default 4). Keep the gateway's pool `connections` ≤ this. */
  readonly workers?: number;
  /**
   * `'unix'` (default): a socket in the private temp dir. `'127.0.0.1:PORT'`: loopback TCP on a
   * fixed port (checked free before php-fpm starts; only 127.0.0.1 may connect).
   */
  readonly listen?: 'unix' | `127.0.0.1:${number}`;
  /** `pm.max_requests`: requests per worker before it is recycled (default 0: never). */
  readonly maxRequests?: number;
  /** `pm.status_path` (default '/status'); null disables it. php-fpm validates the value. */
  readonly statusPath?: string | null;
  /** `ping.path`, answered with "pong" (default '/ping'); null disables it. */
  readonly pingPath?: string | null;
  /**
   * Extra `php_admin_value[name] = value` lines; they override the defaults
   * (upload_max_filesize and post_max_size 100M, upload_tmp_dir in the temp dir).
   */
  readonly phpAdminValues?: Readonly<Record<string, string>>;
  /** Parent of the private temp dir (default os.tmpdir()). Unix socket paths must stay ≤ 107 bytes. */
  readonly tmpDir?: string;
  /**
   * Unix socket path to listen on instead of one inside the private temp dir: a restart can then
   * come back on the same address. Its directory must exist; the socket file is replaced.
   */
  readonly socketPath?: string;
  /** Pool name in the config and on the status page (default 'app'). */
  readonly poolName?: string;
  /**
   * Pass the environment of the process starting php-fpm to PHP (`clear_env = no`; default
   * false: scripts see only the FastCGI params). The dev server turns it on, so that a
   * project's environment reaches it.
   */
  readonly keepEnv?: boolean;
  /** `php_value[name] = value` lines: defaults a script may change with ini_set (dev: display_errors, opcache). */
  readonly phpValues?: Readonly<Record<string, string>>;
  /** Raw lines appended to the pool section, for settings not covered above. */
  readonly extraPoolConfig?: string;
  /** Called with each line php-fpm writes to its error log or stderr (worker stderr included). */
  readonly onLog?: (line: string) => void;
  /** Longest wait for the socket to accept connections, in ms (default 10000). */
  readonly startTimeout?: number;
  /** Time stop() gives php-fpm after SIGQUIT before SIGKILL, in ms (default 5000). */
  readonly stopGrace?: number;
}

/** A running private php-fpm. */
export interface PhpFpmProcess {
  /** Address for a FastCGI client: `unix:/…/php-fpm.sock` or `127.0.0.1:PORT`. */
  readonly address: string;
  /** PID of the php-fpm master this launcher spawned. */
  readonly pid: number;
  /** The private temp dir (config, socket, log); removed by stop(). */
  readonly dir: string;
  /** Resolves with the master's exit code (null when a signal ended it), whoever caused the exit. */
  readonly exited: Promise<number | null>;
  /** Last `lines` lines of the php-fpm log and stderr (default 20). Still works after stop(). */
  logTail(lines?: number): string;
  /** SIGQUIT (graceful), SIGKILL to the process group after `stopGrace`, then remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Locate php-fpm: `PHP_FPM_BIN`, else the newest `php-fpm*` on PATH, else in /usr/sbin and
 * /usr/local/sbin. Throws an Error carrying the install command when there is none.
 */
export function findPhpFpm(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['PHP_FPM_BIN'];
  if (fromEnv) {
    if (!existsSync(fromEnv)) {
      throw new Error(`PHP_FPM_BIN=${fromEnv} does not exist; install php-fpm (${PHP_FPM_INSTALL_HINT}) or fix the path`);
    }
    return fromEnv;
  }
  const dirs = [...(env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    const newest = names.filter((n) => /^php-fpm[0-9.]*$/.test(n)).sort(compareFpmNames)[0];
    if (newest) return join(dir, newest);
  }
  throw new Error(`php-fpm not found on PATH or in /usr/sbin; install it with: ${PHP_FPM_INSTALL_HINT} (or set PHP_FPM_BIN)`);
}

/** Newest version first: php-fpm8.10 before php-fpm8.2 before php-fpm (unversioned last). */
function compareFpmNames(a: string, b: string): number {
  const va = a.slice('php-fpm'.length).split('.').filter(Boolean).map(Number);
  const vb = b.slice('php-fpm'.length).split('.').filter(Boolean).map(Number);
  for (let i = 0; i < Math.max(va.length, vb.length); i++) {
    const d = (vb[i] ?? -1) - (va[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

const LOG_KEEP_BYTES = 64 * 1024;

/** Every php-fpm this module started and has not yet stopped, for the process `exit` hook. */
const live = new Set<() => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const kill of live) kill();
  });
}

/**
 * Start a private php-fpm and resolve once its socket accepts connections. Rejects with the log
 * tail when php-fpm exits first or does not come up within `startTimeout`.
 */
export async function startPhpFpm(options: PhpFpmLaunchOptions = {}): Promise<PhpFpmProcess> {
  const workers = options.workers ?? 4;
  const maxRequests = options.maxRequests ?? 0;
  const startTimeout = options.startTimeout ?? 10_000;
  const stopGrace = options.stopGrace ?? 5_000;
  const listenOpt = options.listen ?? 'unix';
  checkInt('workers', workers, 1);
  checkInt('maxRequests', maxRequests, 0);
  checkInt('startTimeout', startTimeout, 1);
  checkInt('stopGrace', stopGrace, 0);
  if (options.poolName !== undefined && !/^[A-Za-z0-9_-]+$/.test(options.poolName)) throw new Error('poolName must be letters, digits, _ or -');
  const statusPath = options.statusPath === undefined ? '/status' : options.statusPath;
  const pingPath = options.pingPath === undefined ? '/ping' : options.pingPath;
  if (statusPath !== null) checkValue('statusPath', statusPath);
  if (pingPath !== null) checkValue('pingPath', pingPath);
  for (const [what, values] of [['phpAdminValues', options.phpAdminValues], ['phpValues', options.phpValues]] as const) {
    for (const [name, value] of Object.entries(values ?? {})) {
      if (!/^[A-Za-z0-9_.]+$/.test(name)) throw new Error(`${what} key ${JSON.stringify(name)} is not an ini name`);
      checkValue(`${what}.${name}`, value);
    }
  }
  let tcpPort = 0;
  if (listenOpt !== 'unix') {
    const m = /^127\.0\.0\.1:([0-9]{1,5})$/.exec(listenOpt);
    tcpPort = m ? Number(m[1]) : 0;
    if (tcpPort < 1 || tcpPort > 65535) throw new Error(`listen must be 'unix' or '127.0.0.1:PORT' with PORT 1-65535, got ${JSON.stringify(listenOpt)}`);
    // php-fpm would fail to bind and exit, but a connect() poll could reach the other listener first.
    if (!(await portIsFree(tcpPort))) throw new Error(`cannot start php-fpm: 127.0.0.1:${tcpPort} is already in use`);
  }
  const bin = options.bin ?? findPhpFpm();

  const dir = mkdtempSync(join(options.tmpDir ?? tmpdir(), 'fastcgi-gateway-fpm-'));
  const sockPath = options.socketPath ?? join(dir, 'php-fpm.sock');
  if (options.socketPath !== undefined) rmSync(options.socketPath, { force: true });
  if (listenOpt === 'unix' && Buffer.byteLength(sockPath) > 107) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`unix socket path ${sockPath} is ${Buffer.byteLength(sockPath)} bytes; the limit is 107 (use a shorter tmpDir)`);
  }
  const address = listenOpt === 'unix' ? `unix:${sockPath}` : listenOpt;
  const logPath = join(dir, 'php-fpm.log');
  const uploadDir = join(dir, 'uploads');
  mkdirSync(uploadDir);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const adminValues: Record<string, string> = {
    upload_max_filesize: '100M',
    post_max_size: '100M',
    upload_tmp_dir: uploadDir,
    ...options.phpAdminValues,
  };
  const conf = [
    '; generated by fastcgi-gateway src/fpm/launcher.ts; removed when php-fpm stops',
    '[global]',
    `pid = ${join(dir, 'php-fpm.pid')}`,
    `error_log = ${logPath}`,
    'daemonize = no',
    'log_level = notice',
    '',
    `[${options.poolName ?? 'app'}]`,
    `listen = ${listenOpt === 'unix' ? sockPath : listenOpt}`,
    ...(listenOpt === 'unix' ? ['listen.mode = 0600'] : ['listen.allowed_clients = 127.0.0.1']),
    ...(isRoot ? ['user = root', 'group = root'] : []),
    'pm = static',
    `pm.max_children = ${workers}`,
    `pm.max_requests = ${maxRequests}`,
    ...(statusPath !== null ? [`pm.status_path = ${statusPath}`] : []),
    ...(pingPath !== null ? [`ping.path = ${pingPath}`, 'ping.response = pong'] : []),
    'catch_workers_output = yes',
    'decorate_workers_output = no',
    // By default no environment reaches PHP: scripts see only the FastCGI params the gateway sends.
    `clear_env = ${options.keepEnv === true ? 'no' : 'yes'}`,
    'security.limit_extensions = .php',
    ...Object.entries(adminValues).map(([k, v]) => `php_admin_value[${k}] = ${v}`),
    ...Object.entries(options.phpValues ?? {}).map(([k, v]) => `php_value[${k}] = ${v}`),
    options.extraPoolConfig ?? '',
    '',
  ].join('\n');
  const confPath = join(dir, 'php-fpm.conf');
  writeFileSync(confPath, conf);

  const log = new LogCollector(dir, logPath, options.onLog);
  const args = ['--nodaemonize', '--fpm-config', confPath, ...(isRoot ? ['--allow-to-run-as-root'] : [])];
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: dir });
  } catch (err) {
    log.close();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot run ${bin}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  child.stdout?.on('data', (c: Buffer) => log.pushStream(c));
  child.stderr?.on('data', (c: Buffer) => log.pushStream(c));
  let spawnError: Error | null = null;
  const exited = new Promise<number | null>((res) => {
    child.once('error', (err) => {
      spawnError = err;
      res(null);
    });
    child.once('exit', (code) => {
      log.drain();
      res(code);
    });
  });
  const pid = child.pid ?? 0;

  // Kill the whole group: the master and any worker it left behind. ESRCH: nothing left.
  const killGroup = (): void => {
    if (pid <= 0) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const onParentExit = (): void => {
    killGroup();
    rmSync(dir, { recursive: true, force: true });
  };
  installExitHook();
  live.add(onParentExit);

  const masterRunning = (): boolean => child.exitCode === null && child.signalCode === null && spawnError === null;
  /** After the master exited: its workers (a master killed from outside leaves them in our group), the log, the temp dir. */
  const cleanUp = async (): Promise<void> => {
    killGroup();
    await groupGone(pid, 2_000);
    log.close();
    live.delete(onParentExit);
    rmSync(dir, { recursive: true, force: true });
  };
  const fail = async (reason: string): Promise<never> => {
    if (masterRunning()) killGroup();
    await exited;
    await cleanUp();
    const tail = log.tail(20);
    throw new Error(`php-fpm (${bin}) ${reason}${tail ? `; php-fpm log:\n${tail}` : ' (its log is empty)'}`);
  };

  const deadline = Date.now() + startTimeout;
  for (;;) {
    if (spawnError !== null) return fail(`could not be started: ${(spawnError as Error).message}`);
    if (!masterRunning()) return fail(`exited during startup (code ${String(child.exitCode ?? child.signalCode)})`);
    if (await canConnect(address)) break;
    if (Date.now() >= deadline) return fail(`did not accept connections on ${address} within ${startTimeout} ms`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((r) => (timer = setTimeout(r, 25))), exited]);
    clearTimeout(timer);
  }

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (masterRunning()) {
        try {
          // php-fpm: SIGQUIT = graceful stop (workers finish their request), SIGTERM/SIGINT = immediate.
          process.kill(pid, 'SIGQUIT');
        } catch {
          /* exited meanwhile */
        }
        const timer = setTimeout(killGroup, stopGrace);
        await exited;
        clearTimeout(timer);
      }
      await exited;
      await cleanUp();
    })();
    return stopping;
  };

  return {
    address,
    pid,
    dir,
    exited,
    logTail: (lines = 20) => log.tail(lines),
    stop,
  };
}

/** Wait (bounded) until no process is left in group `pgid`, so "stopped" means gone. */
async function groupGone(pgid: number, limitMs: number): Promise<void> {
  if (pgid <= 0) return;
  const until = Date.now() + limitMs;
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return; // ESRCH: the group is empty
    }
    if (Date.now() >= until) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function checkInt(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${String(value)}`);
}

/** Config values go into an ini file: refuse anything that could start a new line or be empty. */
function checkValue(name: string, value: string): void {
  if (typeof value !== 'string' || value.trim() === '' || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new Error(`${name} must be a non-empty single-line string, got ${JSON.stringify(value)}`);
  }
}

function canConnect(address: string): Promise<boolean> {
  return new Promise((res) => {
    const s = address.startsWith('unix:')
      ? net.connect({ path: address.slice(5) })
      : net.connect({ host: '127.0.0.1', port: Number(address.slice(address.lastIndexOf(':') + 1)) });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => {
      s.destroy();
      res(false);
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = net.createServer();
    srv.once('error', () => res(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => res(true)));
  });
}

/**
 * Follows php-fpm's error log (inotify through fs.watch on the temp dir, read from the last
 * offset) and its stdout/stderr (messages written before the config is read), keeping a bounded
 * tail and handing complete lines to `onLog`.
 */
class LogCollector {
  readonly #logPath: string;
  readonly #onLog: ((line: string) => void) | undefined;
  #watcher: FSWatcher | null = null;
  #offset = 0;
  #partialFile = '';
  #partialStream = '';
  #kept = '';

  constructor(dir: string, logPath: string, onLog: ((line: string) => void) | undefined) {
    this.#logPath = logPath;
    this.#onLog = onLog;
    if (onLog) {
      this.#watcher = watch(dir, (_event, name) => {
        if (name === null || name === 'php-fpm.log') this.drain();
      });
      this.#watcher.on('error', () => this.#stopWatching());
    }
  }

  /** Read whatever the log file gained since the last read. */
  drain(): void {
    let fd: number;
    try {
      fd = openSync(this.#logPath, 'r');
    } catch {
      return;
    }
    try {
      const size = statSync(this.#logPath).size;
      if (size <= this.#offset) return;
      const buf = Buffer.alloc(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      this.#partialFile = this.#emit(this.#partialFile + buf.subarray(0, n).toString('utf8'));
    } finally {
      closeSync(fd);
    }
  }

  pushStream(chunk: Buffer): void {
    this.#partialStream = this.#emit(this.#partialStream + chunk.toString('utf8'));
  }

  /** Emit complete lines, keep them in the tail; returns the unterminated rest. */
  #emit(text: string): string {
    const parts = text.split('\n');
    const rest = parts.pop() ?? '';
    for (const line of parts) {
      this.#kept += line + '\n';
      this.#onLog?.(line);
    }
    if (this.#kept.length > LOG_KEEP_BYTES) this.#kept = this.#kept.slice(-LOG_KEEP_BYTES);
    return rest;
  }

  tail(lines: number): string {
    if (!this.#closed) this.drain();
    const all = (this.#kept + this.#partialFile + (this.#partialStream ? `\n${this.#partialStream}` : '')).split('\n');
    return all.filter((l) => l.trim() !== '').slice(-lines).join('\n');
  }

  #closed = false;
  /** Final read, then stop following (the dir is about to be removed). */
  close(): void {
    if (this.#closed) return;
    this.drain();
    this.#closed = true;
    this.#stopWatching();
  }

  #stopWatching(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }
}

