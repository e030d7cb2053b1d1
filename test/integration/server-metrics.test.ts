/**
 * Integration, real php-fpm: the admin listener. /healthz; /readyz through a FastCGI ping of
 * every upstream (503 naming the one that stopped answering); /metrics with the request
 * histogram (OpenTelemetry buckets), bytes, upstream connection gauges, and each php-fpm pool's
 * own status as phpfpm_* — scraped on one of our connections even while our idle connections
 * pin every php-fpm worker. Then the same through the primary of a two-worker cluster, where
 * the workers' metrics are added up.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { resolveConfig } from '../../src/config/load.js';
import { OTEL_DURATION_BUCKETS } from '../../src/server/metrics.js';
import { type ConfiguredServer, startConfiguredServer } from '../../src/server.js';
import { type ServeProcess, startServe } from '../helpers/cli-serve.js';
import { GATEWAY_ROOT_FIXTURE, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

/** Samples of a Prometheus text page: name{labels} → value. */
function samples(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}
const pick = (all: ReturnType<typeof samples>, name: string, labels: Record<string, string> = {}) =>
  all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const get = async (url: string): Promise<{ status: number; text: string }> => {
  const r = await request(url);
  return { status: r.statusCode, text: await r.body.text() };
};

let fpm: PhpFpm;
let other: PhpFpm;
let gw: ConfiguredServer;

before(async () => {
  [fpm, other] = await Promise.all([startPhpFpm({ workers: 3 }), startPhpFpm({ workers: 1 })]);
  const config = resolveConfig({
    base: {
      accessLog: false,
      listen: ['127.0.0.1:0'],
      admin: { listen: '127.0.0.1:0' },
      upstreams: {
        // As many connections as php-fpm has workers, kept open long: once they are all
        // open, every php-fpm worker is pinned to one of them.
        app: { servers: [fpm.address], connections: 3, idleTimeout: '60s', statusPath: '/status', health: { path: '/ping', interval: '1h' } },
        other: { servers: [other.address], connections: 1 },
      },
      sites: [
        {
          root: GATEWAY_ROOT_FIXTURE,
          routes: [
            { path: '/', php: { upstream: 'app' } },
            { path: '/other/', php: { upstream: 'other' } },
          ],
        },
      ],
    },
  });
  gw = await startConfiguredServer(config);
});
after(async () => {
  await gw?.close();
  await Promise.all([fpm?.stop(), other?.stop()]);
});

