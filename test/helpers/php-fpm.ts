/**
 * Starts a private php-fpm for a test: temp dir, generated config, unix socket or an ephemeral
 * TCP port, `--nodaemonize`, stopped by PID in teardown. Never touches a system php-fpm.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Directory of PHP fixtures, used as the document root. */
export const PHP_FIXTURES = resolve(fileURLToPath(new URL('../fixtures/php', import.meta.url)));

export const INSTALL_HINT =
  'php-fpm not found: install it (Debian/Ubuntu: `sudo apt-get install -y php8.2-fpm php8.2-cli`) or set PHP_FPM_BIN to its path';

/** Locate php-fpm: PHP_FPM_BIN, then php-fpm* on PATH, then /usr/sbin. Throws with an install hint. */
export function findPhpFpm(): string {
  const fromEnv = process.env['PHP_FPM_BIN'];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`PHP_FPM_BIN=${fromEnv} does not exist. ${INSTALL_HINT}`);
    return fromEnv;
  }
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir || !existsSync(dir)) continue;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    const hit = names.filter((n) => /^php-fpm[0-9.]*$/.test(n)).sort().reverse()[0];
    if (hit) return join(dir, hit);
  }
  throw new Error(INSTALL_HINT);
}

export interface PhpFpmOptions {
  /** 'unix' (default) or 'tcp' (127.0.0.1 on a free port). */
  readonly listen?: 'unix' | 'tcp';
  /** pm = static with this many workers (default 2). */
  readonly workers?: number;
  /** pm.max_requests (default 0: never recycle). */
  readonly maxRequests?: number;
  /** Extra lines for the pool section. */
  readonly extraPool?: string;
  /** Status page path (default /status); null disables it. */
  readonly statusPath?: string | null;
}

export interface PhpFpm {
  /** Address for the gateway: unix:/path or 127.0.0.1:port. */
  readonly address: string;
  readonly dir: string;
  readonly docRoot: string;
  readonly pid: number;
  /** Stop (SIGQUIT, then SIGKILL after 3 s) and remove the temp dir. */
  stop(): Promise<void>;
  /** Stop and start again on the same address (new PIDs, every kept connection dropped). */
  restart(): Promise<void>;
  /** The php-fpm error log so far. */
  log(): string;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => res(port));
    });
  });
}

function canConnect(address: string): Promise<boolean> {
  return new Promise((res) => {
    const s = address.startsWith('unix:')
      ? net.connect({ path: address.slice(5) })
      : net.connect({ host: '127.0.0.1', port: Number(address.split(':')[1]) });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** Start php-fpm; resolves once its socket accepts connections. */
export async function startPhpFpm(options: PhpFpmOptions = {}): Promise<PhpFpm> {
  const bin = findPhpFpm();
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-fpm-'));
  const address =
    options.listen === 'tcp' ? `127.0.0.1:${await freePort()}` : `unix:${join(dir, 'fpm.sock')}`;
  const listen = address.startsWith('unix:') ? address.slice(5) : address;
  const statusPath = options.statusPath === undefined ? '/status' : options.statusPath;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const conf = [
    '[global]',
    `pid = ${join(dir, 'php-fpm.pid')}`,
    `error_log = ${join(dir, 'php-fpm.log')}`,
    'daemonize = no',
    'log_level = notice',
    '',
    '[test]',
    `listen = ${listen}`,
    'listen.backlog = 511',
    ...(isRoot ? ['user = root', 'group = root'] : []),
    'pm = static',
    `pm.max_children = ${options.workers ?? 2}`,
    `pm.max_requests = ${options.maxRequests ?? 0}`,
    ...(statusPath ? [`pm.status_path = ${statusPath}`, 'ping.path = /ping', 'ping.response = pong'] : []),
    'catch_workers_output = yes',
    'decorate_workers_output = no',
    'clear_env = yes',
    'php_admin_value[post_max_size] = 0',
    'php_admin_value[upload_max_filesize] = 2G',
    'php_admin_value[memory_limit] = 256M',
    'php_admin_value[output_buffering] = 0',
    'php_admin_value[display_errors] = stderr',
    'php_admin_value[log_errors] = 0',
    `php_admin_value[upload_tmp_dir] = ${dir}`,
    options.extraPool ?? '',
  ].join('\n');
  const confPath = join(dir, 'php-fpm.conf');
  writeFileSync(confPath, conf + '\n');

  let child: ChildProcess | null = null;
  const spawnFpm = async (): Promise<void> => {
    const args = ['--nodaemonize', '--fpm-config', confPath, ...(isRoot ? ['--allow-to-run-as-root'] : [])];
    const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) break;
      if (await canConnect(address)) return;
      if (Date.now() > deadline) break;
      await Promise.race([new Promise((r) => setTimeout(r, 25)), exited]);
    }
    proc.kill('SIGKILL');
    const log = existsSync(join(dir, 'php-fpm.log')) ? readFileSync(join(dir, 'php-fpm.log'), 'utf8') : '';
    throw new Error(`php-fpm (${bin}) did not start on ${address}: ${stderr}\n${log}`);
  };

  const stopFpm = async (): Promise<void> => {
    const proc = child as ChildProcess | null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((res) => proc.once('exit', () => res()));
    proc.kill('SIGQUIT');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  await spawnFpm();
  return {
    address,
    dir,
    docRoot: PHP_FIXTURES,
    get pid() {
      return (child as ChildProcess | null)?.pid ?? 0;
    },
    async stop() {
      await stopFpm();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopFpm();
      if (address.startsWith('unix:')) rmSync(address.slice(5), { force: true });
      await spawnFpm();
    },
    log() {
      const p = join(dir, 'php-fpm.log');
      return existsSync(p) ? readFileSync(p, 'utf8') : '';
    },
  } satisfies PhpFpm;
}

/** Minimal CGI params for running a fixture script. */
export function scriptParams(script: string, extra: Record<string, string> = {}): Record<string, string> {
  const file = join(PHP_FIXTURES, script);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: file,
    SCRIPT_NAME: `/${script}`,
    REQUEST_URI: `/${script}`,
    DOCUMENT_ROOT: PHP_FIXTURES,
    SERVER_PROTOCOL: 'HTTP/1.1',
    QUERY_STRING: '',
    ...extra,
  };
}
