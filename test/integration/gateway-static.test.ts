/**
 * Small static files take a fast path (read once, kept for statCacheTtl) that must answer
 * exactly as `send` does: same status, validators, type, length and body; what it does not
 * handle (Range, If-Match, large files) still goes through `send`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import send from 'send';
import { request } from 'undici';
import { createFastCgiHandler, type FastCgiHandler } from '../../src/index.js';

const COMPARED = ['etag', 'last-modified', 'content-type', 'cache-control', 'accept-ranges', 'content-length'];

async function listen(fn: http.RequestListener): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(fn);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { headers, method });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

describe('small static files', () => {
  let root: string;
  let handler: FastCgiHandler;
  let fresh: FastCgiHandler;
  let gw: { server: http.Server; url: string };
  let gwNoCache: { server: http.Server; url: string };
  let ref: { server: http.Server; url: string };
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fcgi-static-'));
    writeFileSync(join(root, 'style.css'), 'body { color: red }\n');
    writeFileSync(join(root, 'big.bin'), Buffer.alloc(200_000, 7));
    writeFileSync(join(root, 'data.json'), '{"a":1}');
    // No request here reaches php-fpm: the upstream is never contacted.
    handler = createFastCgiHandler({ root, upstream: 'unix:/nonexistent/fpm.sock' });
    fresh = createFastCgiHandler({ root, upstream: 'unix:/nonexistent/fpm.sock', statCacheTtl: 0 });
    gw = await listen(handler);
    gwNoCache = await listen(fresh);
    ref = await listen((req, res) => void send(req, new URL(req.url ?? '/', 'http://x').pathname, { root }).pipe(res));
  });
  after(async () => {
    for (const s of [gw, gwNoCache, ref]) await new Promise((r) => s.server.close(r));
    await handler.close();
    await fresh.close();
    rmSync(root, { recursive: true, force: true });
  });

  for (const path of ['/style.css', '/data.json', '/big.bin']) {
    test(`${path}: same status, headers and body as send`, async () => {
      const a = await get(gw.url + path);
      const b = await get(ref.url + path);
      assert.equal(a.status, 200);
      assert.equal(a.status, b.status);
      for (const h of COMPARED) assert.equal(a.headers[h], b.headers[h], h);
      assert.equal(a.body, b.body);
    });
  }

  test('conditional GET: 304 for a matching ETag or a later If-Modified-Since, as send', async () => {
    const first = await get(gw.url + '/style.css');
    const tag = String(first.headers['etag']);
    for (const headers of [{ 'if-none-match': tag }, { 'if-modified-since': String(first.headers['last-modified']) }]) {
      const a = await get(gw.url + '/style.css', headers);
      const b = await get(ref.url + '/style.css', headers);
      assert.equal(a.status, 304);
      assert.equal(b.status, 304);
      assert.equal(a.body, '');
      assert.equal(a.headers['content-type'], b.headers['content-type']);
      assert.equal(a.headers['etag'], b.headers['etag']);
    }
    assert.equal((await get(gw.url + '/style.css', { 'if-none-match': '"other"' })).status, 200);
  });

  test('HEAD: headers without a body', async () => {
    const a = await get(gw.url + '/style.css', {}, 'HEAD');
    assert.equal(a.status, 200);
    assert.equal(a.headers['content-length'], '20');
    assert.equal(a.body, '');
  });

  test('Range and If-Match go to send: 206 and 412', async () => {
    const r = await get(gw.url + '/style.css', { range: 'bytes=0-3' });
    assert.equal(r.status, 206);
    assert.equal(r.body, 'body');
    const m = await get(gw.url + '/style.css', { 'if-match': '"nope"' });
    assert.equal(m.status, 412);
  });

  test('with statCacheTtl 0 a changed file is served changed at once', async () => {
    const file = join(root, 'changing.txt');
    writeFileSync(file, 'one');
    assert.equal((await get(gwNoCache.url + '/changing.txt')).body, 'one');
    writeFileSync(file, 'two!');
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const after2 = await get(gwNoCache.url + '/changing.txt');
    assert.equal(after2.body, 'two!');
    assert.equal(after2.headers['content-length'], '4');
  });
});
