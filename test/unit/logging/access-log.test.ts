import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { formatPretty, requestId } from '../../../src/logging/access-log.js';
import { parseListen } from '../../../src/server.js';

const req = (headers: Record<string, string> = {}): IncomingMessage => ({ headers }) as unknown as IncomingMessage;

test('requestId keeps a sane X-Request-Id, else makes a unique one', () => {
  assert.equal(requestId(req({ 'x-request-id': 'demo-1' })), 'demo-1');
  const a = requestId(req({ 'x-request-id': 'bad id with spaces' }));
  const b = requestId(req());
  assert.notEqual(a, 'bad id with spaces');
  assert.notEqual(a, b);
  assert.match(b, /^[0-9a-f]{8}-[0-9a-z]+$/);
  assert.notEqual(requestId(req({ 'x-request-id': 'x'.repeat(200) })), 'x'.repeat(200), 'too long');
});

test('formatPretty: one line per request; other lines keep their fields; non-JSON passes through', () => {
  const line = JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1, 12, 0, 0, 5), req: { id: 'r1', method: 'GET', url: '/x.php' }, res: { statusCode: 201 }, responseTime: 7, bytes: 13, upstream: { firstByte: 3.25 } });
  assert.equal(formatPretty(line), '12:00:00.005 201 GET /x.php 13B 7ms upstream 3.3ms [r1]\n');
  const warn = JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1), msg: 'stderr', code: 'X' });
  assert.equal(formatPretty(warn), '00:00:00.000 WARN stderr {"code":"X"}\n');
  assert.equal(formatPretty('not json\n'), 'not json\n');
});

test('parseListen: TCP forms, IPv6, unix sockets; bad forms refused', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen(':9000'), { host: '0.0.0.0', port: 9000 });
  assert.deepEqual(parseListen('8000'), { host: '127.0.0.1', port: 8000 });
  assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
  assert.deepEqual(parseListen('unix:/run/gw.sock'), { path: '/run/gw.sock' });
  assert.throws(() => parseListen('nope'), /must be HOST:PORT/);
  assert.throws(() => parseListen('h:70000'), /out of range/);
});
