/**
 * Pool behaviour against the fake responder: socket reuse and KEEP_CONN, per-socket request
 * limits, the bounded wait queue, aborts, close/destroy, and the stats that describe them.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import type { GatewayError } from '../../src/errors.js';
import type { ExchangeController } from '../../src/upstream/exchange.js';
import type { BufferedResponse, ConnectionPool } from '../../src/upstream/pool.js';
import { assertPoolQuiet, startFakeWithPool } from '../helpers/fake-fpm.js';

const PARAMS = { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: '/srv/index.php' };
const T = { timeout: 20_000 };
const HOLD = (): void => {}; // script that answers nothing: the test answers via nextRequest()

const setup = startFakeWithPool;

/** Outcome of a request as a value: the response, or the error. */
function settle(p: Promise<BufferedResponse>): Promise<BufferedResponse | GatewayError> {
  return p.then((r) => r, (e: GatewayError) => e);
}

function codeOf(x: unknown): string | undefined {
  return (x as { code?: string } | null)?.code;
}

/** dispatch() with a promise for its outcome and the controller. */
function dispatch(pool: ConnectionPool, request: Parameters<ConnectionPool['dispatch']>[0]) {
  let controller!: ExchangeController;
  const outcome = new Promise<{ ok: true; stdout: string } | { ok: false; err: GatewayError }>((resolve) => {
    const out: Buffer[] = [];
    controller = pool.dispatch(request, {
      onStdout: (c) => void out.push(Buffer.from(c)),
      onEnd: () => resolve({ ok: true, stdout: Buffer.concat(out).toString() }),
      onError: (err) => resolve({ ok: false, err }),
    });
  });
  return { controller, outcome };
}

test('keep-alive: sequential requests share one socket and every BEGIN_REQUEST sets KEEP_CONN', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (req, conn) => conn.respond(`n=${req.indexOnConnection}`) });
  for (let i = 1; i <= 5; i++) {
    const res = await pool.request({ params: PARAMS });
    assert.equal(res.stdout.toString(), `Content-Type: text/plain\r\n\r\nn=${i}`);
  }
  assert.equal(fake.accepted, 1);
  assert.equal(pool.stats.connects, 1);
  assert.deepEqual(fake.requests.map((r) => r.keepConn), [true, true, true, true, true]);
  assertPoolQuiet(pool.stats, { completed: 5, failed: 0 });
  assert.equal(pool.stats.idle, 1);
});

test('keepAlive: false clears KEEP_CONN and uses a new socket for every request', T, async (t) => {
  const { fake, pool } = await setup(t, {}, { keepAlive: false });
  for (let i = 0; i < 4; i++) await pool.request({ params: PARAMS });
  assert.equal(fake.accepted, 4);
  assert.equal(pool.stats.connects, 4);
  assert.deepEqual(fake.requests.map((r) => r.keepConn), [false, false, false, false]);
  assertPoolQuiet(pool.stats, { completed: 4, failed: 0 });
  assert.equal(pool.stats.connected, 0);
});

test('keepAlive: false also closes the socket when the responder keeps it open', T, async (t) => {
  // A responder that ignores the missing KEEP_CONN flag must not get the socket reused.
  const { fake, pool } = await setup(t, {
    script: (_req, conn) => {
      conn.stdout('x');
      conn.end(0, 0, { close: false });
    },
  }, { keepAlive: false });
  await pool.request({ params: PARAMS });
  await pool.request({ params: PARAMS });
  assert.equal(fake.accepted, 2);
  await Promise.all(fake.connections.map((c) => c.whenClosed));
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('maxRequestsPerConnection retires a socket after N requests; its last request clears KEEP_CONN', T, async (t) => {
  const { fake, pool } = await setup(t, {}, { maxRequestsPerConnection: 3 });
  for (let i = 0; i < 7; i++) await pool.request({ params: PARAMS });
  assert.equal(fake.accepted, 3);
  assert.deepEqual(fake.connections.map((c) => c.requests.length), [3, 3, 1]);
  assert.deepEqual(fake.requests.map((r) => r.keepConn), [true, true, false, true, true, false, true]);
  assertPoolQuiet(pool.stats, { completed: 7, failed: 0 });
  assert.equal(pool.stats.connected, 1);
});

test('queue full: with every socket busy and maxQueue waiting, the next request fails with GW_ERR_POOL_QUEUE_FULL', T, async (t) => {
  const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1, maxQueue: 2 });
  const a = settle(pool.request({ params: PARAMS }));
  const first = await fake.nextRequest();
  const b = settle(pool.request({ params: PARAMS }));
  const c = settle(pool.request({ params: PARAMS }));
  assert.equal(pool.stats.queued, 2);
  const d = await settle(pool.request({ params: PARAMS }));
  assert.equal(codeOf(d), 'GW_ERR_POOL_QUEUE_FULL');
  assert.equal(pool.stats.queued, 2, 'the rejected request did not take a queue slot');
  first.conn.respond('a');
  (await fake.nextRequest()).conn.respond('b');
  (await fake.nextRequest()).conn.respond('c');
  const results = await Promise.all([a, b, c]);
  assert.deepEqual(results.map((r) => (r instanceof Error ? r.code : r.stdout.toString().split('\r\n\r\n')[1])), ['a', 'b', 'c']);
  assert.equal(fake.accepted, 1, 'queued requests were served by the one socket, in order');
  assertPoolQuiet(pool.stats, { completed: 3, failed: 1 });
});

