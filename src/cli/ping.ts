/**
 * `fastcgi-gateway ping`: ask php-fpm's ping page (ping.path, ping.response) over FastCGI.
 * Exit 0 when it answers 200 with the expected body; meant for container health checks.
 */
import { type CliIo, checkPageAnswer, checkPagePath, checkTimeout, pageParams, parseUpstream, statusLine } from './common.js';
import { exchangeOnce } from '../client/one-shot.js';
import { CliError, ExitCode } from './exit-codes.js';

/** Options of the `ping` command, as parsed from argv. */
export interface PingOptions {
  readonly upstream: string;
  /** php-fpm ping.path (default /ping). */
  readonly path: string;
  /** php-fpm ping.response (default pong); compared with the trimmed body. */
  readonly expect: string;
  /** Deadline for the whole exchange (ms); 0 = none. */
  readonly timeout: number;
  /** Print nothing on success. */
  readonly quiet: boolean;
}

/** Result of one successful ping. */
export interface PingResult {
  readonly body: string;
  readonly elapsedMs: number;
}

/** Ping once; throws CliError / GatewayError on any failure (see exit-codes.ts). */
export async function ping(options: Omit<PingOptions, 'quiet'>): Promise<PingResult> {
  const address = parseUpstream(options.upstream);
  const path = checkPagePath('--path', options.path);
  const res = await exchangeOnce({ address, params: pageParams(path, ''), timeoutMs: checkTimeout(options.timeout) });
  checkPageAnswer('ping', path, address, res);
  const body = res.body.toString('utf8').trim();
  if (res.head.status !== 200 || body !== options.expect) {
    throw new CliError(
      ExitCode.Unexpected,
      `unexpected ping answer from ${address.text}: ${statusLine(res.head.status, res.head.reason)} ${JSON.stringify(body.slice(0, 200))} ` +
        `(expected 200 ${JSON.stringify(options.expect)}; see ping.response in the pool config)`,
    );
  }
  return { body, elapsedMs: res.elapsedMs };
}

/** Run the command: prints "pong from ADDR in X ms" unless quiet; returns the exit code. */
export async function pingCommand(options: PingOptions, io: CliIo): Promise<number> {
  const res = await ping(options);
  if (!options.quiet) {
    io.stdout.write(`${res.body} from ${parseUpstream(options.upstream).text} in ${res.elapsedMs.toFixed(1)} ms\n`);
  }
  return ExitCode.Ok;
}
