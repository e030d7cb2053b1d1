/**
 * `run` arguments → CGI params: script path and document root, method defaults, body
 * variables, header mapping, --param overrides and the PHP_VALUE refusal.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CliError } from '../../../src/cli/exit-codes.js';
import { type RunParamsInput, buildRunParams, mapHeaders } from '../../../src/cli/run-params.js';

const base: RunParamsInput = {
  script: 'app/cron.php',
  cwd: '/srv/site',
  root: null,
  method: null,
  contentLength: null,
  query: '',
  headers: [],
  params: [],
  allowPhpValue: false,
  serverSoftware: 'fastcgi-gateway/9.9.9',
};

const build = (over: Partial<RunParamsInput>) => buildRunParams({ ...base, ...over });
const asMap = (over: Partial<RunParamsInput>) => new Map(build(over).params);
const usage = (re: RegExp) => (err: unknown) => err instanceof CliError && err.exitCode === 1 && re.test(err.message);

describe('buildRunParams: the base set', () => {
  test('a GET without body: exactly the documented params, in order', () => {
    assert.deepEqual(build({}).params, [
      ['GATEWAY_INTERFACE', 'CGI/1.1'],
      ['SERVER_SOFTWARE', 'fastcgi-gateway/9.9.9'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['SERVER_NAME', 'localhost'],
      ['SERVER_PORT', '80'],
      ['REMOTE_ADDR', '127.0.0.1'],
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/cron.php'],
      ['QUERY_STRING', ''],
      ['SCRIPT_NAME', '/cron.php'],
      ['SCRIPT_FILENAME', '/srv/site/app/cron.php'],
      ['DOCUMENT_ROOT', '/srv/site/app'],
      ['REDIRECT_STATUS', '200'],
    ]);
    assert.equal(build({}).scriptFilename, '/srv/site/app/cron.php');
  });

  test('an absolute script path ignores cwd', () => {
    assert.equal(asMap({ script: '/opt/x/y.php' }).get('SCRIPT_FILENAME'), '/opt/x/y.php');
  });

  test('--root: SCRIPT_NAME is the path under the root, DOCUMENT_ROOT the root', () => {
    const p = asMap({ script: 'public/admin/../api/v1.php', root: 'public' });
    assert.equal(p.get('SCRIPT_FILENAME'), '/srv/site/public/api/v1.php');
    assert.equal(p.get('SCRIPT_NAME'), '/api/v1.php');
    assert.equal(p.get('DOCUMENT_ROOT'), '/srv/site/public');
    assert.equal(p.get('REQUEST_URI'), '/api/v1.php');
  });

  test('--root that does not contain the script is refused', () => {
    assert.throws(() => build({ script: 'other/x.php', root: 'public' }), usage(/not inside --root/));
    assert.throws(() => build({ script: 'public', root: 'public' }), usage(/not inside --root/));
    assert.throws(() => build({ script: '/srv/site/publicity/x.php', root: '/srv/site/public' }), usage(/not inside/));
  });

  test('--query sets QUERY_STRING and REQUEST_URI; a leading ? is dropped', () => {
    for (const query of ['a=1&b=%20', '?a=1&b=%20']) {
      const p = asMap({ query });
      assert.equal(p.get('QUERY_STRING'), 'a=1&b=%20');
      assert.equal(p.get('REQUEST_URI'), '/cron.php?a=1&b=%20');
    }
  });
});

describe('buildRunParams: method and body', () => {
  test('with a body: POST, exact CONTENT_LENGTH, form CONTENT_TYPE by default', () => {
    const p = asMap({ contentLength: 1234567 });
    assert.equal(p.get('REQUEST_METHOD'), 'POST');
    assert.equal(p.get('CONTENT_LENGTH'), '1234567');
    assert.equal(p.get('CONTENT_TYPE'), 'application/x-www-form-urlencoded');
  });

  test('an empty body still sends CONTENT_LENGTH 0', () => {
    assert.equal(asMap({ contentLength: 0 }).get('CONTENT_LENGTH'), '0');
  });

  test('without a body: no CONTENT_LENGTH and no CONTENT_TYPE', () => {
    const p = asMap({});
    assert.equal(p.has('CONTENT_LENGTH'), false);
    assert.equal(p.has('CONTENT_TYPE'), false);
  });

  test('-H Content-Type wins over the default', () => {
    assert.equal(asMap({ contentLength: 2, headers: ['Content-Type: application/json'] }).get('CONTENT_TYPE'), 'application/json');
  });

  test('-X overrides the method and is upper-cased; a non-token is refused', () => {
    assert.equal(asMap({ method: 'put', contentLength: 1 }).get('REQUEST_METHOD'), 'PUT');
    assert.equal(asMap({ method: 'DELETE' }).get('REQUEST_METHOD'), 'DELETE');
    assert.throws(() => build({ method: 'GET /x' }), usage(/not a valid HTTP method/));
  });
});

describe('mapHeaders', () => {
  test('upper case, - → _, HTTP_ prefix, values trimmed', () => {
    assert.deepEqual(mapHeaders(['X-Request-Id:  abc ', 'accept: text/html']).mapped, [
      ['HTTP_X_REQUEST_ID', 'abc'],
      ['HTTP_ACCEPT', 'text/html'],
    ]);
  });

  test('repeats are joined with ", ", Cookie with "; "', () => {
    assert.deepEqual(mapHeaders(['Accept: a', 'Cookie: x=1', 'accept: b', 'cookie: y=2']).mapped, [
      ['HTTP_ACCEPT', 'a, b'],
      ['HTTP_COOKIE', 'x=1; y=2'],
    ]);
  });

  test('Content-Type is returned apart; Content-Length is refused', () => {
    assert.deepEqual(mapHeaders(['Content-Type: text/csv']), { mapped: [], contentType: 'text/csv' });
    assert.throws(() => mapHeaders(['Content-Length: 5']), usage(/Content-Length/));
  });

  test('lines without a colon or with a bad name are refused', () => {
    assert.throws(() => mapHeaders(['NoColon']), usage(/Name: value/));
    assert.throws(() => mapHeaders(['Bad Name: x']), usage(/Name: value/));
    assert.throws(() => mapHeaders([': x']), usage(/Name: value/));
    assert.throws(() => mapHeaders(['X.Dotted: x']), usage(/letters, digits, "-" and "_" only/));
  });

  test('Proxy is refused (httpoxy), as the gateway never passes it; underscores are kept', () => {
    assert.throws(() => mapHeaders(['Proxy: http://evil.example']), usage(/httpoxy/));
    assert.deepEqual(mapHeaders(['X_Under: 1']).mapped, [['HTTP_X_UNDER', '1']]);
  });

  test('headers follow the body variables in the param list', () => {
    const names = build({ contentLength: 1, headers: ['X-A: 1'] }).params.map(([n]) => n);
    assert.deepEqual(names.slice(-3), ['CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTP_X_A']);
  });
});

describe('--param', () => {
  test('overrides a base param in place and appends new ones', () => {
    const r = build({ params: ['SERVER_NAME=example.test', 'APP_ENV=prod', 'EMPTY=', 'EQ=a=b'] });
    const names = r.params.map(([n]) => n);
    assert.equal(names.indexOf('SERVER_NAME'), 3);
    assert.equal(names.filter((n) => n === 'SERVER_NAME').length, 1);
    const p = new Map(r.params);
    assert.equal(p.get('SERVER_NAME'), 'example.test');
    assert.equal(p.get('APP_ENV'), 'prod');
    assert.equal(p.get('EMPTY'), '');
    assert.equal(p.get('EQ'), 'a=b');
    assert.deepEqual(names.slice(-3), ['APP_ENV', 'EMPTY', 'EQ']);
  });

  test('a spec without NAME= is refused', () => {
    assert.throws(() => build({ params: ['NOVALUE'] }), usage(/NAME=VALUE/));
    assert.throws(() => build({ params: ['=x'] }), usage(/NAME=VALUE/));
  });

  test('PHP_VALUE and PHP_ADMIN_VALUE are refused in any case, with the reason and the flag to pass', () => {
    for (const spec of ['PHP_VALUE=auto_prepend_file=/tmp/x', 'php_admin_value=memory_limit=1G', 'Php_Value=x']) {
      assert.throws(() => build({ params: [spec] }), usage(/stays in that worker.*--allow-php-value/s), spec);
    }
  });

  test('--allow-php-value lets them through, with a warning', () => {
    const r = build({ params: ['PHP_VALUE=display_errors=1'], allowPhpValue: true });
    assert.equal(new Map(r.params).get('PHP_VALUE'), 'display_errors=1');
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0] ?? '', /PHP_VALUE stays set in the php-fpm worker/);
  });

  test('CONTENT_LENGTH cannot be overridden when there is a body', () => {
    assert.throws(() => build({ contentLength: 3, params: ['CONTENT_LENGTH=99'] }), usage(/CONTENT_LENGTH/));
  });
});
