/**
 * Integration, real php-fpm: close() (what SIGTERM runs) lets running requests finish within
 * shutdownTimeout, then cuts what is left, open tunnels included, so that a shutdown always
 * ends; the upstream requests it cut are abandoned and the pools close.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { startConfiguredServer, startGatewayServer } from '../../src/server.js';
import { GATEWAY_ROOT_FIXTURE, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;
before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
});
after(() => fpm?.stop());

function get(url: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('error', (e) => resolve({ error: e.message }));
  });
}

test('a request that finishes within shutdownTimeout gets its whole answer', async () => {
  const gw = await startGatewayServer({ root: GATEWAY_ROOT_FIXTURE, upstream: fpm.address, listen: '127.0.0.1:0', accessLog: false, shutdownTimeout: '20s' });
  const pending = get(`${gw.url}/sleep.php?ms=300`);
  await waitFor(() => gw.handler.pool.stats.busy === 1, 'the request to be running');
  await gw.close();
  assert.deepEqual(await pending, { status: 200, body: 'slept' });
});

test('past shutdownTimeout a running request and an open tunnel are cut, and close() ends', async () => {
  const upstream = http.createServer();
  upstream.on('upgrade', (_req, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const port = (upstream.address() as net.AddressInfo).port;
  const config = resolveConfig({
    base: {
      listen: ['127.0.0.1:0'],
      accessLog: false,
      shutdownTimeout: '200ms',
      sites: [{ root: GATEWAY_ROOT_FIXTURE, routes: [{ path: '/ws/', proxy: { url: `http://127.0.0.1:${port}` } }, { path: '/', php: { upstream: fpm.address } }] }],
    },
  });
  const gw = await startConfiguredServer(config);
  try {
    const slow = get(`${gw.url}/sleep.php?ms=10000`);
    const tunnel = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
    let head = '';
    let tunnelClosed = false;
    tunnel.on('data', (c: Buffer) => (head += c.toString()));
    tunnel.on('close', () => (tunnelClosed = true));
    tunnel.on('error', () => {});
    tunnel.write('GET /ws/x HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n');
    await waitFor(() => head.includes('101'), 'the tunnel to open');
    const pool = [...gw.handler.pools.values()][0]!;
    await waitFor(() => pool.stats.busy === 1, 'the slow request to be running');
    await gw.close();
    const r = await slow;
    assert.ok('error' in r, `the slow request was cut (got ${JSON.stringify(r)})`);
    await waitFor(() => tunnelClosed, 'the tunnel to be closed');
    assert.equal(pool.stats.busy, 0, 'its upstream request was abandoned');
  } finally {
    upstream.closeAllConnections();
    upstream.close();
  }
});
