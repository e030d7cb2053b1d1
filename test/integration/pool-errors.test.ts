/**
 * Integration, real php-fpm: failures surface as typed errors with stable codes, and the pool
 * keeps serving afterwards. Connect failures use addresses where nothing listens; timeouts use
 * sleep.php with margins of several times the timeout, and only outcomes are asserted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, type ExchangeController, type GatewayError } from '../../src/index.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

function bodyOf(stdout: Buffer): string {
  return stdout.subarray(stdout.indexOf('\r\n\r\n') + 4).toString();
}

/** A loopback TCP port that nothing listens on (bound once, then released). */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
});

after(async () => {
  await fpm?.stop();
});

describe('connect failures', () => {
  test('a unix socket path with nothing behind it → GW_ERR_CONNECT_FAILED (ENOENT)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fcgi-nolisten-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pool = new ConnectionPool(`unix:${join(dir, 'none.sock')}`, { connections: 1 });
    t.after(() => pool.close());
    await assert.rejects(pool.request({ params: scriptParams('hello.php') }), (err: GatewayError) => {
      assert.equal(err.code, 'GW_ERR_CONNECT_FAILED');
      assert.match(err.message, /none\.sock/);
      assert.match(err.message, /ENOENT/);
      return true;
    });
    assert.equal(pool.stats.failed, 1);
    assert.equal(pool.stats.connected, 0);
    assert.equal(pool.stats.queued, 0);
  });

  test('a TCP port with nothing listening → GW_ERR_CONNECT_FAILED (ECONNREFUSED)', async (t) => {
    const port = await closedPort();
    const pool = new ConnectionPool(`127.0.0.1:${port}`, { connections: 2 });
    t.after(() => pool.close());
    const results = await Promise.allSettled([0, 1, 2].map(() => pool.request({ params: scriptParams('hello.php') })));
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason as GatewayError;
      assert.equal(err.code, 'GW_ERR_CONNECT_FAILED');
      assert.match(err.message, /ECONNREFUSED/);
    }
    assert.equal(pool.stats.failed, 3);
    assert.equal(pool.stats.queued, 0);
    assert.equal(pool.stats.connecting, 0);
  });
});

