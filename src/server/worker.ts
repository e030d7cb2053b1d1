/**
 * A cluster worker (see cluster.ts): waits for its plan, serves it, drains on 'stop'.
 *
 * Ctrl-C reaches the whole process group: a worker leaves SIGINT to the primary, which stops
 * the workers in order. A SIGTERM sent to the worker itself, or the primary's disappearance,
 * drains this worker and ends it.
 */
import type { Logger } from 'pino';
import { createLogger } from '../logging/access-log.js';
import { type ConfiguredServer, type GatewayServer, startConfiguredServer, startGatewayServer } from '../server.js';
import { type FromWorker, type ToWorker, workerShare } from './cluster.js';

let server: GatewayServer<unknown> | null = null;
let logger: Logger | null = null;
let draining = false;

const send = (m: FromWorker): void => {
  if (process.connected) process.send!(m);
};

const drainAndExit = (): void => {
  const flushed = (): Promise<void> => new Promise((r) => (logger ? logger.flush(() => r()) : r()));
  if (draining) return;
  draining = true;
  void (server?.close() ?? Promise.resolve()).then(
    () => flushed().then(() => process.exit(0)),
    () => flushed().then(() => process.exit(1)),
  );
};

process.on('SIGINT', () => {});
process.on('SIGTERM', drainAndExit);
process.on('disconnect', drainAndExit);
process.on('message', (m: ToWorker) => {
  if (m.type === 'stop') {
    drainAndExit();
    return;
  }
  if (m.type === 'ask') {
    const s = server as ConfiguredServer | null;
    const work = m.what === 'metrics' ? (s?.metrics?.registry.getMetricsAsJSON() ?? Promise.resolve([])) : s !== null && 'readiness' in s ? s.readiness() : Promise.resolve({ ready: false, upstreams: [] });
    work.then(
      (data) => send({ type: 'answer', id: m.id, data }),
      (err: Error) => send({ type: 'answer', id: m.id, data: null, error: err.message }),
    );
    return;
  }
  if (m.type !== 'start' || server !== null) return;
  const plan = workerShare(m.plan, m.workers);
  // Each access-log line says which worker answered.
  const format = plan.kind === 'config' ? plan.config.accessLog : (plan.options.accessLog ?? 'json');
  const level = plan.kind === 'config' ? plan.config.logLevel : (plan.options.logLevel ?? 'info');
  logger = format === false ? null : createLogger(format, undefined, level).child({ worker: process.pid });
  const withLogger = logger === null ? {} : { logger };
  const started =
    plan.kind === 'config'
      ? startConfiguredServer(plan.config, {
          removeStaleSocket: false,
          workers: m.workers,
          // The primary serves the admin listener from every worker's metrics; one worker
          // scrapes php-fpm's status, so that a cluster scrapes each pool once.
          adminListener: false,
          scrapesFpm: process.env['FASTCGI_GATEWAY_WORKER_SLOT'] === '0',
          ...withLogger,
        })
      : startGatewayServer({ ...plan.options, removeStaleSocket: false, ...withLogger });
  started.then(
    (s) => {
      server = s;
      send({ type: 'ready', urls: s.urls });
    },
    (err: Error) => {
      send({ type: 'failed', message: err.message });
      process.exit(1);
    },
  );
});
send({ type: 'hello' });