test('maxQueue 0: no waiting at all once the connection limit is reached', T, async (t) => {
  const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1, maxQueue: 0 });
  // The first request may wait for its own connect even with maxQueue 0.
  const a = settle(pool.request({ params: PARAMS }));
  const held = await fake.nextRequest();
  assert.equal(codeOf(await settle(pool.request({ params: PARAMS }))), 'GW_ERR_POOL_QUEUE_FULL');
  held.conn.respond();
  assert.ok(!((await a) instanceof Error));
  assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
});

test('queue timeout: a request that waits longer than queueTimeout fails with GW_ERR_POOL_QUEUE_TIMEOUT', T, async (t) => {
  const { fake, pool } = await setup(t, {}, { connections: 1, queueTimeout: 100 });
  // Warm the socket first, so that the first request is not the one waiting (for its connect).
  await pool.request({ params: PARAMS });
  await fake.nextRequest(); // the warm-up, answered already
  fake.script = HOLD;
  const a = settle(pool.request({ params: PARAMS }));
  const held = await fake.nextRequest();
  assert.equal(held.indexOnConnection, 2);
  const b = await settle(pool.request({ params: PARAMS }));
  assert.equal(codeOf(b), 'GW_ERR_POOL_QUEUE_TIMEOUT');
  assert.equal(pool.stats.queued, 0);
  held.conn.respond('a');
  assert.ok(!((await a) instanceof Error));
  // The timed-out request never reached the responder; the socket is still good.
  assert.equal(fake.requests.length, 2);
  fake.script = (_req, conn) => conn.respond('c');
  const c = await pool.request({ params: PARAMS });
  assert.equal(c.stdout.toString(), 'Content-Type: text/plain\r\n\r\nc');
  assert.equal(fake.accepted, 1);
  assertPoolQuiet(pool.stats, { completed: 3, failed: 1 });
});

test('a queued request that gets a socket in time does not time out later', T, async (t) => {
  const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1, queueTimeout: 1000 });
  const a = settle(pool.request({ params: PARAMS }));
  const first = await fake.nextRequest();
  const b = settle(pool.request({ params: PARAMS }));
  assert.equal(pool.stats.queued, 1);
  first.conn.respond('a');
  const second = await fake.nextRequest();
  // b is running now; hold it past queueTimeout before answering: its queue timer is gone.
  await new Promise((r) => setTimeout(r, 1300));
  second.conn.respond('b');
  const [ra, rb] = await Promise.all([a, b]);
  assert.ok(!(ra instanceof Error));
  assert.ok(!(rb instanceof Error), `b failed: ${codeOf(rb)}`);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

