import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { forwardedClient, requestInfo, stripV4Mapped, trustedSet } from '../../../src/http/client-info.js';

function req(peer: string, headers: Record<string, string> = {}, encrypted = false): IncomingMessage {
  const rawHeaders = Object.entries(headers).flat();
  return {
    method: 'POST',
    url: '/a.php?x=1',
    httpVersion: '1.1',
    headers,
    rawHeaders,
    socket: { remoteAddress: peer, remotePort: 5555, localAddress: '::ffff:127.0.0.1', localPort: 8080, encrypted },
  } as unknown as IncomingMessage;
}

test('stripV4Mapped: IPv4-mapped IPv6 peers become dotted quads; real IPv6 stays', () => {
  assert.equal(stripV4Mapped('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(stripV4Mapped('::ffff:abcd'), '::ffff:abcd');
  assert.equal(stripV4Mapped('2001:db8::1'), '2001:db8::1');
});

test('forwardedClient: the right-most untrusted hop; all trusted gives the left-most', () => {
  const trusted = trustedSet(['10.0.0.1', '::ffff:10.0.0.2']);
  assert.equal(forwardedClient('203.0.113.7, 10.0.0.2', trusted, '10.0.0.1'), '203.0.113.7');
  assert.equal(forwardedClient('6.6.6.6, 203.0.113.7, 10.0.0.2', trusted, '10.0.0.1'), '203.0.113.7', 'a spoofed left-most hop is not believed');
  assert.equal(forwardedClient('10.0.0.2, 10.0.0.1', trusted, '10.0.0.1'), '10.0.0.2');
  assert.equal(forwardedClient(' , ', trusted, '10.0.0.1'), '10.0.0.1', 'no hops: the peer');
});

test('requestInfo: peer and TLS from the socket; forwarded headers only from a trusted peer; a redirect is a GET', () => {
  const none = trustedSet([]);
  const direct = requestInfo(req('::ffff:198.51.100.4', { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https' }), none, null);
  assert.deepEqual(
    { ...direct, rawHeaders: undefined },
    { method: 'POST', rawUrl: '/a.php?x=1', httpVersion: '1.1', rawHeaders: undefined, remoteAddress: '198.51.100.4', remotePort: 5555, serverAddress: '127.0.0.1', serverPort: 8080, https: false },
  );
  const trusted = trustedSet(['10.0.0.1']);
  const proxied = requestInfo(req('10.0.0.1', { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'HTTPS, http' }), trusted, null);
  assert.equal(proxied.remoteAddress, '1.2.3.4');
  assert.equal(proxied.https, true);
  const downgraded = requestInfo(req('10.0.0.1', { 'x-forwarded-proto': 'http' }, true), trusted, null);
  assert.equal(downgraded.https, false, 'the trusted proxy says how the client came in');
  assert.equal(downgraded.remoteAddress, '10.0.0.1');
  const redirected = requestInfo(req('10.9.9.9'), none, '/index.php?route=x');
  assert.equal(redirected.method, 'GET');
  assert.equal(redirected.rawUrl, '/index.php?route=x');
  assert.equal(requestInfo(req('10.9.9.9', {}, true), none, null).https, true);
});
