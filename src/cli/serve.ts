/**
 * `fastcgi-gateway serve`: serve PHP applications through FastCGI upstreams, like the
 * canonical nginx + php-fpm setup. Either from a config file (`--config`: sites, routes,
 * upstreams, with FASTCGI_GATEWAY_* and `--set` overrides), or from flags, which mean a config
 * with one site and one php route. Runs until SIGINT/SIGTERM, then closes gracefully (running
 * requests finish).
 */
import { statSync } from 'node:fs';
import { stringify } from 'yaml';
import { resolve } from 'node:path';
import { type ConfigOverride, envOverrides, loadConfigFile, peekConfigFile, setOverride } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { type GatewayServer, type GatewayServerOptions, startConfiguredServer, startGatewayServer } from '../server.js';
import type { CliIo } from './common.js';

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

/** Run the server until a signal; resolves to the exit code. */
export async function serveCommand(
  args: ServeArgs,
  env: CliIo & { readonly cwd: string; readonly env?: NodeJS.ProcessEnv },
  signals: NodeJS.EventEmitter = process,
): Promise<number> {
  const isTty = (env.stdout as { isTTY?: boolean }).isTTY === true;
  let gw: GatewayServer<unknown>;
  if (args.config !== undefined) {
    const config = configFromArgs(args, env.cwd, env.env ?? process.env, isTty);
    gw = await startConfiguredServer(config);
    const sites = config.sites.length;
    env.stderr.write(`fastcgi-gateway: serving ${sites} site${sites === 1 ? '' : 's'} from ${args.config} on ${gw.urls.join(', ')}\n`);
  } else {
    const options = serveOptions(args, env.cwd, isTty);
    gw = await startGatewayServer(options);
    env.stderr.write(`fastcgi-gateway: serving ${options.root} on ${gw.url} via ${args.upstream}\n`);
  }
  await new Promise<void>((done) => {
    const stop = (): void => {
      signals.removeListener('SIGINT', stop);
      signals.removeListener('SIGTERM', stop);
      done();
    };
    signals.on('SIGINT', stop);
    signals.on('SIGTERM', stop);
  });
  env.stderr.write('fastcgi-gateway: shutting down, letting running requests finish\n');
  await gw.close();
  return 0;
}

/** `check-config FILE`: print the resolved config (every default filled in), exit 0; or the problems, exit 1. */
export function checkConfigCommand(args: { readonly file: string; readonly set?: readonly string[] }, env: CliIo & { readonly cwd: string; readonly env?: NodeJS.ProcessEnv }): number {
  const config = configFromArgs({ config: args.file, set: args.set }, env.cwd, env.env ?? process.env, false);
  env.stdout.write(`# ${args.file}, resolved: sizes in bytes, durations in ms\n${stringify(config)}`);
  env.stderr.write(`fastcgi-gateway: ${args.file} is valid\n`);
  return 0;
}
