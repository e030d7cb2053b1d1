import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CgiHeadParser, DEFAULT_MAX_HEAD_SIZE, parseCgiHead, type CgiHead, type CgiHeadParserOptions } from '../../../src/cgi/response-head.js';
import { CgiHeadInvalidError, CgiHeadTooLargeError, GatewayError } from '../../../src/errors.js';

/** Fixture bytes from a string, one byte per char (latin1), so '\xff' is the byte ff. */
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

interface Parsed {
  head: CgiHead;
  /** The body bytes: `body` of the completing push plus every later chunk. */
  body: Buffer;
  /** Index of the chunk whose push returned the head. */
  at: number;
}

/** Push chunks until the head completes; the rest is body. Calls end() when it never does. */
function feed(chunks: Buffer[], options?: CgiHeadParserOptions): Parsed {
  const parser = new CgiHeadParser(options);
  for (let i = 0; i < chunks.length; i++) {
    const r = parser.push(chunks[i]!);
    if (r !== null) return { head: r.head, body: Buffer.concat([r.body, ...chunks.slice(i + 1)]), at: i };
  }
  parser.end();
  assert.fail('end() did not throw for an incomplete head');
}

/** Every way to cut `buf` in two, plus one byte per chunk. */
function chunkings(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i <= buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  out.push([...buf].map((byte) => Buffer.from([byte])));
  return out;
}

const INVALID = { code: 'GW_ERR_CGI_HEAD_INVALID', name: 'CgiHeadInvalidError' };
const TOO_LARGE = { code: 'GW_ERR_CGI_HEAD_TOO_LARGE', name: 'CgiHeadTooLargeError' };

const PHP_HEAD = 'X-Powered-By: PHP/8.2.26\r\nContent-type: text/html; charset=UTF-8\r\n\r\n';

describe('CgiHeadParser: header lines', () => {
  it('parses a php-fpm head (CRLF) with defaults for status, reason and location', () => {
    const { head, body } = feed([b(PHP_HEAD + 'Hello')]);
    assert.deepEqual(head, {
      status: 200,
      reason: '',
      headers: [
        ['X-Powered-By', 'PHP/8.2.26'],
        ['Content-type', 'text/html; charset=UTF-8'],
      ],
      location: null,
      localRedirect: false,
    });
    assert.equal(body.toString('latin1'), 'Hello');
  });

  it('returns the body as a view of the chunk when the head is in one chunk (no copy)', () => {
    const chunk = b(PHP_HEAD + 'body bytes');
    const r = new CgiHeadParser().push(chunk);
    assert.ok(r);
    assert.equal(r.body.buffer, chunk.buffer);
    assert.equal(r.body.byteOffset, chunk.byteOffset + PHP_HEAD.length);
    assert.equal(r.body.length, 'body bytes'.length);
  });

  it('returns an empty body when the chunk ends with the blank line', () => {
    const r = new CgiHeadParser().push(b(PHP_HEAD));
    assert.ok(r);
    assert.equal(r.body.length, 0);
  });

  it('accepts bare LF line ends, and CRLF and LF mixed in one head', () => {
    const lf = feed([b('Content-Type: text/plain\nX-A: 1\n\nbody')]);
    assert.deepEqual(lf.head.headers, [['Content-Type', 'text/plain'], ['X-A', '1']]);
    assert.equal(lf.body.toString(), 'body');
    const mixed = feed([b('Content-Type: text/plain\r\nX-A: 1\nX-B: 2\r\n\nbody')]);
    assert.deepEqual(mixed.head.headers, [['Content-Type', 'text/plain'], ['X-A', '1'], ['X-B', '2']]);
    assert.equal(mixed.body.toString(), 'body');
    const lfThenCrlf = feed([b('X-A: 1\n\r\nbody')]);
    assert.deepEqual(lfThenCrlf.head.headers, [['X-A', '1']]);
    assert.equal(lfThenCrlf.body.toString(), 'body');
  });

  it('ends the head at the first empty line; later blank lines belong to the body', () => {
    const { head, body } = feed([b('X-A: 1\r\n\r\n\r\nX-B: 2\r\n\r\n')]);
    assert.deepEqual(head.headers, [['X-A', '1']]);
    assert.equal(body.toString('latin1'), '\r\nX-B: 2\r\n\r\n');
  });

  it('accepts an empty head (the first line is empty) as 200 with no headers', () => {
    for (const src of ['\r\nbody', '\nbody']) {
      const { head, body } = feed([b(src)]);
      assert.deepEqual(head, { status: 200, reason: '', headers: [], location: null, localRedirect: false });
      assert.equal(body.toString(), 'body');
    }
  });

  it('trims optional whitespace around values and keeps inner whitespace', () => {
    const { head } = feed([b('X-A:   a  b \t\r\nX-B:\tc\td\t\r\nX-C:x\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n')]);
    assert.deepEqual(head.headers, [
      ['X-A', 'a  b'],
      ['X-B', 'c\td'],
      ['X-C', 'x'],
      ['X-Empty', ''],
      ['X-Blank', ''],
    ]);
  });

  it('keeps header names exactly as sent and repeated headers as separate entries in order', () => {
    const { head } = feed([b('set-cookie: a=1\r\ncontent-TYPE: text/plain\r\nSet-Cookie: b=2\r\nSET-COOKIE: c=3\r\n\r\n')]);
    assert.deepEqual(head.headers, [
      ['set-cookie', 'a=1'],
      ['content-TYPE', 'text/plain'],
      ['Set-Cookie', 'b=2'],
      ['SET-COOKIE', 'c=3'],
    ]);
  });

  it('accepts every tchar in names', () => {
    const name = "!#$%&'*+-.^_`|~09AZaz";
    const { head } = feed([b(`${name}: v\r\n\r\n`)]);
    assert.deepEqual(head.headers, [[name, 'v']]);
  });

  it('reads bytes as latin1, byte-preserving (obs-text and UTF-8 sequences alike)', () => {
    const raw = Buffer.concat([b('X-Name: caf'), Buffer.from([0xc3, 0xa9, 0x20, 0x80, 0xff]), b('\r\n\r\n')]);
    const { head } = feed([raw]);
    const value = head.headers[0]![1];
    assert.equal(value, 'caf\u00c3\u00a9 \u0080\u00ff');
    assert.deepEqual(Buffer.from(value, 'latin1'), Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0x80, 0xff]));
  });

  it('allows a colon inside the value (only the first one separates)', () => {
    const { head } = feed([b('X-Time: 12:34:56\r\n\r\n')]);
    assert.deepEqual(head.headers, [['X-Time', '12:34:56']]);
  });
});

