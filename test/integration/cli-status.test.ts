/**
 * Integration, real php-fpm: `fastcgi-gateway status` and `ping` run as a child process
 * (`node --import tsx src/cli/main.ts`), checked on exit code, stdout and stderr.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { statusCommand } from '../../src/cli/status.js';
import { ConnectionPool } from '../../src/index.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Start the CLI from source; `done` resolves when it exits. */
function startCli(args: string[]): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

const cli = (...args: string[]): Promise<CliResult> => startCli(args).done;

let fpm: PhpFpm;
let noStatus: PhpFpm;

before(async () => {
  [fpm, noStatus] = await Promise.all([startPhpFpm({ workers: 2 }), startPhpFpm({ workers: 1, statusPath: null })]);
});

after(async () => {
  await Promise.all([fpm?.stop(), noStatus?.stop()]);
});

/** `key: value` lines of the text output. */
function fields(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([a-z][a-z /]*):\s+(.*)$/.exec(line);
    if (match) m.set(match[1] as string, match[2] as string);
  }
  return m;
}

describe('status', () => {
  test('text: the pool summary as aligned key: value lines', async () => {
    const r = await cli('status', '-u', fpm.address);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const f = fields(r.stdout);
    assert.equal(f.get('pool'), 'test');
    assert.equal(f.get('process manager'), 'static');
    assert.match(f.get('start time') ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(f.get('accepted conn') ?? '', /^[1-9]\d*$/);
    assert.equal(f.get('total processes'), '2');
    // Values start in one column.
    const cols = r.stdout.trimEnd().split('\n').map((l) => l.search(/:\s+\S/) + l.slice(l.indexOf(':') + 1).search(/\S/) + 1);
    assert.equal(new Set(cols).size, 1, r.stdout);
    assert.doesNotMatch(r.stdout, /PID/);
  });

  test('--json: php-fpm’s JSON document, pretty-printed', async () => {
    const r = await cli('status', '-u', fpm.address, '--json');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(doc['pool'], 'test');
    assert.equal(typeof doc['accepted conn'], 'number');
    assert.equal(doc['processes'], undefined);
    assert.match(r.stdout, /^\{\n {2}"pool": "test",\n/);
  });

  test('--format openmetrics: passed through as php-fpm wrote it', async () => {
    const r = await cli('status', '-u', fpm.address, '--format', 'openmetrics');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# HELP phpfpm_up /);
    assert.match(r.stdout, /^phpfpm_up 1$/m);
    assert.match(r.stdout, /^phpfpm_accepted_connections \d+$/m);
    assert.match(r.stdout, /^phpfpm_total_processes 2$/m);
    assert.match(r.stdout, /# EOF\n$/);
  });

  test('--full: the summary and one table row per worker, with real pids', async (t) => {
    // The workers' pids as the scripts report them.
    const pool = new ConnectionPool(fpm.address, { connections: 2, probeLimits: false, keepAlive: false });
    t.after(() => pool.close());
    const pids = new Set<string>();
    for (let i = 0; i < 20 && pids.size < 2; i++) {
      const [a, b] = await Promise.all([pool.request({ params: scriptParams('pid.php') }), pool.request({ params: scriptParams('pid.php') })]);
      for (const res of [a, b]) pids.add(res.stdout.toString('latin1').split('\r\n\r\n')[1] ?? '');
    }
    assert.equal(pids.size, 2);

    const r = await cli('status', '-u', fpm.address, '--full');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const header = lines.findIndex((l) => /^ *PID {2}STATE /.test(l));
    assert.ok(header > 0, r.stdout);
    for (const title of ['START SINCE', 'REQUESTS', 'REQ DURATION', 'METHOD', 'URI', 'CONTENT LEN', 'USER', 'SCRIPT', 'LAST CPU', 'LAST MEM']) {
      assert.ok(lines[header]?.includes(title), title);
    }
    const rows = lines.slice(header + 1).filter((l) => l.trim() !== '');
    assert.deepEqual(new Set(rows.map((l) => l.trim().split(/\s+/)[0])), pids);
    // The worker serving this very request shows it.
    assert.ok(rows.some((l) => /\bRunning\b.*\bGET\s+\/status\?json&full\b/.test(l)), rows.join('\n'));
    assert.match(lines[lines.indexOf('') + 1] ?? '', /^processes \(2\):$/);
  });

  test('--full --json over many records: every worker of a 40-worker pool arrives', async (t) => {
    const big = await startPhpFpm({ workers: 40 });
    t.after(() => big.stop());
    // Precondition: php-fpm spawns workers after the socket is up; wait until all 40 are on
    // the scoreboard and the page no longer fits one 8 KiB FastCGI record.
    const pool = new ConnectionPool(big.address, { connections: 1, probeLimits: false });
    t.after(() => pool.close());
    let records = 0;
    // By time, not by count: on a loaded machine 40 workers can take seconds to spawn.
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
      records = 0;
      const res = await new Promise<string>((resolve, reject) => {
        const parts: Buffer[] = [];
        pool.dispatch(
          { params: { SCRIPT_NAME: '/status', SCRIPT_FILENAME: '/status', REQUEST_METHOD: 'GET', QUERY_STRING: 'json&full' } },
          {
            onStdout: (c) => {
              records++;
              parts.push(Buffer.from(c));
            },
            onEnd: () => resolve(Buffer.concat(parts).toString()), onError: reject },
        );
      });
      if ((res.match(/"pid":/g) ?? []).length === 40) break;
    }
    assert.ok(records >= 2, `status page came in ${records} STDOUT record(s); the test needs several`);

    const json = await cli('status', '-u', big.address, '--full', '--json');
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as { processes: Array<{ pid: number }> };
    assert.equal(doc.processes.length, 40);
    assert.equal(new Set(doc.processes.map((p) => p.pid)).size, 40);

    const text = await cli('status', '-u', big.address, '--full');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^processes \(40\):$/m);
    assert.equal(text.stdout.split('\n').filter((l) => /^\s*\d+ {2}(Idle|Running|Reading headers|Finishing|Ending)/.test(l)).length, 40);
  });

  test('--watch 1 without a TTY: successive snapshots with rates, exit 0 on SIGINT', async () => {
    const { child, done } = startCli(['status', '-u', fpm.address, '--watch', '1']);
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (c: string) => {
        seen += c;
        // Two complete snapshots: the second one's last line has arrived.
        if ((seen.match(/^slow requests:/gm) ?? []).length >= 2) resolve();
      });
      child.once('close', () => reject(new Error(`exited early: ${seen}`)));
    });
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.signal, null);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.includes('\x1b['), false, 'no ANSI escapes when stdout is not a TTY');
    const snapshots = r.stdout.split(/\n-{72}\n/);
    assert.ok(snapshots.length >= 2, r.stdout);
    assert.match(snapshots[0] ?? '', /^every 1s: \/status on unix:.* at \d{4}-/);
    assert.match(snapshots[0] ?? '', /^accepted conn\/s:\s+n\/a \(first snapshot\)$/m);
    assert.match(snapshots[1] ?? '', /^accepted conn\/s:\s+\d+\.\d$/m);
    const accepted = snapshots.slice(0, 2).map((s) => Number(fields(s).get('accepted conn')));
    assert.ok((accepted[1] ?? 0) > (accepted[0] ?? 0), `accepted conn grows: ${accepted.join(' → ')}`);
  });

  test('--watch on a terminal (in-process): every frame clears the screen, the table fits the width', async () => {
    const stop = new AbortController();
    const CLEAR = '\x1b[H\x1b[2J';
    class Terminal extends Writable {
      readonly isTTY = true;
      readonly columns = 100;
      text = '';
      override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
        this.text += chunk.toString('utf8');
        if (this.text.split(CLEAR).length - 1 >= 2) stop.abort();
        cb();
      }
    }
    const stdout = new Terminal();
    const stderr = new Terminal();
    const code = await statusCommand(
      { upstream: fpm.address, path: '/status', full: true, format: 'text', watch: 0.1, timeout: 5000 },
      { stdout, stderr },
      stop.signal,
    );
    assert.equal(code, 0);
    assert.equal(stderr.text, '');
    const frames = stdout.text.split(CLEAR);
    assert.equal(frames[0], '', 'output starts by clearing the screen');
    assert.equal(frames.length, 3);
    assert.match(frames[1] ?? '', /^every 0\.1s: \/status on unix:/);
    assert.match(frames[1] ?? '', /^accepted conn\/s:\s+n\/a \(first snapshot\)$/m);
    assert.match(frames[2] ?? '', /^accepted conn\/s:\s+\d+\.\d$/m);
    // 17-character URIs are cut to 12 to approach the 100 columns.
    assert.match(frames[2] ?? '', /\/status\?jso… /);
    assert.doesNotMatch(frames[2] ?? '', /\/status\?json&full/);
  });

  test('no status page: exit 3 with the setting to enable', async () => {
    const r = await cli('status', '-u', noStatus.address);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /has no status page at \/status \(answered 404 Not Found\): set pm\.status_path = \/status in the pool config/);
  });

  test('--path elsewhere than the configured page: exit 3 naming that path', async () => {
    const r = await cli('status', '-u', fpm.address, '--path', '/fpm-status');
    assert.equal(r.code, 3);
    assert.match(r.stderr, /set pm\.status_path = \/fpm-status/);
  });
});

