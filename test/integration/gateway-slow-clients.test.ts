/**
 * Integration, real php-fpm: the limits that protect the server from slow and greedy clients.
 * 300 slowloris connections (a request head trickled one byte at a time) neither stop normal
 * requests nor outlive the header timeout; an idle kept connection is closed after the
 * keep-alive timeout; keepAliveRequests ends a connection after its last answer; past
 * maxConnections a new connection is closed before it is read.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, startGateway, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

let fpm: PhpFpm;
before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
});
after(async () => {
  await fpm?.stop();
});

/** A raw connection that records what it receives and when it closed. */
function raw(port: number): { sock: net.Socket; data: () => string; closedAt: Promise<void>; connected: Promise<void> } {
  const sock = net.connect({ host: '127.0.0.1', port });
  let got = '';
  sock.setEncoding('latin1');
  sock.on('data', (c: string) => {
    got += c;
  });
  sock.on('error', () => {});
  const closedAt = new Promise<void>((r) => sock.once('close', () => r()));
  const connected = new Promise<void>((r) => sock.once('connect', () => r()));
  return { sock, data: () => got, closedAt, connected };
}

describe('slow and greedy clients', () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGateway({ fpm, gateway: { headersTimeout: '2s', keepAliveTimeout: '1s', keepAliveRequests: 3 } });
  });
  after(async () => {
    await gw?.close();
  });

  test('300 slowloris connections: normal requests are served meanwhile, and each slow one is closed at the header timeout with 408', async () => {
    const head = 'GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200) + '\r\n\r\n';
    const slow = Array.from({ length: 300 }, () => raw(gw.port));
    await Promise.all(slow.map((s) => s.connected));
    let i = 0;
    // One byte per connection every 400 ms: the head would take 100 s to arrive.
    const drip = setInterval(() => {
      for (const s of slow) if (!s.sock.destroyed) s.sock.write(head[i % head.length]!);
      i++;
    }, 400);
    try {
      // Normal requests keep being served while the 300 trickle.
      for (let n = 0; n < 20; n++) {
        const r = await gw.fetch('/hello.php');
        assert.equal(r.status, 200);
        assert.equal(r.text, 'hello from php');
      }
      // The heads would take 100 s to arrive; the server ends each one itself, with the 408
      // that only its header timeout (ERR_HTTP_REQUEST_TIMEOUT) answers.
      await Promise.all(slow.map((s) => s.closedAt));
      const answered = slow.filter((s) => s.data().startsWith('HTTP/1.1 408 ')).length;
      assert.equal(answered, 300, 'each got a 408 before the close');
      assert.ok(i < head.length, `closed while the heads were still arriving (${i} of ${head.length} bytes sent)`);
    } finally {
      clearInterval(drip);
      for (const s of slow) s.sock.destroy();
    }
    assert.equal((await gw.fetch('/hello.php')).status, 200, 'still serving');
  });

  test('an idle kept connection is closed after keepAliveTimeout', async () => {
    const c = raw(gw.port);
    c.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => c.data().includes('hello from php'), 'the answer');
    assert.match(c.data(), /Keep-Alive: timeout=1/);
    assert.doesNotMatch(c.data(), /Connection: close/i, 'the answer keeps the connection');
    // The client sends nothing more: the server ends the connection itself.
    await c.closedAt;
    assert.equal(c.data().split('HTTP/1.1').length, 2, 'one answer, nothing after it');
  });

  test('keepAliveRequests: the third answer says Connection: close, and the connection ends after it', async () => {
    const c = raw(gw.port);
    for (let n = 1; n <= 3; n++) {
      c.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => c.data().split('hello from php').length === n + 1, `answer ${n}`);
    }
    await c.closedAt;
    const heads = c.data().split('HTTP/1.1 200 OK').slice(1);
    assert.equal(heads.length, 3);
    assert.doesNotMatch(heads[1]!, /Connection: close/i);
    assert.match(heads[2]!, /Connection: close/i);
  });
});

describe('maxConnections', () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGateway({ fpm, gateway: { maxConnections: 5 } });
    await gw.client.close();
  });
  after(async () => {
    await gw?.close();
  });

  test('past the budget a new connection is closed at once, unread; a freed slot serves again', async () => {
    const held = Array.from({ length: 5 }, () => raw(gw.port));
    await Promise.all(held.map((h) => h.connected));
    // The five are accepted: one of them is served.
    held[0]!.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => held[0]!.data().includes('hello from php'), 'a held connection to be served');
    const extra = raw(gw.port);
    extra.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n');
    await extra.closedAt;
    assert.equal(extra.data(), '', 'refused without an answer');
    held[1]!.sock.destroy();
    await held[1]!.closedAt;
    // The server sees the close a moment after the client: try until the slot is free.
    let served = false;
    for (let attempt = 0; attempt < 100 && !served; attempt++) {
      const again = raw(gw.port);
      again.sock.write('GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await again.closedAt;
      served = again.data().includes('hello from php');
      if (!served) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(served, 'a new connection is served once a slot is free');
    for (const h of held) h.sock.destroy();
  });
});
