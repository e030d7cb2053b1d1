/**
 * Stale kept sockets: php-fpm closes a kept connection when a worker exits (pm.max_requests,
 * reload), and a request can lose that race. Such a request is retried once on a fresh socket
 * when nothing of the response arrived and every body byte is still held; never otherwise.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { GatewayError } from '../../src/errors.js';
import { assertPoolQuiet, patternBytes, startFakeWithPool } from '../helpers/fake-fpm.js';

const PARAMS = { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: '/srv/index.php' };
const T = { timeout: 20_000 };

const setup = startFakeWithPool;

function errorOf(p: Promise<unknown>): Promise<GatewayError | null> {
  return p.then(() => null, (e: GatewayError) => e);
}

/** A body stream of `size` pattern bytes in `chunk`-byte pieces. */
function bodyStream(size: number, chunk = 8192): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, size - sent);
      this.push(patternBytes(sent, n));
      sent += n;
    },
  });
}

test('a kept socket the responder closed right after END_REQUEST: the next request is retried on a fresh socket', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      conn.stdout(`Content-Type: text/plain\r\n\r\n${req.params.get('N')}`);
      // Like pm.max_requests: the worker answers with KEEP_CONN honoured, then exits.
      conn.end(0, 0, { close: conn.id === 1 });
    },
  });
  // Dispatch the second request from the first one's onEnd: the socket is idle in the pool
  // but its FIN has not been read yet, so the second request is written to the stale socket.
  const second = new Promise<string>((resolve, reject) => {
    pool.dispatch({ params: { ...PARAMS, N: '1' } }, {
      onStdout: () => {},
      onEnd: () => {
        pool.request({ params: { ...PARAMS, N: '2' } }).then((r) => resolve(r.stdout.toString()), reject);
      },
      onError: reject,
    });
  });
  assert.equal(await second, 'Content-Type: text/plain\r\n\r\n2');
  assert.equal(pool.stats.retries, 1);
  assert.equal(fake.accepted, 2);
  assert.deepEqual(fake.connections.map((c) => c.requests.map((r) => r.params.get('N'))), [['1'], ['2']]);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('a reused socket closed with the request unanswered: retried once on a fresh socket, and succeeds', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (conn.id === 1 && req.indexOnConnection === 2) conn.destroy();
      else conn.respond(`conn=${conn.id}`);
    },
  });
  await pool.request({ params: PARAMS });
  const res = await pool.request({ params: PARAMS });
  assert.equal(res.stdout.toString(), 'Content-Type: text/plain\r\n\r\nconn=2');
  assert.equal(pool.stats.retries, 1);
  assert.equal(pool.stats.connects, 2);
  assert.equal(fake.accepted, 2);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('the same failure on a fresh socket is not retried: GW_ERR_UPSTREAM_CLOSED', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (_req, conn) => conn.destroy() });
  const err = await errorOf(pool.request({ params: PARAMS }));
  assert.equal(err?.code, 'GW_ERR_UPSTREAM_CLOSED');
  assert.equal(pool.stats.retries, 0);
  assert.equal(fake.accepted, 1);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a retry is attempted only once: a failing fresh socket after a stale one gives GW_ERR_UPSTREAM_CLOSED', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (conn.id === 1 && req.indexOnConnection === 1) conn.respond();
      else conn.destroy();
    },
  });
  await pool.request({ params: PARAMS });
  const err = await errorOf(pool.request({ params: PARAMS }));
  assert.equal(err?.code, 'GW_ERR_UPSTREAM_CLOSED');
  assert.equal(pool.stats.retries, 1);
  assert.equal(fake.accepted, 2);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
});

test('a reused socket that fails after response bytes arrived is not retried', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (req.indexOnConnection === 1) {
        conn.respond();
        return;
      }
      conn.stdout('Content-Type: text/plain\r\n\r\npart');
      conn.destroy();
    },
  });
  await pool.request({ params: PARAMS });
  const err = await errorOf(pool.request({ params: PARAMS }));
  assert.equal(err?.code, 'GW_ERR_UPSTREAM_CLOSED');
  assert.equal((err as unknown as { beforeResponse: boolean }).beforeResponse, false);
  assert.equal(pool.stats.retries, 0);
  assert.equal(fake.accepted, 1);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
});

