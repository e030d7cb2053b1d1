/**
 * Integration, real php-fpm: GET and POST reach the script as CGI sees them, STDERR and STDOUT
 * interleave without mixing, and sequential requests reuse one kept-alive connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool } from '../../src/index.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

/** Split a CGI response (head, blank line, body) as php-fpm writes it. */
function splitCgi(stdout: Buffer): { head: string; body: Buffer } {
  const i = stdout.indexOf('\r\n\r\n');
  assert.ok(i >= 0, `no blank line after the CGI head in ${JSON.stringify(stdout.subarray(0, 200).toString())}`);
  return { head: stdout.subarray(0, i).toString('latin1'), body: stdout.subarray(i + 4) };
}

interface EnvDump {
  server: Record<string, string>;
  get: Record<string, unknown>;
  post: Record<string, unknown>;
  body_md5: string;
  body_len: number;
  pid: number;
}

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
});

after(async () => {
  await fpm?.stop();
});

describe('GET and POST through php-fpm', () => {
  test('GET passes params and QUERY_STRING to $_SERVER and $_GET', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const res = await pool.request({
      params: scriptParams('env.php', {
        QUERY_STRING: 'x=1&y=%C3%A9t%C3%A9&list%5B%5D=a&list%5B%5D=b',
        REQUEST_URI: '/env.php?x=1',
        HTTP_X_TRACE: 'trace-42',
        HTTP_USER_AGENT: 'integration/1.0',
      }),
    });
    assert.equal(res.protocolStatus, 0);
    assert.equal(res.appStatus, 0);
    const { head, body } = splitCgi(res.stdout);
    assert.match(head, /^Content-type: application\/json/im);
    const env = JSON.parse(body.toString('utf8')) as EnvDump;
    assert.equal(env.server['REQUEST_METHOD'], 'GET');
    assert.equal(env.server['QUERY_STRING'], 'x=1&y=%C3%A9t%C3%A9&list%5B%5D=a&list%5B%5D=b');
    assert.equal(env.server['REQUEST_URI'], '/env.php?x=1');
    assert.equal(env.server['HTTP_X_TRACE'], 'trace-42');
    assert.equal(env.server['HTTP_USER_AGENT'], 'integration/1.0');
    assert.equal(env.server['SCRIPT_NAME'], '/env.php');
    assert.deepEqual(env.get, { x: '1', y: 'été', list: ['a', 'b'] });
    assert.deepEqual(env.post, []); // PHP encodes an empty array as []
    assert.equal(env.body_len, 0);
    assert.equal(res.stderr.length, 0);
  });

  test('POST with CONTENT_LENGTH and a form CONTENT_TYPE fills $_POST', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const form = 'name=Ada+Lovelace&lang=%C3%A9&tags%5B%5D=math&tags%5B%5D=engines&empty=';
    const body = Buffer.from(form, 'latin1');
    const res = await pool.request({
      params: scriptParams('env.php', {
        REQUEST_METHOD: 'POST',
        QUERY_STRING: 'from=query',
        CONTENT_TYPE: 'application/x-www-form-urlencoded',
        CONTENT_LENGTH: String(body.length),
      }),
      body,
    });
    const env = JSON.parse(splitCgi(res.stdout).body.toString('utf8')) as EnvDump;
    assert.equal(env.server['REQUEST_METHOD'], 'POST');
    assert.equal(env.server['CONTENT_TYPE'], 'application/x-www-form-urlencoded');
    assert.equal(env.server['CONTENT_LENGTH'], String(body.length));
    assert.deepEqual(env.get, { from: 'query' });
    assert.deepEqual(env.post, { name: 'Ada Lovelace', lang: 'é', tags: ['math', 'engines'], empty: '' });
  });

  test('POST of raw bytes reaches php://input unchanged (body md5 and length)', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    // 200 KiB: several STDIN records, every byte value present.
    const body = Buffer.alloc(200 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 8)) & 0xff;
    const { createHash } = await import('node:crypto');
    const res = await pool.request({
      params: scriptParams('env.php', {
        REQUEST_METHOD: 'PUT',
        CONTENT_TYPE: 'application/octet-stream',
        CONTENT_LENGTH: String(body.length),
      }),
      body,
    });
    const env = JSON.parse(splitCgi(res.stdout).body.toString('utf8')) as EnvDump;
    assert.equal(env.body_len, body.length);
    assert.equal(env.body_md5, createHash('md5').update(body).digest('hex'));
    assert.deepEqual(env.post, []); // not a form: $_POST stays empty
  });
});

