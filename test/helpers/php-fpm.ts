/**
 * A private php-fpm for a test, on top of the product's launcher (src/fpm/launcher.ts): temp
 * dir, generated config, unix socket or an ephemeral TCP port, its own process group, stopped
 * by PID in teardown. Adds what tests need: a stable address across restart() and PHP settings
 * for large bodies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPhpFpm as findBinary, PHP_FPM_INSTALL_HINT, type PhpFpmProcess, startPhpFpm as launch } from '../../src/fpm/launcher.js';
import { freePort } from './ports.js';

/** Directory of PHP fixtures, used as the document root. */
export const PHP_FIXTURES = resolve(fileURLToPath(new URL('../fixtures/php', import.meta.url)));

export const INSTALL_HINT = `php-fpm not found: install it (Debian/Ubuntu: \`${PHP_FPM_INSTALL_HINT} php8.2-cli\`) or set PHP_FPM_BIN to its path`;

/** Locate php-fpm (PHP_FPM_BIN, PATH, /usr/sbin); throws with the install hint. */
export function findPhpFpm(): string {
  try {
    return findBinary();
  } catch (err) {
    throw new Error(`${INSTALL_HINT} (${(err as Error).message})`);
  }
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
  /** Status page path (default /status); null disables it (and the ping page). */
  readonly statusPath?: string | null;
}

export interface PhpFpm {
  /** Address for the gateway: unix:/path or 127.0.0.1:port; the same after restart(). */
  readonly address: string;
  /** Temp dir holding the socket (the launcher keeps config and log in its own dir). */
  readonly dir: string;
  readonly docRoot: string;
  /** PID of the current master. */
  readonly pid: number;
  /** Stop (SIGQUIT, then SIGKILL to the group) and remove the temp dirs. */
  stop(): Promise<void>;
  /** Stop and start again on the same address (new PIDs, every kept connection dropped). */
  restart(): Promise<void>;
  /** The php-fpm log so far. */
  log(): string;
}


/** Start php-fpm; resolves once its socket accepts connections. */
export async function startPhpFpm(options: PhpFpmOptions = {}): Promise<PhpFpm> {
  const bin = findPhpFpm();
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-fpm-'));
  const listen = options.listen === 'tcp' ? (`127.0.0.1:${await freePort()}` as const) : 'unix';
  const statusPath = options.statusPath === undefined ? '/status' : options.statusPath;
  const start = (): Promise<PhpFpmProcess> =>
    launch({
      bin,
      workers: options.workers ?? 2,
      maxRequests: options.maxRequests ?? 0,
      listen,
      ...(listen === 'unix' ? { socketPath: join(dir, 'fpm.sock') } : {}),
      poolName: 'test',
      statusPath,
      pingPath: statusPath === null ? null : '/ping',
      stopGrace: 3000,
      phpAdminValues: {
        post_max_size: '0',
        upload_max_filesize: '2G',
        memory_limit: '256M',
        output_buffering: '0',
        display_errors: 'stderr',
        log_errors: '0',
      },
      ...(options.extraPool !== undefined ? { extraPoolConfig: options.extraPool } : {}),
    });
  let proc: PhpFpmProcess;
  try {
    proc = await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    address: proc.address,
    dir,
    docRoot: PHP_FIXTURES,
    get pid() {
      return proc.pid;
    },
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await proc.stop();
      proc = await start();
    },
    log() {
      return proc.logTail(100_000);
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
