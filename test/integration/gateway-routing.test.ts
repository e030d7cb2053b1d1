/**
 * Integration, real php-fpm: how the gateway routes a request — static files (never sent to
 * PHP) with their caching and range headers, PATH_INFO splitting, directory redirects and
 * index files, the front controller, and which file names are (not) executed.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, parseRawResponses, rawExchange, rawGet, startGateway } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

interface Dump {
  script: string;
  server: Record<string, string>;
}

let fpm: PhpFpm;
let gw: GatewayFixture;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
  gw = await startGateway({ fpm });
});

after(async () => {
  await gw?.close();
  await fpm?.stop();
});

describe('static files', () => {
  for (const [path, type, content] of [
    ['/hello.txt', /^text\/plain/, 'static hello text\n'],
    ['/style.css', /^text\/css/, 'body { color: red; }\n'],
    ['/app.js', /^(application|text)\/javascript/, 'console.log("static js");\n'],
  ] as const) {
    test(`${path} is served directly with Content-Type, ETag and Last-Modified`, async () => {
      const before = gw.gw.handler.pool.stats.dispatched;
      const res = await gw.fetch(path);
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), type);
      assert.equal(res.text, content);
      assert.equal(res.headers['content-length'], String(Buffer.byteLength(content)));
      assert.ok(typeof res.headers['etag'] === 'string' && res.headers['etag'].length > 2, 'ETag present');
      const mtime = statSync(join(gw.dirs.root, path)).mtime;
      assert.equal(res.headers['last-modified'], mtime.toUTCString());
      assert.equal(gw.gw.handler.pool.stats.dispatched, before, 'nothing was sent to php-fpm');
    });
  }

  test('If-None-Match with the ETag → 304 without a body', async () => {
    const first = await gw.fetch('/hello.txt');
    const etag = String(first.headers['etag']);
    const res = await gw.fetch('/hello.txt', { headers: { 'if-none-match': etag } });
    assert.equal(res.status, 304);
    assert.equal(res.body.length, 0);
    const other = await gw.fetch('/hello.txt', { headers: { 'if-none-match': '"some-other-tag"' } });
    assert.equal(other.status, 200, 'a different ETag gets the file');
  });

  test('If-Modified-Since at or after Last-Modified → 304; before it → 200', async () => {
    const first = await gw.fetch('/style.css');
    const lm = String(first.headers['last-modified']);
    const res = await gw.fetch('/style.css', { headers: { 'if-modified-since': lm } });
    assert.equal(res.status, 304);
    assert.equal(res.body.length, 0);
    const older = new Date(Date.parse(lm) - 3600_000).toUTCString();
    const res2 = await gw.fetch('/style.css', { headers: { 'if-modified-since': older } });
    assert.equal(res2.status, 200);
    assert.equal(res2.text, 'body { color: red; }\n');
  });

  test('Range → 206 with Content-Range and exactly those bytes', async () => {
    const res = await gw.fetch('/range.txt', { headers: { range: 'bytes=10-19' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], 'bytes 10-19/36');
    assert.equal(res.text, 'KLMNOPQRST');
    const suffix = await gw.fetch('/range.txt', { headers: { range: 'bytes=-4' } });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.text, '6789');
    const unsatisfiable = await gw.fetch('/range.txt', { headers: { range: 'bytes=100-200' } });
    assert.equal(unsatisfiable.status, 416);
  });

  test('HEAD of a static file has the headers and no body', async () => {
    const res = await rawGet(gw.port, '/hello.txt');
    const head = parseRawResponses(await rawExchange(gw.port, 'HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), [true]);
    assert.equal(head.length, 1, 'exactly one response, no stray body bytes');
    const h = head[0]!;
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    const get = (n: string): string | undefined => h.headers.find(([k]) => k === n)?.[1];
    assert.equal(get('content-length'), '18');
    assert.equal(get('etag'), res.headers.find(([k]) => k === 'etag')?.[1]);
    assert.match(get('content-type') ?? '', /^text\/plain/);
  });

  test('a file name with spaces (percent-encoded) is served', async () => {
    const res = await gw.fetch('/dir%20with%20space/file%20one.txt');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'space file\n');
  });
});

describe('scripts and PATH_INFO', () => {
  test('/env.php/a/b → SCRIPT_NAME /env.php, PATH_INFO /a/b, PATH_TRANSLATED under the root', async () => {
    const { res, data } = await gw.json<Dump>('/env.php/a/b?q=1');
    assert.equal(res.status, 200);
    assert.equal(data.script, 'env.php');
    assert.equal(data.server['SCRIPT_NAME'], '/env.php');
    assert.equal(data.server['PATH_INFO'], '/a/b');
    assert.equal(data.server['PATH_TRANSLATED'], gw.dirs.root + '/a/b');
    assert.equal(data.server['SCRIPT_FILENAME'], gw.dirs.root + '/env.php');
    assert.equal(data.server['REQUEST_URI'], '/env.php/a/b?q=1');
    assert.equal(data.server['DOCUMENT_URI'], '/env.php', 'the script, as nginx try_files leaves $uri');
    assert.equal(data.server['QUERY_STRING'], 'q=1');
  });

  test('a script without PATH_INFO gets none', async () => {
    const { data } = await gw.json<Dump>('/env.php');
    assert.equal(data.server['PATH_INFO'], undefined);
    assert.equal(data.server['PATH_TRANSLATED'], undefined);
  });
});

describe('directories', () => {
  test('a directory without trailing slash → 301 to the slash form, query kept', async () => {
    const res = await gw.fetch('/sub?x=1&y=%20');
    assert.equal(res.status, 301);
    assert.equal(res.headers['location'], '/sub/?x=1&y=%20');
    const plain = await gw.fetch('/html');
    assert.equal(plain.status, 301);
    assert.equal(plain.headers['location'], '/html/');
  });

  test('a directory with index.php runs it (with the query)', async () => {
    const res = await gw.fetch('/sub/?k=v');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'sub index.php query=k=v');
  });

  test('a directory with only index.html serves it statically', async () => {
    const res = await gw.fetch('/html/');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.equal(res.text, '<!doctype html><title>html index</title>\n');
  });

  test('index.php wins over index.html', async () => {
    const res = await gw.fetch('/both/');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'both index.php');
  });

  test('a directory with neither index → 403', async () => {
    const res = await gw.fetch('/empty/');
    assert.equal(res.status, 403);
    assert.doesNotMatch(res.text, /readme/, 'no directory listing');
  });
});

describe('front controller', () => {
  test('an unknown path goes to /index.php with REQUEST_URI exactly as sent', async () => {
    const target = '/no/such/Page%2Fx%41?a=1&b=%2F%zz&c';
    const { res, data } = await gw.json<Dump>(target);
    assert.equal(res.status, 200);
    assert.equal(data.script, 'index.php');
    assert.equal(data.server['REQUEST_URI'], target);
    assert.equal(data.server['QUERY_STRING'], 'a=1&b=%2F%zz&c');
    assert.equal(data.server['SCRIPT_NAME'], '/index.php');
    assert.equal(data.server['SCRIPT_FILENAME'], gw.dirs.root + '/index.php');
  });

  test('a missing .php file is a 404, not the front controller', async () => {
    const res = await gw.fetch('/missing.php');
    assert.equal(res.status, 404);
    assert.doesNotMatch(res.text, /index\.php/);
  });

  test('without a front controller an unknown path is 404', async (t) => {
    const g = await startGateway({ fpm, gateway: { frontController: null } });
    t.after(() => g.close());
    const res = await g.fetch('/no/such/page');
    assert.equal(res.status, 404);
    assert.equal(g.gw.handler.pool.stats.dispatched, 0);
    // Scripts still run.
    const ok = await g.fetch('/hello.php');
    assert.equal(ok.text, 'hello from php');
  });
});

describe('what is not executed', () => {
  test('.PHP (upper case) is neither executed nor served as source: 404', async () => {
    const before = gw.gw.handler.pool.stats.dispatched;
    const res = await gw.fetch('/UPPER.PHP');
    assert.equal(res.status, 404);
    assert.doesNotMatch(res.text, /EXECUTED|<\?php/);
    assert.equal(gw.gw.handler.pool.stats.dispatched, before, 'nothing was sent to php-fpm');
  });

  test('a Unicode look-alike of .php (Cyrillic р) is not executed', async () => {
    const before = gw.gw.handler.pool.stats.dispatched;
    const res = await gw.fetch('/evil.ph%D1%80');
    assert.ok(res.status === 200 || res.status === 404, `status ${res.status}`);
    assert.doesNotMatch(res.text, /EXECUTED/);
    assert.equal(gw.gw.handler.pool.stats.dispatched, before, 'nothing was sent to php-fpm');
    // With a path after it, it is no script either: the front controller answers.
    const { data } = await gw.json<Dump>('/evil.ph%D1%80/x');
    assert.equal(data.script, 'index.php');
    assert.equal(data.server['SCRIPT_NAME'], '/index.php');
  });
});