describe('STDERR interleaved with STDOUT', () => {
  // stderr-log.php, not stderr.php: under php-fpm, php://stderr is the worker's own stderr (it
  // ends up in the php-fpm log); error_log() is what php-fpm sends as FCGI_STDERR records.
  test('both streams complete, each in its own order, and stderr never leaks into stdout', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const n = 20;
    const events: Array<['out' | 'err', string]> = [];
    const end = await new Promise<{ appStatus: number; protocolStatus: number }>((resolve, reject) => {
      pool.dispatch(
        { params: scriptParams('stderr-log.php', { QUERY_STRING: `n=${n}` }) },
        {
          onStdout: (c) => void events.push(['out', c.toString('latin1')]),
          onStderr: (c) => void events.push(['err', c.toString('latin1')]),
          onEnd: resolve,
          onError: reject,
        },
      );
    });
    assert.equal(end.protocolStatus, 0);
    const out = events.filter((e) => e[0] === 'out').map((e) => e[1]).join('');
    const err = events.filter((e) => e[0] === 'err').map((e) => e[1]).join('');
    const lines = Array.from({ length: n }, (_, i) => i);
    assert.equal(splitCgi(Buffer.from(out, 'latin1')).body.toString(), lines.map((i) => `out${i}\n`).join('') + 'done\n');
    assert.doesNotMatch(out, /PHP message/);
    // php-fpm prefixes each message and joins consecutive ones with "; ".
    assert.deepEqual([...err.matchAll(/PHP message: err(\d+)/g)].map((m) => Number(m[1])), lines);
    // The script flushes "outN" before logging "errN": across the two streams, that order holds.
    const seen = { out: '', err: '' };
    for (const [kind, text] of events) {
      seen[kind] += text;
      if (kind === 'err') {
        const last = [...seen.err.matchAll(/err(\d+)/g)].at(-1)![1];
        assert.ok(seen.out.includes(`out${last}\n`), `err${last} arrived before out${last}`);
      }
    }
  });
});

describe('keep-alive reuse', () => {
  test('sequential requests share one socket and one php-fpm worker', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 2 });
    t.after(() => pool.close());
    const pids: string[] = [];
    const reused: boolean[] = [];
    const connIds: number[] = [];
    for (let i = 0; i < 6; i++) {
      const stdout = await new Promise<Buffer>((resolve, reject) => {
        const parts: Buffer[] = [];
        pool.dispatch(
          { params: scriptParams('pid.php') },
          {
            onStart: (c) => {
              reused.push(c.reused);
              connIds.push(c.connectionId);
            },
            onStdout: (c) => void parts.push(Buffer.from(c)),
            onEnd: () => resolve(Buffer.concat(parts)),
            onError: reject,
          },
        );
      });
      pids.push(splitCgi(stdout).body.toString());
    }
    assert.equal(pool.stats.connects, 1);
    assert.deepEqual(reused, [false, true, true, true, true, true]);
    assert.equal(new Set(connIds).size, 1);
    assert.match(pids[0]!, /^\d+$/);
    assert.deepEqual(new Set(pids), new Set([pids[0]]), `worker pids: ${pids.join(',')}`);
    assert.equal(pool.stats.completed, 6);
    assert.equal(pool.stats.failed, 0);
    assert.equal(pool.stats.idle, 1);
  });

  test('keepAlive: false opens a socket per request', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1, keepAlive: false });
    t.after(() => pool.close());
    for (let i = 0; i < 3; i++) {
      const res = await pool.request({ params: scriptParams('hello.php') });
      assert.equal(splitCgi(res.stdout).body.toString(), 'Hello, World!');
    }
    assert.equal(pool.stats.connects, 3);
    assert.equal(pool.stats.completed, 3);
  });
});
