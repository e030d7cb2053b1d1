/**
 * Integration, real php-fpm: `fastcgi-gateway run` as a child process. Params as the script
 * sees them, bodies from a string, a file and a piped stdin (checked by md5 via echo.php),
 * binary-safe output, STDERR kept apart, exit codes for 5xx, a missing script, refused
 * PHP_VALUE and a deadline, and no spool file left behind.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type PhpFpm, PHP_FIXTURES, startPhpFpm } from '../helpers/php-fpm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse((await import('node:fs')).readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Start the CLI from source with a private TMPDIR; `done` resolves when it exits. */
function startCli(args: string[], tmp: string): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
  });
  return { child, done };
}

let fpm: PhpFpm;
let work: string;
/** TMPDIR of the children: holds no spool directory after any run. */
let tmp: string;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
  work = mkdtempSync(join(tmpdir(), 'cli-run-'));
  tmp = join(work, 'tmp');
  (await import('node:fs')).mkdirSync(tmp);
});

after(async () => {
  await fpm?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Run to completion; `stdin` is written and closed (empty when absent). */
async function run(args: string[], stdin?: Buffer): Promise<CliResult> {
  const { child, done } = startCli(['run', ...args, '-u', fpm.address], tmp);
  child.stdin?.on('error', () => {}); // the CLI may exit before reading stdin
  child.stdin?.end(stdin ?? Buffer.alloc(0));
  const r = await done;
  assert.deepEqual(spools(), [], 'the spool directory was removed');
  return r;
}

/** Spool directories in the children's TMPDIR (tsx keeps its cache there too). */
const spools = (): string[] => readdirSync(tmp).filter((n) => n.startsWith('fastcgi-gateway-'));

const fixture = (name: string): string => join(PHP_FIXTURES, name);
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

interface EnvDump {
  server: Record<string, string>;
  get: Record<string, unknown>;
  post: Record<string, unknown>;
  body_len: number;
  body_md5: string;
}

describe('run: request', () => {
  test('GET with -i: "Status: 200 OK", the headers, a blank line, then the body', async () => {
    const r = await run([fixture('hello.php'), '-i']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.toString('latin1'), 'Status: 200 OK\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello, World!');
  });

  test('without -i only the body is printed', async () => {
    const r = await run([fixture('hello.php')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString('latin1'), 'Hello, World!');
  });

  test('the script sees the documented CGI params, -H headers and --query', async () => {
    const r = await run([
      'test/fixtures/php/env.php',
      '--query', '?x=1&y=%C3%A9',
      '-H', 'X-Trace: t-42',
      '-H', 'Cookie: a=1',
      '-H', 'Cookie: b=2',
      '--param', 'APP_ENV=ci',
      '--param', 'SERVER_NAME=example.test',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const env = JSON.parse(r.stdout.toString('utf8')) as EnvDump;
    const s = env.server;
    assert.equal(s['GATEWAY_INTERFACE'], 'CGI/1.1');
    assert.equal(s['SERVER_SOFTWARE'], `fastcgi-gateway/${VERSION}`);
    assert.equal(s['SERVER_PROTOCOL'], 'HTTP/1.1');
    assert.equal(s['REQUEST_METHOD'], 'GET');
    assert.equal(s['SCRIPT_FILENAME'], fixture('env.php'));
    assert.equal(s['SCRIPT_NAME'], '/env.php');
    assert.equal(s['DOCUMENT_ROOT'], PHP_FIXTURES);
    assert.equal(s['QUERY_STRING'], 'x=1&y=%C3%A9');
    assert.equal(s['REQUEST_URI'], '/env.php?x=1&y=%C3%A9');
    assert.equal(s['REMOTE_ADDR'], '127.0.0.1');
    assert.equal(s['REDIRECT_STATUS'], '200');
    assert.equal(s['HTTP_X_TRACE'], 't-42');
    assert.equal(s['HTTP_COOKIE'], 'a=1; b=2');
    assert.equal(s['APP_ENV'], 'ci');
    assert.equal(s['SERVER_NAME'], 'example.test');
    assert.equal(s['CONTENT_LENGTH'] ?? '', '');
    assert.deepEqual(env.get, { x: '1', y: 'é' });
  });

  test('--root: SCRIPT_NAME is the path under the root', async () => {
    const r = await run([fixture('env.php'), '--root', 'test/fixtures']);
    assert.equal(r.code, 0, r.stderr);
    const s = (JSON.parse(r.stdout.toString('utf8')) as EnvDump).server;
    assert.equal(s['SCRIPT_NAME'], '/php/env.php');
    assert.equal(s['DOCUMENT_ROOT'], join(ROOT, 'test/fixtures'));
  });

  test('-d string: POST with an exact CONTENT_LENGTH and a form CONTENT_TYPE', async () => {
    const r = await run([fixture('env.php'), '-d', 'name=Ada+Lovelace&lang=%C3%A9t%C3%A9']);
    assert.equal(r.code, 0, r.stderr);
    const env = JSON.parse(r.stdout.toString('utf8')) as EnvDump;
    assert.equal(env.server['REQUEST_METHOD'], 'POST');
    assert.equal(env.server['CONTENT_LENGTH'], '36');
    assert.equal(env.server['CONTENT_TYPE'], 'application/x-www-form-urlencoded');
    assert.deepEqual(env.post, { name: 'Ada Lovelace', lang: 'été' });
    assert.equal(env.body_len, 36);
  });

  test('-X PUT with -H Content-Type', async () => {
    const r = await run([fixture('env.php'), '-X', 'PUT', '-d', '{"a":1}', '-H', 'Content-Type: application/json']);
    const env = JSON.parse(r.stdout.toString('utf8')) as EnvDump;
    assert.equal(env.server['REQUEST_METHOD'], 'PUT');
    assert.equal(env.server['CONTENT_TYPE'], 'application/json');
    assert.equal(env.body_md5, md5(Buffer.from('{"a":1}')));
  });

  test('-d @file: the file’s bytes, streamed', async () => {
    const data = randomBytes(1_500_000);
    const file = join(work, 'upload.bin');
    writeFileSync(file, data);
    const r = await run([fixture('echo.php'), '-d', `@${file}`, '-H', 'Content-Type: application/octet-stream']);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout.toString('utf8')) as { md5: string; len: number };
    assert.deepEqual({ md5: got.md5, len: got.len }, { md5: md5(data), len: data.length });
  });

  test('-d @-: a few MB piped on stdin arrive intact, and the spool file is gone afterwards', async () => {
    const data = randomBytes(4 * 1024 * 1024 + 3);
    const r = await run([fixture('echo.php'), '-d', '@-'], data);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout.toString('utf8')) as { md5: string; len: number };
    assert.deepEqual({ md5: got.md5, len: got.len }, { md5: md5(data), len: data.length });
  });

  test('-d @- with an empty stdin: POST with CONTENT_LENGTH 0', async () => {
    const r = await run([fixture('env.php'), '-d', '@-']);
    const env = JSON.parse(r.stdout.toString('utf8')) as EnvDump;
    assert.equal(env.server['REQUEST_METHOD'], 'POST');
    assert.equal(env.server['CONTENT_LENGTH'], '0');
    assert.equal(env.body_len, 0);
  });

  test('Ctrl-C while stdin is being spooled: the spool file is removed', async () => {
    const { child, done } = startCli(['run', fixture('echo.php'), '-d', '@-', '-u', fpm.address], tmp);
    // Wait for the spool directory to appear, then interrupt with stdin still open.
    const watcher = watch(tmp);
    const appeared = new Promise<void>((resolve) =>
      watcher.on('change', (_event, name) => {
        if (String(name).startsWith('fastcgi-gateway-')) resolve();
      }),
    );
    child.stdin?.write(randomBytes(64 * 1024));
    await appeared;
    watcher.close();
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.deepEqual(spools(), []);
  });
});

describe('run: response', () => {
  test('binary output is written byte for byte (5 MB from big.php)', async () => {
    const size = 5 * 1024 * 1024;
    const r = await run([fixture('big.php'), '--query', `size=${size}`]);
    assert.equal(r.code, 0, r.stderr);
    const expected = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) expected[i] = (i % 65536) % 251;
    assert.equal(r.stdout.length, size);
    assert.equal(md5(r.stdout), md5(expected));
  });

  test('FCGI_STDERR goes to stderr, STDOUT to stdout, never mixed', async () => {
    const r = await run([fixture('cli-stderr.php')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString('utf8'), 'out-1\nout-2\nout-3\n');
    assert.match(r.stderr, /PHP message: to-stderr-1/);
    assert.match(r.stderr, /PHP message: to-stderr-2/);
    assert.doesNotMatch(r.stderr, /out-/);
  });

  test('a script answering 500: exit 7, body still printed', async () => {
    const r = await run([fixture('status.php'), '--query', 'code=500']);
    assert.equal(r.code, 7);
    assert.equal(r.stdout.toString('utf8'), 'status 500');
    assert.match(r.stderr, /status\.php answered 500 Internal Server Error\n$/);
  });

  test('a script answering 404 itself: exit 0 (its answer, printed)', async () => {
    const r = await run([fixture('status.php'), '--query', 'code=404', '-i']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString('utf8'), /^Status: 404 Not Found\r\n/);
  });

  test('a script php-fpm cannot find: exit 3 with the hint', async () => {
    const r = await run([fixture('does-not-exist.php')]);
    assert.equal(r.code, 3);
    assert.equal(r.stdout.toString('utf8'), 'File not found.\n');
    assert.match(r.stderr, /^Primary script unknown\nfastcgi-gateway: php-fpm cannot find SCRIPT_FILENAME .*does-not-exist\.php/);
  });

  test('--timeout shorter than the script: exit 5', async () => {
    const r = await run([fixture('sleep.php'), '--query', 'ms=2000', '--timeout', '300']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /no complete answer from unix:.* within 300 ms/);
  });
});

describe('run: refusals', () => {
  test('--param PHP_VALUE is refused with exit 1 and nothing is sent', async () => {
    const r = await run([fixture('env.php'), '--param', 'PHP_VALUE=auto_prepend_file=/etc/hostname']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /--param PHP_VALUE refused: .* --allow-php-value/);
  });
});
