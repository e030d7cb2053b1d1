/**
 * prepareBody on a stand-in request stream (a PassThrough with headers): what needs no read
 * (no body, an empty one, a streamed one), what is refused before reading (a bad or too large
 * Content-Length), a body held in memory with its budget reservation until cleanup, a body
 * spooled to a temp file past bodyBufferSize, and the failures while collecting (too large,
 * cut short, the client gone, no data within clientBodyTimeout), and that timeout not counting
 * while the gateway itself holds the client back for the disk.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { BodySourceError, BodyTimeoutError, BodyTooLargeError } from '../../../src/errors.js';
import { MemoryBudget } from '../../../src/http/memory-budget.js';
import { type BodyLimits, type PreparedBody, prepareBody } from '../../../src/http/request-body.js';
import { openFilesUnder, waitFor } from '../../helpers/gateway.js';
import { holdThreadPool } from '../../helpers/thread-pool.js';

const dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-body-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const limits = (o: Partial<BodyLimits> = {}): BodyLimits => ({
  maxBodySize: 1024 * 1024,
  bodyBufferSize: 16 * 1024,
  tmpDir: dir,
  clientBodyTimeout: 0,
  requestBuffering: true,
  budget: new MemoryBudget(64 * 1024 * 1024),
  ...o,
});

/** A request stream with these headers (HTTP/1.1). */
function request(headers: Record<string, string>): PassThrough & IncomingMessage {
  const req = new PassThrough() as PassThrough & IncomingMessage;
  Object.assign(req, { headers, httpVersionMajor: 1, httpVersionMinor: 1 });
  return req;
}

