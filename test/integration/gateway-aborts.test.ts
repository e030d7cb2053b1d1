/**
 * Integration, real php-fpm: clients that go away mid-request-body, mid-response or while
 * queued. The upstream exchange must be abandoned (its socket destroyed, never reused), and
 * nothing may leak: pool back to busy 0 / queued 0, no spool files, no file descriptors.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, listDir, openFilesUnder, startGateway, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;
let gw: GatewayFixture;

const CONNECTIONS = 2;

before(async () => {
  fpm = await startPhpFpm({ workers: 3 });
  gw = await startGateway({ fpm, gateway: { pool: { connections: CONNECTIONS }, bodyBufferSize: 64 * 1024 } });
});

after(async () => {
  await gw?.close();
  await fpm?.stop();
});

const quiet = (): boolean => {
  const s = gw.gw.handler.pool.stats;
  return s.busy === 0 && s.queued === 0 && s.connecting === 0;
};

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Connect, write `head` (+ `body`), resolve once `bytes` response bytes arrived (0: once written). */
function connectAndWrite(head: string, body: Buffer | null, bytes: number, port = gw.port): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = 0;
    sock.on('error', () => {});
    sock.once('close', () => reject(new Error(`closed after ${got} bytes`)));
    sock.on('data', (c: Buffer) => {
      got += c.length;
      if (bytes > 0 && got >= bytes) {
        sock.pause();
        resolve(sock);
      }
    });
    const written = (): void => {
      if (bytes === 0) resolve(sock);
    };
    if (body) {
      sock.write(head);
      sock.write(body, written);
    } else {
      sock.write(head, written);
    }
  });
}

/** Destroy a socket and wait for its close. */
function destroy(sock: net.Socket): Promise<void> {
  return new Promise((r) => {
    if (sock.destroyed) r();
    else {
      sock.once('close', () => r());
      sock.destroy();
    }
  });
}

