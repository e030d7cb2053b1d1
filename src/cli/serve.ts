/**
 * `fastcgi-gateway serve`: serve PHP applications through FastCGI upstreams, like the
 * canonical nginx + php-fpm setup. Either from a config file (`--config`: sites, routes,
 * upstreams, with FASTCGI_GATEWAY_* and `--set` overrides), or from flags, which mean a config
 * with one site and one php route. Runs until SIGINT/SIGTERM, then closes gracefully (running
 * requests finish).
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { type ConfigOverride, envOverrides, loadConfigFile, peekConfigFile, setOverride } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { type ConfiguredServer, type GatewayServer, type GatewayServerOptions, startConfiguredServer, startGatewayServer } from '../server.js';
import { startPrimary } from '../server/cluster.js';
import { type CliIo, untilStopSignal } from './common.js';

/** Flags of `serve`, as yargs hands them over. */
export interface ServeArgs {
  readonly config?: string | undefined;
  readonly set?: readonly string[] | undefined;
  readonly root?: string | undefined;
  readonly upstream?: string | undefined;
  readonly listen?: string | undefined;
  readonly index?: readonly string[] | undefined;
  readonly frontController?: string | undefined;
  readonly static?: boolean | undefined;
  readonly log?: 'json' | 'pretty' | 'off' | undefined;
  readonly connections?: number | undefined;
  readonly maxBodySize?: number | undefined;
  readonly requestBuffering?: boolean | undefined;
  readonly trustedProxy?: readonly string[] | undefined;
  readonly param?: readonly string[] | undefined;
  readonly serverName?: string | undefined;
  readonly workers?: string | number | undefined;
  readonly pidFile?: string | undefined;
}

/** Flags that describe the one site of flag mode; with --config they belong in the file. */
const SITE_FLAGS = ['root', 'upstream', 'index', 'frontController', 'static', 'connections', 'maxBodySize', 'requestBuffering', 'trustedProxy', 'param', 'serverName'] as const;
const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Translate flags into server options (pure; throws ConfigError). */
export function serveOptions(args: ServeArgs, cwd: string, stdoutIsTty: boolean): GatewayServerOptions {
  if (args.upstream === undefined || args.upstream === '') throw new ConfigError('serve needs --upstream (or --config FILE)');
  const root = resolve(cwd, args.root ?? '.');
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(root);
  } catch {
    throw new ConfigError(`document root ${root} does not exist`);
  }
  if (!st.isDirectory()) throw new ConfigError(`document root ${root} is not a directory`);
  const params: Record<string, string> = {};
  for (const p of args.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--param ${JSON.stringify(p)} must be NAME=VALUE`);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }
  const log = args.log ?? (stdoutIsTty ? 'pretty' : 'json');
  const fc = args.frontController;
  return {
    root,
    upstream: args.upstream,
    listen: args.listen ?? '127.0.0.1:8080',
    accessLog: log === 'off' ? false : log,
    params,
    ...(args.index && args.index.length > 0 ? { index: args.index } : {}),
    ...(fc !== undefined ? { frontController: fc === '' || fc === 'none' ? null : fc } : {}),
    ...(args.static !== undefined ? { static: args.static } : {}),
    ...(args.maxBodySize !== undefined ? { maxBodySize: args.maxBodySize } : {}),
    ...(args.requestBuffering !== undefined ? { requestBuffering: args.requestBuffering } : {}),
    ...(args.trustedProxy && args.trustedProxy.length > 0 ? { trustedProxies: args.trustedProxy } : {}),
    ...(args.serverName !== undefined ? { serverName: args.serverName } : {}),
    ...(args.connections !== undefined ? { pool: { connections: args.connections } } : {}),
  };
}

/**
 * The config of `--config FILE`: the file, then FASTCGI_GATEWAY_* variables, then `--set`,
 * `--listen` and `--log` (throws ConfigError listing every problem).
 */
export function configFromArgs(args: ServeArgs, cwd: string, env: NodeJS.ProcessEnv, stdoutIsTty: boolean): GatewayConfig {
  const file = resolve(cwd, args.config!);
  const misplaced = SITE_FLAGS.filter((k) => {
    const v = args[k];
    return v !== undefined && !(Array.isArray(v) && v.length === 0);
  });
  if (misplaced.length > 0) {
    throw new ConfigError(`${misplaced.map((k) => `--${kebab(k)}`).join(', ')} describe${misplaced.length === 1 ? 's' : ''} the one site of flag mode; with --config, set it in the file (or with --set)`);
  }
  const flags: ConfigOverride[] = (args.set ?? []).map(setOverride);
  if (args.listen !== undefined) flags.push({ path: ['listen'], value: [args.listen], origin: 'flag --listen' });
  const log = args.log ?? (stdoutIsTty ? 'pretty' : undefined);
  if (log !== undefined) flags.push({ path: ['accessLog'], value: log === 'off' ? false : log, origin: args.log ? 'flag --log' : 'a terminal (pretty log)' });
  return loadConfigFile(file, { env: envOverrides(env, peekConfigFile(file)), flags });
}

/** `--workers N|auto` (or the config's `workers`) → a process count. */
export function workerCount(value: string | number | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto') return availableParallelism();
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--workers ${JSON.stringify(value)} must be a number ≥ 1 or "auto"`);
  return n;
}

