/**
 * Integration, real php-fpm (pm = static, 4 workers, as in the probe campaign): one test per
 * way a few slow, hostile or unlucky clients could crash the gateway or take a site down.
 *
 *   1 chunked body spooled to disk, client gone at once   → process survives
 *   2 pipelined POST queued, then hang-up or garbage       → no upstream connection leaks
 *   3 4 slow uploaders on a 4-worker pool                  → normal requests and status served
 *   4 gateway A idle after load, gateway B on the same pool → B and status served
 *   6 a client that never reads                            → dropped at the send timeout
 *   7 pipelined GET + garbage                              → 200, then 400, then close
 *   8 a head that never ends                               → 408 at the header timeout
 *   + a body that stops mid-way                            → 408 at the body timeout
 *   + a deep pipeline on one connection                    → one php-fpm connection at a time
 * (5, the slow reader of a 100 MiB response, is in gateway-memory.test.ts: it measures RSS.)
 *
 * No assertion is on timing: timeouts are set short so that the old failure modes (a wedge,
 * a 503 after the queue timeout, a 400 long after the deadline) show up as wrong answers.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from 'undici';
import { ConnectionPool } from '../../src/upstream/pool.js';
import { type GatewayFixture, httpRequest, listDir, openFilesUnder, parseRawResponses, startGateway, waitFor } from '../helpers/gateway.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';
import { GATEWAY_ROOT_FIXTURE } from '../helpers/gateway.js';

const WORKERS = 4;
let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: WORKERS });
});

after(async () => {
  await fpm?.stop();
});

/** php-fpm's full status page through a short-lived connection of our own. */
async function fpmStatus(timeout = 5000): Promise<{ processes: Array<{ state: string; 'request uri': string }> }> {
  const pool = new ConnectionPool(fpm.address, { connections: 1, keepAlive: false, probeLimits: false, readTimeout: timeout, connectTimeout: timeout });
  try {
    const res = await pool.request({ params: { SCRIPT_NAME: '/status', SCRIPT_FILENAME: '/status', QUERY_STRING: 'json&full', REQUEST_METHOD: 'GET' } });
    const text = res.stdout.toString('latin1');
    return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { processes: Array<{ state: string; 'request uri': string }> };
  } finally {
    await pool.close();
  }
}

/** php-fpm workers stuck reading a request's params or body from us. */
async function workersReadingRequest(): Promise<number> {
  const s = await fpmStatus();
  return s.processes.filter((p) => p.state === 'Getting request information').length;
}

const quiet = (g: GatewayFixture): boolean => {
  const s = g.gw.handler.pool.stats;
  return s.busy === 0 && s.queued === 0 && s.connecting === 0;
};

/** A raw connection that records what it receives and when it closes. */
function rawClient(port: number): { sock: net.Socket; data: () => Buffer; closed: Promise<void>; isClosed: () => boolean } {
  const sock = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let closedFlag = false;
  sock.on('error', () => {});
  sock.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((r) =>
    sock.once('close', () => {
      closedFlag = true;
      r();
    }),
  );
  return { sock, data: () => Buffer.concat(chunks), closed, isClosed: () => closedFlag };
}