describe('CgiHeadParser: invalid lines', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['a line without a colon', 'X-A: 1\r\nnot a header\r\n\r\n', /line 2: header line without a colon/],
    ['obs-fold with a space', 'X-A: 1\r\n continued\r\n\r\n', /obs-fold/],
    ['obs-fold with a tab', 'X-A: 1\r\n\tcontinued\r\n\r\n', /obs-fold/],
    ['whitespace before the first header', ' X-A: 1\r\n\r\n', /line 1: .*obs-fold/],
    ['an empty name', ': value\r\n\r\n', /empty header name/],
    ['a space inside the name', 'Bad Name: v\r\n\r\n', /header name/],
    ['a space before the colon', 'X-A : v\r\n\r\n', /header name/],
    ['a tab before the colon', 'X-A\t: v\r\n\r\n', /header name/],
    ['a separator in the name', 'X(A): v\r\n\r\n', /header name/],
    ['a NUL in the name', 'X-\x00A: v\r\n\r\n', /header name/],
    ['obs-text in the name', 'X-\xe9: v\r\n\r\n', /header name/],
    ['a bare CR in the name', 'X-A\rX: v\r\n\r\n', /bare CR/],
    ['a NUL in the value', 'X-A: a\x00b\r\n\r\n', /control character in value of X-A/],
    ['a bare CR in the value (response splitting)', 'X-A: a\rSet-Cookie: evil=1\r\n\r\n', /control character/],
    ['a CR before CRLF', 'X-A: a\r\r\n\r\n', /control character/],
    ['a CR alone on a line before LF', 'X-A: a\n\r\r\n\r\n', /line 2/],
    ['an escape byte in the value', 'X-A: \x1b[31m\r\n\r\n', /control character/],
    ['a vertical tab in the value', 'X-A: a\x0bb\r\n\r\n', /control character/],
    ['DEL in the value', 'X-A: a\x7fb\r\n\r\n', /control character/],
    ['two Location headers', 'Location: /a\r\nlocation: /b\r\n\r\n', /more than one Location/],
  ];
  for (const [what, src, reason] of cases) {
    it(`rejects ${what}`, () => {
      assert.throws(() => feed([b(src)]), INVALID);
      assert.throws(() => feed([b(src)]), (e: unknown) => e instanceof CgiHeadInvalidError && reason.test(e.message));
    });
  }
});

