import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { type Logger, pino } from 'pino';
import { createAccessLog, formatPretty, requestId } from '../../../src/logging/access-log.js';
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
  assert.equal(formatPretty(line), '12:00:00.005 201 GET /x.php 13B 7.0ms upstream 3.3ms [r1]\n');
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

/** A pino logger whose lines land in `lines`, parsed. */
function capture(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger: Logger = pino({ base: null }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

/** Enough of a ServerResponse for the access log: 'close', statusCode, writableFinished, getHeader. */
function fakeRes(statusCode: number, finished: boolean, headers: Record<string, string> = {}, ended = finished): ServerResponse {
  return Object.assign(new EventEmitter(), { statusCode, writableFinished: finished, writableEnded: ended, getHeader: (n: string) => headers[n] }) as unknown as ServerResponse;
}

const fakeReq = (url: string): IncomingMessage => ({ headers: { 'x-request-id': 'rid-1' }, method: 'GET', url, socket: { remoteAddress: '10.0.0.9' } }) as unknown as IncomingMessage;

test('createAccessLog: one line at close with the request, status, bytes and upstream times', () => {
  const { logger, lines } = capture();
  const log = createAccessLog(logger);
  const req = fakeReq('/a.php?x=1');
  const res = fakeRes(201, true);
  Object.assign(res, { upstreamTiming: { connect: 0.123, firstByte: 2.3456, bytes: 13, server: 'unix:/run/fpm.sock' } });
  log(req, res);
  assert.equal((req as IncomingMessage & { id?: string }).id, 'rid-1');
  assert.equal(lines.length, 0, 'nothing before the response closes');
  // A socket whose client has gone answers undefined for its remote address (node:net).
  (req.socket as { remoteAddress?: string | undefined }).remoteAddress = undefined;
  res.emit('close');
  res.emit('close');
  assert.equal(lines.length, 1, 'one line per response');
  const l = lines[0]!;
  assert.deepEqual(l['req'], { id: 'rid-1', method: 'GET', url: '/a.php?x=1', remoteAddress: '10.0.0.9' });
  assert.deepEqual(l['res'], { statusCode: 201 });
  assert.equal(l['level'], 30);
  assert.equal(l['msg'], 'request completed');
  assert.equal(l['bytes'], 13);
  assert.deepEqual(l['upstream'], { server: 'unix:/run/fpm.sock', connect: 0.12, firstByte: 2.35 });
  assert.equal(typeof l['responseTime'], 'number');
});

test('createAccessLog: 5xx and responses cut before they finished log at error; bytes from Content-Length without upstream', () => {
  const { logger, lines } = capture();
  const log = createAccessLog(logger);
  const failed = fakeRes(502, true, { 'content-length': '16' });
  log(fakeReq('/f.php'), failed);
  failed.emit('close');
  const cut = fakeRes(200, false);
  log(fakeReq('/slow.php'), cut);
  cut.emit('close');
  // HTTP/2: after the client's RST_STREAM, writableFinished is true though end() never ran.
  const reset = fakeRes(200, true, {}, false);
  log(fakeReq('/h2.php'), reset);
  reset.emit('close');
  assert.deepEqual(lines.map((l) => [l['level'], l['msg'], l['bytes'], l['aborted']]), [
    [50, 'request failed', 16, undefined],
    [50, 'request aborted', 0, true],
    [50, 'request aborted', 0, true],
  ]);
});

test('createAccessLog: req.log lines carry the request; its child logger is made only when used', () => {
  const { logger, lines } = capture();
  let children = 0;
  const child = logger.child.bind(logger);
  logger.child = ((b: pino.Bindings) => {
    children++;
    return child(b);
  }) as typeof logger.child;
  const log = createAccessLog(logger);
  const quiet = fakeReq('/q.php');
  log(quiet, fakeRes(200, true));
  assert.equal(children, 0, 'no child logger for a request that logs nothing');
  const loud = fakeReq('/l.php');
  log(loud, fakeRes(200, true));
  const reqLog = (loud as IncomingMessage & { log: { warn(o: object, m: string): void } }).log;
  reqLog.warn({ stderr: 'PHP Notice' }, 'upstream stderr');
  reqLog.warn({ stderr: 'again' }, 'upstream stderr');
  assert.equal(children, 1, 'one child, made at the first line');
  assert.deepEqual(lines.map((l) => [l['level'], l['stderr'], (l['req'] as { url: string }).url]), [
    [40, 'PHP Notice', '/l.php'],
    [40, 'again', '/l.php'],
  ]);
});
