/**
 * `fastcgi-gateway serve`: serve a PHP application from a document root through a FastCGI
 * upstream, like the canonical nginx + php-fpm setup. Runs until SIGINT/SIGTERM, then closes
 * gracefully (running requests finish).
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { startGatewayServer, type GatewayServerOptions } from '../server.js';
import type { CliIo } from './common.js';

/** Flags of `serve`, as yargs hands them over. */
export interface ServeArgs {
  readonly root: string;
  readonly upstream: string;
  readonly listen: string;
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

/** Translate flags into server options (pure; throws ConfigError). */
export function serveOptions(args: ServeArgs, cwd: string, stdoutIsTty: boolean): GatewayServerOptions {
  const root = resolve(cwd, args.root);
  let st;
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
    listen: args.listen,
    accessLog: log === 'off' ? false : log,
    params,
    ...(args.index && args.index.length > 0 ? { index: args.index } : {}),
    ...(fc !== undefined ? { frontController: fc === '' || fc === 'none' ? null : fc } : {}),
    ...(args.static !== undefined ? { static: args.static } : {}),
    ...(args.maxBodySize !== undefined ? { maxBodySize: args.maxBodySize } : {}),
    ...(args.requestBuffering !== undefined ? { requestBuffering: args.requestBuffering } : {}),
    ...(args.trustedProxy ? { trustedProxies: args.trustedProxy } : {}),
    ...(args.serverName !== undefined ? { serverName: args.serverName } : {}),
    ...(args.connections !== undefined ? { pool: { connections: args.connections } } : {}),
  };
}

/** Run the server until a signal; resolves to the exit code. */
export async function serveCommand(args: ServeArgs, env: CliIo & { readonly cwd: string }, signals: NodeJS.EventEmitter = process): Promise<number> {
  const isTty = (env.stdout as { isTTY?: boolean }).isTTY === true;
  const options = serveOptions(args, env.cwd, isTty);
  const gw = await startGatewayServer(options);
  env.stderr.write(`fastcgi-gateway: serving ${options.root} on ${gw.url} via ${args.upstream}\n`);
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