describe('admin listener, one process', () => {
  test('/healthz answers; other paths and methods are refused', async () => {
    assert.deepEqual(await get(`${gw.adminUrl}/healthz`), { status: 200, text: 'ok\n' });
    assert.equal((await get(`${gw.adminUrl}/nope`)).status, 404);
    const post = await request(`${gw.adminUrl}/metrics`, { method: 'POST' });
    await post.body.text();
    assert.equal(post.statusCode, 405);
    assert.match(new URL(gw.adminUrl!).hostname, /^127\.0\.0\.1$/);
  });

  test('/metrics: request histogram with the OpenTelemetry buckets, bytes, upstream gauges', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await get(`${gw.url}/hello.php`)).status, 200);
    const post = await request(`${gw.url}/echo.php`, { method: 'POST', body: Buffer.alloc(1000, 0x61) });
    await post.body.text();
    assert.equal((await get(`${gw.url}/missing.php`)).status, 404);
    const all = samples((await get(`${gw.adminUrl}/metrics`)).text);
    const hist = (method: string, cls: string) => pick(all, 'http_server_request_duration_seconds_count', { site: '*', route: '/', method, status_class: cls });
    assert.equal(hist('GET', '2xx')[0]?.value, 3);
    assert.equal(hist('POST', '2xx')[0]?.value, 1);
    assert.equal(hist('GET', '4xx')[0]?.value, 1);
    const les = pick(all, 'http_server_request_duration_seconds_bucket', { method: 'GET', status_class: '2xx' }).map((s) => s.labels['le']);
    assert.deepEqual(les, [...OTEL_DURATION_BUCKETS.map(String), '+Inf']);
    assert.equal(pick(all, 'http_server_request_body_bytes_total', { site: '*', route: '/' })[0]?.value, 1000, 'the POST body');
    assert.ok((pick(all, 'http_server_response_body_bytes_total', { site: '*', route: '/' })[0]?.value ?? 0) > 0, 'response bytes counted');
    assert.equal(pick(all, 'http_server_active_requests')[0]?.value, 0);
    const conns = pick(all, 'fastcgi_upstream_connections', { upstream: 'app', server: fpm.address });
    assert.deepEqual(conns.map((s) => s.labels['state']).sort(), ['active', 'idle']);
    // The 404 is answered by the router: 3 GETs and the POST went upstream.
    assert.equal(pick(all, 'fastcgi_upstream_requests_total', { upstream: 'app' })[0]?.value, 4, 'requests sent to php-fpm');
    assert.equal(pick(all, 'fastcgi_upstream_connect_errors_total', { upstream: 'app' })[0]?.value, 0);
    assert.equal(pick(all, 'fastcgi_upstream_healthy', { upstream: 'app' })[0]?.value, 1);
  });

  test("phpfpm_* from php-fpm's status page, while our idle connections pin every php-fpm worker", async () => {
    // Three requests at once: three connections open, then stay idle (idleTimeout 60 s).
    await Promise.all(Array.from({ length: 3 }, () => get(`${gw.url}/sleep.php?ms=200`)));
    const pool = gw.handler.pools.get('app')!;
    await waitFor(() => pool.stats.idle === 3, 'three idle kept connections');
    const all = samples((await get(`${gw.adminUrl}/metrics`)).text);
    const labels = { pool: 'test', scrape_uri: fpm.address };
    assert.equal(pick(all, 'phpfpm_up', labels)[0]?.value, 1, 'the scrape went through one of our own connections');
    // php-fpm 8.2's own counts of processes are its business (they can exceed max_children
    // right after start); what matters is that they are there, as numbers, once.
    assert.ok((pick(all, 'phpfpm_total_processes', labels)[0]?.value ?? 0) >= 1, 'total processes');
    assert.ok((pick(all, 'phpfpm_accepted_connections', labels)[0]?.value ?? 0) >= 1, 'accepted connections');
    for (const name of ['phpfpm_listen_queue', 'phpfpm_max_listen_queue', 'phpfpm_idle_processes', 'phpfpm_active_processes', 'phpfpm_max_active_processes', 'phpfpm_max_children_reached', 'phpfpm_slow_requests']) {
      assert.equal(pick(all, name, labels).length, 1, name);
    }
    assert.equal(pick(all, 'phpfpm_up', { scrape_uri: other.address }).length, 0, 'an upstream without statusPath is not scraped');
  });

  test('/readyz: 200 while every upstream answers its FastCGI ping; 503 naming the one that stopped', async () => {
    const ok = await get(`${gw.adminUrl}/readyz`);
    assert.equal(ok.status, 200, ok.text);
    const report = JSON.parse(ok.text) as { ready: boolean; upstreams: Array<{ name: string; ready: boolean; servers: Array<{ detail: string }> }> };
    assert.equal(report.ready, true);
    assert.equal(report.upstreams.find((u) => u.name === 'app')!.servers[0]!.detail, 'pong');
    await other.stop();
    const down = await get(`${gw.adminUrl}/readyz`);
    assert.equal(down.status, 503);
    const r = JSON.parse(down.text) as typeof report;
    assert.deepEqual(
      r.upstreams.map((u) => [u.name, u.ready]),
      [
        ['app', true],
        ['other', false],
      ],
    );
  });
});

describe('admin listener of a two-worker cluster', () => {
  let dir: string;
  let serve: ServeProcess;
  let fpm2: PhpFpm;
  before(async () => {
    fpm2 = await startPhpFpm({ workers: 4 });
    dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-metrics-'));
    const file = join(dir, 'gw.yaml');
    writeFileSync(
      file,
      `listen: ["127.0.0.1:0"]
workers: 2
accessLog: false
admin: { listen: "127.0.0.1:0" }
upstreams: { php: { servers: ["${fpm2.address}"], connections: 4, statusPath: /status } }
sites: [{ root: ${GATEWAY_ROOT_FIXTURE}, routes: [{ path: /, php: { upstream: php } }] }]
`,
    );
    serve = await startServe(['--config', file]);
  });
  after(async () => {
    await serve?.kill();
    await fpm2?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the primary serves the sum of its workers, php-fpm scraped once, and readiness', async () => {
    const admin = (await serve.waitForStderr(/admin listener on (\S+)/))[1]!;
    // Fresh connections, spread over both workers.
    for (let i = 0; i < 20; i++) {
      const r = await request(`${serve.urls[0]}/hello.php`, { headers: { connection: 'close' } });
      await r.body.text();
    }
    const all = samples((await get(`${admin}/metrics`)).text);
    assert.equal(pick(all, 'http_server_request_duration_seconds_count', { method: 'GET', status_class: '2xx' })[0]?.value, 20, 'both workers counted, once each');
    assert.equal(pick(all, 'phpfpm_up', { scrape_uri: fpm2.address }).length, 1);
    assert.equal(pick(all, 'phpfpm_up', { scrape_uri: fpm2.address })[0]?.value, 1);
    assert.equal(pick(all, 'phpfpm_total_processes', { scrape_uri: fpm2.address }).length, 1, 'one scrape, not one per worker');
    assert.equal(pick(all, 'fastcgi_upstream_requests_total', { upstream: 'php' })[0]?.value, 20, 'both workers, added up');
    const ready = await get(`${admin}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual((await get(`${admin}/healthz`)).status, 200);
  });
});