describe('CgiHeadParser: Status', () => {
  it('sets status and reason from Status and removes it from headers', () => {
    const { head } = feed([b('Content-Type: text/plain\r\nStatus: 404 Not Found\r\nX-A: 1\r\n\r\n')]);
    assert.equal(head.status, 404);
    assert.equal(head.reason, 'Not Found');
    assert.deepEqual(head.headers, [['Content-Type', 'text/plain'], ['X-A', '1']]);
    assert.equal(head.localRedirect, false);
  });

  it('matches the Status name case-insensitively', () => {
    for (const name of ['status', 'STATUS', 'sTaTuS']) {
      const { head } = feed([b(`${name}: 201 Created\r\n\r\n`)]);
      assert.equal(head.status, 201);
      assert.deepEqual(head.headers, []);
    }
  });

  it('leaves reason empty when Status has only a code', () => {
    for (const value of ['204', '204 ', '204\t', ' 204 ']) {
      const { head } = feed([b(`Status:${value}\r\n\r\n`)]);
      assert.equal(head.status, 204, JSON.stringify(value));
      assert.equal(head.reason, '', JSON.stringify(value));
    }
  });

  it('keeps the reason phrase as sent, inner whitespace and obs-text included', () => {
    const { head } = feed([b('Status: 418  I\'m a\tteapot \xe9\r\n\r\n')]);
    assert.equal(head.status, 418);
    assert.equal(head.reason, "I'm a\tteapot \u00e9");
  });

  it('accepts the range boundaries 100 and 599', () => {
    assert.equal(feed([b('Status: 100\r\n\r\n')]).head.status, 100);
    assert.equal(feed([b('Status: 599 Custom\r\n\r\n')]).head.status, 599);
  });

  for (const value of ['', '20', '2000', '099', '000', '600', '999', 'abc', '20x', '200OK', '+20', '-200', '1e2', '٢٠٠']) {
    it(`rejects Status: ${JSON.stringify(value)}`, () => {
      assert.throws(() => feed([b(`Status: ${value}\r\n\r\n`)]), (e: unknown) => e instanceof CgiHeadInvalidError && /Status/.test(e.message));
    });
  }

  it('rejects more than one Status header', () => {
    assert.throws(() => feed([b('Status: 200 OK\r\nstatus: 200 OK\r\n\r\n')]), (e: unknown) => e instanceof CgiHeadInvalidError && /more than one Status/.test(e.message));
  });
});

describe('CgiHeadParser: Location', () => {
  for (const url of ['http://example.com/', 'https://example.com/a?b#c', 'https:', 'a+b.c-d:rest', 'mailto:a@b', 'HTTP://X']) {
    it(`answers 302 for an absolute URL without Status (${url})`, () => {
      const { head } = feed([b(`Location: ${url}\r\n\r\n`)]);
      assert.equal(head.status, 302);
      assert.equal(head.reason, '');
      assert.equal(head.location, url);
      assert.equal(head.localRedirect, false);
      assert.deepEqual(head.headers, [['Location', url]]);
    });
  }

  it('marks a lone absolute-path Location as a local redirect (status 302 if it turns out not to be one)', () => {
    const { head } = feed([b('Location: /other.php?x=1\r\n\r\n')]);
    assert.equal(head.status, 302);
    assert.equal(head.location, '/other.php?x=1');
    assert.equal(head.localRedirect, true);
    assert.deepEqual(head.headers, [['Location', '/other.php?x=1']]);
  });

  it('is not a local redirect when another header is present', () => {
    const { head } = feed([b('Location: /x\r\nContent-Type: text/html\r\n\r\n')]);
    assert.equal(head.status, 302);
    assert.equal(head.localRedirect, false);
    assert.equal(head.location, '/x');
  });

  it('is not a local redirect when Status is present, and Status wins over Location', () => {
    const local = feed([b('Status: 301 Moved Permanently\r\nLocation: /x\r\n\r\n')]).head;
    assert.equal(local.status, 301);
    assert.equal(local.reason, 'Moved Permanently');
    assert.equal(local.localRedirect, false);
    assert.deepEqual(local.headers, [['Location', '/x']]);
    const absolute = feed([b('Location: http://x/\r\nStatus: 303 See Other\r\n\r\n')]).head;
    assert.equal(absolute.status, 303);
  });

  for (const value of ['//evil.example/x', 'relative/path', '?q=1', '', '1http://x/', '-a:b', 'x y:z']) {
    it(`is a client redirect (302, as nginx), not a local one, for ${JSON.stringify(value)}`, () => {
      const { head } = feed([b(`Location: ${value}\r\n\r\n`)]);
      assert.equal(head.status, 302);
      assert.equal(head.localRedirect, false);
      assert.equal(head.location, value.trim());
    });
  }

  it('matches the Location name case-insensitively and trims its value', () => {
    const { head } = feed([b('LOCATION: \t/y  \r\n\r\n')]);
    assert.equal(head.location, '/y');
    assert.equal(head.localRedirect, true);
  });
});

