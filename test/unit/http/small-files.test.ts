/**
 * The small-file fast path: the headers send would set, 304 on a matching validator, HEAD
 * without a body, what it leaves to send (Range, If-Match, other methods, large files, missing
 * files), and the TTL: a body is remembered for `ttl` ms, and never with ttl 0 (dev).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SmallFileCache } from '../../../src/http/small-files.js';

interface Answer {
  status: number;
  headers: Record<string, string | number>;
  body: Buffer | undefined;
  ended: boolean;
}

/** The parts of req and res the cache uses. */
function exchange(method: string, headers: Record<string, string> = {}): { req: IncomingMessage; res: ServerResponse; answer: Answer } {
  const answer: Answer = { status: 200, headers: {}, body: undefined, ended: false };
  const res = {
    set statusCode(s: number) {
      answer.status = s;
    },
    get statusCode() {
      return answer.status;
    },
    setHeader(name: string, value: string | number) {
      answer.headers[name.toLowerCase()] = value;
    },
    end(body?: Buffer) {
      answer.body = body;
      answer.ended = true;
    },
  } as unknown as ServerResponse;
  return { req: { method, headers } as unknown as IncomingMessage, res, answer };
}

describe('SmallFileCache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-small-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'style.css');
  writeFileSync(file, 'body { color: red }');

  test('GET: the body with type, length, ETag, Last-Modified, Accept-Ranges and Cache-Control', () => {
    const { req, res, answer } = exchange('GET');
    assert.equal(new SmallFileCache({ ttl: 1000 }).serve(req, res, file), true);
    assert.equal(answer.status, 200);
    assert.equal(answer.body?.toString(), 'body { color: red }');
    assert.equal(answer.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal(answer.headers['content-length'], 19);
    assert.match(String(answer.headers['etag']), /^W\/"13-[0-9a-f]+"$/);
    assert.equal(answer.headers['last-modified'], statSync(file).mtime.toUTCString());
    assert.equal(answer.headers['accept-ranges'], 'bytes');
    assert.equal(answer.headers['cache-control'], 'public, max-age=0');
  });

  test('HEAD: the same headers, no body; a matching If-None-Match or If-Modified-Since: 304', () => {
    const cache = new SmallFileCache({ ttl: 1000 });
    const head = exchange('HEAD');
    assert.equal(cache.serve(head.req, head.res, file), true);
    assert.equal(head.answer.body, undefined);
    assert.equal(head.answer.headers['content-length'], 19);
    const etag = String(head.answer.headers['etag']);
    const inm = exchange('GET', { 'if-none-match': etag });
    assert.equal(cache.serve(inm.req, inm.res, file), true);
    assert.equal(inm.answer.status, 304);
    assert.equal(inm.answer.body, undefined);
    const ims = exchange('GET', { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() });
    assert.equal(cache.serve(ims.req, ims.res, file), true);
    assert.equal(ims.answer.status, 304);
    const stale = exchange('GET', { 'if-none-match': 'W/"other"' });
    assert.equal(cache.serve(stale.req, stale.res, file), true);
    assert.equal(stale.answer.status, 200, 'another validator: the body');
  });

  test('what it leaves to send: Range, If-Match, If-Unmodified-Since, POST, a large file, a missing file, a directory', () => {
    const cache = new SmallFileCache({ ttl: 1000, maxSize: 64 });
    for (const [method, headers] of [
      ['GET', { range: 'bytes=0-3' }],
      ['GET', { 'if-match': '*' }],
      ['GET', { 'if-unmodified-since': new Date().toUTCString() }],
      ['POST', {}],
    ] as const) {
      const x = exchange(method, headers);
      assert.equal(cache.serve(x.req, x.res, file), false, `${method} ${JSON.stringify(headers)}`);
      assert.equal(x.answer.ended, false, 'nothing was answered');
    }
    const big = join(dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(65));
    assert.equal(cache.serve(exchange('GET').req, exchange('GET').res, big), false, 'over maxSize');
    assert.equal(cache.serve(exchange('GET').req, exchange('GET').res, join(dir, 'missing.css')), false);
    assert.equal(cache.serve(exchange('GET').req, exchange('GET').res, dir), false);
  });

  test('ttl > 0 remembers the body; ttl 0 reads the file every time', () => {
    const f = join(dir, 'app.js');
    writeFileSync(f, 'v1');
    const remembering = new SmallFileCache({ ttl: 60_000 });
    const fresh = new SmallFileCache({ ttl: 0 });
    const body = (cache: SmallFileCache): string | undefined => {
      const x = exchange('GET');
      cache.serve(x.req, x.res, f);
      return x.answer.body?.toString();
    };
    assert.equal(body(remembering), 'v1');
    assert.equal(body(fresh), 'v1');
    writeFileSync(f, 'v2');
    assert.equal(body(remembering), 'v1', 'within the ttl the remembered body');
    assert.equal(body(fresh), 'v2', 'ttl 0: the edit at once');
  });
});
