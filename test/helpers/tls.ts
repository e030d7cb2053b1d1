/**
 * TLS and HTTP/2 client helpers: the fixture certificates, one HTTP/2 request on a session, one
 * HTTPS/1.1 request, and the certificate a TLS server chooses for a name (SNI).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';

const DIR = resolve(fileURLToPath(new URL('../fixtures/tls', import.meta.url)));
/** The cert and key files of a fixture name: `default`, `a.test`, `b.test`. */
export const tlsFixture = (name: 'default' | 'a.test' | 'b.test'): { cert: string; key: string } => ({ cert: `${DIR}/${name}.pem`, key: `${DIR}/${name}.key` });

export interface H2Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** An HTTP/2 session to `url` (certificates not checked), with `servername` for SNI. */
export function h2Connect(url: string, servername = 'localhost'): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, { rejectUnauthorized: false, servername });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One request on `session`; `headers` holds the pseudo-headers too (`:path`, `:method`). */
export function h2Request(session: ClientHttp2Session, headers: Record<string, string>, body?: Buffer | string): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let head: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      head = h;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** One HTTP/1.1 request over TLS on a fresh connection. */
export function httpsRequest(url: string, path: string, o: { host?: string; servername?: string; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    // ALPN offered, as browsers do, but only http/1.1.
    const options: https.RequestOptions & tls.ConnectionOptions = {
      method: o.method ?? 'GET',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
      servername: o.servername ?? 'localhost',
      agent: false,
      headers: { ...(o.host ? { host: o.host } : {}), ...o.headers },
    };
    const req = https.request(
      new URL(path, url),
      options,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), alpn: (res.socket as tls.TLSSocket).alpnProtocol ?? false }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The subject CN of the certificate the server at `port` presents for `servername`. */
export function certificateFor(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(Array.isArray(cn) ? cn.join(',') : String(cn));
    });
    s.once('error', reject);
  });
}
