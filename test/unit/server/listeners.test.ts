/**
 * Listen strings as the CLI and the config take them, and the port a plain listener's
 * `redirectToHttps` sends clients to. Pure: nothing listens.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { type ListenerSpec, parseListen, redirectPort } from '../../../src/server/listeners.js';

describe('parseListen', () => {
  test('HOST:PORT, [v6]:PORT, :PORT (every interface), a bare port (loopback) and unix:PATH', () => {
    assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('localhost:0'), { host: 'localhost', port: 0 });
    assert.deepEqual(parseListen('[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseListen(':8080'), { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(parseListen('8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('unix:/run/gw.sock'), { path: '/run/gw.sock' });
  });
  test('anything else is a ConfigError that shows the accepted forms', () => {
    for (const bad of ['', 'localhost', '127.0.0.1:', '::1:80', '[::1]', 'host:http', '1.2.3.4:80:90']) {
      assert.throws(() => parseListen(bad), (e: unknown) => e instanceof ConfigError && /must be HOST:PORT, \[v6\]:PORT, :PORT or unix:\/path/.test(e.message), JSON.stringify(bad));
    }
    assert.throws(() => parseListen('127.0.0.1:65536'), /port 65536 is out of range/);
  });
});

describe('redirectPort', () => {
  const spec = (address: string, o: Partial<ListenerSpec> = {}): ListenerSpec => ({ address, tls: null, http2: false, mode: '0660', redirectToHttps: false, ...o });
  const tls = { cert: '/c.pem', key: '/k.pem' };
  test('off unless asked; an explicit port wins', () => {
    const plain = spec('0.0.0.0:80');
    assert.equal(redirectPort(plain, [plain]), 0);
    const fixed = spec('0.0.0.0:80', { redirectToHttps: 8443 });
    assert.equal(redirectPort(fixed, [fixed]), 8443);
  });
  test('true: the port of the first TLS TCP listener, else 443 (also for a TLS listener on port 0 or a unix socket)', () => {
    const plain = spec('0.0.0.0:80', { redirectToHttps: true });
    assert.equal(redirectPort(plain, [plain, spec('unix:/run/s.sock', { tls }), spec('0.0.0.0:8443', { tls })]), 8443);
    assert.equal(redirectPort(plain, [plain]), 443);
    assert.equal(redirectPort(plain, [plain, spec('127.0.0.1:0', { tls })]), 443);
  });
});
