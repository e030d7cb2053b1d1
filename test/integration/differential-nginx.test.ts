/**
 * Differential test: the same raw HTTP requests through the canonical Debian nginx + php-fpm
 * setup and through the gateway, both in front of ONE php-fpm pool, and a PHP dump
 * (test/fixtures/diff-root/dump.php) of what the app sees: $_SERVER, $_GET, $_POST, $_COOKIE,
 * $_FILES and the php://input digest.
 *
 *   raw bytes ─┬─▶ nginx (test/helpers/nginx.ts) ──┬─▶ php-fpm (clear_env=yes) ─▶ dump.php
 *              └─▶ gateway (startGatewayServer) ───┘
 *
 * Keys that differ by nature (ports, SERVER_SOFTWARE, request time, the worker's USER/HOME) are
 * checked for plausibility on each side and then left out; every other difference is a known,
 * documented one (docs/nginx-differences.md) asserted with its exact value on both sides, so the
 * test fails when either side changes. Needs nginx: without it the suite fails with the install
 * hint (it does not skip).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';
import { type GatewayServer, startGatewayServer } from '../../src/server.js';
import { VERSION } from '../../src/version.js';
import { findNginx, type Nginx, nginxBuildInfo, startNginx } from '../helpers/nginx.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

const ROOT = fileURLToPath(new URL('../fixtures/diff-root', import.meta.url));

/** What dump.php prints. */
interface Dump {
  script: string;
  server: Record<string, string | number>;
  headers: Record<string, string>;
  get: unknown;
  post: unknown;
  cookie: unknown;
  files: unknown;
  input_md5: string;
  input_len: number;
}

interface RawResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  /** Port of our side of the connection: what REMOTE_PORT must say. */
  clientPort: number;
}