describe('ping', () => {
  test('pong: exit 0 and one line naming the address', async () => {
    const r = await cli('ping', '-u', fpm.address);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const escaped = fpm.address.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    assert.match(r.stdout, new RegExp(`^pong from ${escaped} in \\d+\\.\\d ms\\n$`));
  });

  test('-q: exit 0 and no output (health check)', async () => {
    const r = await cli('ping', '-q', '-u', fpm.address);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '');
  });

  test('over TCP on 127.0.0.1', async (t) => {
    const tcp = await startPhpFpm({ listen: 'tcp', workers: 1 });
    t.after(() => tcp.stop());
    const r = await cli('ping', '-u', tcp.address);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pong from 127\.0\.0\.1:\d+ in /);
  });

  test('a body other than --expect: exit 6', async () => {
    const r = await cli('ping', '-u', fpm.address, '--expect', 'PONG!');
    assert.equal(r.code, 6);
    assert.match(r.stderr, /unexpected ping answer .*: 200 OK "pong" \(expected 200 "PONG!"; see ping\.response/);
  });

  test('no ping page: exit 3 with the setting to enable', async () => {
    const r = await cli('ping', '-u', noStatus.address);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /has no ping page at \/ping \(answered 404 Not Found\): set ping\.path = \/ping in the pool config/);
  });

  test('a busy pool that never answers within --timeout: exit 5', async (t) => {
    const one = await startPhpFpm({ workers: 1 });
    t.after(() => one.stop());
    const pool = new ConnectionPool(one.address, { connections: 1, probeLimits: false });
    t.after(() => pool.destroy());
    // Hold the only worker: its first output proves it is busy.
    const held = new Promise<void>((resolve, reject) =>
      pool.dispatch(
        { params: scriptParams('cli-hold.php', { QUERY_STRING: 'ms=4000' }) },
        { onStdout: () => resolve(), onEnd: () => undefined, onError: reject },
      ),
    );
    await held;
    const r = await cli('ping', '-u', one.address, '--timeout', '300');
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /no complete answer from unix:.* within 300 ms/);
  });
});

describe('nothing listening: exit 2 naming the address and the reason', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cli-nolisten-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('unix socket file missing (ENOENT)', async () => {
    const address = `unix:${join(dir, 'missing.sock')}`;
    for (const cmd of ['status', 'ping']) {
      const r = await cli(cmd, '-u', address);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `fastcgi-gateway: cannot connect to ${address}: ENOENT (no such socket file)\n`);
    }
  });

  test('TCP port closed (ECONNREFUSED)', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const r = await cli('ping', '-u', `127.0.0.1:${port}`);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, `fastcgi-gateway: cannot connect to 127.0.0.1:${port}: ECONNREFUSED (nothing is listening there)\n`);
  });
});