describe('timeouts', () => {
  test('read timeout → GW_ERR_UPSTREAM_READ_TIMEOUT, then the pool serves the next request', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1, readTimeout: 200 });
    t.after(() => pool.close());
    await assert.rejects(pool.request({ params: scriptParams('sleep.php', { QUERY_STRING: 'ms=2000' }) }), {
      code: 'GW_ERR_UPSTREAM_READ_TIMEOUT',
    });
    // The timed-out socket is gone (php-fpm may still be sleeping on it); a new one serves this.
    assert.equal(pool.stats.connected, 0);
    const res = await pool.request({ params: scriptParams('hello.php') });
    assert.equal(bodyOf(res.stdout), 'Hello, World!');
    assert.equal(pool.stats.failed, 1);
    assert.equal(pool.stats.completed, 1);
    assert.equal(pool.stats.connects, 2);
  });

  test('read timeout is suspended while the consumer has paused the response', async (t) => {
    // Paused twice as long as readTimeout: the silence is ours, not php-fpm's, so no timeout.
    const pool = new ConnectionPool(fpm.address, { connections: 1, readTimeout: 800 });
    t.after(() => pool.close());
    let bytes = 0;
    let pauses = 0;
    await new Promise<void>((resolve, reject) => {
      let controller: ExchangeController | null = null;
      pool.dispatch(
        { params: scriptParams('big.php', { QUERY_STRING: `size=${2 * 1024 * 1024}` }) },
        {
          onStart: (c) => (controller = c),
          onStdout: (c) => {
            bytes += c.length;
            if (pauses > 0) return;
            pauses++;
            setTimeout(() => controller!.resume(), 1600);
            return false;
          },
          onEnd: () => resolve(),
          onError: reject,
        },
      );
    });
    assert.equal(pauses, 1);
    assert.ok(bytes > 2 * 1024 * 1024, `${bytes} bytes`);
    assert.equal(pool.stats.failed, 0);
  });

  test('queue timeout with one busy connection → GW_ERR_POOL_QUEUE_TIMEOUT; the busy one completes', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1, queueTimeout: 200 });
    t.after(() => pool.close());
    // Warm up: an idle socket and the limits probe done, so the slow request never queues (a
    // fresh pool probes first, and that wait counts against queueTimeout).
    await pool.request({ params: scriptParams('hello.php') });
    let slowStarted = false;
    const slow = new Promise<Buffer>((resolve, reject) => {
      const out: Buffer[] = [];
      pool.dispatch(
        { params: scriptParams('sleep.php', { QUERY_STRING: 'ms=1500' }) },
        {
          onStart: () => (slowStarted = true),
          onStdout: (c) => void out.push(Buffer.from(c)),
          onEnd: () => resolve(Buffer.concat(out)),
          onError: reject,
        },
      );
    });
    assert.equal(slowStarted, true, 'the slow request did not take the idle socket at once');
    const queued = pool.request({ params: scriptParams('hello.php') });
    assert.equal(pool.stats.queued, 1);
    const [queuedResult, slowResult] = await Promise.allSettled([queued, slow]);
    assert.equal(queuedResult.status, 'rejected');
    assert.equal(((queuedResult as PromiseRejectedResult).reason as GatewayError).code, 'GW_ERR_POOL_QUEUE_TIMEOUT');
    assert.equal(pool.stats.queued, 0);
    assert.equal(slowResult.status, 'fulfilled', String((slowResult as PromiseRejectedResult).reason));
    assert.equal(bodyOf((slowResult as PromiseFulfilledResult<Buffer>).value), 'slept');
    // The connection survived and is reused.
    const again = await pool.request({ params: scriptParams('hello.php') });
    assert.equal(bodyOf(again.stdout), 'Hello, World!');
    assert.equal(pool.stats.connects, 1);
  });

  test('a full queue fails at once with GW_ERR_POOL_QUEUE_FULL', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1, maxQueue: 2 });
    t.after(() => pool.close());
    // Warm up first: one idle connection, limits probed (see the report on the probe window).
    await pool.request({ params: scriptParams('hello.php') });
    const settled = await Promise.allSettled(
      Array.from({ length: 5 }, () => pool.request({ params: scriptParams('sleep.php', { QUERY_STRING: 'ms=100' }) })),
    );
    const codes = settled.map((s) => (s.status === 'fulfilled' ? 'ok' : (s.reason as GatewayError).code));
    // One runs on the idle socket, two wait, the rest overflow.
    assert.deepEqual(codes, ['ok', 'ok', 'ok', 'GW_ERR_POOL_QUEUE_FULL', 'GW_ERR_POOL_QUEUE_FULL']);
    assert.equal(pool.stats.connects, 1);
  });
});

describe('abort', () => {
  test('aborting a running request closes its socket; the pool serves the next one', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const ac = new AbortController();
    const running = new Promise<void>((resolve) => {
      pool.dispatch(
        { params: scriptParams('sleep.php', { QUERY_STRING: 'ms=2000' }), signal: ac.signal },
        {
          onStart: () => setImmediate(() => ac.abort(new Error('client went away'))),
          onStdout: () => {},
          onEnd: () => assert.fail('aborted request ended'),
          onError: (err) => {
            assert.equal(err.code, 'GW_ERR_UPSTREAM_ABORTED');
            resolve();
          },
        },
      );
    });
    await running;
    assert.equal(pool.stats.connected, 0);
    const res = await pool.request({ params: scriptParams('hello.php') });
    assert.equal(bodyOf(res.stdout), 'Hello, World!');
  });
});