for (const how of ['signal', 'controller'] as const) {
  test(`abort while queued (${how}): GW_ERR_UPSTREAM_ABORTED, the queue shrinks, nothing reaches the responder`, T, async (t) => {
    const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1 });
    const a = dispatch(pool, { params: PARAMS });
    const held = await fake.nextRequest();
    const ac = new AbortController();
    const b = dispatch(pool, { params: { ...PARAMS, WHICH: 'b' }, signal: ac.signal });
    const c = dispatch(pool, { params: { ...PARAMS, WHICH: 'c' } });
    assert.equal(pool.stats.queued, 2);
    if (how === 'signal') ac.abort(new Error('client went away'));
    else b.controller.abort();
    const rb = await b.outcome;
    assert.equal(rb.ok, false);
    assert.equal(!rb.ok && rb.err.code, 'GW_ERR_UPSTREAM_ABORTED');
    assert.equal(pool.stats.queued, 1);
    held.conn.respond('a');
    (await fake.nextRequest()).conn.respond('c');
    assert.deepEqual(await a.outcome, { ok: true, stdout: 'Content-Type: text/plain\r\n\r\na' });
    assert.deepEqual(await c.outcome, { ok: true, stdout: 'Content-Type: text/plain\r\n\r\nc' });
    assert.deepEqual(fake.requests.map((r) => r.params.get('WHICH') ?? 'a'), ['a', 'c']);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind');
    assert.equal(fake.accepted, 1);
    assertPoolQuiet(pool.stats, { completed: 2, failed: 1 });
  });

  test(`abort while running (${how}): GW_ERR_UPSTREAM_ABORTED, the socket is closed, the pool recovers`, T, async (t) => {
    const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1 });
    const ac = new AbortController();
    const a = dispatch(pool, { params: PARAMS, signal: ac.signal });
    const held = await fake.nextRequest();
    held.conn.stdout('Content-Type: text/plain\r\n\r\npartial');
    assert.equal(pool.stats.busy, 1);
    if (how === 'signal') ac.abort();
    else a.controller.abort();
    const ra = await a.outcome;
    assert.equal(!ra.ok && ra.err.code, 'GW_ERR_UPSTREAM_ABORTED');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind');
    await held.conn.whenClosed;
    assert.equal(pool.stats.connected, 0);
    assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
    // Aborting again, or the signal firing later, changes nothing.
    a.controller.abort();
    ac.abort();
    fake.script = (_req, conn) => conn.respond('after');
    const next = await pool.request({ params: PARAMS });
    assert.equal(next.stdout.toString(), 'Content-Type: text/plain\r\n\r\nafter');
    assert.equal(fake.accepted, 2);
    assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
  });
}

test('a request that completes or fails removes its abort listener from the signal', T, async (t) => {
  let n = 0;
  const { pool } = await setup(t, { script: (_req, conn) => (n++ % 2 === 0 ? conn.respond() : conn.reject(2)) });
  const ac = new AbortController();
  for (let i = 0; i < 6; i++) await settle(pool.request({ params: PARAMS, signal: ac.signal }));
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  assertPoolQuiet(pool.stats, { completed: 3, failed: 3 });
});

test('a signal already aborted at dispatch fails at once and opens no socket', T, async (t) => {
  const { fake, pool } = await setup(t);
  const res = await settle(pool.request({ params: PARAMS, signal: AbortSignal.abort() }));
  assert.equal(codeOf(res), 'GW_ERR_UPSTREAM_ABORTED');
  assert.equal(fake.accepted, 0);
  assert.equal(pool.stats.connects, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('abort from onStart (before any byte is written) fails the request and frees the socket', T, async (t) => {
  const { fake, pool } = await setup(t);
  const err = await new Promise<GatewayError | null>((resolve) => {
    pool.dispatch({ params: PARAMS }, { onStart: (c) => c.abort(), onStdout: () => {}, onEnd: () => resolve(null), onError: resolve });
  });
  assert.equal(codeOf(err), 'GW_ERR_UPSTREAM_ABORTED');
  assert.equal(fake.requests.length, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  await pool.request({ params: PARAMS });
  assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
});

test('many concurrent requests over a small pool all complete; at most `connections` sockets are open', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: async (req, conn) => {
      await new Promise((r) => setImmediate(r));
      conn.respond(req.params.get('I') ?? '');
    },
  }, { connections: 3 });
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => pool.request({ params: { ...PARAMS, I: String(i) } })));
  assert.deepEqual(results.map((r) => r.stdout.toString().split('\r\n\r\n')[1]), Array.from({ length: 40 }, (_, i) => String(i)));
  assert.ok(fake.maxOpenConnections <= 3, `max open ${fake.maxOpenConnections}`);
  assert.equal(fake.accepted, 3);
  assertPoolQuiet(pool.stats, { completed: 40, failed: 0 });
  assert.equal(pool.stats.connected, 3);
});

