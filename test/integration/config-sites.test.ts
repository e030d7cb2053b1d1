/**
 * Integration, real php-fpm: a config with several sites and routes, served by
 * startConfiguredServer. Virtual hosts (exact, wildcard, default), every local route kind
 * (php, static, redirect), the longest prefix winning, Early Hints as a client sees them, and
 * per-route header rules and access-log switch.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import type { GatewayHandler } from '../../src/http/gateway-handler.js';
import { type GatewayServer, startConfiguredServer } from '../../src/server.js';
import { captureLogs, GATEWAY_ROOT_FIXTURE, type LogCapture, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** 1xx answers before the final one (node:http 'information'). */
  informational: Array<{ statusCode: number; headers: http.IncomingHttpHeaders }>;
}

/** One request with a chosen Host, on a fresh connection. */
function get(url: string, path: string, host: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const informational: Answer['informational'] = [];
    const req = http.request(new URL(path, url), { method, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), informational }));
    });
    req.on('information', (i) => informational.push({ statusCode: i.statusCode, headers: i.headers }));
    req.on('error', reject);
    req.end();
  });
}

let fpm: PhpFpm;
let dir: string;
let gw: GatewayServer<GatewayHandler>;
let logs: LogCapture;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
  dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-sites-'));
  // Site b: its own root with one script; assets: a static-only directory.
  mkdirSync(join(dir, 'b'));
  writeFileSync(join(dir, 'b', 'index.php'), '<?php header("X-Powered-By: PHP"); echo "site b: ", $_SERVER["HTTP_HOST"], " ", $_SERVER["REQUEST_URI"];');
  mkdirSync(join(dir, 'assets', 'assets'), { recursive: true });
  writeFileSync(join(dir, 'assets', 'assets', 'app.css'), 'body { color: red }\n');
  writeFileSync(join(dir, 'assets', 'assets', 'hello.php'), '<?php echo "must not run";');
  mkdirSync(join(dir, 'default'));
  writeFileSync(join(dir, 'default', 'index.html'), 'default site\n');
  mkdirSync(join(dir, 'live', 'live'), { recursive: true });
  writeFileSync(join(dir, 'live', 'live', 'note.txt'), 'first\n');
  const config = resolveConfig({
    base: {
      listen: ['127.0.0.1:0'],
      upstreams: { app: { servers: [fpm.address], connections: 2 } },
      sites: [
        {
          hosts: ['a.test', 'www.a.test'],
          root: GATEWAY_ROOT_FIXTURE,
          routes: [
            {
              path: '/',
              php: { upstream: 'app' },
              earlyHints: ['</assets/app.css>; rel=preload; as=style'],
              headers: { set: { 'X-Frame-Options': 'DENY' }, add: { 'X-Site': 'a' }, remove: ['X-Powered-By'] },
            },
            { path: '/assets/', static: { root: join(dir, 'assets') }, accessLog: false },
            { path: '/live/', static: { root: join(dir, 'live'), statCacheTtl: 0 } },
            { path: '/old/', redirect: { to: 'https://a.test/new/', status: 301, keepPath: true } },
            { path: '/gone', redirect: { to: '/elsewhere' } },
          ],
        },
        { hosts: ['*.b.test'], root: join(dir, 'b'), routes: [{ path: '/', php: { upstream: fpm.address } }] },
        { hosts: ['*'], root: join(dir, 'default'), routes: [{ path: '/', static: {} }] },
        { hosts: ['only-api.test'], root: join(dir, 'b'), routes: [{ path: '/api/', php: { upstream: 'app' } }] },
      ],
    },
  });
  logs = captureLogs();
  gw = await startConfiguredServer(config, { logger: logs.logger });
});

