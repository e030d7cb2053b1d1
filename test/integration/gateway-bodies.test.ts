/**
 * Integration, real php-fpm: request bodies through the gateway — forms, multipart uploads,
 * chunked bodies (php-fpm needs CONTENT_LENGTH, so they are collected first, spooled to
 * `tmpDir` past `bodyBufferSize` and always cleaned up), `maxBodySize`, and
 * `Expect: 100-continue`.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { FormData } from 'undici';
import { type GatewayFixture, listDir, openFilesUnder, parseRawResponses, rawExchange, startGateway, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

interface EchoResult {
  md5: string;
  len: number;
  content_length: string | null;
}

interface Dump {
  server: Record<string, string>;
  post: Record<string, unknown>;
  files: Record<string, { name: string; size: number; error: number; md5: string | null }>;
  body_md5: string;
  body_len: number;
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

let fpm: PhpFpm;
/** Default limits. */
let gw: GatewayFixture;
/** bodyBufferSize 64 KiB, maxBodySize 4 MiB, tmpDir in the fixture's temp dir. */
let small: GatewayFixture;

const BUFFER = 64 * 1024;
const MAX_BODY = 4 * 1024 * 1024;

before(async () => {
  fpm = await startPhpFpm({ workers: 3 });
  gw = await startGateway({ fpm });
  small = await startGateway({ fpm, gateway: { bodyBufferSize: BUFFER, maxBodySize: MAX_BODY } });
});

after(async () => {
  await gw?.close();
  await small?.close();
  await fpm?.stop();
});

/** An async iterable body that yields `parts` in order, awaiting `between(i)` after part i. */
async function* pieces(parts: Buffer[], between?: (i: number) => Promise<void>): AsyncGenerator<Buffer> {
  for (let i = 0; i < parts.length; i++) {
    yield parts[i]!;
    if (between) await between(i);
  }
}

/** An open raw connection with a promise of everything it receives until close. */
function openRaw(port: number): { sock: net.Socket; received: () => Buffer; closed: Promise<Buffer>; until: (pred: (b: Buffer) => boolean) => Promise<Buffer> } {
  const sock = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  const waiters: Array<{ pred: (b: Buffer) => boolean; resolve: (b: Buffer) => void }> = [];
  sock.on('error', () => {});
  sock.on('data', (c: Buffer) => {
    chunks.push(c);
    const all = Buffer.concat(chunks);
    for (const w of waiters.splice(0)) {
      if (w.pred(all)) w.resolve(all);
      else waiters.push(w);
    }
  });
  const closed = new Promise<Buffer>((resolve) => sock.once('close', () => resolve(Buffer.concat(chunks))));
  return {
    sock,
    received: () => Buffer.concat(chunks),
    closed,
    until: (pred) => {
      const all = Buffer.concat(chunks);
      if (pred(all)) return Promise.resolve(all);
      return Promise.race([
        new Promise<Buffer>((resolve) => waiters.push({ pred, resolve })),
        closed.then((b) => {
          if (!pred(b)) throw new Error(`connection closed first; got ${JSON.stringify(b.toString('latin1').slice(0, 200))}`);
          return b;
        }),
      ]);
    },
  };
}

const hasHead = (b: Buffer): boolean => b.includes('\r\n\r\n');

