/**
 * The admin listener (off by default; loopback unless told otherwise): `/healthz` (the process
 * is up), `/readyz` (every upstream answers, see readiness.ts) and `/metrics` (Prometheus).
 * It is a separate listener so that none of it is reachable through a site.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseListen } from './listeners.js';
import type { ReadinessReport } from './readiness.js';

export interface AdminSources {
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  ready(): Promise<ReadinessReport>;
}

export interface AdminServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startAdmin(listen: string, sources: AdminSources): Promise<AdminServer> {
  const reply = (res: ServerResponse, status: number, type: string, body: string): void => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  };
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      reply(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const fail = (err: unknown): void => reply(res, 500, 'text/plain; charset=utf-8', `${(err as Error).message}\n`);
    switch (path) {
      case '/healthz':
        reply(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz':
        sources.ready().then((r) => reply(res, r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`), fail);
        return;
      case '/metrics':
        sources.metrics().then((m) => reply(res, 200, m.contentType, m.body), fail);
        return;
      default:
        reply(res, 404, 'text/plain; charset=utf-8', 'not found: /healthz, /readyz, /metrics\n');
    }
  });
  const target = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const url = typeof a === 'string' ? `unix:${a}` : `http://${(a as AddressInfo).family === 'IPv6' ? `[${(a as AddressInfo).address}]` : (a as AddressInfo).address}:${(a as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
