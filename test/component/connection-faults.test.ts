/**
 * Fault injection against one upstream connection: what the pool reports when the responder
 * misbehaves, and that a socket is reused only after a clean exchange.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ProtocolStatus, RecordType } from '../../src/protocol/constants.js';
import { encodeRecord } from '../../src/protocol/encoder.js';
import { ConnectionPool } from '../../src/upstream/pool.js';
import { assertPoolQuiet, patternBytes, startFakeWithPool } from '../helpers/fake-fpm.js';

const PARAMS = { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: '/srv/index.php' };
const T = { timeout: 20_000 };

const setup = startFakeWithPool;

test('a normal response arrives whole and the params and body reach the responder intact', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (req, conn) => conn.respond(`len=${req.body.length}`) });
  const body = patternBytes(0, 200_000);
  const params: Array<[string, string | Buffer]> = [
    ['REQUEST_METHOD', 'POST'],
    ['CONTENT_LENGTH', String(body.length)],
    ['RAW', Buffer.from([0, 1, 2, 255])],
    // 40 pairs of 2 KB: more than one PARAMS record's worth.
    ...Array.from({ length: 40 }, (_, i): [string, string] => [`HTTP_X_${i}`, 'v'.repeat(2000) + i]),
  ];
  const res = await pool.request({ params, body });
  assert.equal(res.stdout.toString(), 'Content-Type: text/plain\r\n\r\nlen=200000');
  assert.equal(res.appStatus, 0);
  assert.equal(res.protocolStatus, ProtocolStatus.RequestComplete);
  const req = fake.requests[0]!;
  assert.equal(req.bodyComplete, true);
  assert.ok(req.body.equals(body));
  assert.deepEqual(
    req.pairs.map(([n, v]) => [n.toString('latin1'), v.toString('latin1')]),
    params.map(([n, v]) => [n, typeof v === 'string' ? v : v.toString('latin1')]),
  );
  assert.deepEqual(fake.errors, []);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
});

test('garbage bytes instead of records fail with GW_ERR_PROTO_INVALID and close the socket', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (_req, conn) => void conn.raw('HTTP/1.1 200 OK\r\n\r\n') });
  await assert.rejects(pool.request({ params: PARAMS }), { code: 'GW_ERR_PROTO_INVALID' });
  await fake.connections[0]!.whenClosed;
  assert.equal(pool.stats.connected, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a record with the wrong request id fails with GW_ERR_PROTO_INVALID', T, async (t) => {
  const { pool } = await setup(t, {
    script: (_req, conn) => void conn.raw(encodeRecord(RecordType.Stdout, 2, Buffer.from('x'))),
  });
  await assert.rejects(pool.request({ params: PARAMS }), { code: 'GW_ERR_PROTO_INVALID' });
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a stall in the middle of a record fails with GW_ERR_UPSTREAM_READ_TIMEOUT', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (_req, conn) => conn.stallMidRecord() }, { readTimeout: 100 });
  const stdout: Buffer[] = [];
  const err = await new Promise<unknown>((resolve) => {
    pool.dispatch({ params: PARAMS }, { onStdout: (c) => void stdout.push(Buffer.from(c)), onEnd: () => resolve(null), onError: resolve });
  });
  assert.equal((err as { code?: string }).code, 'GW_ERR_UPSTREAM_READ_TIMEOUT');
  assert.equal(stdout.length, 0, 'a partial record is never delivered');
  await fake.connections[0]!.whenClosed;
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  assert.equal(pool.stats.connected, 0);
});

test('silence after the head is a read timeout too', T, async (t) => {
  const { pool } = await setup(t, { script: (_req, conn) => void conn.stdout('Status: 200\r\n\r\npartial') }, { readTimeout: 100 });
  await assert.rejects(pool.request({ params: PARAMS }), { code: 'GW_ERR_UPSTREAM_READ_TIMEOUT' });
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a close before END_REQUEST fails with GW_ERR_UPSTREAM_CLOSED (after output: beforeResponse false)', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: (_req, conn) => {
      conn.stdout('Content-Type: text/plain\r\n\r\nhalf');
      conn.close();
    },
  });
  const stdout: Buffer[] = [];
  const err = await new Promise<unknown>((resolve) => {
    pool.dispatch({ params: PARAMS }, { onStdout: (c) => void stdout.push(Buffer.from(c)), onEnd: () => resolve(null), onError: resolve });
  });
  assert.equal((err as { code?: string }).code, 'GW_ERR_UPSTREAM_CLOSED');
  assert.equal((err as { beforeResponse?: boolean }).beforeResponse, false);
  assert.equal(Buffer.concat(stdout).toString(), 'Content-Type: text/plain\r\n\r\nhalf');
  assert.equal(fake.accepted, 1, 'a request that got output is never retried');
  assert.equal(pool.stats.retries, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('an abrupt close with no output on a fresh socket fails with GW_ERR_UPSTREAM_CLOSED and no retry', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (_req, conn) => conn.destroy() });
  const err = await pool.request({ params: PARAMS }).then(() => null, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'GW_ERR_UPSTREAM_CLOSED');
  assert.equal((err as { beforeResponse?: boolean }).beforeResponse, true);
  assert.equal(fake.accepted, 1);
  assert.equal(pool.stats.retries, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

for (const [what, trailer] of [
  ['a whole record', encodeRecord(RecordType.Stdout, 1, Buffer.from('late'))],
  ['garbage bytes', Buffer.from('GARBAGE-GARBAGE')],
  ['a partial header', Buffer.from([1, 6, 0])],
] as const) {
  test(`${what} after END_REQUEST: the request succeeds but the socket is not reused`, T, async (t) => {
    const { fake, pool } = await setup(t, {
      script: (req, conn) => {
        conn.stdout('Content-Type: text/plain\r\n\r\nbody');
        conn.end(0, ProtocolStatus.RequestComplete, req.conn.id === 1 ? { trailer } : {});
      },
    });
    const first = await pool.request({ params: PARAMS });
    assert.equal(first.stdout.toString(), 'Content-Type: text/plain\r\n\r\nbody', 'late bytes are not delivered');
    const second = await pool.request({ params: PARAMS });
    assert.equal(second.stdout.toString(), 'Content-Type: text/plain\r\n\r\nbody');
    assert.equal(fake.accepted, 2, 'second request on a new socket');
    assert.equal(pool.stats.connects, 2);
    assert.equal(fake.connections[0]!.requests.length, 1);
    assert.equal(fake.requests[0]!.keepConn, true, 'the pool did mean to keep it');
    await fake.connections[0]!.whenClosed;
    assertPoolQuiet(pool.stats, { completed: 2, failed: 0 });
    assert.equal(pool.stats.idle, 1);
  });
}

for (const [status, code] of [
  [ProtocolStatus.Overloaded, 'GW_ERR_UPSTREAM_OVERLOADED'],
  [ProtocolStatus.CantMpxConn, 'GW_ERR_UPSTREAM_CANT_MPX_CONN'],
  [ProtocolStatus.UnknownRole, 'GW_ERR_UPSTREAM_UNKNOWN_ROLE'],
] as const) {
  test(`END_REQUEST with protocol status ${status} fails with ${code} and drops the socket`, T, async (t) => {
    let first = true;
    const { fake, pool } = await setup(t, {
      script: (_req, conn) => {
        if (first) conn.reject(status);
        else conn.respond('fine');
        first = false;
      },
    });
    const err = await pool.request({ params: PARAMS }).then(() => null, (e: unknown) => e);
    assert.equal((err as { code?: string }).code, code);
    assert.equal((err as { protocolStatus?: number }).protocolStatus, status);
    await fake.connections[0]!.whenClosed;
    const ok = await pool.request({ params: PARAMS });
    assert.equal(ok.stdout.toString(), 'Content-Type: text/plain\r\n\r\nfine');
    assert.equal(fake.accepted, 2, 'the rejecting socket was not reused');
    assertPoolQuiet(pool.stats, { completed: 1, failed: 1 });
  });
}

test('an unknown protocol status in END_REQUEST fails with GW_ERR_PROTO_INVALID', T, async (t) => {
  const { pool } = await setup(t, { script: (_req, conn) => conn.reject(9) });
  await assert.rejects(pool.request({ params: PARAMS }), { code: 'GW_ERR_PROTO_INVALID' });
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a responder that never reads a large Buffer body: GW_ERR_UPSTREAM_WRITE_TIMEOUT', T, async (t) => {
  const { fake, pool } = await setup(t, { readBody: false, script: () => {} }, { writeTimeout: 150, readTimeout: 10_000 });
  const body = Buffer.alloc(32 * 1024 * 1024, 0x41);
  const err = await pool
    .request({ params: { ...PARAMS, CONTENT_LENGTH: String(body.length) }, body })
    .then(() => null, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'GW_ERR_UPSTREAM_WRITE_TIMEOUT');
  // (The fake stopped reading, so it cannot see the close; the pool side is what matters.)
  assert.equal(fake.requests.length, 1);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  assert.equal(pool.stats.connected, 0);
});

test('a responder that never reads a streamed body: GW_ERR_UPSTREAM_WRITE_TIMEOUT and the stream stops', T, async (t) => {
  const { pool } = await setup(t, { readBody: false, script: () => {} }, { writeTimeout: 150, readTimeout: 10_000 });
  const total = 64 * 1024 * 1024;
  let produced = 0;
  const body = new Readable({
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      produced += 65536;
      this.push(Buffer.alloc(65536, 0x42));
    },
  });
  const err = await pool
    .request({ params: { ...PARAMS, CONTENT_LENGTH: String(total) }, body })
    .then(() => null, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'GW_ERR_UPSTREAM_WRITE_TIMEOUT');
  assert.ok(produced < total, `the body was not read to the end (${produced} of ${total} bytes)`);
  assert.equal(pool.stats.connected, 0);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  body.destroy();
});

test('a responder that stops reading after the params (small body): the response still completes', T, async (t) => {
  // The small body fits the socket buffers, so nothing blocks; php-fpm can answer before reading.
  const { fake, pool } = await setup(t, { readBody: false, script: (_req, conn) => conn.respond('early') }, { writeTimeout: 150 });
  const res = await pool.request({ params: PARAMS, body: Buffer.from('tiny') });
  assert.equal(res.stdout.toString(), 'Content-Type: text/plain\r\n\r\nearly');
  assert.equal(fake.requests[0]!.bodyComplete, false);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
});

test('stderr flood interleaved with stdout: every byte arrives on its stream, in order', T, async (t) => {
  const { pool } = await setup(t, {
    script: async (_req, conn) => {
      for (let i = 0; i < 20; i++) {
        await conn.stream(RecordType.Stderr, 50_000, 7000, i * 50_000);
        conn.stdout(patternBytes(i * 1000, 1000));
      }
      conn.end(3);
    },
  });
  const res = await pool.request({ params: PARAMS });
  assert.equal(res.appStatus, 3);
  assert.ok(res.stderr.equals(patternBytes(0, 1_000_000)));
  assert.ok(res.stdout.equals(patternBytes(0, 20_000)));
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
});

test('a huge head in many small records reaches onStdout unchanged (head limits are the HTTP layer\'s)', T, async (t) => {
  let head = '';
  const { pool } = await setup(t, {
    script: (_req, conn) => {
      head = conn.hugeHead(1_000_000);
      conn.end();
    },
  });
  const res = await pool.request({ params: PARAMS });
  assert.equal(head.length, 1_000_000);
  assert.equal(createHash('md5').update(res.stdout).digest('hex'), createHash('md5').update(head).digest('hex'));
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
});

test('tcp upstream works the same as unix', T, async (t) => {
  const { fake, pool } = await setup(t, { listen: 'tcp' });
  assert.match(fake.address, /^127\.0\.0\.1:\d+$/);
  for (let i = 0; i < 3; i++) await pool.request({ params: PARAMS });
  assert.equal(fake.accepted, 1);
  assertPoolQuiet(pool.stats, { completed: 3, failed: 0 });
});

test('connecting to a socket path where nothing listens fails with GW_ERR_CONNECT_FAILED naming the address', T, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fake-fpm-none-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'nobody.sock');
  const pool = new ConnectionPool(`unix:${path}`, { probeLimits: false });
  t.after(() => pool.destroy());
  const err = await pool.request({ params: PARAMS }).then(() => null, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'GW_ERR_CONNECT_FAILED');
  assert.ok((err as Error).message.includes(path), (err as Error).message);
  assert.match((err as Error).message, /ENOENT/);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  assert.equal(pool.stats.connects, 0);
});

test('connecting to a closed tcp port fails with GW_ERR_CONNECT_FAILED (ECONNREFUSED)', T, async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const pool = new ConnectionPool(`127.0.0.1:${port}`, { probeLimits: false });
  t.after(() => pool.destroy());
  const err = await pool.request({ params: PARAMS }).then(() => null, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'GW_ERR_CONNECT_FAILED');
  assert.ok((err as Error).message.includes(`127.0.0.1:${port}`), (err as Error).message);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

/**
 * A TCP listener whose accept queue is full: the kernel drops further SYNs, so a connect
 * hangs until our timeout. The listener lives in a worker thread whose event loop is blocked
 * (Atomics.wait), so nothing ever calls accept(); backlog 1 leaves room for two queued
 * connections, which filler sockets take before the pool connects.
 */
