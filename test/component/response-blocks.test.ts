/**
 * The spill writer gives lent blocks back to the pool, and the pool lends them again while the
 * same response is still on its way: over a real HTTP/1.1 socket and a real HTTP/2 stream over
 * TLS, a client that reads nothing until the server has written everything must still get
 * every byte as written. A block given back before node was done with it would show up here as
 * bytes of a later chunk. Nothing may be given back through a wrapper that keeps chunks past
 * its write callback, on cleartext HTTP/2, or from writes cut short by a destroyed response.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MemoryBudget } from '../../src/http/memory-budget.js';
import { SpillingWriter } from '../../src/http/response-spill.js';
import { BLOCK_SIZE, blocks } from '../../src/upstream/blocks.js';
import { waitFor } from '../helpers/gateway.js';
import { tlsFixture } from '../helpers/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'blocks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Chunks written (lent views), the bytes they had when written, and how many were reused. */
interface Written {
  readonly views: Buffer[];
  readonly expected: Buffer[];
  reused: number;
}

/**
 * Write `count` lent blocks, each stamped with its index, through a SpillingWriter that spills
 * at once (memory 0), yielding to the event loop between chunks so that file writes complete
 * and their blocks come back to be lent again. Resolves once end() was called.
 */
async function writeBlocks(res: ServerResponse, count: number, o: { ended?: boolean; spill?: boolean } = {}): Promise<Written> {
  const spill = o.spill ?? true;
  const limits = spill ? { memory: 0, maxSpill: 1 << 30 } : { memory: 1 << 30, maxSpill: 0 };
  const w = new SpillingWriter(res, { ...limits, tmpDir: dir, sendTimeout: 0, budget: new MemoryBudget(1 << 30) }, { resume: () => {}, failed: () => {} });
  const seen = new Set<ArrayBufferLike>();
  const out: Written = { views: [], expected: [], reused: 0 };
  for (let i = 0; i < count; i++) {
    const v = blocks.take(BLOCK_SIZE);
    if (seen.has(v.buffer)) out.reused++;
    seen.add(v.buffer);
    v.fill(i % 251);
    v.writeUInt32BE(i, 0);
    v.writeUInt32BE(i, BLOCK_SIZE - 4);
    out.views.push(v);
    out.expected.push(Buffer.from(v));
    w.write(v);
    await new Promise((r) => setImmediate(r));
  }
  if (o.ended ?? true) w.end();
  return out;
}

/** Resolves with the server-side result once the handler has written everything. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Read `body` only once `ready` settled, then all of it. */
async function readAfter(body: NodeJS.ReadableStream, ready: Promise<unknown>): Promise<Buffer> {
  body.pause();
  await ready;
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('HTTP/1.1: every byte arrives while the blocks are given back and lent again', { timeout: 60_000 }, async () => {
  const done = deferred<Written>();
  const server = http.createServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    void writeBlocks(res, 300).then(done.resolve);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await new Promise<IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port, agent: false }, resolve).on('error', reject));
    const body = await readAfter(res, done.promise);
    const w = await done.promise;
    assert.ok(w.reused > 0, `blocks were lent again during the response (${w.reused} of 300)`);
    assert.equal(body.length, 300 * BLOCK_SIZE);
    assert.ok(body.equals(Buffer.concat(w.expected)), 'the bytes as written, in order');
    await waitFor(() => w.views.every((v) => !blocks.lent(v)), 'every chunk given back');
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

const tlsKeys = (): { cert: Buffer; key: Buffer } => {
  const f = tlsFixture('default');
  return { cert: readFileSync(f.cert), key: readFileSync(f.key) };
};

/** An HTTP/2 server (TLS or cleartext) and a client session to it; `close()` tears both down. */
async function h2Pair(secure: boolean, onRequest: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void) {
  const server = secure ? http2.createSecureServer(tlsKeys(), onRequest) : http2.createServer(onRequest);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const client = http2.connect(`${secure ? 'https' : 'http'}://127.0.0.1:${port}`, { rejectUnauthorized: false });
  client.on('error', () => {});
  return {
    client,
    close: (): void => {
      // Destroyed, not closed: a failed assertion may leave a stream open, and the test
      // process must still exit.
      client.destroy();
      for (const s of sessions) s.destroy();
      server.close();
    },
  };
}