/** Send raw bytes on a fresh connection (the request says `Connection: close`), read to EOF. */
function exchange(port: number, request: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let clientPort = 0;
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      clientPort = s.localPort ?? 0;
      s.write(request);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => {
      try {
        resolve({ ...parseResponse(Buffer.concat(chunks), request.subarray(0, 5).toString() === 'HEAD '), clientPort });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

function parseResponse(buf: Buffer, head: boolean): Omit<RawResponse, 'clientPort'> {
  const end = buf.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no response head in ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
  const headers = lines.slice(1).map((l): [string, string] => {
    const c = l.indexOf(':');
    return [l.slice(0, c).toLowerCase(), l.slice(c + 1).trim()];
  });
  const rest = buf.subarray(end + 4);
  const te = headers.find(([n]) => n === 'transfer-encoding')?.[1];
  let body: Buffer;
  if (head) body = rest;
  else if (te === 'chunked') body = dechunk(rest);
  else body = rest;
  return { status, headers, body };
}

function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    assert.ok(eol >= 0, 'truncated chunked body');
    const size = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    assert.ok(Number.isInteger(size), 'bad chunk size');
    if (size === 0) return Buffer.concat(out);
    out.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
}

function header(r: RawResponse, name: string): string | undefined {
  return r.headers.find(([n]) => n === name)?.[1];
}

/** The dump: from the body, or for HEAD (no body) from the X-Dump header. */
function dumpOf(r: RawResponse, head: boolean): Dump {
  assert.equal(r.status, 200, `status ${r.status}: ${r.body.toString('utf8').slice(0, 300)}`);
  assert.equal(header(r, 'content-type'), 'application/json');
  if (head) {
    assert.equal(r.body.length, 0, 'HEAD answered with a body');
    const x = header(r, 'x-dump');
    assert.ok(x, 'no X-Dump header on HEAD');
    return JSON.parse(inflateRawSync(Buffer.from(x, 'base64')).toString('utf8')) as Dump;
  }
  return JSON.parse(r.body.toString('utf8')) as Dump;
}

const md5 = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');

/** `a.b.c` ≥ `x.y.z`. */
function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Marks a $_SERVER key that must not be set. */
const ABSENT = Symbol('absent');
type Expected = string | typeof ABSENT;
/** Known $_SERVER differences: key → [value under nginx, value under the gateway]. */
type ServerDiff = Record<string, readonly [Expected, Expected]>;

/**
 * Keys that differ by nature; checked by `checkVolatile` and then left out of the comparison.
 * USER/HOME come from the php-fpm worker (not from the request), PATH too when a pool keeps env.
 */
const VOLATILE = ['REMOTE_PORT', 'SERVER_PORT', 'SERVER_SOFTWARE', 'REQUEST_TIME', 'REQUEST_TIME_FLOAT', 'USER', 'HOME', 'PATH'];

interface Side {
  readonly name: 'nginx' | 'gateway';
  readonly port: number;
  readonly software: string;
}

function checkVolatile(side: Side, d: Dump, r: RawResponse): void {
  const s = d.server;
  assert.equal(s['REMOTE_PORT'], String(r.clientPort), `${side.name}: REMOTE_PORT is the client's port`);
  assert.equal(s['SERVER_PORT'], String(side.port), `${side.name}: SERVER_PORT is the listening port`);
  assert.equal(s['SERVER_SOFTWARE'], side.software, `${side.name}: SERVER_SOFTWARE`);
  const t = s['REQUEST_TIME'];
  const tf = s['REQUEST_TIME_FLOAT'];
  assert.ok(typeof t === 'number' && Number.isInteger(t) && t > 1_600_000_000, `${side.name}: REQUEST_TIME ${t}`);
  assert.ok(typeof tf === 'number' && Math.floor(tf) === t, `${side.name}: REQUEST_TIME_FLOAT ${tf}`);
  assert.ok(typeof s['USER'] === 'string' && s['USER'] !== '', `${side.name}: USER from the php-fpm worker`);
  assert.ok(typeof s['HOME'] === 'string' && s['HOME'].startsWith('/'), `${side.name}: HOME from the php-fpm worker`);
}

let fpm: PhpFpm;
let nginx: Nginx;
let gateway: GatewayServer;
let NGINX: Side;
let GATEWAY: Side;
/** nginx ≥ 1.23.0 joins repeated request headers into one param; 1.22 sends each one. */
let nginxJoinsRepeats = false;

interface Case {
  readonly method: string;
  /** Request target exactly as sent. */
  readonly target: string;
  /** Header lines after Host and Connection (which every request gets), in this order. */
  readonly headers?: readonly string[];
  /** Body bytes exactly as sent (already chunk-framed for Transfer-Encoding: chunked). */
  readonly body?: Buffer;
  /** Known $_SERVER differences beyond the ones every request has. */
  readonly serverDiff?: () => ServerDiff;
  /** Known getallheaders() differences: name → [nginx, gateway]. */
  readonly headersDiff?: () => Record<string, readonly [Expected, Expected]>;
  /** Known $_COOKIE difference: [nginx, gateway]. */
  readonly cookieDiff?: () => readonly [unknown, unknown] | null;
  /** Expectations on the agreed dump (what both sides must show). */
  readonly check: (d: Dump) => void;
}

function rawRequest(c: Case): Buffer {
  const head = [`${c.method} ${c.target} HTTP/1.1`, 'Host: localhost', 'Connection: close', ...(c.headers ?? [])];
  return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), c.body ?? Buffer.alloc(0)]);
}

/**
 * Differences every request has (docs/nginx-differences.md): nginx always sends REMOTE_USER
 * ($remote_user, '' without Basic credentials) and PATH_INFO ('' without a path info); the
 * gateway sends neither when empty, and adds PATH_TRANSLATED only with a path info.
 */
const COMMON_DIFF: ServerDiff = {
  REMOTE_USER: ['', ABSENT],
  PATH_INFO: ['', ABSENT],
  PATH_TRANSLATED: [ABSENT, ABSENT],
};