after(async () => {
  await gw?.close();
  await fpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('virtual hosts', () => {
  test('an exact name, with any case and port, goes to its site', async () => {
    for (const host of ['a.test', 'A.TEST:8080', 'www.a.test', 'a.test.']) {
      const r = await get(gw.url, '/hello.php', host);
      assert.equal(r.status, 200, host);
      assert.equal(r.body, 'hello from php', host);
    }
  });

  test('a wildcard matches subdomains at any depth, not the bare domain', async () => {
    const r = await get(gw.url, '/x/y?z=1', 'shop.b.test');
    assert.equal(r.body, 'site b: shop.b.test /x/y?z=1');
    assert.equal((await get(gw.url, '/', 'deep.shop.b.test')).body, 'site b: deep.shop.b.test /');
    assert.equal((await get(gw.url, '/', 'b.test')).body, 'default site\n');
  });

  test('an unknown or missing Host goes to the site that lists "*"', async () => {
    assert.equal((await get(gw.url, '/', 'nowhere.test')).body, 'default site\n');
    assert.equal((await get(gw.url, '/', '127.0.0.1')).body, 'default site\n');
  });

  test('a site whose routes do not cover the path answers 404', async () => {
    assert.equal((await get(gw.url, '/', 'only-api.test')).status, 404);
    const r = await get(gw.url, '/api/thing', 'only-api.test');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'site b: only-api.test /api/thing');
  });
});

describe('routes', () => {
  test('static: files only, scripts are never run, the longest prefix wins over /', async () => {
    const css = await get(gw.url, '/assets/app.css', 'a.test');
    assert.equal(css.status, 200);
    assert.equal(css.body, 'body { color: red }\n');
    assert.match(String(css.headers['content-type']), /text\/css/);
    assert.ok(css.headers.etag, 'an ETag');
    const php = await get(gw.url, '/assets/hello.php', 'a.test');
    assert.notEqual(php.body, 'must not run');
    assert.equal((await get(gw.url, '/assets/missing.css', 'a.test')).status, 404);
  });

  test('static with statCacheTtl 0: an edited, a new and a removed file show on the next request', async () => {
    assert.equal((await get(gw.url, '/live/note.txt', 'a.test')).body, 'first\n');
    writeFileSync(join(dir, 'live', 'live', 'note.txt'), 'second\n');
    assert.equal((await get(gw.url, '/live/note.txt', 'a.test')).body, 'second\n');
    assert.equal((await get(gw.url, '/live/new.txt', 'a.test')).status, 404);
    writeFileSync(join(dir, 'live', 'live', 'new.txt'), 'new\n');
    assert.equal((await get(gw.url, '/live/new.txt', 'a.test')).body, 'new\n');
    rmSync(join(dir, 'live', 'live', 'note.txt'));
    assert.equal((await get(gw.url, '/live/note.txt', 'a.test')).status, 404);
  });

  test('redirect: status and target, keeping the path and query when asked', async () => {
    const r = await get(gw.url, '/old/a/b?x=1&y=2', 'a.test');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://a.test/new/a/b?x=1&y=2');
    const plain = await get(gw.url, '/gone?q=1', 'a.test');
    assert.equal(plain.status, 302);
    assert.equal(plain.headers.location, '/elsewhere');
  });

  test('php: the whole handler per route, with header rules applied to its answers', async () => {
    const r = await get(gw.url, '/hello.php', 'a.test');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['x-site'], 'a');
    const b = await get(gw.url, '/', 'x.b.test');
    assert.equal(b.headers['x-powered-by'], 'PHP', 'site b has no rule removing it');
  });
});

describe('Early Hints', () => {
  test('a route with earlyHints sends 103 with its Link values before the answer', async () => {
    const r = await get(gw.url, '/hello.php', 'a.test');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.informational.map((i) => [i.statusCode, i.headers.link]),
      [[103, '</assets/app.css>; rel=preload; as=style']],
    );
    const none = await get(gw.url, '/assets/app.css', 'a.test');
    assert.deepEqual(none.informational, [], 'routes without earlyHints send none');
  });

  test('HTTP/1.0 clients get no 1xx', async () => {
    const net = await import('node:net');
    const port = Number(new URL(gw.url).port);
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET /hello.php HTTP/1.0\r\nHost: a.test\r\n\r\n'));
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString('latin1')));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    assert.match(got, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(got, /103 Early Hints/);
  });
});

describe('access log', () => {
  test('a route with accessLog false is not logged; the others are', async () => {
    const before = logs.lines.length;
    await get(gw.url, '/assets/app.css', 'a.test');
    await get(gw.url, '/hello.php', 'a.test');
    const urlsNow = (): Array<string | undefined> => logs.lines.slice(before).map((l) => (l['req'] as { url?: string } | undefined)?.url);
    // The asset was answered first: had it been logged, its line would come before this one.
    await waitFor(() => urlsNow().includes('/hello.php'), 'the access line of /hello.php');
    const urls = urlsNow();
    assert.deepEqual(urls, ['/hello.php']);
  });
});

describe('pools', () => {
  test('one pool per upstream name, one per inline address', () => {
    assert.deepEqual([...gw.handler.pools.keys()].sort(), ['app', fpm.address].sort());
    assert.equal(gw.handler.pools.get('app')!.stats.limit, 2);
  });
});
