/**
 * Integration, real php-fpm: large params. php-fpm parses each PARAMS record on its own, so the
 * params stream may exceed one record (pairs are cut at record boundaries) but one pair may not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, type GatewayError, MAX_RECORD_CONTENT } from '../../src/index.js';
import { lengthSize } from '../../src/protocol/params.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

interface EnvDump {
  server: Record<string, string>;
}

function envOf(stdout: Buffer): EnvDump {
  const i = stdout.indexOf('\r\n\r\n');
  assert.ok(i >= 0, 'no CGI head');
  return JSON.parse(stdout.subarray(i + 4).toString('utf8')) as EnvDump;
}

/** A printable value of `len` bytes that is not a repetition of a short period. */
function value(len: number, seed: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~';
  let x = seed >>> 0 || 1;
  let s = '';
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    s += alphabet[x % alphabet.length];
  }
  return s;
}

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: 1 });
});

after(async () => {
  await fpm?.stop();
});

describe('params over 64 KiB', () => {
  test('two ~50 KiB header params (> one record in total) reach $_SERVER intact', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const a = value(50 * 1024, 1);
    const b = value(50 * 1024 + 17, 2);
    const res = await pool.request({ params: scriptParams('env.php', { HTTP_X_A: a, HTTP_X_B: b, HTTP_X_SMALL: 'after' }) });
    const env = envOf(res.stdout);
    assert.equal(env.server['HTTP_X_A']?.length, a.length);
    assert.equal(env.server['HTTP_X_A'], a);
    assert.equal(env.server['HTTP_X_B'], b);
    assert.equal(env.server['HTTP_X_SMALL'], 'after');
    assert.equal(env.server['REQUEST_METHOD'], 'GET');
  });

  test('many small params adding up to ~200 KiB all arrive', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const extra: Record<string, string> = {};
    for (let i = 0; i < 400; i++) extra[`HTTP_X_P${i}`] = value(500, 1000 + i);
    const res = await pool.request({ params: scriptParams('env.php', extra) });
    const env = envOf(res.stdout);
    for (const [k, v] of Object.entries(extra)) assert.equal(env.server[k], v, k);
  });

  test('the largest single pair that fits one record reaches $_SERVER intact', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const name = 'HTTP_X_BIG';
    // pair = nameLength (1 byte, < 128) + valueLength (4 bytes, ≥ 128) + name + value
    const max = MAX_RECORD_CONTENT - lengthSize(name.length) - 4 - name.length;
    assert.equal(max, 65513);
    const big = value(max, 3);
    const res = await pool.request({ params: scriptParams('env.php', { HTTP_X_BEFORE: 'b', [name]: big, HTTP_X_AFTER: 'a' }) });
    const env = envOf(res.stdout);
    assert.equal(env.server[name], big);
    assert.equal(env.server['HTTP_X_BEFORE'], 'b');
    assert.equal(env.server['HTTP_X_AFTER'], 'a');

    // One byte more no longer fits.
    await assert.rejects(pool.request({ params: scriptParams('env.php', { [name]: big + 'x' }) }), {
      code: 'GW_ERR_PROTO_PARAMS_TOO_LARGE',
    });
  });

  test('one 100 KiB value fails with GW_ERR_PROTO_PARAMS_TOO_LARGE before any byte is sent', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    // Warm one kept connection so that a stray write would land on a live php-fpm socket.
    const first = await new Promise<{ conn: number }>((resolve, reject) => {
      let conn = 0;
      pool.dispatch(
        { params: scriptParams('hello.php') },
        { onStart: (c) => (conn = c.connectionId), onStdout: () => {}, onEnd: () => resolve({ conn }), onError: reject },
      );
    });
    const before = pool.stats;
    assert.equal(before.idle, 1);

    const huge = value(100 * 1024, 4);
    // dispatch() throws at once for a request that can never be sent.
    let handlerCalled = false;
    const noop = (): void => {
      handlerCalled = true;
    };
    assert.throws(
      () => pool.dispatch({ params: scriptParams('env.php', { HTTP_X_HUGE: huge }) }, { onStdout: noop, onEnd: noop, onError: noop, onStart: noop }),
      (err: GatewayError) => {
        assert.equal(err.code, 'GW_ERR_PROTO_PARAMS_TOO_LARGE');
        assert.match(err.message, /HTTP_X_HUGE/);
        return true;
      },
    );
    // request() rejects with the same code.
    await assert.rejects(pool.request({ params: scriptParams('env.php', { HTTP_X_HUGE: huge }) }), { code: 'GW_ERR_PROTO_PARAMS_TOO_LARGE' });
    assert.equal(handlerCalled, false);

    // Nothing was taken from the pool or sent: the same socket serves the next request cleanly.
    assert.deepEqual(
      { idle: pool.stats.idle, connected: pool.stats.connected, connects: pool.stats.connects, dispatched: pool.stats.dispatched, failed: pool.stats.failed },
      { idle: 1, connected: 1, connects: 1, dispatched: before.dispatched, failed: 0 },
    );
    const next = await new Promise<{ conn: number; reused: boolean; body: string }>((resolve, reject) => {
      let conn = 0;
      let reused = false;
      const out: Buffer[] = [];
      pool.dispatch(
        { params: scriptParams('env.php', { HTTP_X_OK: 'yes' }) },
        {
          onStart: (c) => {
            conn = c.connectionId;
            reused = c.reused;
          },
          onStdout: (c) => void out.push(Buffer.from(c)),
          onEnd: () => resolve({ conn, reused, body: Buffer.concat(out).toString() }),
          onError: reject,
        },
      );
    });
    assert.equal(next.conn, first.conn);
    assert.equal(next.reused, true);
    assert.equal(envOf(Buffer.from(next.body)).server['HTTP_X_OK'], 'yes');
    assert.equal(pool.stats.connects, 1);
  });
});