test('close() waits for running and queued requests, refuses new ones with GW_ERR_POOL_CLOSED, then closes every socket', T, async (t) => {
  const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1 });
  const events: string[] = [];
  const handler = (name: string) => ({
    onStdout: () => {},
    onEnd: () => void events.push(name),
    onError: (err: GatewayError) => void events.push(`${name}:${err.code}`),
  });
  pool.dispatch({ params: PARAMS }, handler('a'));
  pool.dispatch({ params: PARAMS }, handler('b'));
  const held = await fake.nextRequest();
  const closed = pool.close().then(() => events.push('closed'));
  const late = await settle(pool.request({ params: PARAMS }));
  assert.equal(codeOf(late), 'GW_ERR_POOL_CLOSED');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, [], 'close() does not resolve while requests are in flight');
  held.conn.respond('a');
  (await fake.nextRequest()).conn.respond('b');
  await closed;
  // Every handler has run by the time close() resolves.
  assert.deepEqual(events, ['a', 'b', 'closed']);
  await Promise.all(fake.connections.map((c) => c.whenClosed));
  assert.equal(fake.accepted, 1);
  assert.equal(pool.stats.connected, 0);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 1 });
});

test('close() with queued requests and no open socket connects to serve them', T, async (t) => {
  const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1, maxRequestsPerConnection: 1 });
  const a = settle(pool.request({ params: PARAMS }));
  const held = await fake.nextRequest();
  const b = settle(pool.request({ params: PARAMS }));
  const closed = pool.close();
  held.conn.respond('a');
  (await fake.nextRequest()).conn.respond('b');
  await closed;
  assert.ok(!((await a) instanceof Error));
  assert.ok(!((await b) instanceof Error));
  assert.equal(fake.accepted, 2, 'the first socket was retired, the queued request got a new one');
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
  assert.equal(pool.stats.connected, 0);
});

test('close() on an idle pool closes its kept sockets at once', T, async (t) => {
  const { fake, pool } = await setup(t);
  await pool.request({ params: PARAMS });
  assert.equal(pool.stats.idle, 1);
  await pool.close();
  await fake.connections[0]!.whenClosed;
  assert.equal(pool.stats.connected, 0);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
});

test('destroy() fails queued requests with GW_ERR_POOL_CLOSED and running ones too, and closes every socket', T, async (t) => {
  const { fake, pool } = await setup(t, { script: HOLD }, { connections: 1 });
  const a = dispatch(pool, { params: PARAMS });
  const b = dispatch(pool, { params: PARAMS });
  const c = dispatch(pool, { params: PARAMS });
  const held = await fake.nextRequest();
  assert.equal(pool.stats.queued, 2);
  pool.destroy();
  const [ra, rb, rc] = await Promise.all([a.outcome, b.outcome, c.outcome]);
  assert.equal(!rb.ok && rb.err.code, 'GW_ERR_POOL_CLOSED');
  assert.equal(!rc.ok && rc.err.code, 'GW_ERR_POOL_CLOSED');
  assert.equal(!ra.ok && ra.err.code, 'GW_ERR_POOL_CLOSED');
  await held.conn.whenClosed;
  assert.equal(fake.requests.length, 1);
  assert.equal(pool.stats.connected, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 3 });
  assert.equal(codeOf(await settle(pool.request({ params: PARAMS }))), 'GW_ERR_POOL_CLOSED');
});

test('idleTimeout closes a kept socket that waits too long; the next request connects again', T, async (t) => {
  const { fake, pool } = await setup(t, {}, { idleTimeout: 50 });
  await pool.request({ params: PARAMS });
  await fake.connections[0]!.whenClosed;
  assert.equal(pool.stats.connected, 0);
  await pool.request({ params: PARAMS });
  assert.equal(fake.accepted, 2);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('a responder that closes an idle kept socket: the socket leaves the pool, the next request connects again', T, async (t) => {
  const { fake, pool } = await setup(t);
  await pool.request({ params: PARAMS });
  fake.connections[0]!.close();
  await fake.connections[0]!.whenClosed;
  // The pool learns of the close from the socket; wait for its stats to show it.
  while (pool.stats.connected > 0) await new Promise((r) => setImmediate(r));
  await pool.request({ params: PARAMS });
  assert.equal(fake.accepted, 2);
  assert.equal(pool.stats.retries, 0);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});
