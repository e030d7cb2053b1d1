/**
 * /readyz: every upstream has a server that answers a FastCGI request, sent on one of our own
 * pool connections (never behind the php-fpm workers our idle connections pin). The request
 * is the upstream's health page (php-fpm's ping.path, `health` in the config): its answer must
 * be a 200 holding the expected text. Without `health`, `/ping` is asked and any complete
 * FastCGI answer counts, so that a responder without a ping page (fcgiwrap, a php-fpm pool
 * without ping.path) still shows it is serving.
 */
import type { GatewayConfig } from '../config/schema.js';
import type { FastCgiUpstream } from '../upstream/group.js';
import { fetchFpmPage, serversOf } from './fpm-page.js';

export interface ReadinessReport {
  readonly ready: boolean;
  readonly upstreams: ReadonlyArray<{ readonly name: string; readonly ready: boolean; readonly servers: ReadonlyArray<{ readonly address: string; readonly ok: boolean; readonly detail: string }> }>;
}

type HealthOf = (name: string) => { readonly path: string; readonly expect: string } | null;

/** How long one server may take to answer. */
const CHECK_TIMEOUT = 2000;

export function healthOf(config: GatewayConfig | null): HealthOf {
  return (name) => config?.upstreams[name]?.health ?? null;
}

export async function checkReadiness(pools: ReadonlyMap<string, FastCgiUpstream>, health: HealthOf): Promise<ReadinessReport> {
  const upstreams = await Promise.all(
    [...pools].map(async ([name, up]) => {
      const h = health(name);
      const servers = await Promise.all(
        serversOf(up).map(async (s) => {
          try {
            const page = await fetchFpmPage(s.pool, h?.path ?? '/ping', '', CHECK_TIMEOUT);
            if (h === null) return { address: s.address, ok: true, detail: `answered ${page.status}` };
            const ok = page.status === 200 && page.body.includes(h.expect);
            return { address: s.address, ok, detail: ok ? 'pong' : `answered ${page.status} without ${JSON.stringify(h.expect)}` };
          } catch (err) {
            return { address: s.address, ok: false, detail: (err as Error).message };
          }
        }),
      );
      return { name, ready: servers.some((s) => s.ok), servers };
    }),
  );
  return { ready: upstreams.every((u) => u.ready), upstreams };
}
