/**
 * Integration, real php-fpm: requests that try to execute an upload, climb out of the document
 * root, smuggle control characters into php-fpm's params (CVE-2019-11043) or read dotfiles.
 * Every request here is written byte for byte on a raw socket, so no client normalises it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, OUTSIDE_MARKER, parseRawResponses, rawExchange, rawGet, startGateway } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;
/** Default options: front controller /index.php. */
let gw: GatewayFixture;
/** frontController: null, so a refused path cannot hide behind a 200 from index.php. */
let strict: GatewayFixture;

const OUTSIDE_PHP_MARKER = 'OUTSIDE_PHP_' + 'EXECUTED';

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
  gw = await startGateway({ fpm });
  strict = await startGateway({ fpm, gateway: { frontController: null } });
  for (const g of [gw, strict]) {
    // A script just outside the root too: executing it must be impossible.
    writeFileSync(join(g.dirs.base, 'outside.php'), `<?php echo "OUTSIDE_PHP_" . "EXECUTED";\n`);
  }
});

after(async () => {
  await gw?.close();
  await strict?.close();
  await fpm?.stop();
});

describe('uploads are never executed', () => {
  const variants = [
    '/uploads/evil.jpg/x.php',
    '/uploads/evil.jpg/x.php/',
    '/uploads/evil.jpg/x.php/more',
    '/uploads/evil.jpg%2fx.php',
    '/uploads/evil.jpg/index.php',
    '/uploads/evil.jpg/.php',
    '/uploads/evil.jpg/%2e/x.php',
    '/uploads/evil.jpg/x.PHP',
    '/uploads/evil.jpg;.php',
    '/uploads/evil.jpg%20.php',
    '/uploads/evil.jpg%00.php',
    '/uploads/evil.jpg%0a.php',
    '/uploads/./evil.jpg/x.php',
    '/uploads//evil.jpg/x.php',
    '/sub/../uploads/evil.jpg/x.php',
    '/uploads/evil.jpg?x.php',
    '/uploads/evil.jpg',
  ];

  test('/uploads/evil.jpg/x.php → 404 and php-fpm is not asked', async () => {
    const before = gw.gw.handler.pool.stats.dispatched;
    const res = await rawGet(gw.port, '/uploads/evil.jpg/x.php');
    assert.equal(res.status, 404);
    assert.doesNotMatch(res.body.toString('latin1'), /PWNED/);
    assert.equal(gw.gw.handler.pool.stats.dispatched, before);
  });

  for (const g of ['default', 'no front controller'] as const) {
    test(`no variant runs the jpg (${g})`, async () => {
      const fx = g === 'default' ? gw : strict;
      for (const path of variants) {
        const res = await rawGet(fx.port, path);
        const text = res.body.toString('latin1');
        assert.doesNotMatch(text, /PWNED/, `${path} executed the upload`);
        if (text.startsWith('{')) {
          const dump = JSON.parse(text) as { server: Record<string, string> };
          assert.equal(dump.server['SCRIPT_NAME'], '/index.php', `${path}: only the front controller may answer`);
        } else if (res.status === 200) {
          // The jpg itself, as a static file: its source, never its output.
          assert.match(text, /<\?php echo "PWN" \. "ED"/, `${path}: unexpected 200 body`);
        } else {
          assert.ok([400, 404].includes(res.status), `${path}: status ${res.status}`);
        }
        if (g === 'no front controller' && path !== '/uploads/evil.jpg' && path !== '/uploads/evil.jpg?x.php') {
          assert.ok([400, 404].includes(res.status), `${path}: status ${res.status}`);
        }
      }
    });
  }
});

