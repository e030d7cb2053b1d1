/**
 * Integration, real php-fpm (and a fake responder for heads PHP cannot produce): how a CGI
 * response becomes an HTTP response — Status and reason, Location → 302, several Set-Cookie,
 * framing headers from the script, bad or oversized heads → 502, flush() streaming, HEAD,
 * RFC 3875 local redirects and their loop limit, STDERR to the log.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, parseRawResponses, rawExchange, rawGet, startGateway, waitFor } from '../helpers/gateway.js';
import { type FakeFpm, startFakeFpm } from '../helpers/fake-fpm.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;
let gw: GatewayFixture;

before(async () => {
  fpm = await startPhpFpm({ workers: 3 });
  gw = await startGateway({ fpm });
});

after(async () => {
  await gw?.close();
  await fpm?.stop();
});

const header = (h: Array<[string, string]>, name: string): string[] => h.filter(([k]) => k === name).map(([, v]) => v);

describe('status and headers', () => {
  test('Status: sets the code and the reason phrase', async () => {
    const res = await rawGet(gw.port, '/status.php');
    assert.equal(res.status, 299);
    assert.equal(res.reason, 'Totally Custom');
    assert.equal(res.body.toString(), 'custom status');
    assert.deepEqual(header(res.headers, 'status'), [], 'Status is not copied as a header');
  });

  test('Location with an absolute URL and no Status → 302, body kept', async () => {
    const res = await gw.fetch('/redirect.php');
    assert.equal(res.status, 302);
    assert.equal(res.headers['location'], 'https://example.test/elsewhere?x=1');
    assert.equal(res.text, 'moved');
  });

  test('several Set-Cookie headers stay separate', async () => {
    const res = await rawGet(gw.port, '/cookies.php');
    assert.deepEqual(header(res.headers, 'set-cookie'), ['a=1', 'b=2; path=/x; HttpOnly', 'c=3; Secure']);
  });

  test('Transfer-Encoding and Connection from the script do not break framing', async () => {
    // Two requests on one kept-alive connection: if the script's headers leaked, the first
    // body would be framed wrongly or the connection closed, and the second response lost.
    const wire =
      'GET /framing.php HTTP/1.1\r\nHost: x\r\n\r\n' + 'GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const responses = parseRawResponses(await rawExchange(gw.port, wire));
    assert.equal(responses.length, 2);
    const [first, second] = responses as [(typeof responses)[0], (typeof responses)[0]];
    assert.equal(first.status, 200);
    assert.equal(first.body.toString(), 'framing-ok\n'.repeat(100));
    assert.ok(header(first.headers, 'transfer-encoding').length <= 1, 'at most our own Transfer-Encoding');
    assert.deepEqual(header(first.headers, 'connection').map((v) => v.toLowerCase()), ['keep-alive']);
    assert.equal(second.status, 200);
    assert.equal(second.body.toString(), 'hello from php');
  });

  test('HEAD to a script: headers, no body, connection still usable', async () => {
    const wire = 'HEAD /framing.php HTTP/1.1\r\nHost: x\r\n\r\n' + 'GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const all = await rawExchange(gw.port, wire);
    const responses = parseRawResponses(all, [true, false]);
    assert.equal(responses.length, 2, 'no body bytes after the HEAD response');
    assert.equal(responses[0]!.status, 200);
    assert.match(header(responses[0]!.headers, 'content-type')[0] ?? '', /^text\/plain/);
    assert.equal(responses[1]!.body.toString(), 'hello from php');
  });
});

describe('heads the gateway refuses', () => {
  test('a head over maxHeadSize → 502', async () => {
    // Default limit 64 KiB.
    const res = await rawGet(gw.port, '/big-head.php?size=70000');
    assert.equal(res.status, 502);
    assert.doesNotMatch(res.body.toString(), /hhhh/);
    // Just under it is fine (raw socket: HTTP clients refuse such heads themselves).
    const ok = await rawGet(gw.port, '/big-head.php?size=60000');
    assert.equal(ok.status, 200);
    assert.equal(header(ok.headers, 'x-big')[0]?.length, 60000);
  });

  test('a configured small maxHeadSize applies', async (t) => {
    const g = await startGateway({ fpm, gateway: { maxHeadSize: 4096 } });
    t.after(() => g.close());
    assert.equal((await g.fetch('/big-head.php?size=5000')).status, 502);
    assert.equal((await g.fetch('/big-head.php?size=1000')).status, 200);
    assert.equal(g.logs.lines.some((l) => l['code'] === 'GW_ERR_CGI_HEAD_TOO_LARGE'), true);
  });

  describe('invalid header lines from the backend (fake responder) → 502', () => {
    let fake: FakeFpm;
    let fg: GatewayFixture;
    before(async () => {
      fake = await startFakeFpm();
      fg = await startGateway({ upstream: fake.address, gateway: { pool: { probeLimits: false } } });
    });
    after(async () => {
      await fg?.close();
      await fake?.close();
    });

    const heads: Array<[string, string]> = [
      ['line without a colon', 'Content-Type: text/plain\r\nThis is not a header\r\n\r\nbody'],
      ['space in the name', 'Content-Type: text/plain\r\nX Bad: v\r\n\r\nbody'],
      ['control character in a value', 'Content-Type: text/plain\r\nX-Bad: a\x01b\r\n\r\nbody'],
      ['bare CR inside a line', 'Content-Type: text/plain\r\nX-Bad: a\rSet-Cookie: injected=1\r\n\r\nbody'],
      ['obs-fold continuation', 'Content-Type: text/plain\r\nX-Bad: a\r\n  folded\r\n\r\nbody'],
      ['bad Status', 'Status: abc\r\nContent-Type: text/plain\r\n\r\nbody'],
      ['no blank line before the end', 'Content-Type: text/plain\r\nX-A: 1\r\n'],
    ];
    for (const [name, head] of heads) {
      test(name, async () => {
        fake.script = (_req, conn) => {
          conn.stdout(head);
          conn.end();
        };
        const res = await rawGet(fg.port, '/hello.php');
        assert.equal(res.status, 502);
        assert.doesNotMatch(res.body.toString('latin1'), /body|injected/);
        assert.deepEqual(header(res.headers, 'set-cookie'), []);
      });
    }

    test('a body shorter than its Content-Length: the bytes that came, then the connection cut; logged with its code', async () => {
      fake.script = (_req, conn) => {
        conn.stdout('Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten b');
        conn.end();
      };
      const got = await new Promise<string>((resolve, reject) => {
        const s = net.connect(fg.port, '127.0.0.1', () => s.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n'));
        let text = '';
        s.on('data', (c: Buffer) => (text += c.toString('latin1')));
        s.on('close', () => resolve(text));
        s.on('error', reject);
      });
      assert.match(got, /^HTTP\/1\.1 200 [\s\S]*Content-Length: 100\r\n[\s\S]*\r\n\r\nonly ten b$/i);
      await waitFor(() => fg.logs.lines.some((l) => l['code'] === 'GW_ERR_UPSTREAM_SHORT_BODY'), 'the short body logged with its code');
    });

    test('the same fake answering a valid head → 200 (control)', async () => {
      fake.script = (_req, conn) => conn.respond('fine', { 'Content-Type': 'text/plain', 'X-Ok': '1' });
      const res = await rawGet(fg.port, '/hello.php');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'fine');
    });
  });
});

describe('streaming', () => {
  test('flush() output reaches the client while the script is still running', async () => {
    const signal = join(gw.dirs.base, 'flush-signal');
    const res = await gw.client.request({ path: `/wait.php?signal=${encodeURIComponent(signal)}`, method: 'GET' });
    assert.equal(res.statusCode, 200);
    const it = res.body[Symbol.asyncIterator]();
    let text = '';
    while (!text.includes('\n')) {
      const r = await it.next();
      assert.ok(!r.done, 'body ended before the first line');
      text += Buffer.from(r.value as Uint8Array).toString();
    }
    // The script waits for the signal before writing more: what we have came from flush().
    assert.equal(text, 'first-chunk\n');
    assert.equal(existsSync(signal), false);
    writeFileSync(signal, 'go');
    for (let r = await it.next(); !r.done; r = await it.next()) text += Buffer.from(r.value as Uint8Array).toString();
    assert.equal(text, 'first-chunk\nsecond-chunk signalled\n');
    assert.equal(res.headers['transfer-encoding'], 'chunked', 'a streamed response is framed chunked');
    assert.equal(res.headers['content-length'], undefined);
  });

  test('a response that arrives whole in one read is framed with a Content-Length', async () => {
    const res = await gw.fetch('/hello.php');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.text)));
    assert.equal(res.headers['transfer-encoding'], undefined);
    const head = await gw.fetch('/hello.php', { method: 'HEAD' });
    assert.equal(head.headers['content-length'], undefined, 'HEAD gets no invented length (PHP sends no body for HEAD)');
  });

  test('a large body streams through intact (4 MiB, Content-Length kept)', async () => {
    const size = 4 * 1024 * 1024 + 13;
    const res = await gw.fetch(`/big.php?size=${size}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(size));
    assert.equal(res.body.length, size);
    for (const i of [0, 250, 251, 65535, 65536, 1_000_000, size - 1]) {
      assert.equal(res.body[i], (i % 65536) % 251, `byte ${i}`);
    }
  });
});

describe('local redirects (RFC 3875 §6.2.2)', () => {
  test('Location: /other.php with no body is followed internally as GET', async () => {
    const before = gw.gw.handler.pool.stats.dispatched;
    const res = await gw.fetch('/local-redirect.php');
    assert.equal(res.status, 200);
    assert.equal(res.headers['location'], undefined);
    assert.equal(res.text, 'other.php method=GET uri=/other.php body_len=0');
    assert.equal(gw.gw.handler.pool.stats.dispatched - before, 2);
  });

  test('a POST that redirects locally becomes a GET without the body', async () => {
    const res = await gw.fetch('/local-redirect.php', { method: 'POST', body: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'other.php method=GET uri=/other.php body_len=0');
  });

  test('the target may carry a query and go through the router (directory index)', async () => {
    const res = await gw.fetch(`/local-redirect.php?to=${encodeURIComponent('/sub/?from=redirect')}`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'sub index.php query=from=redirect');
  });

  test('a local redirect to a static file serves the file', async () => {
    const before = gw.gw.handler.pool.stats.dispatched;
    const res = await gw.fetch(`/local-redirect.php?to=${encodeURIComponent('/hello.txt')}`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'static hello text\n');
    assert.equal(gw.gw.handler.pool.stats.dispatched - before, 1, 'only the first script ran');
  });

  test('a redirect loop ends in 502', async () => {
    const before = gw.gw.handler.pool.stats.dispatched;
    const res = await gw.fetch('/loop.php');
    assert.equal(res.status, 502);
    assert.equal(res.headers['location'], undefined);
    // The first run plus maxLocalRedirects (default 10) re-dispatches.
    assert.equal(gw.gw.handler.pool.stats.dispatched - before, 11);
    assert.ok(gw.logs.lines.some((l) => l['code'] === 'GW_ERR_CGI_REDIRECT_LOOP'), 'logged with its code');
  });
});

describe('STDERR', () => {
  test('error_log() lines go to the log at warn with the request id; the response is intact', async () => {
    const res = await gw.fetch('/stderr.php', { headers: { 'x-request-id': 'stderr-test-42' } });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'before\nafter\n');
    const lines = gw.logs.lines.filter((l) => (l['req'] as { id?: string } | undefined)?.id === 'stderr-test-42' && typeof l['stderr'] === 'string');
    assert.ok(lines.length >= 1, 'stderr logged');
    for (const l of lines) assert.equal(l['level'], 40);
    const all = lines.map((l) => l['stderr'] as string).join('\n');
    assert.match(all, /stderr-line-one/);
    assert.match(all, /stderr-line-two/);
    // The access-log line for the same request is a success.
    const access = gw.logs.lines.find((l) => (l['req'] as { id?: string } | undefined)?.id === 'stderr-test-42' && l['res'] !== undefined);
    assert.equal((access?.['res'] as { statusCode?: number } | undefined)?.statusCode, 200);
  });
});
