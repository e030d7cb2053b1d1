/**
 * Integration, real php-fpm: `fastcgi-gateway serve` as a child process — serves a script and a
 * static file, logs one JSON access line per request, and exits 0 on SIGINT after closing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { serveOptions } from '../../src/cli/serve.js';
import { type PhpFpm, PHP_FIXTURES, startPhpFpm } from '../helpers/php-fpm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('serveOptions', () => {
  test('maps flags to server options and refuses a missing root or a bad --param', () => {
    const o = serveOptions({ root: PHP_FIXTURES, upstream: 'unix:/x.sock', listen: ':0', frontController: 'none', param: ['A=b=c'], log: 'off' }, '/', false);
    assert.equal(o.frontController, null);
    assert.deepEqual(o.params, { A: 'b=c' });
    assert.equal(o.accessLog, false);
    assert.equal(serveOptions({ root: PHP_FIXTURES, upstream: 'u:1', listen: ':0' }, '/', true).accessLog, 'pretty');
    assert.equal(serveOptions({ root: PHP_FIXTURES, upstream: 'u:1', listen: ':0' }, '/', false).accessLog, 'json');
    assert.throws(() => serveOptions({ root: '/nonexistent-dir', upstream: 'u:1', listen: ':0' }, '/', false), /does not exist/);
    assert.throws(() => serveOptions({ root: PHP_FIXTURES, upstream: 'u:1', listen: ':0', param: ['novalue'] }, '/', false), /NAME=VALUE/);
    assert.equal(serveOptions({ root: PHP_FIXTURES, upstream: 'u:1', listen: ':0', requestBuffering: false }, '/', false).requestBuffering, false);
    assert.equal('requestBuffering' in serveOptions({ root: PHP_FIXTURES, upstream: 'u:1', listen: ':0' }, '/', false), false, 'the default is left to the handler');
  });
});

describe('fastcgi-gateway serve', () => {
  let fpm: PhpFpm;
  before(async () => {
    fpm = await startPhpFpm({ workers: 2 });
  });
  after(async () => {
    await fpm.stop();
  });

  test('serves PHP and static files, logs JSON access lines, exits 0 on SIGINT', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '-r', PHP_FIXTURES, '-u', fpm.address, '-l', '127.0.0.1:0', '--log', 'json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const exited = new Promise<number | null>((res) => child.once('close', (code) => res(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        const m = /on (http:\/\/[^ ]+) via/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.once('close', () => reject(new Error(`serve exited early: ${stderr}`)));
    });
    const agent = new Agent();
    try {
      const php = await request(`${url}/hello.php`, { dispatcher: agent });
      assert.equal(php.statusCode, 200);
      assert.equal(await php.body.text(), 'Hello, World!');
      const stat = await request(`${url}/echo.php`, { dispatcher: agent, method: 'POST', body: 'abc' });
      assert.equal(stat.statusCode, 200);
      assert.equal(JSON.parse(await stat.body.text()).len, 3);
    } finally {
      await agent.close();
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, stderr);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { req: { url: string; method: string; id: string }; res: { statusCode: number }; responseTime: number; bytes: number; upstream: { firstByte: number; server: string } });
    assert.equal(lines.length, 2, stdout);
    assert.equal(lines[0]!.req.url, '/hello.php');
    assert.equal(lines[0]!.res.statusCode, 200);
    assert.equal(lines[0]!.bytes, 13);
    assert.ok(lines[0]!.upstream.firstByte >= 0, 'upstream first-byte time logged');
    assert.equal(lines[0]!.upstream.server, fpm.address, 'and which upstream server answered');
    assert.equal(lines[1]!.req.method, 'POST');
    assert.match(stderr, /shutting down/);
  });
});