async function runCase(c: Case): Promise<void> {
  const bytes = rawRequest(c);
  const head = c.method === 'HEAD';
  const rn = await exchange(NGINX.port, bytes);
  const rg = await exchange(GATEWAY.port, bytes);
  const dn = dumpOf(rn, head);
  const dg = dumpOf(rg, head);
  checkVolatile(NGINX, dn, rn);
  checkVolatile(GATEWAY, dg, rg);
  // Response side: only nginx names itself.
  assert.equal(header(rn, 'server'), NGINX.software);
  assert.equal(header(rg, 'server'), undefined);

  const diff: ServerDiff = { ...COMMON_DIFF, ...(c.serverDiff?.() ?? {}) };
  const sn = { ...dn.server };
  const sg = { ...dg.server };
  for (const k of VOLATILE) {
    assert.equal(k in sn, k in sg, `${k} present on one side only`);
    delete sn[k];
    delete sg[k];
  }
  for (const [k, [vn, vg]] of Object.entries(diff)) {
    assert.equal(k in sn ? sn[k] : ABSENT, vn, `nginx $_SERVER[${k}]`);
    assert.equal(k in sg ? sg[k] : ABSENT, vg, `gateway $_SERVER[${k}]`);
    delete sn[k];
    delete sg[k];
  }
  assert.deepEqual(sg, sn, '$_SERVER differs beyond the known differences');

  const hn = { ...dn.headers };
  const hg = { ...dg.headers };
  for (const [k, [vn, vg]] of Object.entries(c.headersDiff?.() ?? {})) {
    assert.equal(k in hn ? hn[k] : ABSENT, vn, `nginx getallheaders()[${k}]`);
    assert.equal(k in hg ? hg[k] : ABSENT, vg, `gateway getallheaders()[${k}]`);
    delete hn[k];
    delete hg[k];
  }
  assert.deepEqual(hg, hn, 'getallheaders() differs beyond the known differences');

  const cookieDiff = c.cookieDiff?.() ?? null;
  if (cookieDiff) {
    assert.deepEqual(dn.cookie, cookieDiff[0], 'nginx $_COOKIE');
    assert.deepEqual(dg.cookie, cookieDiff[1], 'gateway $_COOKIE');
  } else {
    assert.deepEqual(dg.cookie, dn.cookie, '$_COOKIE');
  }
  assert.equal(dg.script, dn.script, 'script that ran');
  assert.deepEqual(dg.get, dn.get, '$_GET');
  assert.deepEqual(dg.post, dn.post, '$_POST');
  assert.deepEqual(dg.files, dn.files, '$_FILES');
  assert.equal(dg.input_md5, dn.input_md5, 'php://input md5');
  assert.equal(dg.input_len, dn.input_len, 'php://input length');
  c.check(dg);
}

function multipart(boundary: string, parts: Array<{ name: string; value: Buffer | string; filename?: string; type?: string }>): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    let h = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) h += `; filename="${p.filename}"`;
    h += '\r\n';
    if (p.type !== undefined) h += `Content-Type: ${p.type}\r\n`;
    out.push(Buffer.from(h + '\r\n', 'latin1'), Buffer.from(p.value), Buffer.from('\r\n'));
  }
  out.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(out);
}

function chunked(body: Buffer, size: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const part = body.subarray(i, i + size);
    out.push(Buffer.from(part.length.toString(16) + '\r\n'), part, Buffer.from('\r\n'));
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(out);
}

test('nginx is installed (the differential suite fails without it)', () => {
  const bin = findNginx(); // throws with the `apt-get install -y nginx-light` hint
  assert.match(nginxBuildInfo(bin).version, /^\d+\.\d+\.\d+$/);
});