describe('path traversal never escapes the root', () => {
  const paths = [
    '/../outside-secret.txt',
    '/../../outside-secret.txt',
    '/%2e%2e/outside-secret.txt',
    '/%2E%2E/outside-secret.txt',
    '/%2e%2e%2foutside-secret.txt',
    '/..%2foutside-secret.txt',
    '/sub/%2f..%2f..%2foutside-secret.txt',
    '/sub/..%2f..%2foutside-secret.txt',
    '/.%2e/outside-secret.txt',
    '/%2e./outside-secret.txt',
    '/./../outside-secret.txt',
    '//../outside-secret.txt',
    '/sub/../../outside-secret.txt',
    '/env.php/../../outside-secret.txt',
    '/..\\outside-secret.txt',
    '/%5c..%5coutside-secret.txt',
    '/sub/..%5c..%5coutside-secret.txt',
    '/sub\\..\\..\\outside-secret.txt',
    '/%252e%252e/outside-secret.txt',
    '/%c0%ae%c0%ae/outside-secret.txt',
    '/..%c0%afoutside-secret.txt',
    '/../outside.php',
    '/%2e%2e/outside.php',
    '/..%2foutside.php',
    '/sub/../../outside.php/x',
    'http://127.0.0.1/../outside-secret.txt',
  ];

  for (const g of ['default', 'no front controller'] as const) {
    test(`the marker outside the root never appears (${g})`, async () => {
      const fx = g === 'default' ? gw : strict;
      for (const path of paths) {
        const res = await rawGet(fx.port, path);
        const text = res.body.toString('latin1');
        assert.ok(!text.includes(OUTSIDE_MARKER), `${path} leaked the file outside the root`);
        assert.ok(!text.includes(OUTSIDE_PHP_MARKER), `${path} executed the script outside the root`);
        if (text.startsWith('{')) {
          const dump = JSON.parse(text) as { server: Record<string, string> };
          assert.equal(dump.server['SCRIPT_FILENAME'], fx.dirs.root + '/index.php', path);
        }
        if (g === 'no front controller') assert.ok([400, 404].includes(res.status), `${path}: status ${res.status}`);
        else assert.ok([200, 400, 404].includes(res.status), `${path}: status ${res.status}`);
      }
    });
  }

  test('.. that climbs above the root is a 400, not a clamp to the root', async () => {
    for (const path of ['/../hello.txt', '/%2e%2e/hello.txt', '/..%2fhello.txt', '/sub/../../hello.txt']) {
      const res = await rawGet(strict.port, path);
      assert.equal(res.status, 400, path);
    }
    // Inside the root, .. resolves normally.
    const ok = await rawGet(strict.port, '/sub/../hello.txt');
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'static hello text\n');
  });
});

describe('control characters in the path', () => {
  const bad = [
    '/index.php%00.txt',
    '/hello.txt%00',
    '/env.php%00',
    '/a%0ab',
    '/a%0db',
    '/a%0d%0aSet-Cookie:%20x=1',
    '/env.php/%0a',
    // CVE-2019-11043: a %0a in PATH_INFO made php-fpm's fastcgi_split_path_info underflow.
    '/index.php/PHP_VALUE%0Asession.auto_start=1;;;?QQQQ',
    '/env.php/x%0a.php',
    '/env.php%0a/x',
  ];

  test('encoded NUL, CR and LF → 400, php-fpm is not asked', async () => {
    const before = strict.gw.handler.pool.stats.dispatched;
    for (const path of bad) {
      const res = await rawGet(strict.port, path);
      assert.equal(res.status, 400, path);
      const res2 = await rawGet(gw.port, path);
      assert.equal(res2.status, 400, `${path} (front controller on)`);
    }
    assert.equal(strict.gw.handler.pool.stats.dispatched, before);
  });

  test('a raw CR, LF or NUL in the request line is refused by the HTTP parser (400)', async () => {
    for (const target of ['/a\rb', '/a\0b']) {
      const buf = await rawExchange(gw.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const [res] = parseRawResponses(buf);
      assert.equal(res?.status, 400, JSON.stringify(target));
    }
  });

  test('an encoded LF in the query string is data, not a param break', async () => {
    const res = await rawGet(gw.port, '/env.php?x=%0aPHP_VALUE');
    assert.equal(res.status, 200);
    const dump = JSON.parse(res.body.toString()) as { server: Record<string, string>; get: Record<string, string> };
    assert.equal(dump.server['QUERY_STRING'], 'x=%0aPHP_VALUE');
    assert.equal(dump.get['x'], '\nPHP_VALUE');
  });
});

describe('dotfiles', () => {
  const hidden = [
    ['/.env', 'SECRET_ENV_MARKER'],
    ['/.git/config', 'SECRET_GIT_MARKER'],
    ['/.git/', 'SECRET_GIT_MARKER'],
    ['/.git', 'SECRET_GIT_MARKER'],
    ['/.htaccess', 'SECRET_HTACCESS_MARKER'],
    ['/%2eenv', 'SECRET_ENV_MARKER'],
    ['/%2Egit/config', 'SECRET_GIT_MARKER'],
    ['/sub/../.env', 'SECRET_ENV_MARKER'],
    ['/.well-known/../.htaccess', 'SECRET_HTACCESS_MARKER'],
    ['/.env/x.php', 'SECRET_ENV_MARKER'],
  ] as const;

  for (const g of ['default', 'no front controller'] as const) {
    test(`.env, .git/config, .htaccess → 404 (${g})`, async () => {
      const fx = g === 'default' ? gw : strict;
      for (const [path, marker] of hidden) {
        const res = await rawGet(fx.port, path);
        assert.equal(res.status, 404, path);
        assert.ok(!res.body.toString('latin1').includes(marker), `${path} leaked ${marker}`);
      }
    });
  }

  test('.well-known/x.txt is served', async () => {
    const res = await rawGet(strict.port, '/.well-known/x.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'well-known ok\n');
  });
});
