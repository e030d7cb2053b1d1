/**
 * Fault injection for the CLI: a scripted fake FastCGI responder (test/helpers/fake-fpm.ts)
 * sends what php-fpm normally does not — a response cut into 1-byte records with odd padding
 * (the one-recv / fixed-padding bugs of the Python status client this replaces), garbage,
 * an early close, FCGI_OVERLOADED, a 503, a broken CGI head — and each must map to its exit
 * code with a clear message. The happy paths run against real php-fpm in cli-status/cli-run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ProtocolStatus, RecordType } from '../../src/protocol/constants.js';
import { encodeEndRequest, encodeRecord } from '../../src/protocol/encoder.js';
import { runCommand } from '../../src/cli/run.js';
import { fetchStatus } from '../../src/cli/status.js';
import { parseAddress } from '../../src/upstream/address.js';
import { type FakeConnection, type FakeFpm, patternBytes, startFakeFpm } from '../helpers/fake-fpm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A status document as php-fpm 8.2 sends it for `?json&full` (two workers). */
const STATUS_JSON =
  '{"pool":"www","process manager":"static","start time":1700000000,"start since":65,"accepted conn":42,' +
  '"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":1,"active processes":1,' +
  '"total processes":2,"max active processes":2,"max children reached":0,"slow requests":0, "processes":[' +
  '{"pid":101,"state":"Idle","start time":1700000000,"start since":65,"requests":20,"request duration":150,' +
  '"request method":"GET","request uri":"\\/index.php","content length":0,"user":"-","script":"\\/srv\\/index.php",' +
  '"last request cpu":0.00,"last request memory":2097152},' +
  '{"pid":102,"state":"Running","start time":1700000000,"start since":65,"requests":22,"request duration":90,' +
  '"request method":"GET","request uri":"\\/status?json&full","content length":0,"user":"-","script":"-",' +
  '"last request cpu":0.00,"last request memory":0}]}';

const HEAD = 'Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Type: application/json\r\n\r\n';

/** Every byte in its own STDOUT record, padding cycling 0..7 (any padding is legal, §3.3). */
function oneByteRecords(conn: FakeConnection, data: string): void {
  const bytes = Buffer.from(data);
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) parts.push(encodeRecord(RecordType.Stdout, 1, bytes.subarray(i, i + 1), i % 8));
  // Interleave a STDERR record halfway: it must not end up in the status output.
  parts.splice(parts.length >> 1, 0, encodeRecord(RecordType.Stderr, 1, Buffer.from('a warning')));
  conn.raw(Buffer.concat(parts));
  conn.end();
}

let fake: FakeFpm;

before(async () => {
  fake = await startFakeFpm();
});

after(async () => {
  await fake?.close();
});

describe('status reads the whole response, however it is framed', () => {
  test('a page in one-byte records with varying padding renders like the one-record page', async () => {
    fake.script = (_req, conn) => oneByteRecords(conn, HEAD + STATUS_JSON);
    const split = await cli('status', '-u', fake.address, '--full');
    fake.script = (_req, conn) => conn.respond(STATUS_JSON, { 'Content-Type': 'application/json' });
    const whole = await cli('status', '-u', fake.address, '--full');
    assert.equal(split.code, 0, split.stderr);
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(split.stdout, whole.stdout);
    assert.match(split.stdout, /^accepted conn:\s+42$/m);
    assert.match(split.stdout, /^101 {2}Idle\s+1m 5s\s+20\s+150µs\s+GET\s+\/index\.php\s+0\s+-\s+\/srv\/index\.php\s+0\.00%\s+2\.0M$/m);
    assert.doesNotMatch(split.stdout, /warning/);
  });

  test('the request carries the documented params', async () => {
    fake.script = (_req, conn) => conn.respond(STATUS_JSON, { 'Content-Type': 'application/json' });
    const before = fake.requests.length;
    const r = await cli('status', '-u', fake.address, '--path', '/fpm-status', '--full');
    assert.equal(r.code, 0, r.stderr);
    const req = fake.requests[before];
    assert.ok(req);
    assert.equal(req.params.get('SCRIPT_NAME'), '/fpm-status');
    assert.equal(req.params.get('SCRIPT_FILENAME'), '/fpm-status');
    assert.equal(req.params.get('REQUEST_METHOD'), 'GET');
    assert.equal(req.params.get('QUERY_STRING'), 'json&full');
    assert.equal(req.params.get('REQUEST_URI'), '/fpm-status?json&full');
    assert.equal(req.body.length, 0);
  });
});

