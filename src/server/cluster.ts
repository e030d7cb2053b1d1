/**
 * Several cores: a small primary that forks workers (node:cluster) sharing the listeners, and
 * does no request work. It replaces a worker that dies (with a backoff), rolls the workers one
 * by one on a reload (a new one serving before the old one drains), and stops them all on
 * SIGTERM/SIGINT.
 *
 *   primary ── fork ──▶ worker ── 'hello' ─▶ primary ── 'start' {plan} ─▶ listening ── 'ready' ─▶ primary
 *                          ◀── 'stop' ── drains, exits 0 (reload: after its replacement is ready)
 *
 * Each worker holds `connections ÷ workers` connections per upstream, so that the gateway as a
 * whole stays within the budget (≤ pm.max_children) that the config gives.
 */
import cluster, { type Worker } from 'node:cluster';
import { rmSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GatewayConfig } from '../config/schema.js';
import type { GatewayServerOptions } from '../server.js';
import { type AdminServer, startAdmin } from './admin.js';
import type { ReadinessReport } from './readiness.js';

/** What a worker serves: a resolved config, or the one-site options of `serve` flags. */
export type WorkerPlan = { readonly kind: 'config'; readonly config: GatewayConfig } | { readonly kind: 'flat'; readonly options: Omit<GatewayServerOptions, 'logger'> };

/** Messages between the primary and its workers. */
export type ToWorker =
  | { readonly type: 'start'; readonly plan: WorkerPlan; readonly workers: number }
  | { readonly type: 'stop' }
  /** For the primary's admin listener: the worker's metrics (prom-client JSON) or readiness. */
  | { readonly type: 'ask'; readonly id: number; readonly what: 'metrics' | 'readyz' };
export type FromWorker =
  | { readonly type: 'hello' }
  | { readonly type: 'ready'; readonly urls: readonly string[] }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'answer'; readonly id: number; readonly data: unknown; readonly error?: string };

/** One share of a per-gateway budget: at least 1, and the shares never sum past the budget when it allows one each. */
export function shareOf(total: number, workers: number): number {
  return Math.max(1, Math.floor(total / workers));
}

/** The plan with this worker's share of each per-gateway budget. */
export function workerShare(plan: WorkerPlan, workers: number): WorkerPlan {
  if (plan.kind === 'flat') {
    const o = plan.options;
    return { kind: 'flat', options: { ...o, pool: { ...o.pool, connections: shareOf(o.pool?.connections ?? 4, workers) }, ...(o.maxConnections !== undefined ? { maxConnections: Math.ceil(o.maxConnections / workers) } : {}) } };
  }
  // Upstream connections are divided by the handler (`workers`), inline addresses included.
  const c = plan.config;
  return { kind: 'config', config: { ...c, maxConnections: Math.ceil(c.maxConnections / workers) } };
}

/** Unix socket paths of a plan: the primary removes stale ones before the workers listen. */
function unixPaths(plan: WorkerPlan): string[] {
  const addresses = plan.kind === 'config' ? plan.config.listen.map((l) => l.address) : [plan.options.listen ?? ''];
  return addresses.filter((a) => a.startsWith('unix:')).map((a) => a.slice(5));
}

export interface PrimaryOptions {
  readonly workers: number;
  /** The plan at start, and on each reload (throws ConfigError to refuse a reload). */
  readonly plan: () => WorkerPlan;
  /** One line per event (start, exit, restart, reload). */
  readonly say: (line: string) => void;
  readonly signals?: NodeJS.EventEmitter;
  /** How long a new worker may take to listen (ms). */
  readonly startTimeout?: number;
}

/** A running primary. */
export interface Primary {
  readonly urls: readonly string[];
  /** Pids of the workers serving now. */
  pids(): number[];
  /** Re-read the plan and roll the workers; resolves to false when the plan was refused. */
  reload(): Promise<boolean>;
  /** Ask every serving worker (metrics) or one (readyz); workers that do not answer in time are left out. */
  ask(what: 'metrics' | 'readyz', one?: boolean): Promise<unknown[]>;
  /** The admin listener's URL, when the config has one. */
  readonly adminUrl: string | null;
  /** Stop every worker (each drains first); resolves once all have exited. */
  stop(): Promise<void>;
  /** Resolves once stopped (by stop() or a signal). */
  readonly done: Promise<void>;
}

