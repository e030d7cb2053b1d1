import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FASTCGI_CONF_FILE } from '../../../src/bench/nginx.js';
import { buildCgiParams, collectHeaders, type CgiRequestInfo, type ScriptTarget } from '../../../src/cgi/params-builder.js';

const req = (over: Partial<CgiRequestInfo> = {}): CgiRequestInfo => ({
  method: 'GET',
  rawUrl: '/index.php/a/b?x=1',
  httpVersion: '1.1',
  rawHeaders: ['Host', 'example.test:8080', 'User-Agent', 'ua'],
  remoteAddress: '127.0.0.1',
  remotePort: 50000,
  serverAddress: '127.0.0.1',
  serverPort: 8080,
  https: false,
  ...over,
});
const target: ScriptTarget = { scriptName: '/index.php', pathInfo: '/a/b', documentUri: '/index.php/a/b', query: 'x=1', documentRoot: '/srv/www' };
const settings = { serverSoftware: 'fastcgi-gateway/1', serverName: null, extraParams: {} };
const noBody = { contentLength: null, contentType: null };
const asMap = (pairs: Array<[string, string | Buffer]>): Map<string, string> => {
  const m = new Map<string, string>();
  for (const [k, v] of pairs) m.set(k, typeof v === 'string' ? v : v.toString('latin1'));
  return m;
};

describe('buildCgiParams', () => {
  it('sends exactly the params of conf/fastcgi.conf (nginx\'s table, kept as data), in its order, before PATH_INFO and the headers', () => {
    const table = [...readFileSync(FASTCGI_CONF_FILE, 'utf8').matchAll(/^fastcgi_param\s+(\S+)\s+(.*?)(\s+if_not_empty)?;$/gm)].map((m) => ({ name: m[1]!, ifNotEmpty: m[3] !== undefined }));
    assert.ok(table.length >= 20, `parsed ${table.length} params from ${FASTCGI_CONF_FILE}`);
    const names = (https: boolean): string[] => buildCgiParams(req({ https }), { ...target, pathInfo: '' }, settings, noBody).map(([n]) => n).filter((n) => !n.startsWith('HTTP_'));
    // HTTPS is `if_not_empty`: present only on TLS requests. REMOTE_USER is the one documented
    // difference (docs/nginx-differences.md): the gateway does no HTTP authentication.
    const expected = table.filter((t) => t.name !== 'REMOTE_USER');
    assert.deepEqual(names(false), expected.filter((t) => !t.ifNotEmpty).map((t) => t.name));
    assert.deepEqual(names(true), expected.map((t) => t.name));
  });

  it('produces the nginx fastcgi.conf variables', () => {
    const p = asMap(buildCgiParams(req(), target, settings, noBody));
    assert.equal(p.get('SCRIPT_FILENAME'), '/srv/www/index.php');
    assert.equal(p.get('SCRIPT_NAME'), '/index.php');
    assert.equal(p.get('PATH_INFO'), '/a/b');
    assert.equal(p.get('PATH_TRANSLATED'), '/srv/www/a/b');
    assert.equal(p.get('QUERY_STRING'), 'x=1');
    assert.equal(p.get('REQUEST_URI'), '/index.php/a/b?x=1');
    assert.equal(p.get('DOCUMENT_URI'), '/index.php/a/b');
    assert.equal(p.get('DOCUMENT_ROOT'), '/srv/www');
    assert.equal(p.get('REQUEST_METHOD'), 'GET');
    assert.equal(p.get('CONTENT_TYPE'), '');
    assert.equal(p.get('CONTENT_LENGTH'), '');
    assert.equal(p.get('SERVER_PROTOCOL'), 'HTTP/1.1');
    assert.equal(p.get('REQUEST_SCHEME'), 'http');
    assert.equal(p.has('HTTPS'), false);
    assert.equal(p.get('GATEWAY_INTERFACE'), 'CGI/1.1');
    assert.equal(p.get('SERVER_SOFTWARE'), 'fastcgi-gateway/1');
    assert.equal(p.get('REMOTE_ADDR'), '127.0.0.1');
    assert.equal(p.get('REMOTE_PORT'), '50000');
    assert.equal(p.get('SERVER_PORT'), '8080');
    assert.equal(p.get('SERVER_NAME'), 'example.test');
    assert.equal(p.get('REDIRECT_STATUS'), '200');
    assert.equal(p.get('HTTP_HOST'), 'example.test:8080');
  });
  it('omits PATH_INFO and PATH_TRANSLATED without a path info', () => {
    const p = asMap(buildCgiParams(req(), { ...target, pathInfo: '' }, settings, noBody));
    assert.equal(p.has('PATH_INFO'), false);
    assert.equal(p.has('PATH_TRANSLATED'), false);
  });
  it('sets HTTPS and REQUEST_SCHEME for TLS, and content variables for a body', () => {
    const p = asMap(buildCgiParams(req({ https: true }), target, settings, { contentLength: 12, contentType: 'text/plain' }));
    assert.equal(p.get('HTTPS'), 'on');
    assert.equal(p.get('REQUEST_SCHEME'), 'https');
    assert.equal(p.get('CONTENT_LENGTH'), '12');
    assert.equal(p.get('CONTENT_TYPE'), 'text/plain');
  });
  it('lets configured params override defaults, last one winning in php-fpm', () => {
    const pairs = buildCgiParams(req(), target, { ...settings, serverName: 'named', extraParams: { SERVER_NAME: 'override', PHP_VALUE: 'x=1' } }, noBody);
    const names = pairs.map(([k]) => k);
    assert.ok(names.lastIndexOf('SERVER_NAME') > names.indexOf('SERVER_NAME'));
    assert.equal(asMap(pairs).get('SERVER_NAME'), 'override');
    assert.equal(asMap(pairs).get('PHP_VALUE'), 'x=1');
  });
  it('passes non-ASCII bytes of the URL as the original bytes', () => {
    const raw = Buffer.from('/é?q=ü', 'utf8').toString('latin1');
    const p = buildCgiParams(req({ rawUrl: raw }), target, settings, noBody);
    const uri = p.find(([k]) => k === 'REQUEST_URI')![1];
    assert.ok(Buffer.isBuffer(uri));
    assert.equal((uri as Buffer).toString('utf8'), '/é?q=ü');
  });
});

describe('collectHeaders', () => {
  it('maps names to HTTP_*, joins repeats with ", " and cookies with "; "', () => {
    const m = collectHeaders(['X-Multi', 'a', 'Cookie', 'c=1', 'x-multi', 'b', 'cookie', 'd=2', 'Accept-Language', 'en']);
    assert.equal(m.get('HTTP_X_MULTI'), 'a, b');
    assert.equal(m.get('HTTP_COOKIE'), 'c=1; d=2');
    assert.equal(m.get('HTTP_ACCEPT_LANGUAGE'), 'en');
  });
  it('drops Proxy (httpoxy) and names with underscores or other characters', () => {
    const m = collectHeaders(['Proxy', 'http://evil', 'X_Forwarded_For', '1.2.3.4', 'X-Ok', '1', 'X.Dot', 'y']);
    assert.deepEqual([...m.keys()], ['HTTP_X_OK']);
  });
  it('keeps underscore names only when allowed', () => {
    assert.equal(collectHeaders(['X_A', '1'], true).get('HTTP_X_A'), '1');
  });
});
