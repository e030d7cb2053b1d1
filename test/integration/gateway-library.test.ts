/**
 * Integration, real php-fpm: the handler used as a library — mounted on a plain
 * `http.createServer(handler)` and as Express middleware, where requests it declines
 * (frontController null, no such file) reach later Express routes through `next()`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import express from 'express';
import { Client } from 'undici';
import { createFastCgiHandler, createGatewayHandler, resolveConfig } from '../../src/index.js';
import { type GatewayRoot, httpRequest, makeGatewayRoot } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;
let dirs: GatewayRoot;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
  dirs = makeGatewayRoot();
});

after(async () => {
  await fpm?.stop();
  dirs?.remove();
});

/** Listen on 127.0.0.1:0 and return a client plus a teardown. */
async function serve(server: http.Server): Promise<{ client: Client; close: () => Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new Client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return {
    client,
    async close() {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('plain node:http', () => {
  test('http.createServer(handler) serves scripts, static files and the front controller', async (t) => {
    const handler = createFastCgiHandler({ root: dirs.root, upstream: fpm.address });
    const s = await serve(http.createServer(handler));
    t.after(async () => {
      await s.close();
      await handler.close();
    });
    assert.equal((await httpRequest(s.client, '/hello.php')).text, 'hello from php');
    assert.equal((await httpRequest(s.client, '/hello.txt')).text, 'static hello text\n');
    const fc = JSON.parse((await httpRequest(s.client, '/some/route?x=1')).text) as { script: string; server: Record<string, string> };
    assert.equal(fc.script, 'index.php');
    assert.equal(fc.server['REQUEST_URI'], '/some/route?x=1');
    // Without startGatewayServer the SERVER_SOFTWARE is the bare library name.
    assert.equal(fc.server['SERVER_SOFTWARE'], 'fastcgi-gateway');
    const post = await httpRequest(s.client, '/echo.php', { method: 'POST', body: 'abc' });
    assert.equal((JSON.parse(post.text) as { len: number }).len, 3);
    assert.equal(handler.pool.stats.busy, 0);
  });

  test('without next(), a declined request is a 404', async (t) => {
    const handler = createFastCgiHandler({ root: dirs.root, upstream: fpm.address, frontController: null });
    const s = await serve(http.createServer(handler));
    t.after(async () => {
      await s.close();
      await handler.close();
    });
    assert.equal((await httpRequest(s.client, '/not/here')).status, 404);
    assert.equal(handler.pool.stats.dispatched, 0);
  });
});

/** Serve `app` with a last Express handler answering 'express 404'; closed after the test. */
async function serveWithExpress404(t: TestContext, app: express.Express, handler: { close(): Promise<void> }) {
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('express 404');
  });
  const s = await serve(http.createServer(app));
  t.after(async () => {
    await s.close();
    await handler.close();
  });
  return s;
}

describe('Express middleware', () => {
  test('app.use(handler): PHP and static via the handler, declined paths to later routes', async (t) => {
    const handler = createFastCgiHandler({ root: dirs.root, upstream: fpm.address, frontController: null });
    const app = express();
    const seenByExpress: string[] = [];
    app.use((req, _res, next) => {
      seenByExpress.push(req.url);
      next();
    });
    app.use(handler);
    app.get('/api/status', (_req, res) => {
      res.json({ from: 'express' });
    });
    const s = await serveWithExpress404(t, app, handler);

    const php = await httpRequest(s.client, '/hello.php');
    assert.equal(php.status, 200);
    assert.equal(php.text, 'hello from php');

    const api = await httpRequest(s.client, '/api/status');
    assert.equal(api.status, 200);
    assert.deepEqual(JSON.parse(api.text), { from: 'express' });

    const missing = await httpRequest(s.client, '/nothing/here');
    assert.equal(missing.status, 404);
    assert.equal(missing.text, 'express 404');

    // A missing static file also goes to next() (not the handler's own 404).
    const missingStatic = await httpRequest(s.client, '/nothing.txt');
    assert.equal(missingStatic.text, 'express 404');

    const stat = await httpRequest(s.client, '/hello.txt');
    assert.equal(stat.text, 'static hello text\n');

    // Refusals are answered by the handler itself, never passed on.
    // Hidden files are refused here, not passed on: a later static middleware must not serve them.
    const hidden = await httpRequest(s.client, '/.env');
    assert.equal(hidden.status, 404);
    assert.notEqual(hidden.text, 'express 404', 'dotfiles are answered by the handler, not declined');
    assert.equal((await httpRequest(s.client, '/empty/')).status, 403);
    assert.equal((await httpRequest(s.client, '/a%00b')).status, 400);

    const post = await httpRequest(s.client, '/env.php', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'k=v',
    });
    assert.deepEqual((JSON.parse(post.text) as { post: unknown }).post, { k: 'v' });
    assert.deepEqual(seenByExpress, ['/hello.php', '/api/status', '/nothing/here', '/nothing.txt', '/hello.txt', '/.env', '/empty/', '/a%00b', '/env.php']);
    assert.equal(handler.pool.stats.dispatched, 2, 'only the two scripts went to php-fpm');
  });
});

describe('the config handler as Express middleware', () => {
  test('app.use(createGatewayHandler(config)): its sites and routes, paths no route covers to later routes', async (t) => {
    const config = resolveConfig({
      base: {
        sites: [
          { hosts: ['php.test'], root: dirs.root, routes: [{ path: '/', php: { upstream: fpm.address, frontController: null } }] },
          { hosts: ['*'], root: dirs.root, routes: [{ path: '/files/', static: {} }, { path: '/old/', redirect: { to: '/new/', status: 308 } }] },
        ],
      },
    });
    const handler = createGatewayHandler(config);
    const app = express();
    app.use(handler);
    const s = await serveWithExpress404(t, app, handler);
    const php = await httpRequest(s.client, '/hello.php', { headers: { host: 'php.test' } });
    assert.equal(php.text, 'hello from php');
    // php.test's route declines what it does not serve (no front controller): to Express.
    assert.equal((await httpRequest(s.client, '/nothing/here', { headers: { host: 'php.test' } })).text, 'express 404');
    // The default site has no route for / at all: to Express as well.
    assert.equal((await httpRequest(s.client, '/hello.php', { headers: { host: 'other.test' } })).text, 'express 404');
    const moved = await httpRequest(s.client, '/old/x', { headers: { host: 'other.test' } });
    assert.equal(moved.status, 308);
    assert.equal(moved.headers['location'], '/new/');
  });
});