test('a Buffer body larger than retryBufferSize is still replayed (it is fully held)', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (conn.id === 1 && req.indexOnConnection === 2) conn.destroy();
      else conn.respond(`len=${req.body.length}`);
    },
  }, { retryBufferSize: 1024 });
  await pool.request({ params: PARAMS });
  const body = patternBytes(0, 300_000);
  const res = await pool.request({ params: { ...PARAMS, CONTENT_LENGTH: String(body.length) }, body });
  assert.equal(res.stdout.toString(), 'Content-Type: text/plain\r\n\r\nlen=300000');
  assert.ok(fake.connections[1]!.requests[0]!.body.equals(body), 'the retry sent the same body');
  assert.equal(pool.stats.retries, 1);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('a streamed body within retryBufferSize is replayed byte for byte on the fresh socket', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (conn.id === 1 && req.indexOnConnection === 2) conn.destroy();
      else conn.respond(`len=${req.body.length}`);
    },
  }, { retryBufferSize: 65_536 });
  await pool.request({ params: PARAMS });
  const size = 50_000;
  const res = await pool.request({ params: { ...PARAMS, CONTENT_LENGTH: String(size) }, body: bodyStream(size) });
  assert.equal(res.stdout.toString(), `Content-Type: text/plain\r\n\r\nlen=${size}`);
  const retried = fake.connections[1]!.requests[0]!;
  assert.equal(retried.bodyComplete, true);
  assert.ok(retried.body.equals(patternBytes(0, size)));
  assert.equal(pool.stats.retries, 1);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('a streamed body larger than retryBufferSize is not retried: GW_ERR_UPSTREAM_CLOSED', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (conn.id === 1 && req.indexOnConnection === 2) conn.destroy();
      else conn.respond();
    },
  }, { retryBufferSize: 1024 });
  await pool.request({ params: PARAMS });
  const size = 100_000;
  const err = await errorOf(pool.request({ params: { ...PARAMS, CONTENT_LENGTH: String(size) }, body: bodyStream(size) }));
  assert.equal(err?.code, 'GW_ERR_UPSTREAM_CLOSED');
  assert.equal(fake.connections[0]!.requests[1]!.body.length, size, 'the whole body had been sent');
  assert.equal(pool.stats.retries, 0);
  assert.equal(fake.accepted, 1);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
});

test('a streamed body still being sent is replayed when the stale socket dies early', T, async (t) => {
  // The responder kills the reused socket as soon as the params arrive, before the body:
  // the chunks sent so far (within retryBufferSize) are replayed, then the stream continues.
  const { fake, pool } = await setup(t, {
    readBody: true,
    onConnection: (conn) => {
      if (conn.id !== 1) return;
      conn.socket.on('data', () => {
        if (conn.requests.length === 2 && !conn.closed) conn.destroy();
      });
    },
    script: (req, conn) => conn.respond(`len=${req.body.length}`),
  }, { retryBufferSize: 1_000_000 });
  await pool.request({ params: PARAMS });
  const size = 400_000;
  const res = await pool.request({ params: { ...PARAMS, CONTENT_LENGTH: String(size) }, body: bodyStream(size, 4096) });
  assert.equal(res.stdout.toString(), `Content-Type: text/plain\r\n\r\nlen=${size}`);
  assert.ok(fake.connections[1]!.requests[0]!.body.equals(patternBytes(0, size)));
  assert.equal(pool.stats.retries, 1);
  assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
});

test('destroy() while a retry is reconnecting fails the request with GW_ERR_POOL_CLOSED and leaves nothing open', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (req, conn) => {
      if (conn.id === 1 && req.indexOnConnection === 1) conn.respond();
      else if (conn.id === 1) conn.destroy(); // stale: the request is retried
      // the retry on connection 2 is never answered
    },
    onConnection: (conn) => {
      // The retry's socket reaches the responder: destroy the pool now, whether or not the
      // pool has seen its connect complete yet.
      if (conn.id === 2) pool.destroy();
    },
  });
  await pool.request({ params: PARAMS });
  const err = await errorOf(pool.request({ params: PARAMS }));
  assert.equal(err?.code, 'GW_ERR_POOL_CLOSED');
  assert.equal(pool.stats.retries, 1);
  await Promise.all(fake.connections.map((c) => c.whenClosed));
  assert.equal(pool.stats.connected, 0);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
});
