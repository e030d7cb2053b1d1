// Pure parts of the cluster and listener code: budget shares, the per-worker plan, and the port
// a redirecting listener points to.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shareOf, workerShare } from '../../../src/server/cluster.js';
import { type ListenerSpec, redirectPort } from '../../../src/server/listeners.js';
import { resolveConfig } from '../../../src/config/load.js';
import { createGatewayHandler } from '../../../src/http/gateway-handler.js';
import type { ConnectionPool } from '../../../src/upstream/pool.js';

test('shareOf: each worker gets floor(total / workers), at least one', () => {
  assert.equal(shareOf(8, 2), 4);
  assert.equal(shareOf(8, 3), 2, 'the shares never add up past the budget');
  assert.equal(shareOf(4, 8), 1, 'a budget smaller than the workers still gives each one connection');
  for (let total = 1; total <= 32; total++) for (let w = 1; w <= total; w++) assert.ok(shareOf(total, w) * w <= total, `${total}/${w}`);
});

test('workerShare: flag-mode pool connections and maxConnections are divided; a config keeps its upstreams for the handler to divide', () => {
  const flat = workerShare({ kind: 'flat', options: { root: '/srv', upstream: 'unix:/a.sock', pool: { connections: 8 }, maxConnections: 1000 } }, 3);
  assert.equal(flat.kind === 'flat' && flat.options.pool?.connections, 2);
  assert.equal(flat.kind === 'flat' && flat.options.maxConnections, 334);
  const config = resolveConfig({ base: { upstreams: { php: { servers: ['unix:/a.sock'], connections: 8 } }, sites: [{ root: '/srv', routes: [{ path: '/', php: { upstream: 'php' } }] }] } });
  const shared = workerShare({ kind: 'config', config }, 4);
  assert.equal(shared.kind === 'config' && shared.config.upstreams['php']!.connections, 8);
  assert.equal(shared.kind === 'config' && shared.config.maxConnections, 4096);
});

test('redirectPort: an explicit port, else the first TCP TLS listener, else 443', () => {
  const l = (address: string, extra: Partial<ListenerSpec> = {}): ListenerSpec => ({ address, tls: null, http2: true, mode: '0660', redirectToHttps: false, ...extra });
  const plain = l(':80', { redirectToHttps: true });
  assert.equal(redirectPort(l(':80'), [l(':80')]), 0, 'not a redirecting listener');
  assert.equal(redirectPort(plain, [plain]), 443);
  assert.equal(redirectPort(plain, [plain, l('unix:/x.sock', { tls: { cert: 'c', key: 'k' } }), l('0.0.0.0:8443', { tls: { cert: 'c', key: 'k' } })]), 8443);
  assert.equal(redirectPort(l(':80', { redirectToHttps: 9443 }), []), 9443);
});

test('a handler built for one of 3 workers holds a third of each upstream budget, inline addresses included', async () => {
  const config = resolveConfig({
    base: {
      upstreams: { php: { servers: ['unix:/a.sock'], connections: 8 } },
      sites: [{ root: '/srv', routes: [{ path: '/', php: { upstream: 'php' } }, { path: '/b/', php: { upstream: 'unix:/b.sock' } }] }],
    },
  });
  const h = createGatewayHandler(config, { workers: 3 });
  try {
    assert.equal((h.pools.get('php') as ConnectionPool).options.connections, 2);
    assert.equal((h.pools.get('unix:/b.sock') as ConnectionPool).options.connections, 1, 'the default 4, shared by 3');
  } finally {
    await h.close();
  }
});
