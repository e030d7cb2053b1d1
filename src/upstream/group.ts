/**
 * An upstream group: several FastCGI servers (each its own ConnectionPool, with the group's
 * pool options, so `connections` is the budget on each server), balanced and failed over.
 *
 *   dispatch ─▶ pick (round_robin: smooth weighted, as nginx; least_conn: fewest in flight per
 *               weight) among servers not marked down
 *            ─▶ member pool ─▶ connect failed / timed out before any byte reached it?
 *                                 yes ─▶ count a failure, try the next untried server
 *                                 no  ─▶ the answer, or the error, goes to the caller
 *            ─▶ nothing left to try ─▶ GW_ERR_UPSTREAM_UNAVAILABLE (503 + Retry-After)
 *
 * Failover only for requests that never reached php-fpm: a refused or timed-out connect before
 * any connection was assigned. A request that may have started to run (bytes written, a read
 * timeout, a closed connection mid-response) is never sent again. That includes a request
 * whose kept connection closed before any answer: the member pool replays it once on a fresh
 * connection to the same server (a stale socket), and when that server has gone the request
 * gets its 502, since its worker may have been killed while running it.
 *
 * Passive health, as nginx's max_fails / fail_timeout: `maxFails` failures within
 * `failTimeout` mark a server down for `failTimeout`; a success clears its count. Optional
 * active health: a FastCGI request to php-fpm's ping path every `interval`, which marks a
 * server down while it fails and up when it answers. A group of one server is never marked
 * down (as in nginx): there is nothing to fail over to.
 */
import { ConnectError, ConnectTimeoutError, type GatewayError, UpstreamUnavailableError } from '../errors.js';
import type { UpstreamAddress } from './address.js';
import type { ExchangeController, ExchangeHandler, FastCgiRequest } from './exchange.js';
import { ConnectionPool, type PoolOptions, type PoolStats } from './pool.js';

/** What the HTTP layer dispatches to: one pool, or a group of them. */
export interface FastCgiUpstream {
  readonly address: UpstreamAddress;
  readonly stats: PoolStats;
  dispatch(request: FastCgiRequest, handler: ExchangeHandler): ExchangeController;
  close(): Promise<void>;
}

export interface GroupServer {
  readonly address: string;
  readonly weight: number;
}

export interface GroupOptions {
  readonly name: string;
  readonly balance: 'least_conn' | 'round_robin';
  readonly maxFails: number;
  readonly failTimeout: number;
  readonly pool: PoolOptions;
  /** Active health through php-fpm's ping page (null: passive only). */
  readonly health: { readonly path: string; readonly interval: number; readonly timeout: number; readonly expect: string } | null;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** What is known about one server (a snapshot in `members`). */
export interface MemberState {
  readonly address: string;
  readonly weight: number;
  readonly inFlight: number;
  readonly fails: number;
  /** ms timestamp until which it is skipped (0: up). */
  readonly downUntil: number;
  /** The last active health check failed. */
  readonly unhealthy: boolean;
  /** Active health checks completed. */
  readonly checks: number;
  readonly stats: PoolStats;
}

class Member {
  inFlight = 0;
  fails = 0;
  firstFailAt = 0;
  downUntil = 0;
  unhealthy = false;
  checks = 0;
  currentWeight = 0;
  constructor(
    readonly pool: ConnectionPool,
    readonly weight: number,
  ) {}
}

const isConnectFailure = (err: GatewayError): boolean => err instanceof ConnectError || err instanceof ConnectTimeoutError;

export class UpstreamGroup implements FastCgiUpstream {
  readonly #members: Member[];
  readonly #o: GroupOptions;
  readonly #now: () => number;
  #healthTimer: NodeJS.Timeout | null = null;
  #failovers = 0;
  #closed = false;

  constructor(servers: readonly GroupServer[], options: GroupOptions) {
    if (servers.length === 0) throw new TypeError('an upstream group needs at least one server');
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#members = servers.map((s) => new Member(new ConnectionPool(s.address, options.pool), s.weight));
    if (options.health !== null) this.#startHealthChecks(options.health);
  }

  /** The first server's address (what a log line names when it names one). */
  get address(): UpstreamAddress {
    return this.#members[0]!.pool.address;
  }

  /** Counters of every server added up. */
  get stats(): PoolStats {
    const all = this.#members.map((m) => m.pool.stats);
    const sum = (k: keyof PoolStats): number => all.reduce((n, s) => n + (s[k] as number), 0);
    return {
      limit: sum('limit'),
      connected: sum('connected'),
      idle: sum('idle'),
      busy: sum('busy'),
      connecting: sum('connecting'),
      queued: sum('queued'),
      dispatched: sum('dispatched'),
      completed: sum('completed'),
      failed: sum('failed'),
      connects: sum('connects'),
      retries: sum('retries'),
      connectErrors: sum('connectErrors'),
      timeouts: sum('timeouts'),
      queueWaitMs: sum('queueWaitMs'),
      queueWaits: sum('queueWaits'),
      responder: null,
    };
  }

  /** Each server's own pool, in config order (for its php-fpm status and ping pages). */
  get pools(): readonly ConnectionPool[] {
    return this.#members.map((m) => m.pool);
  }

  /** Requests moved to another server after a failed connect. */
  get failovers(): number {
    return this.#failovers;
  }

