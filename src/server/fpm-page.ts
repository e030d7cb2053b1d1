/**
 * One GET of a php-fpm page (ping, status) through a pool of ours: on a kept connection when
 * one is idle, so it never waits in php-fpm's backlog behind the workers our own idle
 * connections pin. A timeout bounds it (a saturated pool queues it behind real requests).
 */
import { parseCgiHead } from '../cgi/response-head.js';
import { type FastCgiUpstream, UpstreamGroup } from '../upstream/group.js';
import type { ConnectionPool } from '../upstream/pool.js';

export interface FpmPage {
  readonly status: number;
  readonly body: string;
}

/** GET `path?query` on `pool`; rejects on a FastCGI failure or after `timeout` ms. */
export async function fetchFpmPage(pool: Pick<ConnectionPool, 'request'>, path: string, query: string, timeout: number): Promise<FpmPage> {
  const r = await pool.request({
    params: { SCRIPT_NAME: path, SCRIPT_FILENAME: path, REQUEST_URI: query === '' ? path : `${path}?${query}`, QUERY_STRING: query, REQUEST_METHOD: 'GET', SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1' },
    signal: AbortSignal.timeout(timeout),
  });
  const { head, body } = parseCgiHead(r.stdout);
  return { status: head.status, body: body.toString('utf8') };
}

/** Every server of an upstream: its address and its own pool. */
export function serversOf(up: FastCgiUpstream): ReadonlyArray<{ readonly address: string; readonly pool: ConnectionPool }> {
  if (up instanceof UpstreamGroup) return up.pools.map((pool) => ({ address: pool.address.text, pool }));
  return [{ address: up.address.text, pool: up as ConnectionPool }];
}