/** How long a worker may take to answer the primary's admin listener. */
const ASK_TIMEOUT = 5000;
const BACKOFF_MIN = 100;
const BACKOFF_MAX = 10_000;
/** A worker that lived this long resets its slot's backoff. */
const STABLE_AFTER = 10_000;

/** Start the primary: fork the workers and wait until each listens (rejects if one cannot start). */
export async function startPrimary(o: PrimaryOptions): Promise<Primary> {
  const here = fileURLToPath(import.meta.url);
  // The worker entry next to this file: worker.js when built, worker.ts under tsx.
  cluster.setupPrimary({ exec: here.replace(/cluster(\.[cm]?[jt]s)$/, `worker${extname(here)}`), args: [] });
  let plan = o.plan();
  for (const p of unixPaths(plan)) rmSync(p, { force: true });
  const slots: Array<Worker | null> = Array.from({ length: o.workers }, () => null);
  const backoff = new Array<number>(o.workers).fill(BACKOFF_MIN);
  /** Workers told to stop (replaced, or shutting down): their exit is expected. */
  const retiring = new Set<Worker>();
  let stopping = false;
  let urls: readonly string[] = [];
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });

  /** Fork a worker for `slot` with `plan`; resolves once it listens. */
  const spawn = (slot: number, p: WorkerPlan): Promise<Worker> =>
    new Promise((resolve, reject) => {
      const w = cluster.fork({ FASTCGI_GATEWAY_WORKER_SLOT: String(slot) });
      const born = Date.now();
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`worker ${w.process.pid} did not start within ${o.startTimeout ?? 30_000} ms`)), o.startTimeout ?? 30_000);
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        retiring.add(w);
        w.process.kill('SIGKILL');
        reject(err);
      };
      w.on('message', (m: FromWorker) => {
        // 'hello': the worker's module is loaded and listens for messages ('online' comes
        // before that, and a message sent then would be lost).
        if (m.type === 'hello') w.send({ type: 'start', plan: p, workers: o.workers } satisfies ToWorker);
        else if (m.type === 'ready' && !settled) {
          settled = true;
          clearTimeout(timer);
          urls = m.urls;
          resolve(w);
        } else if (m.type === 'failed') {
          fail(new Error(m.message));
        }
      });
      w.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(new Error(`worker ${w.process.pid} exited before listening (${signal ?? `code ${code}`})`));
        }
        if (retiring.delete(w) || stopping) return;
        if (slots[slot] !== w) return;
        // An unplanned death: replace it, waiting longer after each quick one.
        slots[slot] = null;
        const lived = Date.now() - born;
        if (lived > STABLE_AFTER) backoff[slot] = BACKOFF_MIN;
        const wait = backoff[slot]!;
        backoff[slot] = Math.min(BACKOFF_MAX, wait * 2);
        o.say(`worker ${w.process.pid} (slot ${slot}) exited unexpectedly (${signal ?? `code ${code}`}); starting a new one in ${wait} ms`);
        setTimeout(() => {
          if (stopping || slots[slot] !== null) return;
          spawn(slot, plan).then(
            (nw) => {
              slots[slot] = nw;
              o.say(`worker ${nw.process.pid} (slot ${slot}) started, replacing ${w.process.pid}`);
            },
            (err: Error) => o.say(`worker for slot ${slot} failed to start: ${err.message}`),
          );
        }, wait).unref();
      });
    });

  const retire = (w: Worker): void => {
    retiring.add(w);
    if (w.isConnected()) w.send({ type: 'stop' } satisfies ToWorker);
    else w.process.kill('SIGTERM');
  };

  try {
    const started = await Promise.all(slots.map((_, i) => spawn(i, plan)));
    started.forEach((w, i) => {
      slots[i] = w;
    });
  } catch (err) {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    throw err;
  }

  let nextAsk = 1;
  const askOne = (w: Worker, what: 'metrics' | 'readyz'): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextAsk++;
      const timer = setTimeout(() => {
        w.removeListener('message', onAnswer);
        reject(new Error(`worker ${w.process.pid} did not answer ${what} in time`));
      }, ASK_TIMEOUT);
      const onAnswer = (m: FromWorker): void => {
        if (m.type !== 'answer' || m.id !== id) return;
        clearTimeout(timer);
        w.removeListener('message', onAnswer);
        if (m.error !== undefined) reject(new Error(m.error));
        else resolve(m.data);
      };
      w.on('message', onAnswer);
      w.send({ type: 'ask', id, what } satisfies ToWorker);
    });
  const ask = async (what: 'metrics' | 'readyz', one = false): Promise<unknown[]> => {
    const live = slots.filter((w): w is Worker => w?.isConnected() === true);
    const asked = one ? live.slice(0, 1) : live;
    const answers = await Promise.allSettled(asked.map((w) => askOne(w, what)));
    return answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
  };

  let admin: AdminServer | null = null;
  if (plan.kind === 'config' && plan.config.admin !== null) {
    admin = await startAdmin(plan.config.admin.listen, {
      // Loaded only here: a primary without an admin listener never needs prom-client.
      metrics: async () => {
        const { AggregatorRegistry } = await import('prom-client');
        const registry = AggregatorRegistry.aggregate((await ask('metrics')) as Parameters<typeof AggregatorRegistry.aggregate>[0]);
        return { contentType: registry.contentType, body: await registry.metrics() };
      },
      ready: async () => {
        const [report] = (await ask('readyz', true)) as ReadinessReport[];
        return report ?? { ready: false, upstreams: [] };
      },
    });
  }

  let rolling: Promise<boolean> | null = null;
  const reload = (): Promise<boolean> => {
    if (rolling !== null) return rolling;
    rolling = (async () => {
      let next: WorkerPlan;
      try {
        next = o.plan();
      } catch (err) {
        o.say(`reload refused, the running config keeps serving: ${(err as Error).message}`);
        return false;
      }
      if (next.kind === 'config' && plan.kind === 'config') {
        for (const key of ['admin', 'workers'] as const) {
          if (JSON.stringify(next.config[key]) !== JSON.stringify(plan.config[key])) o.say(`${key} changed: that takes a restart; the rest of the new config is rolled out`);
        }
      }
      plan = next;
      for (let i = 0; i < slots.length && !stopping; i++) {
        let fresh: Worker;
        try {
          fresh = await spawn(i, next);
        } catch (err) {
          o.say(`reload stopped: a new worker failed to start (${(err as Error).message}); the running workers keep serving`);
          return false;
        }
        const old = slots[i];
        slots[i] = fresh;
        if (old) retire(old);
      }
      o.say(`reloaded: ${slots.length} worker${slots.length === 1 ? '' : 's'} on the new config`);
      return true;
    })().finally(() => {
      rolling = null;
    });
    return rolling;
  };

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    if (stopped !== null) return stopped;
    stopping = true;
    const all = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    stopped = Promise.all(
      all.map(
        (w) =>
          new Promise<void>((r) => {
            if (w.isDead()) r();
            else {
              w.once('exit', () => r());
              retire(w);
            }
          }),
      ),
    )
      .then(() => admin?.close())
      .then(() => resolveDone());
    return stopped;
  };

  const signals = o.signals ?? process;
  const onStop = (): void => void stop();
  signals.on('SIGTERM', onStop);
  signals.on('SIGINT', onStop);
  void done.then(() => {
    signals.removeListener('SIGTERM', onStop);
    signals.removeListener('SIGINT', onStop);
  });

  return {
    get urls() {
      return urls;
    },
    pids: () => slots.filter((w): w is Worker => w !== null).map((w) => w.process.pid!),
    reload,
    ask,
    adminUrl: admin?.url ?? null,
    stop,
    done,
  };
}