async function startFullBacklogListener(): Promise<{ port: number; stop: () => Promise<void> }> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const net = require('node:net');
    const server = net.createServer((s) => s.destroy());
    server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      Atomics.wait(workerData, 0, 0);
      server.close();
    });
    `,
    { eval: true, workerData: flag },
  );
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const fillers = Array.from({ length: 6 }, () => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    return s;
  });
  // At least one queued connection completes, proving the listener is up; the rest hang.
  await new Promise<void>((resolve) => {
    for (const s of fillers) s.once('connect', () => resolve());
  });
  return {
    port,
    stop: async () => {
      for (const s of fillers) s.destroy();
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await worker.terminate();
    },
  };
}

test('a listener that never accepts (full backlog) makes the connect fail with GW_ERR_CONNECT_TIMEOUT', T, async (t) => {
  const listener = await startFullBacklogListener();
  t.after(() => listener.stop());
  const pool = new ConnectionPool(`127.0.0.1:${listener.port}`, { probeLimits: false, connectTimeout: 200 });
  t.after(() => pool.destroy());
  const err = await pool.request({ params: PARAMS }).then(() => null, (e: unknown) => e);
  assert.equal((err as { code?: string }).code, 'GW_ERR_CONNECT_TIMEOUT');
  assert.ok((err as Error).message.includes(`127.0.0.1:${listener.port}`), (err as Error).message);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  assert.equal(pool.stats.connects, 0);
  assert.equal(pool.stats.connected, 0);
});
