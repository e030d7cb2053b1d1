/**
 * Listeners: TCP (IPv4, IPv6) and unix sockets, plain or TLS. Each accepts connections and
 * hands them to an engine: HTTP/2 for TLS connections that chose `h2` by ALPN, HTTP/1 for the
 * rest. Connections beyond the budget are closed on accept, before any byte is read.
 */
import { chmodSync, rmSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { ConfigError } from '../errors.js';
import { kListener, type ListenerInfo, type TaggedSocket } from './context.js';
import { readTlsFiles, type SniLookup, type TlsFiles } from './tls.js';

/** One listener as the config gives it (config/schema.ts `listen`). */
export interface ListenerSpec {
  readonly address: string;
  readonly tls: TlsFiles | null;
  readonly http2: boolean;
  readonly mode: string;
  readonly redirectToHttps: boolean | number;
}

/** Parse a listen string into node's listen arguments. */
export function parseListen(listen: string): { path: string } | { host: string; port: number } {
  if (listen.startsWith('unix:')) return { path: listen.slice(5) };
  if (/^\d+$/.test(listen)) return { host: '127.0.0.1', port: Number(listen) };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new ConfigError(`listen ${JSON.stringify(listen)} must be HOST:PORT, [v6]:PORT, :PORT or unix:/path`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`listen port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** Where accepted connections go. */
export interface ConnectionSink {
  http1(socket: Socket): void;
  http2(socket: TLSSocket): void;
  /** False when the connection budget is spent: the socket is then closed at once. */
  admit(socket: Socket): boolean;
  /** The SNI lookup in force (replaced by a reload). */
  sni(): SniLookup;
  /** TLS handshake deadline, ms. */
  readonly handshakeTimeout: number;
}

export interface Listener {
  readonly spec: ListenerSpec;
  readonly server: net.Server;
  readonly url: string;
  /** Re-read this listener's certificate (reload); throws ConfigError and keeps the old one. */
  reloadCertificate(): void;
}

/** Port that a plain listener's `redirectToHttps` points to. */
export function redirectPort(spec: ListenerSpec, all: readonly ListenerSpec[]): number {
  if (spec.redirectToHttps === false) return 0;
  if (typeof spec.redirectToHttps === 'number') return spec.redirectToHttps;
  const tlsListener = all.find((l) => l.tls !== null && !l.address.startsWith('unix:'));
  if (tlsListener === undefined) return 443;
  const t = parseListen(tlsListener.address);
  return 'port' in t && t.port !== 0 ? t.port : 443;
}

/** Open one listener; resolves once it listens. `info` is attached to each accepted socket. */
export async function openListener(spec: ListenerSpec, info: ListenerInfo, sink: ConnectionSink, options: { readonly removeStaleSocket: boolean }): Promise<Listener> {
  const target = parseListen(spec.address);
  const tag = (socket: Socket): void => {
    (socket as TaggedSocket)[kListener] = info;
  };
  // allowHalfOpen and noDelay as node:http's own server sets them: a client that half-closes
  // after its request still gets the answer.
  const netOptions = { allowHalfOpen: true, noDelay: true };
  let server: net.Server;
  let reloadCertificate = (): void => {};
  if (spec.tls === null) {
    server = net.createServer(netOptions, (socket) => {
      if (!sink.admit(socket)) return;
      tag(socket);
      sink.http1(socket);
    });
  } else {
    const files = spec.tls;
    // Not half-open during the handshake: a client that leaves in the middle of it must not
    // leave a socket open on this side. HTTP/1 sockets become half-open once secure.
    const secure = tls.createServer({
      noDelay: true,
      ...readTlsFiles(files),
      ALPNProtocols: spec.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      handshakeTimeout: sink.handshakeTimeout,
      SNICallback: (servername, cb) => cb(null, sink.sni()(servername) ?? undefined),
    });
    // Counted on the raw connection, before the handshake costs anything.
    secure.on('connection', (socket: Socket) => {
      if (!sink.admit(socket)) return;
    });
    secure.on('secureConnection', (socket: TLSSocket) => {
      tag(socket);
      if (socket.alpnProtocol === 'h2') {
        sink.http2(socket);
      } else {
        socket.allowHalfOpen = true;
        sink.http1(socket);
      }
    });
    // A failed handshake (a scanner, a client that distrusts the certificate): nothing to answer.
    secure.on('tlsClientError', (_err, socket) => socket.destroy());
    reloadCertificate = () => secure.setSecureContext(readTlsFiles(files));
    server = secure;
  }
  if ('path' in target && options.removeStaleSocket) rmSync(target.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  let url: string;
  if ('path' in target) {
    chmodSync(target.path, Number.parseInt(spec.mode, 8));
    url = `unix:${target.path}`;
  } else {
    const a = server.address() as AddressInfo;
    url = `${spec.tls === null ? 'http' : 'https'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }
  return { spec, server, url, reloadCertificate };
}
