/**
 * Who the client is, for the CGI params: the peer, or, behind a trusted proxy, the client the
 * proxy names in X-Forwarded-For (the right-most untrusted hop, as nginx's realip module with
 * `real_ip_recursive on` finds it) and the scheme from X-Forwarded-Proto.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { CgiRequestInfo } from '../cgi/params-builder.js';
import { http1RawHeaders } from './wire.js';

/** `::ffff:1.2.3.4` → `1.2.3.4`: an IPv4 peer on a dual-stack socket, as nginx writes it. */
export function stripV4Mapped(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** The trusted proxies' addresses, normalised as peers are (`trustedProxies` option). */
export function trustedSet(addresses: readonly string[]): ReadonlySet<string> {
  return new Set(addresses.map(stripV4Mapped));
}

/**
 * Snapshot of what the CGI mapping needs. `redirectUri` is set for a local redirect: the
 * request becomes a GET of that URI.
 */
export function requestInfo(req: IncomingMessage, trusted: ReadonlySet<string>, redirectUri: string | null): CgiRequestInfo {
  const sock = req.socket;
  const peer = stripV4Mapped(sock.remoteAddress ?? '');
  let remoteAddress = peer;
  let https = (sock as TLSSocket).encrypted === true;
  if (trusted.size > 0 && trusted.has(peer)) {
    const xff = req.headers['x-forwarded-for'];
    if (typeof xff === 'string' && xff !== '') remoteAddress = forwardedClient(xff, trusted, peer);
    const proto = req.headers['x-forwarded-proto'];
    if (typeof proto === 'string') https = proto.split(',')[0]!.trim().toLowerCase() === 'https';
  }
  return {
    method: redirectUri === null ? (req.method ?? 'GET') : 'GET',
    rawUrl: redirectUri ?? req.url ?? '/',
    httpVersion: req.httpVersion,
    rawHeaders: http1RawHeaders(req),
    remoteAddress,
    remotePort: sock.remotePort ?? 0,
    serverAddress: stripV4Mapped(sock.localAddress ?? ''),
    serverPort: sock.localPort ?? 0,
    https,
  };
}

/** The right-most hop of X-Forwarded-For that is not a trusted proxy (all trusted: the left-most). */
export function forwardedClient(xff: string, trusted: ReadonlySet<string>, peer: string): string {
  const hops = xff
    .split(',')
    .map((h) => stripV4Mapped(h.trim()))
    .filter((h) => h !== '');
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}
