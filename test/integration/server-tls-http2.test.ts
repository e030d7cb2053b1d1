/**
 * Integration, real php-fpm: TLS listeners with HTTP/2 by ALPN and HTTP/1.1 on the same port,
 * SNI choosing each site's certificate, the HTTP → HTTPS redirect, and the gateway's behaviour
 * over HTTP/2: the same $_SERVER as over HTTP/1.1 (apart from SERVER_PROTOCOL), no connection
 * headers, errors, request bodies without Content-Length, per-stream flow control, and a
 * stream reset that cancels its upstream request. Certificates are re-read on reload.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { constants as h2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { type ConfiguredServer, startConfiguredServer } from '../../src/server.js';
import type { ConnectionPool } from '../../src/upstream/pool.js';
import { captureLogs, GATEWAY_ROOT_FIXTURE, type LogCapture, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';
import { certificateFor, type H2Answer, h2Connect, h2Request, httpsRequest, tlsFixture } from '../helpers/tls.js';

let fpm: PhpFpm;
let gw: ConfiguredServer;
let logs: LogCapture;
let dir: string;
let tlsUrl: string;
let tlsPort: number;
let plainUrl: string;
let redirectUrl: string;
let unixUrl: string;

const configOf = (defaultCert: { cert: string; key: string }) =>
  resolveConfig({
    base: {
      listen: ['127.0.0.1:0', { address: '127.0.0.1:0', tls: defaultCert }, { address: '127.0.0.1:0', redirectToHttps: 8443 }, { address: `unix:${join(dir, 'gw.sock')}`, mode: '0640' }],
      upstreams: { app: { servers: [fpm.address], connections: 2 } },
      sites: [
        { hosts: ['a.test'], tls: tlsFixture('a.test'), root: GATEWAY_ROOT_FIXTURE, routes: [{ path: '/', php: { upstream: 'app', maxBodySize: '1m' } }] },
        { hosts: ['*'], root: GATEWAY_ROOT_FIXTURE, routes: [{ path: '/', php: { upstream: 'app', maxBodySize: '1m' } }] },
      ],
    },
  });

before(async () => {
  fpm = await startPhpFpm({ workers: 3 });
  dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-tls-'));
  // The default certificate lives in a file the reload test replaces.
  copyFileSync(tlsFixture('default').cert, join(dir, 'cert.pem'));
  copyFileSync(tlsFixture('default').key, join(dir, 'cert.key'));
  logs = captureLogs();
  gw = await startConfiguredServer(configOf({ cert: join(dir, 'cert.pem'), key: join(dir, 'cert.key') }), { logger: logs.logger });
  [plainUrl, tlsUrl, redirectUrl, unixUrl] = gw.urls as [string, string, string, string];
  tlsPort = Number(new URL(tlsUrl).port);
});

after(async () => {
  await gw?.close();
  await fpm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Env = { server: Record<string, string>; body_len: number; body_md5: string };

/** $_SERVER keys that differ between any two requests, whatever the protocol. */
const PER_REQUEST = ['REMOTE_PORT', 'REQUEST_TIME', 'REQUEST_TIME_FLOAT'];