describe('forms and uploads', () => {
  test('POST urlencoded → $_POST', async () => {
    const form = 'name=Ada+Lovelace&lang=%C3%A9&tags%5B%5D=a&tags%5B%5D=b';
    const { data } = await gw.json<Dump>('/env.php', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    assert.deepEqual(data.post, { name: 'Ada Lovelace', lang: 'é', tags: ['a', 'b'] });
    assert.equal(data.server['REQUEST_METHOD'], 'POST');
    assert.equal(data.server['CONTENT_LENGTH'], String(form.length));
  });

  test('multipart upload of 3 MiB → $_FILES with the right size and md5', async () => {
    const file = randomBytes(3 * 1024 * 1024);
    const form = new FormData();
    form.append('title', 'holiday');
    form.append('upload', new Blob([file], { type: 'application/octet-stream' }), 'photo.bin');
    const { res, data } = await gw.json<Dump>('/env.php', { method: 'POST', body: form });
    assert.equal(res.status, 200);
    assert.deepEqual(data.post, { title: 'holiday' });
    const up = data.files['upload'];
    assert.ok(up, 'upload present in $_FILES');
    assert.equal(up.error, 0);
    assert.equal(up.name, 'photo.bin');
    assert.equal(up.size, file.length);
    assert.equal(up.md5, md5(file));
    assert.match(data.server['CONTENT_TYPE'] ?? '', /^multipart\/form-data; boundary=/);
  });
});

describe('chunked request bodies', () => {
  test('a chunked body reaches PHP with an exact CONTENT_LENGTH (in memory)', async () => {
    const parts = [randomBytes(1000), randomBytes(5000), randomBytes(3)];
    const whole = Buffer.concat(parts);
    const res = await gw.fetch('/echo.php', { method: 'POST', body: pieces(parts) });
    assert.equal(res.status, 200);
    const r = JSON.parse(res.text) as EchoResult;
    assert.equal(r.content_length, String(whole.length));
    assert.equal(r.len, whole.length);
    assert.equal(r.md5, md5(whole));
  });

  test('a chunked body written by hand on a raw socket', async () => {
    const body = 'hello, chunked world';
    const wire =
      'POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      '5\r\nhello\r\n' + 'f\r\n, chunked world\r\n' + '0\r\n\r\n';
    const [res] = parseRawResponses(await rawExchange(gw.port, wire));
    assert.equal(res?.status, 200);
    const r = JSON.parse(res.body.toString()) as EchoResult;
    assert.equal(r.content_length, String(body.length));
    assert.equal(r.md5, md5(Buffer.from(body)));
  });

  test('an empty chunked body → CONTENT_LENGTH 0', async () => {
    const wire = 'POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n';
    const [res] = parseRawResponses(await rawExchange(gw.port, wire));
    const r = JSON.parse(res!.body.toString()) as EchoResult;
    assert.equal(r.content_length, '0');
    assert.equal(r.len, 0);
  });

  test('above bodyBufferSize the body is spooled to a file in tmpDir, removed afterwards', async () => {
    assert.deepEqual(listDir(small.dirs.tmp), []);
    const parts = [randomBytes(BUFFER + 4096), randomBytes(512 * 1024), randomBytes(7)];
    const whole = Buffer.concat(parts);
    const seen: string[] = [];
    const body = pieces(parts, async (i) => {
      if (i !== 0) return;
      // The first part is over the buffer size: the spool file must exist before we go on.
      await waitFor(() => openFilesUnder(small.dirs.tmp).length > 0, 'a spool file in tmpDir');
      // Unlinked right after its open completes: the open descriptor is all there is.
      await waitFor(() => listDir(small.dirs.tmp).length === 0, 'the spool file to be unlinked');
      seen.push(...openFilesUnder(small.dirs.tmp));
    });
    const res = await small.fetch('/echo.php', { method: 'POST', body });
    assert.equal(res.status, 200);
    const r = JSON.parse(res.text) as EchoResult;
    assert.equal(r.content_length, String(whole.length));
    assert.equal(r.md5, md5(whole));
    assert.equal(seen.length, 1);
    assert.match(seen[0]!, /\/fcgi-gw-[^/]+ \(deleted\)$/);
    await waitFor(() => openFilesUnder(small.dirs.tmp).length === 0, 'the spool file to be closed');
  });

  test('the spool file is removed when the client aborts mid-body', async () => {
    const before = small.gw.handler.pool.stats.dispatched;
    for (let round = 0; round < 3; round++) {
      const c = openRaw(small.port);
      c.sock.write('POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
      const chunk = randomBytes(BUFFER * 2);
      c.sock.write(chunk.length.toString(16) + '\r\n');
      c.sock.write(chunk);
      c.sock.write('\r\n');
      await waitFor(() => openFilesUnder(small.dirs.tmp).length > 0, 'a spool file in tmpDir');
      c.sock.destroy();
      await waitFor(() => openFilesUnder(small.dirs.tmp).length === 0, 'the spool file to be closed after the abort');
    }
    assert.equal(small.gw.handler.pool.stats.dispatched, before, 'an incomplete body never reaches php-fpm');
  });
});

describe('maxBodySize', () => {
  test('Content-Length above maxBodySize → 413 before any body is read', async () => {
    const before = small.gw.handler.pool.stats.dispatched;
    const c = openRaw(small.port);
    c.sock.write(`POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_BODY + 1}\r\nContent-Type: application/octet-stream\r\n\r\n`);
    // No body byte is sent: the answer must come anyway.
    const got = await c.until(hasHead);
    c.sock.destroy();
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(got.toString('latin1'))?.[1]);
    assert.equal(status, 413);
    assert.match(got.toString('latin1'), /\r\nconnection: close\r\n/i);
    assert.equal(small.gw.handler.pool.stats.dispatched, before);
  });

  test('Content-Length exactly maxBodySize is accepted', async () => {
    const body = randomBytes(MAX_BODY);
    const res = await small.fetch('/echo.php', { method: 'POST', body });
    assert.equal(res.status, 200);
    const r = JSON.parse(res.text) as EchoResult;
    assert.equal(r.len, MAX_BODY);
    assert.equal(r.md5, md5(body));
  });

  test('a chunked body growing above maxBodySize → 413, spool file removed', async () => {
    const before = small.gw.handler.pool.stats.dispatched;
    const c = openRaw(small.port);
    c.sock.write('POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = randomBytes(256 * 1024);
    let sent = 0;
    // Keep sending until the gateway answers (it must, once past the limit).
    const answered = c.until(hasHead);
    let done = false;
    void answered.then(() => (done = true), () => (done = true));
    while (!done && sent <= MAX_BODY + chunk.length && !c.sock.destroyed) {
      const ok = c.sock.write(Buffer.concat([Buffer.from(chunk.length.toString(16) + '\r\n'), chunk, Buffer.from('\r\n')]));
      sent += chunk.length;
      if (!ok) await Promise.race([new Promise((r) => c.sock.once('drain', r)), answered.catch(() => {})]);
    }
    const got = await answered;
    c.sock.destroy();
    assert.equal(Number(/^HTTP\/1\.1 (\d{3})/.exec(got.toString('latin1'))?.[1]), 413);
    assert.ok(sent > MAX_BODY, `answered only after the limit was passed (sent ${sent})`);
    await waitFor(() => openFilesUnder(small.dirs.tmp).length === 0, 'the spool file to be closed after the 413');
    assert.equal(small.gw.handler.pool.stats.dispatched, before);
  });
});

describe('Expect: 100-continue', () => {
  test('an acceptable body gets 100 Continue, then the response', async () => {
    const body = Buffer.from('expect-continue-body');
    const c = openRaw(gw.port);
    c.sock.write(`POST /echo.php HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    const interim = await c.until(hasHead);
    assert.match(interim.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    c.sock.write(body);
    const all = await c.closed;
    const responses = parseRawResponses(all);
    assert.equal(responses.length, 2);
    assert.equal(responses[0]!.status, 100);
    assert.equal(responses[1]!.status, 200);
    const r = JSON.parse(responses[1]!.body.toString()) as EchoResult;
    assert.equal(r.md5, md5(body));
    assert.equal(r.content_length, String(body.length));
  });

  test('a too-large Content-Length gets 413 and never 100 Continue', async () => {
    const c = openRaw(small.port);
    c.sock.write(`POST /echo.php HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${MAX_BODY * 2}\r\n\r\n`);
    const all = await c.closed;
    const text = all.toString('latin1');
    assert.doesNotMatch(text, /100 Continue/);
    assert.match(text, /^HTTP\/1\.1 413 /);
  });
});