test('the connection is closed as soon as the answer is complete (no worker stays pinned)', { timeout: 10_000 }, async () => {
  // In-process, so the process exiting does not close it for us. The request must not ask
  // to keep the connection (a kept one would pin a php-fpm worker until the idle timeout).
  fake.script = (_req, conn) => conn.respond(STATUS_JSON, { 'Content-Type': 'application/json' });
  const before = fake.requests.length;
  const snap = await fetchStatus(parseAddress(fake.address), { path: '/status', format: 'json', full: false, timeout: 5000 });
  assert.equal(snap.status?.fields[0]?.[1], 'www');
  const req = fake.requests[before];
  assert.ok(req);
  assert.equal(req.ended, true);
  assert.equal(req.keepConn, false, 'FCGI_KEEP_CONN is not set');
  await req.conn.whenClosed;
});

describe('upstream faults → exit codes', () => {
  const cases: Array<[string, (conn: FakeConnection) => void, string[], number, RegExp]> = [
    [
      'garbage instead of a record: protocol error, exit 5',
      (conn) => conn.raw(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')),
      ['status'],
      5,
      /fastcgi protocol error at byte 0/,
    ],
    [
      'connection closed before END_REQUEST: exit 5',
      (conn) => {
        conn.stdout(HEAD + STATUS_JSON.slice(0, 100));
        conn.destroy();
      },
      ['status'],
      5,
      /upstream closed the connection before END_REQUEST/,
    ],
    [
      'FCGI_OVERLOADED: pool busy, exit 4',
      (conn) => conn.reject(ProtocolStatus.Overloaded),
      ['ping'],
      4,
      /overloaded \(FCGI_OVERLOADED\)/,
    ],
    [
      'HTTP 503 from the status page: pool busy, exit 4',
      (conn) => conn.respond('busy', { Status: '503 Service Unavailable' }),
      ['status'],
      4,
      /answered 503 Service Unavailable for \/status: the pool is busy/,
    ],
    [
      'a broken CGI head: exit 5',
      (conn) => conn.respond('x', { 'Bad Header Name': 'x' }),
      ['ping'],
      5,
      /invalid upstream response head: line 1: invalid character in header name/,
    ],
    [
      'STDOUT without the blank line that ends the head: exit 5',
      (conn) => {
        conn.stdout('Content-Type: text/plain\r\n');
        conn.end();
      },
      ['ping'],
      5,
      /response ended before the blank line/,
    ],
    [
      'status 200 whose body is not JSON: unexpected answer, exit 6',
      (conn) => conn.respond('<html>status</html>', { 'Content-Type': 'text/html' }),
      ['status'],
      6,
      /status page did not return valid JSON/,
    ],
    [
      'ping answered with 500: unexpected answer, exit 6',
      (conn) => conn.respond('oops', { Status: '500 Internal Server Error' }),
      ['ping'],
      6,
      /unexpected answer from .* for \/ping: 500 Internal Server Error "oops"/,
    ],
    [
      'records after END_REQUEST are ignored once the answer is complete',
      (conn) => {
        conn.stdout(`Content-Type: text/plain\r\n\r\npong`);
        conn.raw(Buffer.concat([encodeEndRequest(1, 0, 0), Buffer.from('trailing garbage')]));
        conn.close();
      },
      ['ping'],
      0,
      /^$/,
    ],
  ];
  for (const [name, script, cmd, code, re] of cases) {
    test(name, async () => {
      fake.script = (_req, conn) => script(conn);
      const r = await cli(...cmd, '-u', fake.address);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, re);
    });
  }

  test('an upstream that stalls mid-record: exit 5 at the deadline', async () => {
    fake.script = (_req, conn) => conn.stallMidRecord();
    const r = await cli('status', '-u', fake.address, '--timeout', '300');
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /no complete answer from unix:.* within 300 ms/);
  });
});

