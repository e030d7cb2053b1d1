/**
 * Integration, real php-fpm: kept connections go stale when php-fpm restarts or recycles a
 * worker (pm.max_requests). The pool must notice, drop them, and retry a request that lost the
 * race on a fresh socket, so that the caller never sees the stale socket.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { ConnectionPool } from '../../src/index.js';
import { scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

function bodyOf(stdout: Buffer): string {
  const i = stdout.indexOf('\r\n\r\n');
  assert.ok(i >= 0, 'no CGI head');
  return stdout.subarray(i + 4).toString();
}

describe('php-fpm restart', () => {
  test('idle kept connections from before a restart do not fail the next requests', async (t) => {
    const fpm = await startPhpFpm({ workers: 2 });
    t.after(() => fpm.stop());
    const pool = new ConnectionPool(fpm.address, { connections: 2, probeLimits: false }); // two sockets at once, no probe phase
    t.after(() => pool.close());

    // Two idle kept connections, each pinned to a worker of the first php-fpm.
    const warm = await Promise.all([0, 1].map(() => pool.request({ params: scriptParams('pid.php') })));
    const oldPids = new Set(warm.map((r) => bodyOf(r.stdout)));
    assert.equal(pool.stats.idle, 2);
    const oldMaster = fpm.pid;

    await fpm.restart();
    assert.notEqual(fpm.pid, oldMaster);

    const after = [];
    for (let i = 0; i < 4; i++) after.push(await pool.request({ params: scriptParams('pid.php') }));
    for (const r of after) assert.doesNotMatch(bodyOf(r.stdout), /^$/);
    for (const r of after) assert.ok(!oldPids.has(bodyOf(r.stdout)), 'answered by a worker of the old php-fpm');
    // Concurrent ones too, with a body that has to be replayed if a stale socket is picked.
    const body = Buffer.from('a=1&b=2');
    const concurrent = await Promise.all(
      [0, 1, 2, 3].map(() =>
        pool.request({
          params: scriptParams('echo.php', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }),
          body,
        }),
      ),
    );
    for (const r of concurrent) assert.equal((JSON.parse(bodyOf(r.stdout)) as { len: number }).len, body.length);
    assert.equal(pool.stats.failed, 0);
    assert.ok(pool.stats.connects >= 3, `connects ${pool.stats.connects}: the old sockets were not replaced`);
    t.diagnostic(`connects=${pool.stats.connects} retries=${pool.stats.retries}`);
  });

});

describe('pm.max_requests = 1 (the worker exits after every request)', () => {
  test('a request dispatched from onEnd lands on the dying socket and is retried on a fresh one', async (t) => {
    // The stale-socket race, forced: the pool releases the socket before onEnd runs, and php-fpm
    // closes it right after END_REQUEST; a request dispatched inside onEnd always takes it.
    const fpm = await startPhpFpm({ workers: 1, maxRequests: 1 });
    t.after(() => fpm.stop());
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const n = 5;
    const bodies: string[] = [];
    const reused: boolean[] = [];
    await new Promise<void>((resolve, reject) => {
      const next = (i: number): void => {
        const out: Buffer[] = [];
        let first = true;
        pool.dispatch(
          { params: scriptParams('pid.php') },
          {
            onStart: (c) => {
              if (first) reused.push(c.reused);
              first = false;
            },
            onStdout: (c) => void out.push(Buffer.from(c)),
            onEnd: () => {
              bodies.push(bodyOf(Buffer.concat(out)));
              if (i + 1 < n) next(i + 1);
              else resolve();
            },
            onError: reject,
          },
        );
      };
      next(0);
    });
    assert.equal(bodies.length, n);
    assert.equal(new Set(bodies).size, n, `worker pids ${bodies.join(',')}: each request needs a new worker`);
    // Every request after the first started on the reused, dying socket and was retried once.
    assert.deepEqual(reused, [false, true, true, true, true]);
    assert.equal(pool.stats.retries, n - 1);
    assert.equal(pool.stats.failed, 0);
    assert.equal(pool.stats.connects, n);
  });
});

describe('pm.max_requests = 2 (workers recycle every second request)', () => {
  test('20 sequential and 20 concurrent requests all succeed', async (t) => {
    const fpm = await startPhpFpm({ workers: 2, maxRequests: 2 });
    t.after(() => fpm.stop());
    const pool = new ConnectionPool(fpm.address, { connections: 2 });
    t.after(() => pool.close());

    const pids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await pool.request({ params: scriptParams('pid.php') });
      pids.push(bodyOf(r.stdout));
    }
    for (const p of pids) assert.match(p, /^\d+$/);
    // Each worker serves two requests, then exits: 20 requests need at least 10 processes.
    assert.ok(new Set(pids).size >= 10, `only ${new Set(pids).size} distinct worker pids`);
    const seqRetries = pool.stats.retries;

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pool.request({ params: scriptParams('env.php', { QUERY_STRING: `i=${i}` }) }).then((r) => {
          const env = JSON.parse(bodyOf(r.stdout)) as { get: { i: string } };
          return env.get.i;
        }),
      ),
    );
    assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => String(i)));
    assert.equal(pool.stats.completed, 40);
    assert.equal(pool.stats.failed, 0);
    assert.equal(pool.stats.queued, 0);
    t.diagnostic(`retries: ${seqRetries} sequential, ${pool.stats.retries - seqRetries} concurrent; connects: ${pool.stats.connects}`);
  });

  test('one worker: streamed bodies within the retry buffer survive stale sockets', async (t) => {
    const fpm = await startPhpFpm({ workers: 1, maxRequests: 2 });
    t.after(() => fpm.stop());
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    for (let i = 0; i < 12; i++) {
      const data = Buffer.alloc(32 * 1024, i + 1);
      const r = await pool.request({
        params: scriptParams('echo.php', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(data.length) }),
        body: Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      });
      const echo = JSON.parse(bodyOf(r.stdout)) as { md5: string; len: number };
      assert.equal(echo.len, data.length);
      assert.equal(echo.md5, createHash('md5').update(data).digest('hex'));
    }
    assert.equal(pool.stats.failed, 0);
    t.diagnostic(`retries=${pool.stats.retries} connects=${pool.stats.connects}`);
  });

  test('maxRequestsPerConnection matching pm.max_requests retires sockets before php-fpm does', async (t) => {
    const fpm = await startPhpFpm({ workers: 2, maxRequests: 2 });
    t.after(() => fpm.stop());
    const pool = new ConnectionPool(fpm.address, { connections: 2, maxRequestsPerConnection: 2 });
    t.after(() => pool.close());
    for (let i = 0; i < 20; i++) await pool.request({ params: scriptParams('hello.php') });
    await Promise.all(Array.from({ length: 20 }, () => pool.request({ params: scriptParams('hello.php') })));
    assert.equal(pool.stats.failed, 0);
    // The second request on each socket goes without KEEP_CONN, so no socket is ever stale.
    assert.equal(pool.stats.retries, 0);
    // Each socket serves at most two requests (a connection opened for a queued request that a
    // released socket took first may serve fewer).
    assert.ok(pool.stats.connects >= 20, `connects ${pool.stats.connects}`);
  });
});
