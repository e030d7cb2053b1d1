// http/wire.ts: what differs between HTTP/1 and HTTP/2 requests, on request-shaped objects.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { hasUnframedBody, http1RawHeaders, requestHost, writeHeadFlat } from '../../../src/http/wire.js';

const req = (major: number, rawHeaders: string[], extra: Record<string, unknown> = {}): IncomingMessage => {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] = rawHeaders[i + 1]!;
  return { httpVersionMajor: major, rawHeaders, headers, complete: false, ...extra } as unknown as IncomingMessage;
};

test('HTTP/2 headers for the CGI mapping: pseudo-headers dropped, :authority as Host when there is none', () => {
  const h2 = req(2, [':method', 'GET', ':path', '/x', ':authority', 'a.test:8443', ':scheme', 'https', 'cookie', 'a=1', 'cookie', 'b=2']);
  assert.deepEqual(http1RawHeaders(h2), ['host', 'a.test:8443', 'cookie', 'a=1', 'cookie', 'b=2']);
  assert.equal(http1RawHeaders(h2), http1RawHeaders(h2), 'computed once per request');
  const withHost = req(2, [':authority', 'a.test', 'Host', 'b.test']);
  assert.deepEqual(http1RawHeaders(withHost), ['Host', 'b.test'], 'a Host header wins, as nginx has it');
  const h1 = req(1, ['Host', 'x']);
  assert.equal(http1RawHeaders(h1), h1.rawHeaders, 'HTTP/1 headers as they are');
  assert.equal(requestHost(req(2, [':authority', 'a.test'])), 'a.test');
  assert.equal(requestHost(req(1, ['Host', 'h.test'])), 'h.test');
});

test('a body without Content-Length: chunked on HTTP/1; on HTTP/2 unless HEADERS ended the stream', () => {
  assert.equal(hasUnframedBody(req(1, ['Transfer-Encoding', 'chunked'])), true);
  assert.equal(hasUnframedBody(req(1, [])), false);
  assert.equal(hasUnframedBody(req(2, [], { stream: { endAfterHeaders: false } })), true);
  assert.equal(hasUnframedBody(req(2, [], { stream: { endAfterHeaders: true } })), false);
});

test('writeHeadFlat: HTTP/1 keeps the reason phrase; HTTP/2 drops it and every connection header', () => {
  const calls: unknown[][] = [];
  const res = { writeHead: (...a: unknown[]) => calls.push(a) } as unknown as ServerResponse;
  const flat = ['Content-Type', 'text/plain', 'Connection', 'close', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'];
  writeHeadFlat(req(1, []), res, 201, 'Made', [...flat]);
  writeHeadFlat(req(2, []), res, 201, 'Made', [...flat]);
  assert.deepEqual(calls[0], [201, 'Made', flat]);
  assert.deepEqual(calls[1], [201, ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']]);
});
