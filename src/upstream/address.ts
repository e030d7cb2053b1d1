/**
 * Upstream addresses: `unix:/path.sock` (or a bare absolute path), `host:port`,
 * `[v6addr]:port`. Parsed once, at configuration time, with messages that say what is wrong.
 */
import { isIP } from 'node:net';
import { AddressError } from '../errors.js';

/** A parsed upstream address. */
export type UpstreamAddress =
  | { readonly kind: 'unix'; readonly path: string; readonly text: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly text: string };

/** Parse an address string; throws AddressError with the reason. */
export function parseAddress(input: string): UpstreamAddress {
  if (typeof input !== 'string' || input.trim() === '') {
    throw new AddressError('upstream address is empty (expected unix:/path.sock, host:port or [v6]:port)');
  }
  const s = input.trim();
  if (s.startsWith('unix:') || s.startsWith('/')) {
    const path = s.startsWith('unix:') ? s.slice(5) : s;
    if (path === '') throw new AddressError(`upstream address ${JSON.stringify(input)} has an empty socket path`);
    if (path.includes('\0')) throw new AddressError('unix socket path contains a NUL byte');
    // Linux sun_path holds 108 bytes including the terminator.
    if (Buffer.byteLength(path) > 107) {
      throw new AddressError(`unix socket path is ${Buffer.byteLength(path)} bytes; the limit is 107`);
    }
    return { kind: 'unix', path, text: `unix:${path}` };
  }
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new AddressError(`upstream address ${JSON.stringify(input)} has "[" without "]"`);
    host = s.slice(1, close);
    if (s[close + 1] !== ':') throw new AddressError(`upstream address ${JSON.stringify(input)} needs a port after "]" ([v6]:port)`);
    portText = s.slice(close + 2);
    if (isIP(host) !== 6) throw new AddressError(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) throw new AddressError(`upstream address ${JSON.stringify(input)} has no port (expected host:port or unix:/path)`);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) throw new AddressError(`IPv6 address in ${JSON.stringify(input)} must be bracketed: [${host}]:${portText}`);
    if (host === '') throw new AddressError(`upstream address ${JSON.stringify(input)} has no host`);
    if (!/^[A-Za-z0-9.-]+$/.test(host)) throw new AddressError(`${JSON.stringify(host)} is not a valid host name`);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw new AddressError(`port ${JSON.stringify(portText)} is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new AddressError(`port ${port} is out of range (1-65535)`);
  const text = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { kind: 'tcp', host, port, text };
}

/** True for unix sockets and loopback hosts: the places where sending params is private. */
export function isLocalAddress(addr: UpstreamAddress): boolean {
  if (addr.kind === 'unix') return true;
  const h = addr.host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}
