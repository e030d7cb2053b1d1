/**
 * Integration, real php-fpm: upstream failures and limits as HTTP statuses — unreachable
 * upstream 502, read timeout 504, pool queue full / queue timeout 503 with Retry-After,
 * php-fpm's "Primary script unknown" 404, a header too large for one FastCGI record 431.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from 'undici';
import { createFastCgiHandler } from '../../src/http/handler.js';
import { httpRequest, makeGatewayRoot, parseRawResponses, rawExchange, startGateway, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: 3 });
});

after(async () => {
  await fpm?.stop();
});

describe('upstream unreachable', () => {
  test('a unix socket with nothing behind it → 502', async (t) => {
    const dirs = makeGatewayRoot();
    t.after(() => dirs.remove());
    const g = await startGateway({ dirs, upstream: `unix:${join(dirs.base, 'nobody-listens.sock')}` });
    t.after(() => g.close());
    const res = await g.fetch('/hello.php');
    assert.equal(res.status, 502);
    assert.equal(res.text, '502 Bad Gateway\n');
    assert.ok(g.logs.lines.some((l) => l['code'] === 'GW_ERR_CONNECT_FAILED'), 'the cause is logged with its code');
    // Static files do not need the upstream.
    assert.equal((await g.fetch('/hello.txt')).status, 200);
  });

  test('a closed TCP port → 502', async (t) => {
    // Reserve a port, then close it: nothing listens there any more.
    const srv = http.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const g = await startGateway({ upstream: `127.0.0.1:${port}` });
    t.after(() => g.close());
    assert.equal((await g.fetch('/hello.php')).status, 502);
  });
});

describe('timeouts and a full pool', () => {
  test('read timeout → 504', async (t) => {
    const g = await startGateway({ fpm, gateway: { pool: { readTimeout: 300 } } });
    t.after(() => g.close());
    const res = await g.fetch('/sleep.php?ms=2500');
    assert.equal(res.status, 504);
    assert.ok(g.logs.lines.some((l) => l['code'] === 'GW_ERR_UPSTREAM_READ_TIMEOUT'));
    await waitFor(() => g.gw.handler.pool.stats.busy === 0, 'the timed-out connection to be dropped');
  });

  test('queue full → 503 with Retry-After; the running request is unaffected', async (t) => {
    const g = await startGateway({ fpm, gateway: { pool: { connections: 1, maxQueue: 0 } } });
    t.after(() => g.close());
    const other = new Client(g.url);
    t.after(() => other.close());
    const signal = join(g.dirs.base, 'release');
    // Hold the only connection: wait.php answers its head, then waits for the signal file.
    const running = await g.client.request({ path: `/wait.php?signal=${encodeURIComponent(signal)}`, method: 'GET' });
    assert.equal(running.statusCode, 200);
    assert.equal(g.gw.handler.pool.stats.busy, 1);
    const res = await httpRequest(other, '/hello.php');
    assert.equal(res.status, 503);
    assert.match(String(res.headers['retry-after']), /^\d+$/);
    assert.ok(g.logs.lines.some((l) => l['code'] === 'GW_ERR_POOL_QUEUE_FULL'));
    writeFileSync(signal, 'go');
    assert.equal(await running.body.text(), 'first-chunk\nsecond-chunk signalled\n');
    // Once free, the pool serves again.
    assert.equal((await httpRequest(other, '/hello.php')).text, 'hello from php');
  });

  test('queue timeout → 503 with Retry-After', async (t) => {
    const g = await startGateway({ fpm, gateway: { pool: { connections: 1, maxQueue: 10, queueTimeout: 200 } } });
    t.after(() => g.close());
    const other = new Client(g.url);
    t.after(() => other.close());
    const signal = join(g.dirs.base, 'release');
    const running = await g.client.request({ path: `/wait.php?signal=${encodeURIComponent(signal)}`, method: 'GET' });
    const res = await httpRequest(other, '/hello.php');
    assert.equal(res.status, 503);
    assert.ok(res.headers['retry-after'] !== undefined);
    assert.ok(g.logs.lines.some((l) => l['code'] === 'GW_ERR_POOL_QUEUE_TIMEOUT'));
    writeFileSync(signal, 'go');
    assert.equal(await running.body.text(), 'first-chunk\nsecond-chunk signalled\n');
  });
});

describe('php-fpm refuses the script', () => {
  test('"Primary script unknown" (SCRIPT_FILENAME that does not exist) → 404', async (t) => {
    const g = await startGateway({ fpm, gateway: { params: { SCRIPT_FILENAME: '/nonexistent/dir/gone.php' } } });
    t.after(() => g.close());
    const res = await g.fetch('/hello.php');
    assert.equal(res.status, 404);
    assert.doesNotMatch(res.text, /hello from php/);
    const stderr = g.logs.lines.filter((l) => typeof l['stderr'] === 'string').map((l) => l['stderr']).join('\n');
    assert.match(stderr, /Primary script unknown/);
  });
});

describe('request headers too large', () => {
  test('a 100 KiB header value → 431 (server with a raised maxHeaderSize)', async (t) => {
    const dirs = makeGatewayRoot();
    t.after(() => dirs.remove());
    const handler = createFastCgiHandler({ root: dirs.root, upstream: fpm.address });
    const server = http.createServer({ maxHeaderSize: 1 << 20 }, handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await handler.close();
    });
    const port = (server.address() as AddressInfo).port;
    const big = 'v'.repeat(100 * 1024);
    const wire = `GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\nConnection: close\r\n\r\n`;
    const [res] = parseRawResponses(await rawExchange(port, wire));
    assert.equal(res?.status, 431);
    assert.equal(handler.pool.stats.busy, 0);
    // A 10 KiB header is fine on the same server.
    const ok = parseRawResponses(await rawExchange(port, `GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(10240)}\r\nConnection: close\r\n\r\n`));
    assert.equal(ok[0]?.status, 200);
  });

  test('with node:http defaults the server answers 431 itself', async (t) => {
    const g = await startGateway({ fpm });
    t.after(() => g.close());
    const wire = `GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(100 * 1024)}\r\n\r\n`;
    const [res] = parseRawResponses(await rawExchange(g.port, wire));
    assert.equal(res?.status, 431);
    assert.equal(g.gw.handler.pool.stats.dispatched, 0);
  });
});