  /** One snapshot per server, in config order. */
  get members(): MemberState[] {
    return this.#members.map((m) => ({
      address: m.pool.address.text,
      weight: m.weight,
      inFlight: m.inFlight,
      fails: m.fails,
      downUntil: m.downUntil > this.#now() ? m.downUntil : 0,
      unhealthy: m.unhealthy,
      checks: m.checks,
      stats: m.pool.stats,
    }));
  }

  dispatch(request: FastCgiRequest, handler: ExchangeHandler): ExchangeController {
    const tried = new Set<Member>();
    let current: ExchangeController | null = null;
    let aborted: { reason: unknown } | null = null;
    let paused = false;
    const outer: ExchangeController = {
      abort: (reason) => {
        aborted = { reason };
        current?.abort(reason);
      },
      pause: () => {
        paused = true;
        current?.pause();
      },
      resume: () => {
        paused = false;
        current?.resume();
      },
      get connectionId() {
        return current?.connectionId ?? 0;
      },
      get server() {
        return current?.server ?? '';
      },
      get reused() {
        return current?.reused ?? false;
      },
    };

    const attempt = (m: Member): void => {
      tried.add(m);
      m.inFlight++;
      let settled = false;
      // A connection was assigned: bytes may have reached php-fpm.
      let started = false;
      const settle = (): void => {
        if (!settled) {
          settled = true;
          m.inFlight--;
        }
      };
      current = m.pool.dispatch(request, {
        onStart: () => {
          started = true;
          handler.onStart?.(outer);
          if (paused) current?.pause();
        },
        onStdout: (chunk) => handler.onStdout(chunk),
        onStderr: (chunk) => handler.onStderr?.(chunk),
        onEnd: (end) => {
          settle();
          m.fails = 0;
          handler.onEnd(end);
        },
        onError: (err) => {
          settle();
          if (!isConnectFailure(err)) {
            handler.onError(err);
            return;
          }
          this.#failed(m);
          // Another server may run it only if nothing of it reached this one, and its caller is still there.
          if (aborted !== null || started) {
            handler.onError(err);
            return;
          }
          const next = this.#pick(tried);
          if (next === null) handler.onError(new UpstreamUnavailableError(this.#o.name, this.#retryAfter(), { cause: err }));
          else {
            this.#failovers++;
            attempt(next);
          }
        },
      });
    };

    const first = this.#pick(tried);
    if (first === null) {
      const err = new UpstreamUnavailableError(this.#o.name, this.#retryAfter());
      queueMicrotask(() => handler.onError(err));
      return outer;
    }
    attempt(first);
    return outer;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#healthTimer !== null) clearInterval(this.#healthTimer);
    await Promise.all(this.#members.map((m) => m.pool.close()));
  }

  /** A server that can be tried now, by the balancing rule; null when none is left. */
  #pick(tried: ReadonlySet<Member>): Member | null {
    const now = this.#now();
    const single = this.#members.length === 1;
    const candidates = this.#members.filter((m) => !tried.has(m) && (single || (m.downUntil <= now && !m.unhealthy)));
    if (candidates.length === 0) return null;
    if (this.#o.balance === 'least_conn') {
      let best: Member | null = null;
      for (const m of candidates) if (best === null || m.inFlight * best.weight < best.inFlight * m.weight) best = m;
      // Ties share the load through the weighted round robin below.
      const ties = candidates.filter((m) => m.inFlight * best!.weight === best!.inFlight * m.weight);
      return ties.length === 1 ? ties[0]! : this.#roundRobin(ties);
    }
    return this.#roundRobin(candidates);
  }

  /** nginx's smooth weighted round robin: even spread, in proportion to the weights. */
  #roundRobin(candidates: readonly Member[]): Member {
    let total = 0;
    let best: Member | null = null;
    for (const m of candidates) {
      m.currentWeight += m.weight;
      total += m.weight;
      if (best === null || m.currentWeight > best.currentWeight) best = m;
    }
    best!.currentWeight -= total;
    return best!;
  }

  #failed(m: Member): void {
    const { maxFails, failTimeout } = this.#o;
    if (maxFails === 0 || this.#members.length === 1) return;
    const now = this.#now();
    if (m.fails === 0 || now - m.firstFailAt > failTimeout) {
      m.fails = 0;
      m.firstFailAt = now;
    }
    m.fails++;
    if (m.fails >= maxFails) {
      m.downUntil = now + failTimeout;
      m.fails = 0;
    }
  }

  /** ms until the first server is tried again. */
  #retryAfter(): number {
    const now = this.#now();
    const waits = this.#members.map((m) => (m.downUntil > now ? m.downUntil - now : this.#o.health?.interval ?? 1000));
    return Math.max(1000, Math.min(...waits));
  }

  #startHealthChecks(h: NonNullable<GroupOptions['health']>): void {
    const check = async (m: Member): Promise<void> => {
      const probe = new ConnectionPool(m.pool.address, { connections: 1, keepAlive: false, probeLimits: false, connectTimeout: h.timeout, readTimeout: h.timeout });
      try {
        const r = await probe.request({ params: { SCRIPT_NAME: h.path, SCRIPT_FILENAME: h.path, REQUEST_METHOD: 'GET', QUERY_STRING: '' } });
        const text = r.stdout.toString('latin1');
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        const status = /^Status:\s*(\d{3})/im.exec(text.slice(0, text.indexOf('\r\n\r\n')));
        m.unhealthy = !((status === null || status[1] === '200') && body.includes(h.expect));
      } catch {
        m.unhealthy = true;
      } finally {
        m.checks++;
        await probe.close();
      }
    };
    this.#healthTimer = setInterval(() => {
      if (this.#closed || this.#members.length === 1) return;
      for (const m of this.#members) void check(m);
    }, h.interval);
    this.#healthTimer.unref();
  }
}