describe('status --watch through faults', () => {
  test('a failed snapshot is reported on stderr and the watch goes on; SIGINT exits 0', async () => {
    let n = 0;
    fake.script = (_req, conn) => {
      n++;
      if (n === 2) conn.destroy(); // the second snapshot fails
      else conn.respond(STATUS_JSON.replace('"accepted conn":42', `"accepted conn":${40 + n * 10}`), { 'Content-Type': 'application/json' });
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', '-u', fake.address, '--watch', '0.2'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        if ((stdout.match(/^slow requests:/gm) ?? []).length >= 2) resolve();
      });
      child.once('close', () => reject(new Error(`exited early: ${stderr}`)));
    });
    child.kill('SIGINT');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /^fastcgi-gateway: \d{4}-\d\d-\d\dT[\d:.]+Z upstream closed the connection before END_REQUEST/m);
    const snapshots = stdout.split(/\n-{72}\n/);
    assert.match(snapshots[0] ?? '', /^accepted conn:\s+50$/m);
    assert.doesNotMatch(snapshots[1] ?? '', /^pool:/m, 'the failed tick shows no data');
    assert.match(snapshots[2] ?? '', /^accepted conn:\s+70$/m);
  });

  test('a status page that does not exist ends the watch with exit 3', async () => {
    fake.script = (_req, conn) => conn.respond('File not found.\n', { Status: '404 Not Found', 'Content-type': 'text/html; charset=UTF-8' });
    const r = await cli('status', '-u', fake.address, '--watch', '1');
    assert.equal(r.code, 3);
    assert.match(r.stderr, /has no status page at \/status/);
  });
});

describe('run against the fake', () => {
  test('-i with a head cut into one-byte records: the same head block', async () => {
    fake.script = (_req, conn) => oneByteRecords(conn, 'Status: 201 Created\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody');
    const r = await cli('run', '/srv/app.php', '-u', fake.address, '-i');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Status: 201 Created\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody');
    assert.equal(r.stderr, 'a warning'); // FCGI_STDERR relayed unchanged
  });
});

describe('run output backpressure (in-process)', () => {
  test('a stalled stdout holds the upstream back; every byte arrives once it drains', async () => {
    const total = 32 * 1024 * 1024;
    /** The correct pipeline never lets more than this reach a stalled stdout (HWM + a few socket reads). */
    const bound = 8 * 1024 * 1024;
    const streamed = new Promise<number>((resolve) => {
      fake.script = async (_req, c) => {
        c.stdout('Content-Type: application/octet-stream\r\n\r\n');
        const sent = await c.stream(RecordType.Stdout, total, 65535);
        c.end();
        resolve(sent);
      };
    });
    /** A stdout whose writes complete only once released; checks the byte pattern. */
    class SlowStdout extends Writable {
      /** Bytes handed to write(), delivered or still queued. */
      offered = 0;
      received = 0;
      mismatches = 0;
      onOffered: (() => void) | null = null;
      #flowing = false;
      #held: Array<() => void> = [];
      constructor() {
        super({ highWaterMark: 64 * 1024 });
      }
      override write(chunk: Buffer, ...rest: never[]): boolean {
        this.offered += chunk.length;
        this.onOffered?.();
        return super.write(chunk, ...rest);
      }
      override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
        if (!patternBytes(this.received, chunk.length).equals(chunk)) this.mismatches++;
        this.received += chunk.length;
        if (this.#flowing) cb();
        else this.#held.push(cb);
      }
      release(): void {
        this.#flowing = true;
        for (const cb of this.#held.splice(0)) cb();
      }
    }
    const stdout = new SlowStdout();
    const stderr = new SlowStdout();
    stderr.release();
    const result = runCommand(
      {
        script: '/srv/big.php',
        upstream: fake.address,
        method: null,
        data: null,
        headers: [],
        params: [],
        query: '',
        include: false,
        root: null,
        allowPhpValue: false,
        timeout: 0,
      },
      { stdout, stderr, stdin: Readable.from([]), cwd: '/' },
    );
    // No event says "nothing more will come", so give the upstream a while to push past the
    // bound while stdout is stalled. Without backpressure it gets there within milliseconds
    // (and the race ends at once); with it, it never does, however long the machine takes.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 750);
      stdout.onOffered = () => {
        if (stdout.offered > bound) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    stdout.onOffered = null;
    assert.ok(stdout.offered > 0, 'the response started');
    assert.ok(stdout.offered <= bound, `${stdout.offered} bytes reached the stalled stdout`);
    stdout.release();
    assert.equal(await result, 0);
    assert.equal(await streamed, total);
    assert.equal(stdout.received, total);
    assert.equal(stdout.mismatches, 0);
  });
});