async function bytesOf(body: PreparedBody['body']): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  if (Array.isArray(body)) return Buffer.concat(body);
  const chunks: Buffer[] = [];
  for await (const c of body as Readable) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('prepareBody', () => {
  test('no body, an empty one, and a streamed one need no read', () => {
    const none = prepareBody(request({}), limits());
    assert.ok(!(none instanceof Promise) && none.body === null && none.contentLength === null);
    const empty = prepareBody(request({ 'content-length': '0' }), limits());
    assert.ok(!(empty instanceof Promise) && empty.body === null && empty.contentLength === 0);
    const req = request({ 'content-length': '5' });
    const streamed = prepareBody(req, limits({ requestBuffering: false }));
    assert.ok(!(streamed instanceof Promise), 'at once');
    assert.equal(streamed.body, req, 'the request stream itself');
    assert.equal(streamed.contentLength, 5);
    assert.equal(streamed.streamed, true);
  });

  test('a bad or too large Content-Length is refused before any byte is read', () => {
    assert.throws(() => prepareBody(request({ 'content-length': '12abc' }), limits()), BodySourceError);
    assert.throws(() => prepareBody(request({ 'content-length': '2000000' }), limits()), BodyTooLargeError);
    assert.throws(() => prepareBody(request({ 'content-length': '2000000' }), limits({ requestBuffering: false })), BodyTooLargeError, 'streamed too');
  });

  test('a small body is held in memory, its bytes reserved from the budget until cleanup', async () => {
    const l = limits();
    const req = request({ 'content-length': '11' });
    const prepared = prepareBody(req, l);
    assert.ok(prepared instanceof Promise, 'the body is collected first');
    req.write('hello ');
    req.end('world');
    const p = await prepared;
    assert.equal((await bytesOf(p.body)).toString(), 'hello world');
    assert.equal(p.contentLength, 11);
    assert.equal(p.streamed, false);
    assert.equal(l.budget.used, 11, 'reserved while the request holds the body');
    p.cleanup();
    p.cleanup();
    assert.equal(l.budget.used, 0, 'returned once, however often cleanup runs');
  });

  test('past bodyBufferSize, or past the process budget, the body goes to a temp file', async () => {
    const body = Buffer.alloc(100_000, 'abcdefghij');
    for (const l of [limits(), limits({ budget: new MemoryBudget(1000), bodyBufferSize: 1024 * 1024 })]) {
      const req = request({ 'transfer-encoding': 'chunked' });
      const prepared = prepareBody(req, l);
      for (let i = 0; i < body.length; i += 7000) req.write(body.subarray(i, i + 7000));
      req.end();
      const p = await prepared;
      assert.ok(!Buffer.isBuffer(p.body) && !Array.isArray(p.body) && p.body !== null, 'a stream from the temp file');
      assert.equal(p.contentLength, body.length, 'a chunked body gets its length');
      assert.ok((await bytesOf(p.body)).equals(body), 'the same bytes');
      assert.equal(l.budget.used, 0, 'nothing left reserved');
      p.cleanup();
    }
  });

  test('while the temp file opens, a batch waits in memory and the rest in the socket', async () => {
    const body = Buffer.alloc(1024 * 1024, 'uvwxyz');
    const req = request({ 'content-length': String(body.length) });
    const prepared = prepareBody(req, limits());
    // Synchronously, so the open (a thread-pool round trip) cannot have finished in between. The
    // first chunk starts the open (the declared length is past bodyBufferSize); 4 more are a batch.
    for (let i = 0; i < 5 * 64 * 1024; i += 64 * 1024) {
      assert.equal(req.isPaused(), false, `still reading at ${i / 1024} KiB`);
      req.write(body.subarray(i, i + 64 * 1024));
    }
    assert.equal(req.isPaused(), true, 'paused once 256 KiB wait for the file');
    for (let i = 5 * 64 * 1024; i < body.length; i += 64 * 1024) {
      if (!req.write(body.subarray(i, i + 64 * 1024))) await new Promise((r) => req.once('drain', r));
    }
    req.end();
    const p = await prepared;
    assert.ok((await bytesOf(p.body)).equals(body), 'the same bytes, in order');
    p.cleanup();
  });

  test('bytes on their way to the temp file are reserved from the budget; with none left, the client waits for each write', async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, 'klmnopqrst');
    /** Records the reservations it grants. */
    class RecordingBudget extends MemoryBudget {
      granted = 0;
      override take(n: number): boolean {
        const ok = super.take(n);
        if (ok) this.granted += n;
        return ok;
      }
    }
    for (const budgetBytes of [64 * 1024 * 1024, 0]) {
      const budget = new RecordingBudget(budgetBytes);
      const l = limits({ maxBodySize: 0, budget });
      const req = request({ 'transfer-encoding': 'chunked' });
      let pauses = 0;
      req.on('pause', () => pauses++);
      const prepared = prepareBody(req, l);
      let heldWhileWriting = true;
      for (let i = 0; i < body.length; i += 64 * 1024) {
        const before = budget.granted;
        const more = req.write(body.subarray(i, i + 64 * 1024));
        // A batch flushed by this write cannot be on disk yet (the write completes on the thread pool).
        if (budget.granted > before && budget.used === 0) heldWhileWriting = false;
        // The writes wait while the request is paused, as a socket's would.
        if (!more) await new Promise((r) => req.once('drain', r));
      }
      const pausesBeforeEnd = pauses;
      req.end();
      const p = await prepared;
      assert.ok((await bytesOf(p.body)).equals(body), 'the same bytes');
      assert.equal(l.budget.used, 0, 'nothing left reserved');
      if (budgetBytes > 0) {
        // The first chunk is past bodyBufferSize: every byte went to disk, each batch reserved on its way.
        assert.equal(budget.granted, body.length, 'every batch on its way to disk held a reservation');
        assert.ok(heldWhileWriting, 'a reservation lasts until its write is on disk');
      } else {
        // Paused after each 256 KiB batch until it is on disk (and once while the file opens).
        assert.ok(pausesBeforeEnd >= 7, `the client was paused for each batch (${pausesBeforeEnd} pauses before the end)`);
      }
      p.cleanup();
    }
  });

  test('clientBodyTimeout does not run while the gateway holds the client back for the disk, and runs again after', { timeout: 30_000 }, async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, 'abcdefgh');
    const CHUNK = 64 * 1024;
    // The body timer is unref'd (a server's sockets keep the process alive); here a timer does.
    const alive = setInterval(() => {}, 1000);
    try {
      // Held back while the temp file cannot open, or once it is open while its writes cannot
      // land (over 1 MiB on its way to disk); then the client completes, or goes silent.
      const cases = [
        { hold: 'the open', ending: 'completes' },
        { hold: 'the open', ending: 'goes silent' },
        { hold: 'the writes', ending: 'completes' },
      ] as const;
      for (const { hold, ending } of cases) {
        const what = `held on ${hold}, then ${ending}`;
        const req = request({ 'content-length': String(body.length) });
        let sent = 0;
        // Held before the request starts: holding takes longer than clientBodyTimeout.
        let release: (() => Promise<void>) | null = hold === 'the open' ? await holdThreadPool(dir) : null;
        let prepared: Promise<PreparedBody> | undefined;
        let settledEarly: string | null = null;
        try {
          prepared = prepareBody(req, limits({ maxBodySize: 0, clientBodyTimeout: 250 })) as Promise<PreparedBody>;
          prepared.then(
            () => (settledEarly ??= 'resolved'),
            (e: Error) => (settledEarly ??= e.name),
          );
          if (hold === 'the writes') {
            // The first chunk opens the file (the declared length is past bodyBufferSize).
            req.write(body.subarray(0, CHUNK));
            sent = CHUNK;
            await waitFor(() => openFilesUnder(dir).length === 1, 'the temp file to open');
            release = await holdThreadPool(dir);
          }
          // As fast as the stream delivers them, until the gateway pauses the client.
          while (!req.isPaused() && sent < body.length) {
            req.write(body.subarray(sent, sent + CHUNK));
            sent += CHUNK;
            await new Promise((r) => setImmediate(r));
          }
          assert.equal(req.isPaused(), true, `${what}: the client is held back (sent ${sent})`);
          // Many times clientBodyTimeout, with the client ready to send and held back by us.
          // (The timeout is long enough for the set-up above: waiting for the open, holding the pool.)
          await new Promise((r) => setTimeout(r, 1200));
          assert.equal(settledEarly, null, `${what}: nothing settled while the gateway held the client (got ${settledEarly})`);
        } finally {
          // Never leave the pool held: the process could not exit.
          await release?.();
        }
        for (; sent < body.length; sent += CHUNK) {
          if (!req.write(body.subarray(sent, sent + CHUNK))) await new Promise((r) => req.once('drain', r));
        }
        if (ending === 'completes') {
          req.end();
          const p = await prepared!;
          assert.ok((await bytesOf(p.body)).equals(body), `${what}: the same bytes`);
          p.cleanup();
        } else {
          // Every byte but the end sent, then silence: the client's own silence still gets 408.
          await assert.rejects(prepared!, BodyTimeoutError);
        }
        await waitFor(() => openFilesUnder(dir).length === 0, 'the temp file closed');
      }
    } finally {
      clearInterval(alive);
    }
  });

  test('collecting fails with 413 past maxBodySize, 400 when cut short or the client leaves, 408 without data', async () => {
    const big = request({ 'transfer-encoding': 'chunked' });
    const tooLarge = prepareBody(big, limits({ maxBodySize: 10 }));
    big.write('0123456789a');
    await assert.rejects(tooLarge as Promise<PreparedBody>, BodyTooLargeError);

    const short = request({ 'content-length': '10' });
    const cut = prepareBody(short, limits());
    short.end('12345');
    await assert.rejects(cut as Promise<PreparedBody>, (e: unknown) => e instanceof BodySourceError && /ended after 5 of 10 bytes/.test(e.message));

    const leaving = request({ 'content-length': '10' });
    const gone = prepareBody(leaving, limits());
    leaving.write('123');
    leaving.destroy();
    await assert.rejects(gone as Promise<PreparedBody>, (e: unknown) => e instanceof BodySourceError && /client closed the connection/.test(e.message));

    const silent = request({ 'content-length': '10' });
    const l = limits({ clientBodyTimeout: 50 });
    // The body timer is unref'd (a server's sockets keep the process alive); here a timer does.
    const alive = setTimeout(() => {}, 10_000);
    await assert.rejects(prepareBody(silent, l) as Promise<PreparedBody>, BodyTimeoutError).finally(() => clearTimeout(alive));
    assert.equal(l.budget.used, 0);
  });
});
