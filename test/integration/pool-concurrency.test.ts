/**
 * Integration, real php-fpm: 200 concurrent requests through a pool of 4 connections to 4
 * workers. The pool must queue rather than open more sockets, serve every request, and drain.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, type PoolStats } from '../../src/index.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: 4 });
});

after(async () => {
  await fpm?.stop();
});

describe('200 concurrent requests, 4 connections', () => {
  test('all succeed, never more than 4 sockets, the queue drains', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 4, maxQueue: 1024, queueTimeout: 20_000 });
    t.after(() => pool.close());
    const peak = { connected: 0, busy: 0, queued: 0, connecting: 0 };
    const sample = (s: PoolStats = pool.stats): void => {
      peak.connected = Math.max(peak.connected, s.connected);
      peak.busy = Math.max(peak.busy, s.busy);
      peak.queued = Math.max(peak.queued, s.queued);
      peak.connecting = Math.max(peak.connecting, s.connected + s.connecting);
    };
    const timer = setInterval(sample, 1);
    const connIds = new Set<number>();
    const n = 200;
    const results = await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            const out: Buffer[] = [];
            pool.dispatch(
              { params: scriptParams('env.php', { QUERY_STRING: `i=${i}` }) },
              {
                onStart: (c) => {
                  connIds.add(c.connectionId);
                  sample();
                },
                onStdout: (c) => {
                  out.push(Buffer.from(c));
                  sample();
                },
                onEnd: () => {
                  const stdout = Buffer.concat(out);
                  const body = stdout.subarray(stdout.indexOf('\r\n\r\n') + 4).toString();
                  resolve((JSON.parse(body) as { get: { i: string } }).get.i);
                },
                onError: reject,
              },
            );
            sample();
          }),
      ),
    );
    clearInterval(timer);
    sample();
    t.diagnostic(`peaks: ${JSON.stringify(peak)}, connects ${pool.stats.connects}, responder ${JSON.stringify(pool.stats.responder?.maxConns)}`);
    assert.deepEqual(results, Array.from({ length: n }, (_, i) => String(i)));
    assert.ok(peak.connected <= 4, `connected peaked at ${peak.connected}`);
    assert.ok(peak.connecting <= 4, `connected + connecting peaked at ${peak.connecting}`);
    assert.ok(peak.queued > 0, 'no request ever waited: the test did not exercise the queue');
    assert.ok(connIds.size <= 4, `${connIds.size} distinct connections served requests`);
    const s = pool.stats;
    assert.equal(s.queued, 0);
    assert.equal(s.busy, 0);
    assert.equal(s.completed, n);
    assert.equal(s.failed, 0);
    assert.equal(s.connects, 4);
    assert.equal(s.idle, 4);
  });

  test('a second wave reuses the same 4 sockets', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 4 });
    t.after(() => pool.close());
    const wave = (): Promise<unknown[]> =>
      Promise.all(Array.from({ length: 50 }, () => pool.request({ params: scriptParams('hello.php') })));
    await wave();
    const connects = pool.stats.connects;
    await wave();
    assert.equal(pool.stats.connects, connects);
    assert.ok(connects <= 4);
    assert.equal(pool.stats.completed, 100);
  });
});
