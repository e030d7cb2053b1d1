/**
 * A real fcgiwrap (Debian package `fcgiwrap`) on a temp unix socket, for the non-PHP FastCGI
 * route: `fcgiwrap -s unix:PATH -c N` runs the CGI program named by SCRIPT_FILENAME. Stopped by
 * the PIDs we started (the master and the children it preforked), never by name.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './gateway.js';
import { signalTree } from './procs.js';

export const FCGIWRAP_BIN = ['/usr/sbin/fcgiwrap', '/usr/bin/fcgiwrap'].find((p) => existsSync(p)) ?? null;
export const FCGIWRAP_INSTALL_HINT = 'fcgiwrap not found: install it (Debian/Ubuntu: `apt-get install -y fcgiwrap`)';

export interface Fcgiwrap {
  readonly address: string;
  stop(): Promise<void>;
}

export async function startFcgiwrap(workers = 2): Promise<Fcgiwrap> {
  if (FCGIWRAP_BIN === null) throw new Error(FCGIWRAP_INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-wrap-'));
  const sock = join(dir, 'fcgiwrap.sock');
  const child: ChildProcess = spawn(FCGIWRAP_BIN, ['-f', '-c', String(workers), '-s', `unix:${sock}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor(() => existsSync(sock) || exited, 'fcgiwrap to create its socket');
  if (exited) throw new Error(`fcgiwrap exited: ${stderr}`);
  return {
    address: `unix:${sock}`,
    async stop() {
      signalTree(child.pid!, 'SIGTERM');
      await waitFor(() => exited, 'fcgiwrap to exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