/**
 * Run the server until SIGINT/SIGTERM; resolves to the exit code. SIGHUP re-reads the config
 * file: with workers, they are replaced one by one; in one process, the handler is swapped in
 * place. An invalid config is refused and the running one keeps serving.
 */
export async function serveCommand(
  args: ServeArgs,
  env: CliIo & { readonly cwd: string; readonly env?: NodeJS.ProcessEnv },
  signals: NodeJS.EventEmitter = process,
): Promise<number> {
  const isTty = (env.stdout as { isTTY?: boolean }).isTTY === true;
  const vars = env.env ?? process.env;
  const say = (line: string): void => void env.stderr.write(`fastcgi-gateway: ${line}\n`);
  const readConfig = (): GatewayConfig => configFromArgs(args, env.cwd, vars, isTty);
  const config = args.config !== undefined ? readConfig() : null;
  const options = config === null ? serveOptions(args, env.cwd, isTty) : null;
  const workers = workerCount(args.workers ?? config?.workers);
  const serving = (urls: readonly string[]): string =>
    config !== null ? `serving ${config.sites.length} site${config.sites.length === 1 ? '' : 's'} from ${args.config} on ${urls.join(', ')}` : `serving ${options!.root} on ${urls.join(', ')} via ${args.upstream}`;
  // SIGHUP's default action ends the process: take it over before anything starts, and keep a
  // reload asked for during startup until there is something to reload.
  let onReload: (() => Promise<unknown>) | null = null;
  let reloading: Promise<unknown> = Promise.resolve();
  let hupEarly = false;
  const onHup = (): void => {
    if (onReload === null) hupEarly = true;
    else reloading = reloading.then(onReload);
  };
  signals.on('SIGHUP', onHup);
  const pidFile = args.pidFile !== undefined ? resolve(env.cwd, args.pidFile) : null;
  if (pidFile !== null) writeFileSync(pidFile, `${process.pid}\n`);
  try {
    if (workers > 1) {
      const primary = await startPrimary({
        workers,
        plan: () => (args.config !== undefined ? { kind: 'config', config: readConfig() } : { kind: 'flat', options: options! }),
        say,
        signals,
      });
      say(`${serving(primary.urls)} with ${workers} workers (pids ${primary.pids().join(', ')})`);
      if (primary.adminUrl !== null) say(`admin listener on ${primary.adminUrl} (/healthz, /readyz, /metrics)`);
      onReload = () => primary.reload();
      if (hupEarly) onHup();
      await primary.done;
      say('stopped: every worker drained and exited');
      return 0;
    }
    let gw: GatewayServer<unknown>;
    if (config !== null) {
      const configured = await startConfiguredServer(config);
      gw = configured;
      let running = config;
      onReload = async () => {
        let next: GatewayConfig;
        try {
          next = readConfig();
          await configured.reload(next);
        } catch (err) {
          say(`reload refused, the running config keeps serving: ${(err as Error).message}`);
          return;
        }
        for (const key of ['listen', 'admin', 'workers'] as const) {
          if (JSON.stringify(next[key]) !== JSON.stringify(running[key])) say(`${key} changed: in one process that takes a restart; the rest of the new config is in force`);
        }
        running = next;
        say('reloaded: new requests get the new config');
      };
    } else {
      gw = await startGatewayServer(options!);
      onReload = async () => say('SIGHUP: nothing to re-read without --config');
    }
    say(serving(gw.urls));
    const adminUrl = (gw as Partial<ConfiguredServer>).adminUrl ?? null;
    if (adminUrl !== null) say(`admin listener on ${adminUrl} (/healthz, /readyz, /metrics)`);
    if (hupEarly) onHup();
    await untilStopSignal(signals);
    say('shutting down, letting running requests finish');
    await reloading;
    await gw.close();
    return 0;
  } finally {
    signals.removeListener('SIGHUP', onHup);
    if (pidFile !== null) rmSync(pidFile, { force: true });
  }
}

/** `reload --pid-file FILE`: send SIGHUP to the serve process that wrote it. */
export function reloadCommand(args: { readonly pidFile: string }, env: CliIo & { readonly cwd: string }): number {
  const file = resolve(env.cwd, args.pidFile);
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8').trim());
  } catch (err) {
    throw new ConfigError(`cannot read pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!Number.isInteger(pid) || pid <= 1) throw new ConfigError(`pid file ${file} does not hold a pid`);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    throw new ConfigError(`cannot signal pid ${pid} from ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  env.stderr.write(`fastcgi-gateway: asked pid ${pid} to reload its config\n`);
  return 0;
}

/** `check-config FILE`: print the resolved config (every default filled in), exit 0; or the problems, exit 1. */
export async function checkConfigCommand(args: { readonly file: string; readonly set?: readonly string[] }, env: CliIo & { readonly cwd: string; readonly env?: NodeJS.ProcessEnv }): Promise<number> {
  const config = configFromArgs({ config: args.file, set: args.set }, env.cwd, env.env ?? process.env, false);
  env.stdout.write(`# ${args.file}, resolved: sizes in bytes, durations in ms\n${(await import('yaml')).stringify(config)}`);
  env.stderr.write(`fastcgi-gateway: ${args.file} is valid\n`);
  return 0;
}
