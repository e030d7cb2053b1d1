/**
 * Integration, a real HTTP upstream (a node:http server started here): the `proxy` route.
 * Path mapping (both proxy_pass forms), forwarded and hop-by-hop headers, Host, bodies both
 * ways streamed, 502 and 504, a client that leaves, connection upgrades, and an egress HTTP
 * proxy from HTTP_PROXY / NO_PROXY (a CONNECT proxy started here).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import type { GatewayHandler } from '../../src/http/gateway-handler.js';
import { type GatewayServer, startConfiguredServer } from '../../src/server.js';
import { waitFor } from '../helpers/gateway.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  md5: string;
}

let upstream: http.Server;
let upstreamPort: number;
const seen: Seen[] = [];
let endlessClosed = 0;
const BIG = randomBytes(5 * 1024 * 1024);

function listen(server: http.Server | net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

before(async () => {
  upstream = http.createServer((req, res) => {
    const hash = createHash('md5');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, bytes, md5: hash.digest('hex') };
      seen.push(s);
      if (req.url!.startsWith('/slow')) {
        setTimeout(() => res.end('late'), 3000).unref();
        return;
      }
      if (req.url!.startsWith('/big')) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': BIG.length });
        res.end(BIG);
        return;
      }
      if (req.url!.startsWith('/endless')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        const t = setInterval(() => res.write('x'.repeat(1024)), 5);
        res.on('close', () => {
          clearInterval(t);
          endlessClosed++;
        });
        return;
      }
      res.writeHead(201, [
        ['Content-Type', 'application/json'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['Keep-Alive', 'timeout=77'],
        ['X-Upstream', 'yes'],
      ]);
      res.end(JSON.stringify(s));
    });
  });
  upstream.on('upgrade', (req, socket: net.Socket, head) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\nX-Path: ${req.url}\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.on('data', (c: Buffer) => socket.write(Buffer.from(c.toString().toUpperCase())));
  });
  upstreamPort = await listen(upstream);
});

after(() => {
  upstream.closeAllConnections();
  upstream.close();
});

async function serve(routes: unknown[], env: NodeJS.ProcessEnv = {}): Promise<GatewayServer<GatewayHandler>> {
  const config = resolveConfig({ base: { listen: ['127.0.0.1:0'], accessLog: false, sites: [{ root: '/', routes }] } });
  return startConfiguredServer(config, { env });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function call(url: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('proxy route', () => {
  let gw: GatewayServer<GatewayHandler>;
  before(async () => {
    gw = await serve([
      { path: '/api/', proxy: { url: `http://127.0.0.1:${upstreamPort}` } },
      { path: '/v1api/', proxy: { url: `http://127.0.0.1:${upstreamPort}/v1/` } },
      { path: '/passhost/', proxy: { url: `http://127.0.0.1:${upstreamPort}`, host: 'pass' } },
      { path: '/slow', proxy: { url: `http://127.0.0.1:${upstreamPort}`, headersTimeout: '300ms' } },
      { path: '/big', proxy: { url: `http://127.0.0.1:${upstreamPort}` } },
      { path: '/endless', proxy: { url: `http://127.0.0.1:${upstreamPort}` } },
      { path: '/ws/', proxy: { url: `http://127.0.0.1:${upstreamPort}` } },
      { path: '/refused/', proxy: { url: 'http://127.0.0.1:1' } },
      { path: '/', static: { root: '/nonexistent-static-root' } },
    ]);
  });
  after(() => gw?.close());

  test('a url without a path sends the request URI unchanged; one with a path replaces the prefix', async () => {
    const a = JSON.parse((await call(gw.url, '/api/x/y?q=1&r=%20')).body.toString()) as Seen;
    assert.equal(a.url, '/api/x/y?q=1&r=%20');
    const b = JSON.parse((await call(gw.url, '/v1api/users/7?full=1')).body.toString()) as Seen;
    assert.equal(b.url, '/v1/users/7?full=1');
  });

  test('forwarded headers added, hop-by-hop ones dropped both ways, Host rewritten or passed', async () => {
    const r = await call(gw.url, '/api/h', {
      headers: { Host: 'site.test', 'X-Forwarded-For': '203.0.113.9', Connection: 'keep-alive, X-Drop-Me', 'X-Drop-Me': '1', 'Keep-Alive': 'timeout=9', TE: 'trailers', 'X-Keep': 'kept' },
    });
    assert.equal(r.status, 201);
    const s = JSON.parse(r.body.toString()) as Seen;
    assert.equal(s.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(s.headers['x-forwarded-proto'], 'http');
    assert.equal(s.headers['x-forwarded-host'], 'site.test');
    assert.equal(s.headers['host'], `127.0.0.1:${upstreamPort}`, "nginx's default: the upstream's host");
    assert.equal(s.headers['x-keep'], 'kept');
    for (const h of ['x-drop-me', 'keep-alive', 'te']) assert.equal(s.headers[h], undefined, h);
    // Response: end-to-end headers kept (both cookies), the upstream's Keep-Alive dropped.
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(r.headers['x-upstream'], 'yes');
    assert.notEqual(r.headers['keep-alive'], 'timeout=77', "the upstream's Keep-Alive is not relayed");
    const p = JSON.parse((await call(gw.url, '/passhost/x', { headers: { Host: 'site.test' } })).body.toString()) as Seen;
    assert.equal(p.headers['host'], 'site.test');
  });

  test('a 5 MiB upload and a 5 MiB download stream through intact', async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const up = JSON.parse((await call(gw.url, '/api/upload', { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } })).body.toString()) as Seen;
    assert.equal(up.bytes, body.length);
    assert.equal(up.md5, createHash('md5').update(body).digest('hex'));
    const down = await call(gw.url, '/big');
    assert.equal(down.status, 200);
    assert.ok(down.body.equals(BIG));
  });

  test('a chunked upload (no Content-Length) streams through', async () => {
    const parts = [randomBytes(70_000), randomBytes(3)];
    const got = await new Promise<Seen>((resolve, reject) => {
      const req = http.request(new URL('/api/chunked', gw.url), { method: 'PUT', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as Seen));
      });
      req.on('error', reject);
      for (const p of parts) req.write(p);
      req.end();
    });
    assert.equal(got.method, 'PUT');
    assert.equal(got.bytes, 70_003);
    assert.equal(got.md5, createHash('md5').update(Buffer.concat(parts)).digest('hex'));
  });

  test('an upstream that answers too late: 504; one that refuses: 502', async () => {
    assert.equal((await call(gw.url, '/slow')).status, 504);
    assert.equal((await call(gw.url, '/refused/x')).status, 502);
  });

  test('a client that leaves mid-response aborts the upstream request', async () => {
    const before = endlessClosed;
    await new Promise<void>((resolve, reject) => {
      const req = http.request(new URL('/endless', gw.url), { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.once('close', () => resolve());
      req.once('error', reject);
      req.end();
    });
    // The endless response only ends when its connection does: undici aborted it.
    await waitFor(() => endlessClosed > before, 'the upstream response to be closed');
  });

  test('a connection upgrade passes through: the 101 head, then bytes both ways', async () => {
    const port = Number(new URL(gw.url).port);
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    s.write('GET /ws/chat HTTP/1.1\r\nHost: site.test\r\nUpgrade: echo-upper\r\nConnection: Upgrade\r\n\r\n');
    await waitFor(() => got.includes('\r\n\r\n'), 'the 101 head');
    assert.match(got, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(got, /x-path: \/ws\/chat/i);
    got = '';
    s.write('hello');
    await waitFor(() => got === 'HELLO', 'the echo through the tunnel');
    s.destroy();
  });

  test('an upgrade on a route that does not proxy is answered as a plain request', async () => {
    const port = Number(new URL(gw.url).port);
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let closed = false;
    s.on('data', (c: Buffer) => (got += c.toString()));
    s.on('close', () => (closed = true));
    s.write('GET /nothing-here HTTP/1.1\r\nHost: site.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n');
    await waitFor(() => closed, 'the answer and the close');
    assert.match(got, /^HTTP\/1\.1 404 /);
  });
});

describe('egress proxy', () => {
  let proxy: http.Server;
  let proxyPort: number;
  const connects: string[] = [];
  before(async () => {
    // A CONNECT proxy, as undici's ProxyAgent tunnels through one.
    proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, client: net.Socket, head) => {
      connects.push(req.url!);
      const [host, port] = req.url!.split(':');
      const target = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) target.write(head);
        target.pipe(client);
        client.pipe(target);
      });
      target.on('error', () => client.destroy());
      client.on('error', () => target.destroy());
    });
    proxyPort = await listen(proxy);
  });
  after(() => {
    proxy.closeAllConnections();
    proxy.close();
  });

  test('HTTP_PROXY set: proxy routes go through it; NO_PROXY matching the upstream: they do not', async () => {
    const via = await serve([{ path: '/', proxy: { url: `http://127.0.0.1:${upstreamPort}` } }], { HTTP_PROXY: `http://127.0.0.1:${proxyPort}` });
    try {
      const r = await call(via.url, '/through');
      assert.equal(r.status, 201);
      assert.deepEqual(connects, [`127.0.0.1:${upstreamPort}`]);
    } finally {
      await via.close();
    }
    const direct = await serve([{ path: '/', proxy: { url: `http://127.0.0.1:${upstreamPort}` } }], { HTTP_PROXY: `http://127.0.0.1:${proxyPort}`, NO_PROXY: '127.0.0.1' });
    try {
      assert.equal((await call(direct.url, '/direct')).status, 201);
      assert.equal(connects.length, 1, 'no CONNECT for an upstream NO_PROXY names');
    } finally {
      await direct.close();
    }
  });
});
