/**
 * Integration, real php-fpm: the CGI params a script sees in $_SERVER when it is reached
 * through the gateway — base variables, request headers as HTTP_*, folding of repeated
 * headers, httpoxy and underscore headers dropped, PHP_VALUE out of the client's reach,
 * configured params, and X-Forwarded-* believed only from trusted proxies.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { VERSION } from '../../src/version.js';
import { type GatewayFixture, rawExchange, parseRawResponses, startGateway } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

interface Dump {
  server: Record<string, string>;
  get: Record<string, unknown>;
  cookie: Record<string, string>;
  ini: { precision: string; default_charset: string };
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

/** Send a hand-written request (header lines exactly as given) and parse env.php's dump. */
async function rawDump(port: number, target: string, headerLines: string[], method = 'GET', body = ''): Promise<Dump> {
  const head = [`${method} ${target} HTTP/1.1`, 'Host: gw.test:8123', ...headerLines, 'Connection: close'];
  if (body !== '') head.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const buf = await rawExchange(port, head.join('\r\n') + '\r\n\r\n' + body);
  const [res] = parseRawResponses(buf);
  assert.equal(res?.status, 200, buf.toString('latin1').slice(0, 300));
  return JSON.parse(res.body.toString('utf8')) as Dump;
}

describe('base CGI variables', () => {
  test('every variable of the params builder reaches $_SERVER with the right value', async () => {
    const dump = await rawDump(gw.port, '/env.php/extra?a=1&b=%20', ['Content-Type: application/x-www-form-urlencoded'], 'POST', 'x=1');
    const s = dump.server;
    const expected: Record<string, string> = {
      REQUEST_METHOD: 'POST',
      QUERY_STRING: 'a=1&b=%20',
      CONTENT_TYPE: 'application/x-www-form-urlencoded',
      CONTENT_LENGTH: '3',
      SCRIPT_NAME: '/env.php',
      SCRIPT_FILENAME: gw.dirs.root + '/env.php',
      REQUEST_URI: '/env.php/extra?a=1&b=%20',
      DOCUMENT_URI: '/env.php',
      DOCUMENT_ROOT: gw.dirs.root,
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_SCHEME: 'http',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_SOFTWARE: `fastcgi-gateway/${VERSION}`,
      REMOTE_ADDR: '127.0.0.1',
      SERVER_ADDR: '127.0.0.1',
      SERVER_PORT: String(gw.port),
      SERVER_NAME: 'gw.test',
      REDIRECT_STATUS: '200',
      PATH_INFO: '/extra',
      PATH_TRANSLATED: gw.dirs.root + '/extra',
      HTTP_HOST: 'gw.test:8123',
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(s[k], v, k);
    assert.match(s['REMOTE_PORT'] ?? '', /^\d+$/);
    assert.notEqual(s['REMOTE_PORT'], '0');
    assert.equal(s['HTTPS'], undefined, 'HTTPS only over TLS or from a trusted proxy');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(s['SERVER_SOFTWARE'], `fastcgi-gateway/${pkg.version}`);
  });

  test('HTTP/1.0 request → SERVER_PROTOCOL HTTP/1.0; GET without body → empty CONTENT_*', async () => {
    const buf = await rawExchange(gw.port, 'GET /env.php HTTP/1.0\r\nHost: a\r\n\r\n');
    const [res] = parseRawResponses(buf);
    const dump = JSON.parse(res!.body.toString()) as Dump;
    assert.equal(dump.server['SERVER_PROTOCOL'], 'HTTP/1.0');
    assert.equal(dump.server['CONTENT_LENGTH'], '');
    assert.equal(dump.server['CONTENT_TYPE'], '');
  });
});

describe('request headers', () => {
  test('headers become HTTP_*; repeats join with ", ", Cookie with "; "', async () => {
    const dump = await rawDump(gw.port, '/env.php', [
      'X-Multi: a',
      'User-Agent: raw/1',
      'X-Multi: b, c',
      'Cookie: a=1',
      'Accept-Language: en',
      'Cookie: b=2; c=3',
      'x-lower-case: v',
    ]);
    assert.equal(dump.server['HTTP_X_MULTI'], 'a, b, c');
    assert.equal(dump.server['HTTP_COOKIE'], 'a=1; b=2; c=3');
    assert.deepEqual(dump.cookie, { a: '1', b: '2', c: '3' });
    assert.equal(dump.server['HTTP_USER_AGENT'], 'raw/1');
    assert.equal(dump.server['HTTP_ACCEPT_LANGUAGE'], 'en');
    assert.equal(dump.server['HTTP_X_LOWER_CASE'], 'v');
  });

  test('Content-Type and Content-Length reach PHP as CONTENT_* and, as nginx passes them, as HTTP_*', async () => {
    const dump = await rawDump(gw.port, '/env.php', ['Content-Type: text/plain'], 'POST', 'hello');
    assert.equal(dump.server['CONTENT_TYPE'], 'text/plain');
    assert.equal(dump.server['CONTENT_LENGTH'], '5');
    assert.equal(dump.server['HTTP_CONTENT_TYPE'], 'text/plain');
    assert.equal(dump.server['HTTP_CONTENT_LENGTH'], '5');
  });

  test('Proxy: never reaches PHP (httpoxy)', async () => {
    const dump = await rawDump(gw.port, '/env.php', ['Proxy: http://evil.test:3128', 'proxy: http://evil2.test']);
    assert.equal(dump.server['HTTP_PROXY'], undefined);
    assert.ok(!JSON.stringify(dump).includes('evil.test'));
  });

  test('X_Forwarded_For (underscore) is dropped; X-Forwarded-For is kept', async () => {
    const dump = await rawDump(gw.port, '/env.php', ['X_Forwarded_For: 6.6.6.6', 'X-Real-Name: ok', 'X_Custom: nope']);
    assert.equal(dump.server['HTTP_X_FORWARDED_FOR'], undefined);
    assert.equal(dump.server['HTTP_X_CUSTOM'], undefined);
    assert.ok(!JSON.stringify(dump).includes('6.6.6.6'));
    assert.equal(dump.server['HTTP_X_REAL_NAME'], 'ok');
    // A dashed header is not shadowed by an underscore one sent after it.
    const d2 = await rawDump(gw.port, '/env.php', ['X-Forwarded-For: 1.2.3.4', 'X_Forwarded_For: 6.6.6.6']);
    assert.equal(d2.server['HTTP_X_FORWARDED_FOR'], '1.2.3.4');
  });

  test('a request header cannot set PHP_VALUE or PHP_ADMIN_VALUE', async () => {
    const dump = await rawDump(gw.port, '/env.php', [
      'PHP_VALUE: precision=3',
      'PHP-VALUE: precision=4',
      'PHP_ADMIN_VALUE: precision=5',
      'Php-Admin-Value: precision=6',
    ]);
    assert.equal(dump.ini.precision, '14', 'ini unchanged');
    assert.equal(dump.server['PHP_VALUE'], undefined);
    assert.equal(dump.server['PHP_ADMIN_VALUE'], undefined);
    // The dashed forms arrive only as harmless HTTP_* variables.
    assert.equal(dump.server['HTTP_PHP_VALUE'], 'precision=4');
    // Repeat, so more than one worker and connection answer.
    for (let i = 0; i < 4; i++) {
      const d = await rawDump(gw.port, '/env.php', ['PHP-VALUE: precision=4']);
      assert.equal(d.ini.precision, '14');
    }
  });
});

describe('params option', () => {
  test('extra params are set and override defaults, PHP_VALUE from configuration works', async (t) => {
    // A private php-fpm: php-fpm keeps PHP_VALUE in the worker for later requests.
    const ownFpm = await startPhpFpm({ workers: 1 });
    t.after(() => ownFpm.stop());
    const g = await startGateway({
      fpm: ownFpm,
      gateway: {
        params: { APP_ENV: 'testing', SERVER_NAME: 'configured.example', HTTP_X_OVERRIDDEN: 'from-config', PHP_VALUE: 'precision=7' },
      },
    });
    t.after(() => g.close());
    const { data } = await g.json<Dump>('/env.php', { headers: { 'x-overridden': 'from-client', host: 'client.example' } });
    assert.equal(data.server['APP_ENV'], 'testing');
    assert.equal(data.server['SERVER_NAME'], 'configured.example');
    assert.equal(data.server['HTTP_X_OVERRIDDEN'], 'from-config');
    assert.equal(data.ini.precision, '7');
  });

  test('serverName option sets SERVER_NAME regardless of Host', async (t) => {
    const g = await startGateway({ fpm, gateway: { serverName: 'fixed.example' } });
    t.after(() => g.close());
    const { data } = await g.json<Dump>('/env.php', { headers: { host: 'other.example:99' } });
    assert.equal(data.server['SERVER_NAME'], 'fixed.example');
    assert.equal(data.server['HTTP_HOST'], 'other.example:99');
  });
});

describe('trusted proxies', () => {
  const fwd = { 'x-forwarded-for': '203.0.113.7, 127.0.0.1', 'x-forwarded-proto': 'https' };

  test('from a trusted peer (127.0.0.1) X-Forwarded-For/Proto set REMOTE_ADDR and https', async (t) => {
    const g = await startGateway({ fpm, gateway: { trustedProxies: ['127.0.0.1'] } });
    t.after(() => g.close());
    const { data } = await g.json<Dump>('/env.php', { headers: fwd });
    assert.equal(data.server['REMOTE_ADDR'], '203.0.113.7');
    assert.equal(data.server['REQUEST_SCHEME'], 'https');
    assert.equal(data.server['HTTPS'], 'on');
    // Without the headers the peer itself is the client.
    const { data: plain } = await g.json<Dump>('/env.php');
    assert.equal(plain.server['REMOTE_ADDR'], '127.0.0.1');
    assert.equal(plain.server['REQUEST_SCHEME'], 'http');
  });

  test('from an untrusted peer the headers are ignored for REMOTE_ADDR and scheme', async (t) => {
    const g = await startGateway({ fpm, gateway: { trustedProxies: ['10.9.8.7'] } });
    t.after(() => g.close());
    const { data } = await g.json<Dump>('/env.php', { headers: fwd });
    assert.equal(data.server['REMOTE_ADDR'], '127.0.0.1');
    assert.equal(data.server['REQUEST_SCHEME'], 'http');
    assert.equal(data.server['HTTPS'], undefined);
    // Still passed along as plain headers.
    assert.equal(data.server['HTTP_X_FORWARDED_FOR'], '203.0.113.7, 127.0.0.1');
  });

  test('with no trusted proxies configured (default) the headers are ignored too', async () => {
    const { data } = await gw.json<Dump>('/env.php', { headers: fwd });
    assert.equal(data.server['REMOTE_ADDR'], '127.0.0.1');
    assert.equal(data.server['REQUEST_SCHEME'], 'http');
  });
});