test('HTTP/2 over TLS: every byte arrives while the blocks are given back and lent again', { timeout: 60_000 }, async () => {
  const done = deferred<Written>();
  const { client, close } = await h2Pair(true, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    void writeBlocks(res as unknown as ServerResponse, 300).then(done.resolve);
  });
  try {
    const stream = client.request({ ':path': '/' });
    const body = await readAfter(stream, done.promise);
    const w = await done.promise;
    assert.ok(w.reused > 0, `blocks were lent again during the response (${w.reused} of 300)`);
    assert.equal(body.length, 300 * BLOCK_SIZE);
    assert.ok(body.equals(Buffer.concat(w.expected)), 'the bytes as written, in order');
    await waitFor(() => w.views.every((v) => !blocks.lent(v)), 'every chunk given back');
  } finally {
    close();
  }
});

test('a wrapper that keeps chunks past its write callback gets blocks that are never given back', { timeout: 60_000 }, async () => {
  const done = deferred<Written>();
  const server = http.createServer((_req: IncomingMessage, res: ServerResponse) => {
    // Like a compressing middleware: write() "completes" at once, the bytes go out at end().
    const kept: Buffer[] = [];
    const end = res.end.bind(res);
    res.write = ((chunk: Buffer, cb?: () => void) => {
      kept.push(chunk);
      cb?.();
      return true;
    }) as typeof res.write;
    res.end = ((...args: unknown[]) => {
      const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
      return end(Buffer.concat(kept), cb);
    }) as typeof res.end;
    res.writeHead(200);
    void writeBlocks(res, 100).then(done.resolve);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await new Promise<IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port, agent: false }, resolve).on('error', reject));
    const body = await readAfter(res, done.promise);
    const w = await done.promise;
    assert.equal(w.reused, 0, 'no block came back while the wrapper held them');
    assert.ok(body.equals(Buffer.concat(w.expected)), 'the bytes as written, in order');
    assert.equal(w.views.filter((v) => blocks.lent(v)).length, 100, 'none given back');
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('cleartext HTTP/2: no block is given back from a write callback', { timeout: 60_000 }, async () => {
  const done = deferred<Written>();
  const { client, close } = await h2Pair(false, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    void writeBlocks(res as unknown as ServerResponse, 100).then(done.resolve);
  });
  try {
    const stream = client.request({ ':path': '/' });
    const body = await readAfter(stream, done.promise);
    const w = await done.promise;
    assert.ok(body.equals(Buffer.concat(w.expected)), 'the bytes as written, in order');
    // The spilled ones came back from their temp-file writes; the ones written straight to the
    // stream (the first, before it pushed back) were not given back.
    assert.ok(w.views.some((v) => blocks.lent(v)), 'the directly written blocks are left to the collector');
    assert.ok(w.views.some((v) => !blocks.lent(v)), 'the spilled ones still came back');
  } finally {
    close();
  }
});

/**
 * Write blocks to a client that reads nothing, then destroy the response: the blocks whose
 * writes were still under way must not be given back (their callbacks run with an error, or on
 * a destroyed stream). No temp file here (its writes give blocks back, rightly, whenever they
 * return): what the client cannot take waits in memory, which destroy() drops.
 */
async function destroyMidway(res: ServerResponse, closed: Promise<unknown>): Promise<{ pending: Buffer[] }> {
  const w = await writeBlocks(res, 300, { ended: false, spill: false });
  const pending = w.views.filter((v) => blocks.lent(v));
  res.destroy();
  await closed;
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return { pending };
}

test('HTTP/1.1: a response destroyed mid-way gives back none of the blocks still being written', { timeout: 60_000 }, async () => {
  const done = deferred<{ pending: Buffer[] }>();
  const server = http.createServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200);
    void destroyMidway(res, new Promise((r) => res.once('close', r))).then(done.resolve);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await new Promise<IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port, agent: false }, resolve).on('error', reject));
    res.pause();
    res.on('error', () => {});
    const { pending } = await done.promise;
    assert.ok(pending.length > 0, 'some blocks were still on their way to the client');
    assert.equal(pending.filter((v) => !blocks.lent(v)).length, 0, 'none of them given back');
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('HTTP/2 over TLS: a stream destroyed mid-way gives back none of the blocks still being written', { timeout: 60_000 }, async () => {
  const done = deferred<{ pending: Buffer[] }>();
  const { client, close } = await h2Pair(true, (_req, res) => {
    res.writeHead(200);
    void destroyMidway(res as unknown as ServerResponse, new Promise((r) => res.stream.once('close', r))).then(done.resolve);
  });
  try {
    const stream = client.request({ ':path': '/' });
    stream.pause();
    stream.on('error', () => {});
    const { pending } = await done.promise;
    assert.ok(pending.length > 0, 'some blocks were still on their way to the client');
    assert.equal(pending.filter((v) => !blocks.lent(v)).length, 0, 'none of them given back');
  } finally {
    close();
  }
});