describe('TLS and HTTP/2', () => {
  test('HTTP/2 by ALPN and HTTP/1.1 on the same port; PHP sees the same $_SERVER apart from SERVER_PROTOCOL', async () => {
    const headers = { 'user-agent': 'parity', accept: 'application/json', cookie: 'a=1; b=2', 'x-custom': 'v' };
    const session = await h2Connect(tlsUrl);
    try {
      const over2 = await h2Request(session, { ':path': '/env.php/extra?q=1', ':authority': `localhost:${tlsPort}`, ...headers });
      const over1 = await httpsRequest(tlsUrl, '/env.php/extra?q=1', { host: `localhost:${tlsPort}`, headers });
      assert.equal(over1.alpn, 'http/1.1');
      assert.equal(over2.status, 200);
      assert.equal(over1.status, 200);
      const s2 = (JSON.parse(over2.body.toString()) as Env).server;
      const s1 = (JSON.parse(over1.body) as Env).server;
      assert.equal(s2['SERVER_PROTOCOL'], 'HTTP/2.0');
      assert.equal(s1['SERVER_PROTOCOL'], 'HTTP/1.1');
      assert.equal(s2['HTTPS'], 'on');
      assert.equal(s2['REQUEST_SCHEME'], 'https');
      assert.equal(s2['HTTP_HOST'], `localhost:${tlsPort}`, ':authority is the Host');
      assert.equal(s2['SERVER_NAME'], 'localhost');
      assert.equal(s2['HTTP_COOKIE'], 'a=1; b=2');
      // HTTP/1.1's own connection header has no HTTP/2 equivalent (RFC 9113 §8.2.2).
      const strip = (s: Record<string, string>): Record<string, string> => {
        const out = { ...s };
        for (const k of [...PER_REQUEST, 'SERVER_PROTOCOL', 'HTTP_CONNECTION']) delete out[k];
        return out;
      };
      assert.deepEqual(strip(s2), strip(s1));
      assert.ok(!Object.keys(s2).some((k) => k.startsWith('HTTP_:')), 'no pseudo-header reaches PHP');
    } finally {
      session.close();
    }
  });

  test('HTTP/2 answers carry no connection-specific headers, errors included', async () => {
    const session = await h2Connect(tlsUrl);
    try {
      const ok = await h2Request(session, { ':path': '/hello.php' });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.toString(), 'hello from php');
      const missing = await h2Request(session, { ':path': '/nope.php' });
      assert.equal(missing.status, 404);
      // 413 over HTTP/1 says Connection: close; over HTTP/2 only this stream ends.
      const big = await new Promise<H2Answer>((resolve, reject) => {
        // Headers only: the body would follow, but the answer comes first.
        const s = session.request({ ':path': '/echo.php', ':method': 'POST', 'content-length': String(2 * 1024 * 1024) }, { endStream: false });
        let head: Record<string, unknown> = {};
        s.on('response', (h) => {
          head = h;
        });
        s.resume();
        s.on('close', () => resolve({ status: Number(head[':status']), headers: head as H2Answer['headers'], body: Buffer.alloc(0) }));
        s.on('error', reject);
      });
      assert.equal(big.status, 413);
      for (const a of [ok, missing, big]) {
        for (const h of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']) assert.equal(a.headers[h], undefined, `${h} on a ${a.status}`);
      }
      // The session survives all of it.
      assert.equal((await h2Request(session, { ':path': '/hello.php' })).status, 200);
    } finally {
      session.close();
    }
  });

  test('a request body without Content-Length reaches PHP whole, with its length', async () => {
    const session = await h2Connect(tlsUrl);
    try {
      const body = Buffer.alloc(300 * 1024, 0x62);
      const r = await h2Request(session, { ':path': '/env.php', ':method': 'POST', 'content-type': 'application/octet-stream' }, body);
      const env = JSON.parse(r.body.toString()) as Env;
      assert.equal(env.body_len, body.length);
      assert.equal(env.server['CONTENT_LENGTH'], String(body.length), 'buffered, then sent with its length (nginx does the same)');
    } finally {
      session.close();
    }
  });

  test('flow control per stream: a stream the client does not read does not hold back another', async () => {
    const session = await h2Connect(tlsUrl);
    try {
      const stalled = session.request({ ':path': `/big.php?size=${8 * 1024 * 1024}` });
      stalled.pause();
      let got = 0;
      stalled.on('data', (c: Buffer) => {
        got += c.length;
      });
      await new Promise((r) => stalled.once('response', r));
      const quick = await h2Request(session, { ':path': '/hello.php' });
      assert.equal(quick.body.toString(), 'hello from php');
      assert.ok(got < 8 * 1024 * 1024, 'the stalled stream is not read to its end');
      stalled.close(h2.NGHTTP2_CANCEL);
      const pool = gw.handler.pools.get('app') as ConnectionPool;
      await waitFor(() => pool.stats.busy === 0, 'the cancelled stream to release its upstream connection');
    } finally {
      session.close();
    }
  });

  test('a 32 MiB download read only after php-fpm is done (all of it spilled) arrives intact over HTTP/2 and HTTPS/1.1', { timeout: 120_000 }, async () => {
    // End to end through the block pool over TLS: the spill writer gives its blocks back as
    // node finishes each write, and they are lent again within this response. (TLS copies at
    // write time, so the exact check of when a block may go back is over plain TCP, in
    // test/component/response-blocks.test.ts.)
    const size = 32 * 1024 * 1024;
    const pool = gw.handler.pools.get('app') as ConnectionPool;
    const expected = Buffer.alloc(size);
    for (let i = 0; i < size; i++) expected[i] = (i % 65536) % 251;
    const readAll = async (body: NodeJS.ReadableStream): Promise<Buffer> => {
      await waitFor(() => pool.stats.busy === 0, 'php-fpm to finish while the client reads nothing', 60_000);
      const parts: Buffer[] = [];
      for await (const c of body) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };
    const session = await h2Connect(tlsUrl);
    try {
      const stream = session.request({ ':path': `/big.php?size=${size}` });
      stream.pause();
      await new Promise((r) => stream.once('response', r));
      await waitFor(() => pool.stats.busy === 1, 'the upstream request to run');
      const body = await readAll(stream);
      assert.equal(body.length, size);
      assert.ok(body.equals(expected), 'HTTP/2: the bytes big.php wrote');
    } finally {
      session.close();
    }
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const o = { rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], servername: 'localhost', agent: false };
      https.get(new URL(`/big.php?size=${size}`, tlsUrl), o, resolve).on('error', reject);
    });
    res.pause();
    await waitFor(() => pool.stats.busy === 1, 'the upstream request to run');
    const body = await readAll(res);
    assert.equal(body.length, size);
    assert.ok(body.equals(expected), 'HTTPS/1.1: the bytes big.php wrote');
  });

  test('a stream reset by the client cancels its upstream request', async () => {
    const pool = gw.handler.pools.get('app') as ConnectionPool;
    const before = pool.stats;
    const session = await h2Connect(tlsUrl);
    try {
      const stream = session.request({ ':path': `/big.php?size=${100 * 1024 * 1024}` });
      stream.pause();
      await new Promise((r) => stream.once('response', r));
      await waitFor(() => pool.stats.busy === 1, 'the upstream request to run');
      stream.close(h2.NGHTTP2_CANCEL);
      await waitFor(() => pool.stats.busy === 0 && pool.stats.failed === before.failed + 1, 'the upstream exchange to be abandoned');
      assert.equal(pool.stats.completed, before.completed + 0, 'it did not run to its end');
      // The access log calls it aborted, as for an HTTP/1 client that leaves mid-response.
      await waitFor(() => logs.lines.some((l) => (l['req'] as { url?: string } | undefined)?.url?.startsWith('/big.php?size=104857600') === true), 'the access line');
      const line = logs.lines.find((l) => (l['req'] as { url?: string } | undefined)?.url?.startsWith('/big.php?size=104857600'))!;
      assert.deepEqual([line['msg'], line['aborted'], line['level']], ['request aborted', true, 50]);
      // The session and the pool still serve.
      assert.equal((await h2Request(session, { ':path': '/hello.php' })).status, 200);
    } finally {
      session.close();
    }
  });

  test('SNI: a site with its own certificate gets it; other names get the listener default', async () => {
    assert.equal(await certificateFor(tlsPort, 'a.test'), 'a.test');
    assert.equal(await certificateFor(tlsPort, 'other.test'), 'default');
    const r = await httpsRequest(tlsUrl, '/env.php', { host: 'a.test', servername: 'a.test' });
    assert.equal((JSON.parse(r.body) as Env).server['SERVER_NAME'], 'a.test');
  });

  test('a plain listener serves plain HTTP; one with redirectToHttps answers 308 to https', async () => {
    const plain = await fetch(`${plainUrl}/hello.php`);
    assert.equal(await plain.text(), 'hello from php');
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`${redirectUrl}/some/path.php?x=1&y=2`, { headers: { host: 'a.test:8080' }, agent: false }, resolve).on('error', reject);
    });
    res.resume();
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, 'https://a.test:8443/some/path.php?x=1&y=2');
  });

  test('a unix listener gets its mode and serves', async () => {
    const path = unixUrl.slice('unix:'.length);
    assert.equal(statSync(path).mode & 0o777, 0o640);
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath: path, path: '/hello.php', headers: { host: 'x' } }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (c: string) => (b += c));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'hello from php');
  });

  test('reload re-reads the certificates: a replaced file is served afterwards', async () => {
    assert.equal(await certificateFor(tlsPort, 'other.test'), 'default');
    copyFileSync(tlsFixture('b.test').cert, join(dir, 'cert.pem'));
    copyFileSync(tlsFixture('b.test').key, join(dir, 'cert.key'));
    await gw.reload(configOf({ cert: join(dir, 'cert.pem'), key: join(dir, 'cert.key') }));
    assert.equal(await certificateFor(tlsPort, 'other.test'), 'b.test');
    assert.equal(await certificateFor(tlsPort, 'a.test'), 'a.test', "the site's own is still chosen by SNI");
    const session = await h2Connect(tlsUrl);
    try {
      assert.equal((await h2Request(session, { ':path': '/hello.php' })).status, 200, 'the new handler serves');
    } finally {
      session.close();
    }
  });
});