function chunkedBody(total: number, piece = 64 * 1024): Buffer {
  const parts: Buffer[] = [];
  for (let left = total; left > 0; left -= piece) {
    const n = Math.min(piece, left);
    parts.push(Buffer.from(`${n.toString(16)}\r\n`), Buffer.alloc(n, 0x61), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

describe('1: a chunked body spooled to disk, the client gone right after sending it', () => {
  test('300 attempts (FIN or reset right after the last chunk) do not crash the gateway process', { timeout: 120_000 }, async (t) => {
    // Its own process: a crash there is an exit we can see, not the end of this test run.
    const gw = await startGatewayProcess({ root: GATEWAY_ROOT_FIXTURE, upstream: fpm.address, listen: '127.0.0.1:0', accessLog: false, bodyBufferSize: 1024 * 1024 });
    t.after(() => gw.stop());
    const port = Number(new URL(gw.url).port);
    const body = chunkedBody(2 * 1024 * 1024);
    const head = Buffer.from('POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 300; i++) {
      const c = rawClient(port);
      // A refused connect (a crashed gateway) ends the loop's wait too; the check below fails.
      await new Promise<void>((r) => {
        c.sock.once('connect', () => r());
        c.sock.once('error', () => r());
      });
      c.sock.write(head);
      c.sock.write(body, () => {
        if (i % 2 === 0) c.sock.end();
        else c.sock.destroy();
      });
      await c.closed.then(
        () => undefined,
        () => undefined,
      );
    }
    const client = new Client(gw.url);
    t.after(() => client.close());
    const res = await httpRequest(client, '/hello.php');
    assert.equal(res.text, 'hello from php', `the gateway still serves; its stderr: ${gw.stderr().slice(-2000)}`);
    assert.doesNotMatch(gw.stderr(), /Unhandled|ENOENT|uncaught/i);
  });
});

describe('2: a pipelined POST queued in the pool, then the client hangs up or sends garbage', () => {
  for (const requestBuffering of [true, false]) {
    test(`no upstream connection is left waiting for body bytes (requestBuffering ${requestBuffering})`, { timeout: 60_000 }, async (t) => {
      const CONNECTIONS = 2;
      const g = await startGateway({ fpm, gateway: { requestBuffering, pool: { connections: CONNECTIONS, queueTimeout: 20_000 } } });
      t.after(() => g.close());
      const signal = join(g.dirs.base, `release-${requestBuffering}`);
      // Every pool connection busy with a script that waits for the signal file.
      const holders = Array.from({ length: CONNECTIONS }, () => {
        const c = rawClient(g.port);
        c.sock.write(`GET /wait.php?signal=${encodeURIComponent(signal)} HTTP/1.1\r\nHost: x\r\n\r\n`);
        return c;
      });
      await waitFor(() => g.gw.handler.pool.stats.busy === CONNECTIONS, 'the holders to take every connection');
      const victims: Array<ReturnType<typeof rawClient>> = [];
      for (let i = 0; i < 3; i++) {
        // (a) a GET, then a POST whose body stops half-way, then the client hangs up.
        const a = rawClient(g.port);
        a.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
        // (b) a GET, then a whole POST, then bytes that are not HTTP.
        const b = rawClient(g.port);
        b.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloNOT HTTP\x00\r\n\r\n');
        victims.push(a, b);
      }
      await waitFor(() => g.gw.handler.pool.stats.queued >= 3, 'the pipelined requests to queue');
      for (const v of victims.filter((_, i) => i % 2 === 0)) v.sock.destroy();
      writeFileSync(signal, 'go');
      for (const h of holders) h.sock.destroy();
      // Every exchange ends: nothing waits for body bytes that will never come.
      await waitFor(() => quiet(g), 'the pool to be quiet', 20_000);
      assert.equal(await workersReadingRequest(), 0, 'no php-fpm worker waits for request information');
      await waitFor(() => g.gw.handler.memoryBudget.used === 0, 'buffered bodies to give their memory back');
      // The pool still has its whole budget: as many parallel requests as connections succeed.
      const results = await Promise.all(Array.from({ length: CONNECTIONS * 2 }, () => g.fetch('/hello.php')));
      assert.deepEqual(results.map((r) => r.status), Array(CONNECTIONS * 2).fill(200));
      for (const v of victims) v.sock.destroy();
    });
  }
});

describe('3: four slow uploaders on a four-worker pool', () => {
  test('normal requests are served and php-fpm status answers while 4 clients trickle request bodies', { timeout: 60_000 }, async (t) => {
    // A small memory share, so the buffered bodies show as temp files.
    const g = await startGateway({ fpm, gateway: { bodyBufferSize: 16 * 1024, pool: { connections: WORKERS, queueTimeout: 3000 } } });
    const slow = Array.from({ length: WORKERS }, () => {
      const c = rawClient(g.port);
      c.sock.write('POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
      return c;
    });
    const trickle = setInterval(() => {
      for (const c of slow) c.sock.write('x');
    }, 100);
    // Before the gateway's close (after hooks run in order), which waits for these clients.
    const stop = (): void => {
      clearInterval(trickle);
      for (const c of slow) c.sock.destroy();
    };
    t.after(stop);
    // The uploads have reached the handler: buffered into temp files (or, streamed, they would
    // hold every upstream connection).
    await waitFor(
      () => openFilesUnder(g.dirs.tmp).length === WORKERS || g.gw.handler.pool.stats.dispatched >= WORKERS,
      'the four uploads to reach the handler',
    );
    // 20 normal requests, 4 at a time, and the status page are answered meanwhile.
    for (let round = 0; round < 5; round++) {
      const res = await Promise.all(Array.from({ length: 4 }, () => g.fetch('/hello.php')));
      assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200]);
    }
    assert.equal(await workersReadingRequest(), 0);
    assert.equal(g.gw.handler.pool.stats.busy, 0, 'no upstream connection is held by a slow uploader');
    assert.ok(slow.every((c) => !c.isClosed()), 'the slow uploaders are still connected (within their body timeout)');
    stop();
    await g.close();
  });
});

describe('4: two gateways on one pool', () => {
  test('gateway A idle after a burst does not starve gateway B or the status page', { timeout: 60_000 }, async (t) => {
    const a = await startGateway({ fpm, gateway: { pool: { connections: WORKERS } } });
    t.after(() => a.close());
    // B gives up early, so a starved B shows as errors instead of slow successes.
    const b = await startGateway({ fpm, gateway: { pool: { connections: WORKERS, queueTimeout: 8000, readTimeout: 8000 } } });
    t.after(() => b.close());
    const clientsA = Array.from({ length: 8 }, () => new Client(a.url));
    t.after(() => Promise.all(clientsA.map((c) => c.close())));
    const burst = await Promise.all(clientsA.map((c) => httpRequest(c, '/sleep.php?ms=50')));
    assert.ok(burst.every((r) => r.status === 200));
    assert.ok(a.gw.handler.pool.stats.idle > 0, 'A keeps its connections after the burst');
    // B and the status page right away, while A's idle sockets still pin the workers: they
    // must go soon after A's demand dropped.
    const clientsB = Array.from({ length: 8 }, () => new Client(b.url));
    t.after(() => Promise.all(clientsB.map((c) => c.close())));
    const [results, status] = await Promise.all([Promise.all(clientsB.map((c) => httpRequest(c, '/hello.php'))), fpmStatus(5000)]);
    assert.deepEqual(results.map((r) => r.status), Array(8).fill(200));
    assert.equal(status.processes.length, WORKERS);
    await waitFor(() => a.gw.handler.pool.stats.connected === 0, "A's idle connections to close");
  });

  test('B is served while A is still warm: A holds at most its connections budget', { timeout: 60_000 }, async (t) => {
    // With connections = 2 each, A and B together stay within the 4 workers.
    const a = await startGateway({ fpm, gateway: { pool: { connections: 2 } } });
    t.after(() => a.close());
    const b = await startGateway({ fpm, gateway: { pool: { connections: 2, queueTimeout: 8000, readTimeout: 8000 } } });
    t.after(() => b.close());
    await Promise.all(Array.from({ length: 4 }, () => a.fetch('/hello.php')));
    const results = await Promise.all(Array.from({ length: 6 }, () => b.fetch('/hello.php')));
    assert.deepEqual(results.map((r) => r.status), Array(6).fill(200));
  });
});

describe('6: a client that never reads', () => {
  test('is dropped at the send timeout; its upstream request and spill file are released', { timeout: 60_000 }, async (t) => {
    const g = await startGateway({ fpm, gateway: { sendTimeout: 1000 } });
    t.after(() => g.close());
    const clients = Array.from({ length: 4 }, () => {
      const c = rawClient(g.port);
      c.sock.pause(); // never read
      c.sock.write(`GET /big.php?size=${50 * 1024 * 1024} HTTP/1.1\r\nHost: x\r\n\r\n`);
      return c;
    });
    t.after(() => {
      for (const c of clients) c.sock.destroy();
    });
    const drops = (): number => g.logs.lines.filter((l) => l['code'] === 'GW_ERR_CLIENT_SEND_TIMEOUT').length;
    await waitFor(() => drops() === 4, 'each client to be dropped, with its code logged', 20_000);
    // The server side is gone: node:http holds no connection for them any more.
    const open = (): Promise<number> => new Promise((r) => g.gw.listeners[0]!.server.getConnections((_e, n) => r(n)));
    assert.equal(await open(), 0, 'no client connection left open on the server');
    // A paused socket notices nothing; once it reads, it sees the close after what it was sent.
    for (const c of clients) c.sock.resume();
    await Promise.all(clients.map((c) => c.closed));
    assert.ok(clients.every((c) => c.data().length < 50 * 1024 * 1024), 'none got the whole response');
    await waitFor(() => quiet(g), 'the pool to be quiet');
    await waitFor(() => openFilesUnder(g.dirs.tmp).length === 0, 'the spill files to be closed');
    assert.deepEqual(listDir(g.dirs.tmp), []);
    assert.equal(g.gw.handler.memoryBudget.used, 0, 'no memory left reserved for the dropped responses');
    assert.equal((await g.fetch('/hello.php')).text, 'hello from php');
  });
});

describe('7 and 8: answers in request order, 408 at the header timeout', () => {
  let g: GatewayFixture;
  before(async () => {
    g = await startGateway({ fpm, gateway: { headersTimeout: 1000, clientBodyTimeout: 1000 } });
  });
  after(() => g?.close());

  test('pipelined GET then garbage: 200, then 400, then close', async () => {
    const c = rawClient(g.port);
    c.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\nBOGUS\x01 /\r\n\r\n');
    await c.closed;
    const responses = parseRawResponses(c.data());
    assert.deepEqual(responses.map((r) => r.status), [200, 400]);
    assert.equal(responses[0]!.body.toString(), 'hello from php');
  });

  test('two pipelined GETs, a slow one first, then garbage: 200, 200, 400 in that order', async () => {
    const c = rawClient(g.port);
    c.sock.write('GET /sleep.php?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.php HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n');
    await c.closed;
    const responses = parseRawResponses(c.data());
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 400]);
    assert.equal(responses[1]!.body.toString(), 'hello from php');
  });

  test('a head that never ends gets 408 and the connection closed', async () => {
    const c = rawClient(g.port);
    c.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await c.closed;
    const [res] = parseRawResponses(c.data());
    assert.equal(res?.status, 408);
  });

  test('a body that stops mid-way gets 408 and the connection closed; nothing reaches php-fpm', async () => {
    const before = g.gw.handler.pool.stats.dispatched;
    const c = rawClient(g.port);
    c.sock.write('POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of it');
    await c.closed;
    const [res] = parseRawResponses(c.data());
    assert.equal(res?.status, 408);
    assert.equal(g.gw.handler.pool.stats.dispatched, before);
  });
});

describe('pipelining: one client connection, one php-fpm connection at a time', () => {
  test('requests pipelined on one connection run one after another, as nginx runs them', { timeout: 60_000 }, async (t) => {
    const g = await startGateway({ fpm, gateway: { pool: { connections: WORKERS } } });
    t.after(() => g.close());
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, g.gw.handler.pool.stats.busy);
    }, 2);
    t.after(() => clearInterval(sampler));
    const c = rawClient(g.port);
    const sleeps = Array.from({ length: WORKERS }, (_, i) => `GET /sleep.php?ms=${100 + i} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    c.sock.write(`${sleeps}GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await c.closed;
    clearInterval(sampler);
    const responses = parseRawResponses(c.data());
    assert.deepEqual(responses.map((r) => r.status), Array(WORKERS + 1).fill(200));
    assert.equal(responses.at(-1)!.body.toString(), 'hello from php');
    // Each sleep lasts 100 ms and the sampler looks every 2 ms: running them side by side
    // (what node:http's own pipelining would do) shows up as more than one busy connection.
    assert.ok(g.gw.handler.pool.stats.dispatched >= WORKERS + 1, 'every request went through the pool');
    assert.equal(most, 1, 'at most one pool connection was busy for the pipelining client');
  });
});