describe('CgiHeadParser: chunking', () => {
  const fixtures: Array<[string, string]> = [
    ['php-fpm head', PHP_HEAD + 'Hello, world!'],
    ['LF-only head', 'Content-Type: text/plain\nX-A: 1\n\nbody\n'],
    ['Status, Location, Set-Cookie, body with CRLFs', 'Status: 302 Found\r\nLocation: http://x/\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n\r\nrest\r\n\r\n'],
    ['empty head', '\r\nbody'],
    ['local redirect, no body', 'Location: /next\r\n\r\n'],
  ];
  for (const [what, src] of fixtures) {
    it(`gives the same head and body at every split point and byte by byte: ${what}`, () => {
      const whole = b(src);
      const expected = feed([whole]);
      for (const chunks of chunkings(whole)) {
        const got = feed(chunks);
        assert.deepEqual(got.head, expected.head, `split ${chunks.map((c) => c.length).join('+')}`);
        assert.deepEqual(got.body, expected.body, `split ${chunks.map((c) => c.length).join('+')}`);
      }
    });
  }

  it('returns the head from the push that delivers the final LF, not before', () => {
    const chunks = [b('X-A: 1\r'), b('\n'), b('\r'), b('\n'), b('body')];
    const got = feed(chunks);
    assert.equal(got.at, 3);
    assert.equal(got.body.toString(), 'body');
  });

  it('fails the same way at every split point for invalid fixtures', () => {
    for (const src of ['X-A: 1\r\nno colon\r\n\r\n', 'X-A: a\rb\r\n\r\n', 'Status: 99\r\n\r\n', 'X-A: 1\r\n folded\r\n\r\n']) {
      for (const chunks of chunkings(b(src))) assert.throws(() => feed(chunks), INVALID);
    }
  });

  it('parses a head larger than PHP output buffer spread over 8 KiB chunks', () => {
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) lines.push(`X-Header-${i}: ${'v'.repeat(40)}-${i}\r\n`);
    const src = b(`${lines.join('')}\r\nbody`);
    assert.ok(src.length > 16384);
    const chunks: Buffer[] = [];
    for (let i = 0; i < src.length; i += 8192) chunks.push(src.subarray(i, i + 8192));
    const { head, body } = feed(chunks);
    assert.equal(head.headers.length, 400);
    assert.deepEqual(head.headers[399], ['X-Header-399', `${'v'.repeat(40)}-399`]);
    assert.equal(body.toString(), 'body');
  });

  it('copies partial lines, so the caller may reuse a chunk after push returns', () => {
    const first = b('X-A: hel');
    const parser = new CgiHeadParser();
    assert.equal(parser.push(first), null);
    first.fill(0x21);
    const r = parser.push(b('lo\r\n\r\n'));
    assert.ok(r);
    assert.deepEqual(r.head.headers, [['X-A', 'hello']]);
  });

  it('treats empty chunks as no-ops', () => {
    const parser = new CgiHeadParser();
    assert.equal(parser.push(Buffer.alloc(0)), null);
    assert.equal(parser.push(b('X-A: 1\r\n')), null);
    assert.equal(parser.push(Buffer.alloc(0)), null);
    const r = parser.push(b('\r\n'));
    assert.ok(r);
    assert.deepEqual(r.head.headers, [['X-A', '1']]);
  });
});

