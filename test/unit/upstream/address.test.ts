import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AddressError } from '../../../src/errors.js';
import { isLocalAddress, parseAddress } from '../../../src/upstream/address.js';

describe('parseAddress', () => {
  it('parses unix sockets, with or without the unix: prefix', () => {
    assert.deepEqual(parseAddress('unix:/run/php/fpm.sock'), { kind: 'unix', path: '/run/php/fpm.sock', text: 'unix:/run/php/fpm.sock' });
    assert.deepEqual(parseAddress('/run/php/fpm.sock'), { kind: 'unix', path: '/run/php/fpm.sock', text: 'unix:/run/php/fpm.sock' });
  });
  it('parses host:port and [v6]:port', () => {
    assert.deepEqual(parseAddress('127.0.0.1:9000'), { kind: 'tcp', host: '127.0.0.1', port: 9000, text: '127.0.0.1:9000' });
    assert.deepEqual(parseAddress('php.internal:9000'), { kind: 'tcp', host: 'php.internal', port: 9000, text: 'php.internal:9000' });
    assert.deepEqual(parseAddress('[::1]:9000'), { kind: 'tcp', host: '::1', port: 9000, text: '[::1]:9000' });
  });
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['unix:', /empty socket path/],
    ['localhost', /no port/],
    [':9000', /no host/],
    ['::1:9000', /must be bracketed/],
    ['[::1]9000', /needs a port/],
    ['[::1:9000', /without "\]"/],
    ['[nope]:9000', /not an IPv6 address/],
    ['host:0', /out of range/],
    ['host:70000', /out of range/],
    ['host:90a', /not a number/],
    ['bad host:1', /not a valid host name/],
    ['unix:/' + 'x'.repeat(120), /limit is 107/],
  ];
  for (const [input, why] of bad) {
    it(`rejects ${JSON.stringify(input.slice(0, 30))} with a reason`, () => {
      assert.throws(() => parseAddress(input), (e: unknown) => e instanceof AddressError && e.code === 'GW_ERR_CONFIG_ADDRESS' && why.test(e.message));
    });
  }
});

describe('isLocalAddress', () => {
  it('is true for unix sockets and loopback hosts only', () => {
    for (const a of ['unix:/x.sock', '127.0.0.1:9000', '127.1.2.3:1', 'localhost:9000', '[::1]:9000']) assert.equal(isLocalAddress(parseAddress(a)), true, a);
    for (const a of ['10.0.0.2:9000', 'php:9000', '[2001:db8::1]:9000', '128.0.0.1:1']) assert.equal(isLocalAddress(parseAddress(a)), false, a);
  });
});
