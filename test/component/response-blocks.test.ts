/**
 * The spill writer gives lent blocks back to the pool, and the pool lends them again while the
 * same response is still on its way: over a real HTTP/1.1 socket and a real HTTP/2 stream, a
 * client that reads nothing until the server has written everything must still get every
 * byte as written. A block given back before node was done with it would show up here as
 * bytes of a later chunk. Through a wrapper that keeps chunks past its write callback, nothing
 * may be given back at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MemoryBudget } from '../../src/http/memory-budget.js';
import { SpillingWriter } from '../../src/http/response-spill.js';
import { BLOCK_SIZE, blocks } from '../../src/upstream/blocks.js';
import { waitFor } from '../helpers/gateway.js';

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
async function writeBlocks(res: ServerResponse, count: number): Promise<Written> {
  const w = new SpillingWriter(res, { memory: 0, maxSpill: 1 << 30, tmpDir: dir, sendTimeout: 0, budget: new MemoryBudget(1 << 30) }, { resume: () => {}, failed: () => {} });
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
  w.end();
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

test('HTTP/2: every byte arrives while the blocks are given back and lent again', { timeout: 60_000 }, async () => {
  const done = deferred<Written>();
  const server = http2.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    void writeBlocks(res as unknown as ServerResponse, 300).then(done.resolve);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const stream = client.request({ ':path': '/' });
    const body = await readAfter(stream, done.promise);
    const w = await done.promise;
    assert.ok(w.reused > 0, `blocks were lent again during the response (${w.reused} of 300)`);
    assert.equal(body.length, 300 * BLOCK_SIZE);
    assert.ok(body.equals(Buffer.concat(w.expected)), 'the bytes as written, in order');
    await waitFor(() => w.views.every((v) => !blocks.lent(v)), 'every chunk given back');
  } finally {
    client.close();
    server.close();
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
