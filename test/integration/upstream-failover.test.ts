/**
 * Integration, three real php-fpm pools in one upstream group, under steady load. One pool is
 * SIGKILLed (master and workers): requests that never reached it fail over and succeed, the
 * requests running on it get a 502, and once it is back it is in rotation again. Also: weights,
 * every server down → 503 with Retry-After, and active health checks through php-fpm's ping.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { resolveConfig } from '../../src/config/load.js';
import type { GatewayHandler } from '../../src/http/gateway-handler.js';
import type { UpstreamGroup } from '../../src/upstream/group.js';
import { type GatewayServer, startConfiguredServer } from '../../src/server.js';
import { waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';
import { alive, signalTree } from '../helpers/procs.js';

const NAMES = ['a', 'b', 'c'] as const;
let root: string;
const pools: Record<string, PhpFpm> = {};

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'fcgi-gw-failover-'));
  // Each pool says who it is (env[] in its pool config), so the test knows where a request ran.
  writeFileSync(join(root, 'who.php'), '<?php header("Content-Type: text/plain"); echo getenv("POOL_NAME");');
  writeFileSync(join(root, 'slow.php'), '<?php usleep((int)$_GET["ms"] * 1000); echo getenv("POOL_NAME");');
  for (const n of NAMES) pools[n] = await startPhpFpm({ workers: 3, extraPool: `env[POOL_NAME] = ${n}` });
});

after(async () => {
  for (const n of NAMES) await pools[n]?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function serve(upstream: Record<string, unknown>): Promise<GatewayServer<GatewayHandler>> {
  const config = resolveConfig({
    base: {
      listen: ['127.0.0.1:0'],
      accessLog: false,
      upstreams: { app: upstream },
      sites: [{ root, routes: [{ path: '/', php: { upstream: 'app' } }] }],
    },
  });
  return startConfiguredServer(config);
}

async function get(agent: Agent, url: string): Promise<{ status: number; body: string; retryAfter: string | undefined }> {
  const res = await request(url, { dispatcher: agent });
  const body = await res.body.text();
  return { status: res.statusCode, body, retryAfter: res.headers['retry-after'] as string | undefined };
}

describe('failover', () => {
  test('SIGKILL of one pool under load: nothing retryable fails, its running requests get 502, it comes back', { timeout: 90_000 }, async (t) => {
    const gw = await serve({ servers: NAMES.map((n) => pools[n]!.address), balance: 'round_robin', connections: 3, maxFails: 1, failTimeout: '1s' });
    const agent = new Agent({ connections: 8 });
    t.after(async () => {
      await agent.close();
      await gw.close();
    });
    // Steady load: 6 clients in a loop, each request a fresh script run on some pool.
    const seen: Record<string, number> = {};
    const failures: string[] = [];
    let stop = false;
    let done = 0;
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const r = await get(agent, `${gw.url}/who.php`);
          if (r.status === 200) seen[r.body] = (seen[r.body] ?? 0) + 1;
          else failures.push(`${r.status} ${r.body.trim()}`);
        } catch (err) {
          failures.push(String(err));
        }
        done++;
      }
    };
    let loops = Array.from({ length: 6 }, loop);
    let cut = 0;
    const slowAgent = new Agent({ connections: 6 });
    t.after(() => slowAgent.close());
    try {
      await waitFor(() => done >= 150, 'load to warm every pool');
      assert.ok(NAMES.every((n) => (seen[n] ?? 0) > 0), `round robin reached every pool: ${JSON.stringify(seen)}`);
      // Quiet for a moment, so that round robin gives each pool two of the slow requests.
      stop = true;
      await Promise.all(loops);
      const group = gw.handler.pools.get('app') as UpstreamGroup;
      const slow = Array.from({ length: 6 }, () => get(slowAgent, `${gw.url}/slow.php?ms=1500`));
      await waitFor(() => group.members.every((m) => m.inFlight === 2), 'two slow requests running on every pool');
      stop = false;
      loops = Array.from({ length: 6 }, loop);
      const b = pools['b']!;
      const killed = signalTree(b.pid, 'SIGKILL');
      await waitFor(() => killed.every((p) => !alive(p)), 'pool b (master and workers) to be gone');
      const beforeKill = { ...seen };
      await waitFor(() => done >= 600, 'load to go on while b is down');
      const slowResults = await Promise.all(slow);
      // The two running on b: 502 (they may have started, so they are not sent elsewhere).
      assert.deepEqual(slowResults.map((r) => (r.status === 200 ? r.body : String(r.status))).sort(), ['502', '502', 'a', 'a', 'c', 'c'], JSON.stringify(slowResults));
      // A load request that was on one of b's connections when b died (running, or just written
      // to a kept connection) may have reached a worker: it gets its 502 and is not sent again.
      // At most b's connection budget (3) of them; every other request was served.
      cut = failures.length;
      assert.ok(cut <= 3 && failures.every((f) => f.startsWith('502 ')), `only requests on b's connections failed, with 502: ${JSON.stringify(failures)}`);
      assert.equal(seen['b'] ?? 0, beforeKill['b'] ?? 0, 'nothing was served by b while it was down');

      // b returns: after failTimeout it is tried again and serves.
      await b.restart();
      const bBefore = seen['b'] ?? 0;
      await waitFor(() => (seen['b'] ?? 0) > bBefore, 'b back in rotation', 20_000);
    } finally {
      // The loops end even when an assertion above failed.
      stop = true;
      await Promise.all(loops);
    }
    assert.equal(failures.length, cut, 'no failure after the kill, nor while b came back');
    assert.ok(done > 600);
  });

  test('weights: a server of weight 3 gets three times the share of one of weight 1', async (t) => {
    const gw = await serve({ servers: [{ address: pools['a']!.address, weight: 3 }, { address: pools['c']!.address, weight: 1 }], balance: 'round_robin' });
    const agent = new Agent();
    t.after(async () => {
      await agent.close();
      await gw.close();
    });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const r = await get(agent, `${gw.url}/who.php`);
      counts[r.body] = (counts[r.body] ?? 0) + 1;
    }
    // Sequential requests under smooth weighted round robin: exactly 30 and 10.
    assert.deepEqual(counts, { a: 30, c: 10 });
  });

  test('every server down: 503 with Retry-After, and no request waits for a connect timeout', async (t) => {
    const dead = mkdtempSync(join(tmpdir(), 'fcgi-gw-dead-'));
    t.after(() => rmSync(dead, { recursive: true, force: true }));
    const gw = await serve({ servers: [`unix:${join(dead, 'x.sock')}`, `unix:${join(dead, 'y.sock')}`], maxFails: 1, failTimeout: '30s' });
    const agent = new Agent();
    t.after(async () => {
      await agent.close();
      await gw.close();
    });
    const first = await get(agent, `${gw.url}/who.php`);
    assert.equal(first.status, 503, 'both tried, neither answered');
    assert.ok(Number(first.retryAfter) >= 1, `Retry-After ${first.retryAfter}`);
    const members = (gw.handler.pools.get('app') as UpstreamGroup).members;
    assert.ok(members.every((m) => m.downUntil > 0), 'both marked down');
    const second = await get(agent, `${gw.url}/who.php`);
    assert.equal(second.status, 503);
    assert.ok(Number(second.retryAfter) >= 25, `Retry-After counts down from failTimeout: ${second.retryAfter}`);
  });

  test('active health: a pool whose ping fails is skipped without waiting for a failed request', async (t) => {
    const gw = await serve({ servers: [pools['a']!.address, pools['c']!.address], balance: 'round_robin', maxFails: 0, health: { path: '/ping', interval: '100ms', timeout: '1s', expect: 'nothing-answers-this' } });
    const agent = new Agent();
    t.after(async () => {
      await agent.close();
      await gw.close();
    });
    const group = gw.handler.pools.get('app') as UpstreamGroup;
    await waitFor(() => group.members.every((m) => m.unhealthy), 'both checks to fail (the expected text is never in the answer)');
    const r = await get(agent, `${gw.url}/who.php`);
    assert.equal(r.status, 503);
  });

  test('active health: php-fpm answering its ping keeps a server in rotation', async (t) => {
    const gw = await serve({ servers: [pools['a']!.address, pools['c']!.address], balance: 'round_robin', health: { interval: '100ms' } });
    const agent = new Agent();
    t.after(async () => {
      await agent.close();
      await gw.close();
    });
    const group = gw.handler.pools.get('app') as UpstreamGroup;
    await waitFor(() => group.members.every((m) => m.checks >= 2), 'two rounds of checks');
    assert.deepEqual(group.members.map((m) => m.unhealthy), [false, false]);
    const bodies = new Set<string>();
    for (let i = 0; i < 4; i++) bodies.add((await get(agent, `${gw.url}/who.php`)).body);
    assert.deepEqual([...bodies].sort(), ['a', 'c']);
  });
});