describe('CgiHeadParser: size limit', () => {
  const head = 'X-A: 1\r\nX-B: 2\r\n\r\n'; // 18 bytes including the blank line

  it('accepts a head of exactly maxHeadSize bytes, one chunk or byte by byte', () => {
    for (const chunks of chunkings(b(head + 'body'))) {
      const got = feed(chunks, { maxHeadSize: head.length });
      assert.equal(got.head.headers.length, 2);
      assert.equal(got.body.toString(), 'body');
    }
  });

  it('rejects a head one byte over maxHeadSize at every split point', () => {
    for (const chunks of chunkings(b(head + 'body'))) {
      assert.throws(() => feed(chunks, { maxHeadSize: head.length - 1 }), TOO_LARGE);
    }
  });

  it('fails as soon as the limit is reached without the blank line (byte by byte)', () => {
    const max = 10;
    const parser = new CgiHeadParser({ maxHeadSize: max });
    const src = b(head);
    for (let i = 0; i < max - 1; i++) assert.equal(parser.push(src.subarray(i, i + 1)), null, `byte ${i}`);
    // Byte `max` completes nothing: the head already needs more than `max` bytes.
    assert.throws(() => parser.push(src.subarray(max - 1, max)), TOO_LARGE);
  });

  it('fails when a complete non-empty line fills the limit exactly', () => {
    const parser = new CgiHeadParser({ maxHeadSize: 8 });
    assert.throws(() => parser.push(b('X-A: 1\r\n')), TOO_LARGE);
  });

  it('rejects a huge chunk without any line end on the first push', () => {
    const parser = new CgiHeadParser();
    assert.throws(() => parser.push(Buffer.alloc(1 << 20, 0x61)), TOO_LARGE);
  });

  it('does not count body bytes', () => {
    const body = Buffer.alloc(1 << 20, 0x62);
    const got = feed([Buffer.concat([b(head), body])], { maxHeadSize: head.length });
    assert.equal(got.body.length, body.length);
  });

  it('defaults to 65536 bytes', () => {
    assert.equal(DEFAULT_MAX_HEAD_SIZE, 65536);
    const prefix = 'X-Big: ';
    const fits = b(`${prefix}${'x'.repeat(65536 - prefix.length - 4)}\r\n\r\n`);
    assert.equal(fits.length, 65536);
    assert.equal(feed([fits]).head.headers[0]![1].length, 65536 - prefix.length - 4);
    const over = b(`${prefix}${'x'.repeat(65536 - prefix.length - 3)}\r\n\r\n`);
    assert.throws(() => feed([over]), TOO_LARGE);
    assert.throws(() => new CgiHeadParser().push(over), (e: unknown) => e instanceof CgiHeadTooLargeError && /65536 bytes/.test(e.message));
  });

  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`refuses maxHeadSize ${bad} at construction`, () => {
      assert.throws(() => new CgiHeadParser({ maxHeadSize: bad }), { code: 'GW_ERR_CONFIG_INVALID', message: /maxHeadSize/ });
    });
  }
});

describe('CgiHeadParser: end() and misuse', () => {
  it('end() rejects an empty stdout', () => {
    const parser = new CgiHeadParser();
    assert.throws(() => parser.end(), (e: unknown) => e instanceof CgiHeadInvalidError && /empty/.test(e.message));
  });

  it('end() rejects a head without its blank line', () => {
    for (const src of ['X-A: 1', 'X-A: 1\r\n', 'X-A: 1\r\n\r', 'X-A: 1\n']) {
      const parser = new CgiHeadParser();
      assert.equal(parser.push(b(src)), null);
      assert.throws(() => parser.end(), INVALID, JSON.stringify(src));
    }
  });

  it('end() after a complete head is a no-op', () => {
    const parser = new CgiHeadParser();
    assert.ok(parser.push(b(PHP_HEAD)));
    assert.equal(parser.done, true);
    parser.end();
  });

  it('push() after the head was returned throws a plain programming error', () => {
    const parser = new CgiHeadParser();
    assert.ok(parser.push(b(PHP_HEAD)));
    assert.throws(
      () => parser.push(b('more')),
      (e: unknown) => e instanceof Error && !(e instanceof GatewayError) && /after the head/.test(e.message),
    );
  });

  it('stays failed: push() and end() rethrow the first error', () => {
    const parser = new CgiHeadParser();
    let first: unknown;
    try {
      parser.push(b('bad line\r\n'));
    } catch (err) {
      first = err;
    }
    assert.ok(first instanceof CgiHeadInvalidError);
    assert.throws(() => parser.push(b('\r\n')), (e: unknown) => e === first);
    assert.throws(() => parser.end(), (e: unknown) => e === first);
    assert.equal(parser.done, false);
  });
});

describe('parseCgiHead', () => {
  it('parses a complete stdout buffer', () => {
    const { head, body } = parseCgiHead(b('Status: 201 Created\r\nX-A: 1\r\n\r\nok'));
    assert.equal(head.status, 201);
    assert.deepEqual(head.headers, [['X-A', '1']]);
    assert.equal(body.toString(), 'ok');
  });

  it('throws CgiHeadInvalidError when the blank line is missing and honours maxHeadSize', () => {
    assert.throws(() => parseCgiHead(b('X-A: 1\r\n')), INVALID);
    assert.throws(() => parseCgiHead(b('')), INVALID);
    assert.throws(() => parseCgiHead(b('X-A: 1\r\n\r\n'), { maxHeadSize: 5 }), TOO_LARGE);
  });
});