describe('same request, nginx vs gateway: what PHP sees', () => {
  before(async () => {
    findNginx(); // fail first, with the install hint, when nginx is missing
    // One worker stays pinned by the gateway's kept-alive connection; nginx opens a new one per request.
    fpm = await startPhpFpm({ workers: 3 });
    nginx = await startNginx({ root: ROOT, fastcgiPass: fpm.address });
    gateway = await startGatewayServer({
      root: ROOT,
      upstream: fpm.address,
      listen: '127.0.0.1:0',
      accessLog: false,
      serverName: 'localhost',
      pool: { connections: 1 },
    });
    NGINX = { name: 'nginx', port: nginx.port, software: `nginx/${nginx.version}` };
    GATEWAY = { name: 'gateway', port: Number(new URL(gateway.url).port), software: `fastcgi-gateway/${VERSION}` };
    nginxJoinsRepeats = versionAtLeast(nginx.version, '1.23.0');
  });

  after(async () => {
    await gateway?.close();
    await nginx?.stop();
    await fpm?.stop();
  });

  test('GET with a query string and an array parameter', () =>
    runCase({
      method: 'GET',
      target: '/dump.php?a=1&b[]=2&b[]=3',
      check(d) {
        assert.deepEqual(d.get, { a: '1', b: ['2', '3'] });
        assert.equal(d.server['QUERY_STRING'], 'a=1&b[]=2&b[]=3');
        assert.equal(d.server['REQUEST_URI'], '/dump.php?a=1&b[]=2&b[]=3');
        assert.equal(d.server['SCRIPT_FILENAME'], `${ROOT}/dump.php`);
        assert.equal(d.server['DOCUMENT_ROOT'], ROOT);
        assert.equal(d.server['SERVER_NAME'], 'localhost');
        assert.equal(d.server['SERVER_ADDR'], '127.0.0.1');
        assert.equal(d.server['REMOTE_ADDR'], '127.0.0.1');
        assert.equal(d.server['SERVER_PROTOCOL'], 'HTTP/1.1');
        assert.equal(d.server['REQUEST_SCHEME'], 'http');
        assert.equal(d.server['GATEWAY_INTERFACE'], 'CGI/1.1');
        assert.equal(d.server['REDIRECT_STATUS'], '200');
        assert.equal(d.server['CONTENT_LENGTH'], '');
        assert.equal(d.server['CONTENT_TYPE'], '');
        assert.equal('HTTPS' in d.server, false);
      },
    }));

  test('PATH_INFO after the script name', () =>
    runCase({
      method: 'GET',
      target: '/dump.php/extra/path?x=y',
      // DOCUMENT_URI is the script on both sides (`try_files $fastcgi_script_name` rewrites
      // nginx's $uri); only the gateway adds PATH_TRANSLATED (RFC 3875 §4.1.6).
      serverDiff: () => ({
        PATH_INFO: ['/extra/path', '/extra/path'],
        PATH_TRANSLATED: [ABSENT, `${ROOT}/extra/path`],
      }),
      check(d) {
        assert.equal(d.script, '/dump.php');
        assert.equal(d.server['SCRIPT_NAME'], '/dump.php');
        assert.equal(d.server['SCRIPT_FILENAME'], `${ROOT}/dump.php`);
        assert.equal(d.server['PHP_SELF'], '/dump.php/extra/path');
        assert.deepEqual(d.get, { x: 'y' });
      },
    }));

  test('front controller keeps the original REQUEST_URI', () =>
    runCase({
      method: 'GET',
      target: '/some/route?q=1',
      check(d) {
        assert.equal(d.script, '/index.php');
        assert.equal(d.server['SCRIPT_NAME'], '/index.php');
        assert.equal(d.server['DOCUMENT_URI'], '/index.php');
        assert.equal(d.server['REQUEST_URI'], '/some/route?q=1');
        assert.equal(d.server['QUERY_STRING'], 'q=1');
        assert.deepEqual(d.get, { q: '1' });
      },
    }));

  // The canonical location is `~ [^/]\.php(/|$)`: ".php" right after a slash is not a script,
  // so such paths fall through try_files to the front controller, on both sides.
  for (const target of ['/dir/.php', '/dir/x.jpg/.php', '/.php', '/dir/.php/more']) {
    test(`".php" after a slash is not a script: ${target} goes to the front controller`, () =>
      runCase({
        method: 'GET',
        target,
        check(d) {
          assert.equal(d.script, '/index.php');
          assert.equal(d.server['SCRIPT_NAME'], '/index.php');
          assert.equal(d.server['REQUEST_URI'], target);
        },
      }));
  }

  test('directory index', () =>
    runCase({
      method: 'GET',
      target: '/dir/',
      check(d) {
        assert.equal(d.script, '/dir/index.php');
        assert.equal(d.server['SCRIPT_NAME'], '/dir/index.php');
        assert.equal(d.server['SCRIPT_FILENAME'], `${ROOT}/dir/index.php`);
        assert.equal(d.server['REQUEST_URI'], '/dir/');
      },
    }));

  test('percent-encoded path and query', () =>
    runCase({
      method: 'GET',
      target: '/d%75mp.php?x=%20',
      check(d) {
        assert.equal(d.script, '/dump.php');
        assert.equal(d.server['SCRIPT_NAME'], '/dump.php');
        assert.equal(d.server['DOCUMENT_URI'], '/dump.php');
        assert.equal(d.server['REQUEST_URI'], '/d%75mp.php?x=%20');
        assert.equal(d.server['QUERY_STRING'], 'x=%20');
        assert.deepEqual(d.get, { x: ' ' });
      },
    }));

  test('POST urlencoded form', () => {
    const body = Buffer.from('name=J%C3%BCrgen&list[]=1&list[]=2&empty=&plus=a+b');
    return runCase({
      method: 'POST',
      target: '/dump.php?from=query',
      headers: ['Content-Type: application/x-www-form-urlencoded', `Content-Length: ${body.length}`],
      body,
      check(d) {
        assert.deepEqual(d.post, { name: 'Jürgen', list: ['1', '2'], empty: '', plus: 'a b' });
        assert.deepEqual(d.get, { from: 'query' });
        assert.equal(d.server['CONTENT_TYPE'], 'application/x-www-form-urlencoded');
        assert.equal(d.server['CONTENT_LENGTH'], String(body.length));
        assert.equal(d.headers['Content-Length'], String(body.length));
        assert.equal(d.headers['Content-Type'], 'application/x-www-form-urlencoded');
        assert.equal(d.input_md5, md5(body));
      },
    });
  });

  test('POST multipart with a file', () => {
    const file = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
    const body = multipart('----diffBoundary42', [
      { name: 'title', value: 'hello world' },
      { name: 'up', value: file, filename: 'data.bin', type: 'application/octet-stream' },
    ]);
    return runCase({
      method: 'POST',
      target: '/dump.php',
      headers: ['Content-Type: multipart/form-data; boundary=----diffBoundary42', `Content-Length: ${body.length}`],
      body,
      check(d) {
        assert.deepEqual(d.post, { title: 'hello world' });
        assert.deepEqual(d.files, {
          up: { name: 'data.bin', type: 'application/octet-stream', size: file.length, error: 0, md5: md5(file) },
        });
        assert.equal(d.server['CONTENT_LENGTH'], String(body.length));
        assert.equal(d.input_len, 0); // PHP consumes multipart bodies itself
      },
    });
  });

  test('POST JSON body', () => {
    const body = Buffer.from(JSON.stringify({ k: [1, 2, 3], s: 'ü' }));
    return runCase({
      method: 'POST',
      target: '/dump.php',
      headers: ['Content-Type: application/json', `Content-Length: ${body.length}`],
      body,
      check(d) {
        assert.deepEqual(d.post, []);
        assert.equal(d.input_md5, md5(body));
        assert.equal(d.input_len, body.length);
        assert.equal(d.server['CONTENT_TYPE'], 'application/json');
      },
    });
  });

  test('custom and standard request headers', () =>
    runCase({
      method: 'GET',
      target: '/dump.php',
      headers: ['X-Foo: bar baz', 'Accept-Language: de-CH, en;q=0.5', 'User-Agent: diff-test/1.0 (x)'],
      check(d) {
        assert.equal(d.server['HTTP_X_FOO'], 'bar baz');
        assert.equal(d.server['HTTP_ACCEPT_LANGUAGE'], 'de-CH, en;q=0.5');
        assert.equal(d.server['HTTP_USER_AGENT'], 'diff-test/1.0 (x)');
        assert.equal(d.headers['X-Foo'], 'bar baz');
        assert.equal(d.headers['Accept-Language'], 'de-CH, en;q=0.5');
        assert.equal(d.server['HTTP_HOST'], 'localhost');
        assert.equal(d.server['HTTP_CONNECTION'], 'close');
      },
    }));

  test('repeated headers: X-Multi twice, two Cookie headers', () =>
    runCase({
      method: 'GET',
      target: '/dump.php',
      headers: ['X-Multi: one', 'Cookie: a=1; c=3', 'X-Multi: two', 'Cookie: b=2'],
      // nginx 1.22 sends each header line as its own param and php-fpm keeps the last one;
      // nginx ≥ 1.23 and the gateway join them (", ", and "; " for Cookie).
      serverDiff: () =>
        nginxJoinsRepeats ? {} : { HTTP_X_MULTI: ['two', 'one, two'], HTTP_COOKIE: ['b=2', 'a=1; c=3; b=2'] },
      cookieDiff: () => (nginxJoinsRepeats ? null : [{ b: '2' }, { a: '1', c: '3', b: '2' }]),
      headersDiff: () => (nginxJoinsRepeats ? {} : { 'X-Multi': ['two', 'one, two'], Cookie: ['b=2', 'a=1; c=3; b=2'] }),
      check(d) {
        assert.equal(d.server['HTTP_X_MULTI'], 'one, two');
        assert.equal(d.server['HTTP_COOKIE'], 'a=1; c=3; b=2');
        assert.deepEqual(d.cookie, { a: '1', c: '3', b: '2' });
      },
    }));

  test('header with an underscore and a Proxy header stay out of $_SERVER', () =>
    runCase({
      method: 'GET',
      target: '/dump.php',
      headers: ['X_Bad: underscore', 'Proxy: http://evil.invalid:3128', 'X-Good: yes'],
      // nginx drops X_Bad (underscores_in_headers off) but passes HTTP_PROXY: php-fpm keeps it
      // out of $_SERVER (httpoxy) yet getallheaders() still lists it. The gateway drops both.
      headersDiff: () => ({ Proxy: ['http://evil.invalid:3128', ABSENT] }),
      check(d) {
        assert.equal('HTTP_X_BAD' in d.server, false);
        assert.equal('HTTP_PROXY' in d.server, false);
        assert.equal(d.server['HTTP_X_GOOD'], 'yes');
        assert.equal('X_Bad' in d.headers, false);
      },
    }));

  test('Basic credentials: PHP_AUTH_* alike, REMOTE_USER only from nginx', () =>
    runCase({
      method: 'GET',
      target: '/dump.php',
      headers: [`Authorization: Basic ${Buffer.from('alice:s3cret').toString('base64')}`],
      // nginx's $remote_user is the unverified Basic user name even without auth_basic.
      serverDiff: () => ({ REMOTE_USER: ['alice', ABSENT] }),
      check(d) {
        assert.equal(d.server['PHP_AUTH_USER'], 'alice');
        assert.equal(d.server['PHP_AUTH_PW'], 's3cret');
        assert.equal(d.server['HTTP_AUTHORIZATION'], `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
      },
    }));

  test('HEAD: no body, same $_SERVER (read from the X-Dump header)', () =>
    runCase({
      method: 'HEAD',
      target: '/dump.php?h=1',
      check(d) {
        assert.equal(d.server['REQUEST_METHOD'], 'HEAD');
        assert.deepEqual(d.get, { h: '1' });
      },
    }));

  test('chunked request body: both send CONTENT_LENGTH of the whole body', () => {
    const form = Buffer.from('field=' + 'x'.repeat(40_000) + '&n=7');
    return runCase({
      method: 'POST',
      target: '/dump.php',
      headers: ['Content-Type: application/x-www-form-urlencoded', 'Transfer-Encoding: chunked'],
      body: chunked(form, 4096),
      check(d) {
        assert.equal(d.server['CONTENT_LENGTH'], String(form.length));
        assert.equal(d.server['HTTP_TRANSFER_ENCODING'], 'chunked');
        assert.equal('HTTP_CONTENT_LENGTH' in d.server, false);
        assert.equal(d.headers['Content-Length'], String(form.length));
        assert.equal(d.input_md5, md5(form));
        assert.deepEqual(d.post, { field: 'x'.repeat(40_000), n: '7' });
      },
    });
  });
});
