/**
 * /metrics: Prometheus text format from prom-client. Per request: a duration histogram (the
 * OpenTelemetry http.server.request.duration buckets), body bytes and requests in flight.
 * Per upstream server, read from the pools at scrape time: connections, queue, waits, connect
 * errors, timeouts, retries, failovers and health. And each php-fpm pool's own status page,
 * scraped over FastCGI when the upstream names its `statusPath`, under php-fpm_exporter's
 * names (phpfpm_*) so that existing dashboards work.
 *
 * prom-client because it implements the text format, the histogram and, for cluster workers,
 * an aggregating registry that the primary serves (see admin.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { type FastCgiUpstream, UpstreamGroup } from '../upstream/group.js';
import type { ConnectionPool } from '../upstream/pool.js';
import type { ServedApp } from './context.js';
import { fetchFpmPage, serversOf } from './fpm-page.js';

/** OpenTelemetry's default buckets for http.server.request.duration, in seconds. */
export const OTEL_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** Methods kept as labels; any other is `_OTHER` (OpenTelemetry's rule, which bounds the label set). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** What the metrics read at scrape time: the pools of the handler in force, and the config. */
export interface MetricSources {
  pools(): ReadonlyMap<string, FastCgiUpstream>;
  /** Named upstreams' status paths (null: not scraped). */
  statusPaths(): ReadonlyMap<string, string | null>;
  /** Whether this process scrapes php-fpm (one worker of a cluster does). */
  readonly scrapesFpm: boolean;
}


/** php-fpm status fields → php-fpm_exporter's metric names. */
const FPM_FIELDS: ReadonlyArray<readonly [string, string, string]> = [
  ['accepted conn', 'phpfpm_accepted_connections', 'Connections accepted by the pool.'],
  ['listen queue', 'phpfpm_listen_queue', 'Requests in the queue of pending connections.'],
  ['max listen queue', 'phpfpm_max_listen_queue', 'Largest listen queue since the pool started.'],
  ['idle processes', 'phpfpm_idle_processes', 'Idle processes.'],
  ['active processes', 'phpfpm_active_processes', 'Active processes.'],
  ['total processes', 'phpfpm_total_processes', 'Idle and active processes.'],
  ['max active processes', 'phpfpm_max_active_processes', 'Most active processes at once since the pool started.'],
  ['max children reached', 'phpfpm_max_children_reached', 'Times pm.max_children was reached.'],
  ['slow requests', 'phpfpm_slow_requests', 'Requests that exceeded request_slowlog_timeout.'],
];

/** How long one php-fpm status scrape may take. */
const SCRAPE_TIMEOUT = 2000;
/** A scrape this recent feeds the other phpfpm_* metrics of the same /metrics request. */
const SCRAPE_REUSE = 1000;

export interface GatewayMetrics {
  readonly registry: Registry;
  /** Count one request (the server's `observe` hook). */
  observe(req: IncomingMessage, res: ServerResponse, app: ServedApp): void;
}

export function createMetrics(sources: MetricSources): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ['site', 'route', 'method', 'status_class'] as const;
  const duration = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'Duration of HTTP server requests, from the request head to the last response byte.',
    labelNames,
    buckets: OTEL_DURATION_BUCKETS,
    registers: [registry],
  });
  const requestBytes = new Counter({ name: 'http_server_request_body_bytes_total', help: 'Request body bytes received.', labelNames: ['site', 'route'] as const, registers: [registry] });
  const responseBytes = new Counter({ name: 'http_server_response_body_bytes_total', help: 'Response body bytes sent.', labelNames: ['site', 'route'] as const, registers: [registry] });
  const active = new Gauge({ name: 'http_server_active_requests', help: 'Requests in flight.', registers: [registry] });

  const up = ['upstream', 'server'] as const;
  /** A gauge or counter set from the pools at scrape time. */
  const fromPools = <K extends string>(kind: 'gauge' | 'counter', name: string, help: string, labels: readonly K[], fill: (set: (l: Record<K, string>, v: number) => void) => void, aggregator: 'sum' | 'min' = 'sum'): void => {
    const Ctor = kind === 'gauge' ? Gauge : Counter;
    new Ctor({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      aggregator,
      collect(this: Gauge<K> | Counter<K>) {
        this.reset();
        fill((l, v) => (kind === 'gauge' ? (this as Gauge<K>).set(l, v) : (this as Counter<K>).inc(l, v)));
      },
    });
  };
  const eachServer = (fn: (upstream: string, server: string, pool: ConnectionPool) => void): void => {
    for (const [name, u] of sources.pools()) for (const s of serversOf(u)) fn(name, s.address, s.pool);
  };
  fromPools('gauge', 'fastcgi_upstream_connections', 'Open upstream connections, by state (active: running a request).', [...up, 'state'], (set) =>
    eachServer((upstream, server, p) => {
      const s = p.stats;
      set({ upstream, server, state: 'active' }, s.busy);
      set({ upstream, server, state: 'idle' }, s.idle);
    }),
  );
  fromPools('gauge', 'fastcgi_upstream_queue_length', 'Requests waiting for an upstream connection.', up, (set) => eachServer((upstream, server, p) => set({ upstream, server }, p.stats.queued)));
  fromPools('counter', 'fastcgi_upstream_queue_wait_seconds_total', 'Time requests waited for an upstream connection.', up, (set) =>
    eachServer((upstream, server, p) => set({ upstream, server }, p.stats.queueWaitMs / 1000)),
  );
  fromPools('counter', 'fastcgi_upstream_queue_waits_total', 'Requests that waited for an upstream connection.', up, (set) => eachServer((upstream, server, p) => set({ upstream, server }, p.stats.queueWaits)));
  fromPools('counter', 'fastcgi_upstream_requests_total', 'Requests sent to the upstream server.', up, (set) => eachServer((upstream, server, p) => set({ upstream, server }, p.stats.dispatched)));
  fromPools('counter', 'fastcgi_upstream_connect_errors_total', 'Failed connects.', up, (set) => eachServer((upstream, server, p) => set({ upstream, server }, p.stats.connectErrors)));
  fromPools('counter', 'fastcgi_upstream_timeouts_total', 'Requests ended by a timeout (connect, read, write, queue).', up, (set) => eachServer((upstream, server, p) => set({ upstream, server }, p.stats.timeouts)));
  fromPools('counter', 'fastcgi_upstream_retries_total', 'Requests replayed on a fresh connection after a kept one turned out closed.', up, (set) =>
    eachServer((upstream, server, p) => set({ upstream, server }, p.stats.retries)),
  );
  fromPools('counter', 'fastcgi_upstream_failovers_total', 'Requests moved to another server of the upstream after a failed connect.', ['upstream'], (set) => {
    for (const [name, u] of sources.pools()) if (u instanceof UpstreamGroup) set({ upstream: name }, u.failovers);
  });
  fromPools(
    'gauge',
    'fastcgi_upstream_healthy',
    '1 while the server is in rotation, 0 while marked down (max_fails) or failing its health check.',
    up,
    (set) => {
      for (const [name, u] of sources.pools()) {
        if (u instanceof UpstreamGroup) for (const m of u.members) set({ upstream: name, server: m.address }, m.downUntil === 0 && !m.unhealthy ? 1 : 0);
        else set({ upstream: name, server: u.address.text }, 1);
      }
    },
    'min',
  );

  // php-fpm's own status: each server of each upstream that names its statusPath. One scrape
  // per /metrics request feeds every phpfpm_* metric (each one's collect awaits the same).
  type Scraped = { readonly labels: { pool: string; scrape_uri: string }; readonly doc: Record<string, unknown> | null };
  let scrape: { at: number; result: Promise<Scraped[]> } | null = null;
  const scrapeAll = (): Promise<Scraped[]> => {
    const now = performance.now();
    if (scrape !== null && now - scrape.at < SCRAPE_REUSE) return scrape.result;
    const jobs: Array<Promise<Scraped>> = [];
    if (sources.scrapesFpm) {
      const paths = sources.statusPaths();
      for (const [name, u] of sources.pools()) {
        const path = paths.get(name);
        if (!path) continue;
        for (const s of serversOf(u)) {
          jobs.push(
            fetchFpmPage(s.pool, path, 'json', SCRAPE_TIMEOUT).then(
              (page) => {
                if (page.status !== 200) throw new Error(`status ${page.status}`);
                const doc = JSON.parse(page.body) as Record<string, unknown>;
                return { labels: { pool: String(doc['pool'] ?? name), scrape_uri: s.address }, doc };
              },
              () => ({ labels: { pool: name, scrape_uri: s.address }, doc: null }),
            ).catch(() => ({ labels: { pool: name, scrape_uri: s.address }, doc: null })),
          );
        }
      }
    }
    scrape = { at: now, result: Promise.all(jobs) };
    return scrape.result;
  };
  const fpmGauge = (name: string, help: string, value: (doc: Record<string, unknown> | null) => number | null): void => {
    new Gauge({
      name,
      help,
      labelNames: ['pool', 'scrape_uri'] as const,
      registers: [registry],
      // In a cluster one worker scrapes; its values are taken as they are.
      aggregator: 'first',
      async collect(this: Gauge<'pool' | 'scrape_uri'>) {
        const results = await scrapeAll();
        this.reset();
        for (const r of results) {
          const v = value(r.doc);
          if (v !== null) this.set(r.labels, v);
        }
      },
    });
  };
  fpmGauge('phpfpm_up', 'Whether the last scrape of the php-fpm status page succeeded (1) or not (0).', (doc) => (doc === null ? 0 : 1));
  for (const [field, name, help] of FPM_FIELDS) fpmGauge(name, help, (doc) => (doc !== null && typeof doc[field] === 'number' ? (doc[field] as number) : null));

  const observe = (req: IncomingMessage, res: ServerResponse, app: ServedApp): void => {
    active.inc();
    const start = performance.now();
    res.once('close', () => {
      active.dec();
      const { site, route } = app.labels(req);
      const method = METHODS.has(req.method ?? '') ? req.method! : '_OTHER';
      duration.observe({ site, route, method, status_class: `${Math.floor(res.statusCode / 100)}xx` }, (performance.now() - start) / 1000);
      const inBytes = (res as ServerResponse & { requestBodyBytes?: number }).requestBodyBytes ?? Number(req.headers['content-length'] ?? 0);
      if (inBytes > 0) requestBytes.inc({ site, route }, inBytes);
      const t = (res as ServerResponse & { upstreamTiming?: { bytes: number } }).upstreamTiming;
      const outBytes = t !== undefined ? t.bytes : Number(res.getHeader('content-length') ?? 0);
      if (outBytes > 0) responseBytes.inc({ site, route }, outBytes);
    });
  };
  return { registry, observe };
}


/** A registry that the primary serves, summing its workers' metrics (see each metric's aggregator). */
export function clusterRegistry(): AggregatorRegistry<'text/plain; version=0.0.4; charset=utf-8'> {
  return new AggregatorRegistry();
}

/** In a worker: make `registry` the one the primary's AggregatorRegistry collects. */
export function shareWithPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
}