describe('client aborts', () => {
  test('mid-response (100 MiB script output): upstream socket destroyed, pool quiet', async () => {
    const before = gw.gw.handler.pool.stats;
    const sock = await connectAndWrite(`GET /big.php?size=${100 * 1024 * 1024} HTTP/1.1\r\nHost: x\r\n\r\n`, null, 256 * 1024);
    assert.equal(gw.gw.handler.pool.stats.busy, 1, 'the upstream exchange is running');
    await destroy(sock);
    await waitFor(quiet, 'the pool to be quiet after the abort');
    const after = gw.gw.handler.pool.stats;
    assert.equal(after.failed - before.failed, 1, 'the exchange ended as failed (aborted), not completed');
    assert.equal(after.completed, before.completed);
    assert.equal(after.connected, after.idle, 'the aborted socket is not kept');
    // php-fpm and the pool still serve.
    assert.equal((await gw.fetch('/hello.php')).text, 'hello from php');
  });

  test('mid-request body with Content-Length (buffered): never dispatched, temp file released', async () => {
    const before = gw.gw.handler.pool.stats;
    const sock = await connectAndWrite(
      `POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`,
      Buffer.alloc(512 * 1024, 0x61),
      0,
    );
    await waitFor(() => openFilesUnder(gw.dirs.tmp).length === 1, 'the body to be buffered in a temp file');
    await destroy(sock);
    await waitFor(() => openFilesUnder(gw.dirs.tmp).length === 0, 'the temp file to be closed');
    const after = gw.gw.handler.pool.stats;
    assert.equal(after.dispatched, before.dispatched, 'an incomplete body never reaches php-fpm');
    assert.equal((await gw.fetch('/hello.php')).text, 'hello from php');
  });

  test('mid-request body with Content-Length (requestBuffering off): exchange abandoned, pool quiet', async (t) => {
    const streaming = await startGateway({ fpm, gateway: { pool: { connections: CONNECTIONS }, requestBuffering: false } });
    t.after(() => streaming.close());
    const before = streaming.gw.handler.pool.stats;
    const sock = await connectAndWrite(
      `POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`,
      Buffer.alloc(512 * 1024, 0x61),
      0,
      streaming.port,
    );
    await waitFor(() => streaming.gw.handler.pool.stats.dispatched > before.dispatched, 'the body to be streamed upstream');
    await destroy(sock);
    const quietHere = (): boolean => {
      const s = streaming.gw.handler.pool.stats;
      return s.busy === 0 && s.queued === 0 && s.connecting === 0;
    };
    await waitFor(quietHere, 'the pool to be quiet after the abort');
    const after = streaming.gw.handler.pool.stats;
    assert.equal(after.completed, before.completed, 'a truncated body never completes');
    assert.equal(after.failed - before.failed, 1);
    assert.equal(after.connected, after.idle);
    assert.equal((await streaming.fetch('/hello.php')).text, 'hello from php');
  });

  test('while queued: the waiting request leaves the queue', async () => {
    const signal = join(gw.dirs.base, 'queued-release');
    // Occupy every connection with a script waiting for the signal.
    const holders = await Promise.all(
      Array.from({ length: CONNECTIONS }, () =>
        connectAndWrite(`GET /wait.php?signal=${encodeURIComponent(signal)} HTTP/1.1\r\nHost: x\r\n\r\n`, null, 1),
      ),
    );
    assert.equal(gw.gw.handler.pool.stats.busy, CONNECTIONS);
    const waiting = await connectAndWrite('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n', null, 0);
    await waitFor(() => gw.gw.handler.pool.stats.queued === 1, 'the request to be queued');
    await destroy(waiting);
    await waitFor(() => gw.gw.handler.pool.stats.queued === 0, 'the queue to be empty');
    writeFileSync(signal, 'go');
    await Promise.all(holders.map(destroy));
    await waitFor(quiet, 'the pool to be quiet');
  });

  test('a batch of aborts of every kind leaks no fd, no spool file, no pool slot', async () => {
    // Warm up so the pool's own sockets exist before counting.
    await Promise.all([gw.fetch('/hello.php'), gw.fetch('/hello.php')]);
    await waitFor(quiet, 'quiet before');
    const fdsBefore = openFds();
    const statsBefore = gw.gw.handler.pool.stats;
    for (let i = 0; i < 4; i++) {
      // Mid-response.
      const a = await connectAndWrite(`GET /big.php?size=${50 * 1024 * 1024} HTTP/1.1\r\nHost: x\r\n\r\n`, null, 64 * 1024);
      await destroy(a);
      // Mid-body with Content-Length, past bodyBufferSize: buffered in a temp file.
      const b = await connectAndWrite(`POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n`, Buffer.alloc(300_000, 0x62), 0);
      await waitFor(() => openFilesUnder(gw.dirs.tmp).length > 0, 'a temp file for the body');
      await destroy(b);
      // Mid-body, chunked, past bodyBufferSize: spooled to a file first.
      const chunk = Buffer.alloc(128 * 1024, 0x63);
      const c = await connectAndWrite(
        'POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
        Buffer.concat([Buffer.from(chunk.length.toString(16) + '\r\n'), chunk, Buffer.from('\r\n')]),
        0,
      );
      await waitFor(() => openFilesUnder(gw.dirs.tmp).length > 0, 'a spool file');
      await destroy(c);
    }
    await waitFor(quiet, 'the pool to be quiet after the batch');
    await waitFor(() => openFilesUnder(gw.dirs.tmp).length === 0, 'every spool file to be closed');
    // A temp file has a name only between its open and its unlink, two file-system calls; a
    // spill opened as its client left can be in that window now (seen under a loaded full run).
    await waitFor(() => listDir(gw.dirs.tmp).length === 0, 'no temp file to keep a name');
    assert.deepEqual(listDir(gw.dirs.tmp), [], 'temp files never keep a name');
    const stats = gw.gw.handler.pool.stats;
    assert.equal(stats.completed, statsBefore.completed, 'no aborted exchange completed');
    assert.equal(stats.dispatched, stats.completed + stats.failed);
    assert.ok(stats.connected <= CONNECTIONS);
    assert.equal(stats.connected, stats.idle);
    // Server-side sockets of destroyed clients close asynchronously: wait for the count to settle.
    const slack = CONNECTIONS + 2;
    await waitFor(() => openFds() <= fdsBefore + slack, `open fds to come back near ${fdsBefore} (now ${openFds()})`);
    assert.ok(openFds() <= fdsBefore + slack, `fds before ${fdsBefore}, after ${openFds()}`);
    // Still serving.
    assert.equal((await gw.fetch('/hello.php')).text, 'hello from php');
  });
});
