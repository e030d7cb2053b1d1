/**
 * The `fastcgi-gateway` command line: yargs parses argv and generates help; each subcommand
 * hands its flags to a command function (status.ts, ping.ts, run.ts) and gets an exit code
 * back. Failures become one line on stderr and an exit code from exit-codes.ts; nothing here
 * calls process.exit, so stdout is flushed before the process ends.
 */
import type { Readable } from 'node:stream';
import yargs from 'yargs';
import type { CliIo } from './common.js';
import { CliError, ExitCode, describeFailure, exitCodeFor } from './exit-codes.js';
import { type StatusFormat, STATUS_FORMATS } from './status-format.js';
import { VERSION } from '../version.js';
// Each command's module is imported when that command runs: `serve` does not pay in memory for
// the dev server's watcher, the benchmark's HTTP client or the operator tools.

/** Streams and working directory of the process. */
export interface CliEnv extends CliIo {
  readonly stdin: Readable;
  readonly cwd: string;
}

/** Default deadline of `status` and `ping` (ms). */
export const DEFAULT_PAGE_TIMEOUT = 5000;

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], env: CliEnv): Promise<number> {
  let exitCode: number = ExitCode.Ok;

  const guard = async (fn: () => Promise<number>): Promise<void> => {
    try {
      exitCode = await fn();
    } catch (err) {
      exitCode = exitCodeFor(err);
      env.stderr.write(`fastcgi-gateway: ${describeFailure(err)}\n`);
    }
  };

  const upstream = {
    alias: 'u',
    type: 'string',
    demandOption: true,
    describe: 'php-fpm address: unix:/path.sock, /path.sock, host:port or [v6]:port',
  } as const;

  const parser = yargs([...argv])
    .scriptName('fastcgi-gateway')
    .usage('$0 <command> [options]\n\nAn HTTP-to-FastCGI gateway (serve) and operator tools for php-fpm (status, ping, run).')
    .command(
      'status',
      "show php-fpm's pool status page (pm.status_path)",
      (y) =>
        y
          .option('upstream', upstream)
          .option('path', { type: 'string', default: '/status', describe: 'pm.status_path of the pool' })
          .option('full', { type: 'boolean', default: false, describe: 'add the per-process table' })
          .option('json', { type: 'boolean', default: false, describe: 'same as --format json' })
          .option('format', { type: 'string', choices: STATUS_FORMATS, describe: 'output format (default text)' })
          .option('watch', { alias: 'w', type: 'number', nargs: 1, describe: 'redraw every N seconds until Ctrl-C, with rates' })
          .option('timeout', { type: 'number', default: DEFAULT_PAGE_TIMEOUT, describe: 'deadline per request in ms, connect included (0 = none)' })
          .example('$0 status -u unix:/run/php/php8.2-fpm.sock --full', '')
          .example('$0 status -u 127.0.0.1:9000 --format openmetrics', ''),
      (a) =>
        guard(async () => {
          if (a.json && a.format !== undefined && a.format !== 'json') {
            throw new CliError(ExitCode.Usage, `--json conflicts with --format ${a.format}`);
          }
          const format = (a.format ?? (a.json ? 'json' : 'text')) as StatusFormat;
          return (await import('./status.js')).statusCommand(
            { upstream: a.upstream, path: a.path, full: a.full, format, watch: a.watch ?? null, timeout: a.timeout },
            env,
          );
        }),
    )
    .command(
      'ping',
      "ask php-fpm's ping page (ping.path); exit 0 on the expected answer",
      (y) =>
        y
          .option('upstream', upstream)
          .option('path', { type: 'string', default: '/ping', describe: 'ping.path of the pool' })
          .option('expect', { type: 'string', default: 'pong', describe: 'ping.response of the pool' })
          .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print nothing on success (health checks)' })
          .option('timeout', { type: 'number', default: DEFAULT_PAGE_TIMEOUT, describe: 'deadline in ms, connect included (0 = none)' })
          .example('$0 ping -q -u 127.0.0.1:9000', 'container HEALTHCHECK'),
      (a) =>
        guard(async () =>
          (await import('./ping.js')).pingCommand({ upstream: a.upstream, path: a.path, expect: a.expect, quiet: a.quiet, timeout: a.timeout }, env),
        ),
    )
    .command(
      'run <script>',
      'run one PHP script through php-fpm; body to stdout, FCGI_STDERR to stderr',
      (y) =>
        y
          .positional('script', { type: 'string', demandOption: true, describe: 'path of the script (SCRIPT_FILENAME)' })
          .option('upstream', upstream)
          .option('request', { alias: 'X', type: 'string', describe: 'request method (default GET, POST with -d)' })
          .option('data', { alias: 'd', type: 'string', describe: 'body: a string, @file, or @- for stdin' })
          .option('header', { alias: 'H', type: 'string', describe: 'request header "Name: value" (repeatable)' })
          .option('param', { type: 'string', describe: 'extra CGI param NAME=VALUE (repeatable, overrides)' })
          .option('query', { type: 'string', default: '', describe: 'QUERY_STRING' })
          .option('include', { alias: 'i', type: 'boolean', default: false, describe: 'print status and headers before the body' })
          .option('root', { type: 'string', describe: 'DOCUMENT_ROOT; SCRIPT_NAME becomes the path under it' })
          .option('allow-php-value', { type: 'boolean', default: false, describe: 'allow --param PHP_VALUE / PHP_ADMIN_VALUE' })
          .option('timeout', { type: 'number', default: 0, describe: 'deadline in ms, connect included (0 = none)' })
          .example("$0 run ./cron.php -u unix:/run/php/php8.2-fpm.sock", '')
          .example("$0 run public/index.php --root public -u 127.0.0.1:9000 -i --query 'page=2'", '')
          .example('gzip -dc data.gz | $0 run import.php -u 127.0.0.1:9000 -d @- -H "Content-Type: text/csv"', ''),
      (a) =>
        guard(async () => {
          const data = list(a.data);
          if (data.length > 1) throw new CliError(ExitCode.Usage, '-d can be given once');
          const method = list(a.request);
          if (method.length > 1) throw new CliError(ExitCode.Usage, '-X can be given once');
          return (await import('./run.js')).runCommand(
            {
              script: a.script,
              upstream: a.upstream,
              method: method[0] ?? null,
              data: data[0] ?? null,
              headers: list(a.header),
              params: list(a.param),
              query: a.query,
              include: a.include,
              root: a.root ?? null,
              allowPhpValue: a.allowPhpValue,
              timeout: a.timeout,
            },
            env,
          );
        }),
    )
    .command(
      'serve',
      'serve a PHP application from a document root through php-fpm (like nginx + php-fpm)',
      (y) =>
        y
          .option('config', { alias: 'C', type: 'string', describe: 'config file (YAML or JSON: sites, routes, upstreams); see docs/configuration.md' })
          .option('set', { type: 'string', describe: 'with --config: override one key, KEY.PATH=VALUE (repeatable; wins over FASTCGI_GATEWAY_* and the file)' })
          .option('upstream', { ...upstream, demandOption: false, describe: `${upstream.describe} (without --config: required)` })
          .option('root', { alias: 'r', type: 'string', describe: 'document root (static files and scripts; default .)' })
          .option('listen', { alias: 'l', type: 'string', describe: 'HOST:PORT, [v6]:PORT, :PORT or unix:/path.sock (default 127.0.0.1:8080)' })
          .option('index', { type: 'string', describe: 'index file for directories, in order (repeatable; default index.php, index.html)' })
          .option('front-controller', { type: 'string', describe: 'script for paths matching nothing (default /index.php; "none" disables)' })
          .option('static', { type: 'boolean', describe: 'serve existing non-script files directly (default true; --no-static)' })
          .option('log', { type: 'string', choices: ['json', 'pretty', 'off'] as const, describe: 'access log format (default pretty on a terminal, else json)' })
          .option('connections', { alias: 'c', type: 'number', describe: "upstream connections (default 4; keep ≤ php-fpm's pm.max_children)" })
          .option('max-body-size', { type: 'number', describe: 'largest request body in bytes, else 413 (default 1 GiB; 0 = no limit)' })
          .option('request-buffering', {
            type: 'boolean',
            describe: 'read whole request bodies before taking a php-fpm worker (default true; --no-request-buffering streams them)',
          })
          .option('trusted-proxy', { type: 'string', describe: 'peer address whose X-Forwarded-For/-Proto are believed (repeatable)' })
          .option('param', { type: 'string', describe: 'extra CGI param NAME=VALUE for every request (repeatable; may set PHP_VALUE)' })
          .option('server-name', { type: 'string', describe: 'SERVER_NAME (default: the Host header without port)' })
          .option('workers', { alias: 'w', type: 'string', describe: 'worker processes sharing the listeners: N or auto (one per core; default 1, or the config\'s workers)' })
          .option('pid-file', { type: 'string', describe: 'write the pid here (for `fastcgi-gateway reload` and init systems); removed on exit' })
          .example('$0 serve --config conf/minimal.yaml', '')
          .example('$0 serve -r public -u unix:/run/php/php8.2-fpm.sock', '')
          .example('$0 serve -r /srv/app/public -u 127.0.0.1:9000 -l 0.0.0.0:8080 -c 8 --log json', ''),
      (a) =>
        guard(async () =>
          (await import('./serve.js')).serveCommand(
            {
              config: a.config,
              set: list(a.set),
              root: a.root,
              upstream: a.upstream,
              listen: a.listen,
              index: list(a.index),
              frontController: a.frontController,
              static: a.static,
              log: a.log,
              connections: a.connections,
              maxBodySize: a.maxBodySize,
              requestBuffering: a.requestBuffering,
              trustedProxy: list(a.trustedProxy),
              param: list(a.param),
              serverName: a.serverName,
              workers: a.workers,
              pidFile: a.pidFile,
            },
            env,
          ),
        ),
    )
    .command(
      'dev [dir]',
      'a PHP dev server in a project folder: a private php-fpm (errors shown, edits visible at once), supervised, and the gateway in front',
      (y) =>
        y
          .positional('dir', { type: 'string', default: '.', describe: 'project folder (the document root is public/, web/ or htdocs/ in it, else the folder)' })
          .option('listen', { alias: 'l', type: 'string', describe: 'HOST:PORT (default 127.0.0.1:8000, or the next free port)' })
          .option('root', { alias: 'r', type: 'string', describe: 'document root, relative to DIR' })
          .option('front-controller', { type: 'string', describe: 'script for paths matching nothing (default /index.php when the root has one)' })
          .option('workers', { alias: 'w', type: 'number', describe: 'php-fpm worker processes (default 4)' })
          .option('php', { type: 'string', describe: 'PHP version to use, e.g. 8.2 (php-fpm8.2)' })
          .option('php-ini', { type: 'string', describe: 'ini file applied to the pool (default DIR/php.ini when there is one)' })
          .option('log', { type: 'string', choices: ['pretty', 'json'] as const, describe: 'request log format (default pretty)' })
          .option('live', { type: 'boolean', default: true, describe: 'reload open tabs after an edit (CSS swapped in place); --no-live turns it off' })
          .example('$0 dev', 'serve the project in the current folder on http://127.0.0.1:8000')
          .example('$0 dev ~/src/shop --listen 127.0.0.1:9000 --php 8.2', ''),
      (a) =>
        guard(async () =>
          (await import('./dev.js')).devCommand(
            { dir: a.dir, listen: a.listen, root: a.root, frontController: a.frontController, workers: a.workers, php: a.php, phpIni: a.phpIni, log: a.log, live: a.live },
            env,
          ),
        ),
    )
    .command(
      'bench',
      'put the gateway and nginx in front of the same php-fpm pool, load them with wrk, and report the ratios (table, JSON, HTML)',
      (y) =>
        y
          .option('rounds', { type: 'number', default: 3, describe: 'interleaved rounds per workload and concurrency (medians are reported)' })
          .option('duration', { type: 'number', default: 5, describe: 'seconds of load per measured run' })
          .option('warmup', { type: 'number', default: 1, describe: 'seconds of load before each measured run (0: none)' })
          .option('warmup-requests', { type: 'number', default: 3000, describe: 'and at least this many requests, up to 20 s: a fresh gateway compiles its hot paths (V8) over its first few thousand' })
          .option('workloads', { type: 'string', describe: 'comma-separated: hello, json, download-1m, upload-1m, static-10k, front-controller, responder (default all; none with --app)' })
          .option('contenders', { type: 'string', describe: 'comma-separated: gateway, gateway-w2, gateway-log, gateway-base, nginx-stock, nginx-keepalive, nginx-log (default nginx-keepalive,nginx-stock,gateway,gateway-w2)' })
          .option('concurrency', { alias: 'c', type: 'string', default: '1,50,256', describe: 'comma-separated connection counts' })
          .option('out', { type: 'string', describe: 'directory for the JSON and HTML report (default bench/results)' })
          .option('fpm', { type: 'string', describe: 'an existing php-fpm pool (unix:/path.sock or host:port) instead of a private one' })
          .option('fpm-workers', { type: 'number', default: 4, describe: 'workers of the private pool, and upstream connections of every contender' })
          .option('app', { type: 'string', describe: 'your app: its folder (document root public/, web/, htdocs/ or the folder; index.php as front controller)' })
          .option('url', { type: 'string', describe: 'with --app: a path to measure (repeatable)' })
          .option('baseline', { type: 'string', describe: 'dist/ of another build, run as the gateway-base contender (a before/after in one run)' })
          .option('constant-rate', { type: 'boolean', default: true, describe: 'also a constant-rate run at half of nginx\'s throughput (--no-constant-rate skips it)' })
          .example('$0 bench --rounds 1 --duration 3 --workloads hello --out /tmp/bench', 'a one-minute run')
          .example('$0 bench --app ~/src/shop --url / --url /products/42', 'your own app, the same way'),
      (a) =>
        guard(async () =>
          (await import('./bench.js')).benchCommand(
            {
              rounds: a.rounds,
              duration: a.duration,
              warmup: a.warmup,
              warmupRequests: a.warmupRequests,
              workloads: a.workloads,
              contenders: a.contenders,
              concurrency: a.concurrency,
              out: a.out,
              fpm: a.fpm,
              fpmWorkers: a.fpmWorkers,
              app: a.app,
              url: list(a.url),
              constantRate: a.constantRate,
              baseline: a.baseline,
            },
            env,
          ),
        ),
    )
    .command(
      'reload',
      'ask a running `serve` to re-read its config file (SIGHUP): workers are replaced one by one, an invalid config is refused',
      (y) => y.option('pid-file', { type: 'string', demandOption: true, describe: 'the pid file `serve --pid-file` wrote' }).example('$0 reload --pid-file /run/fastcgi-gateway.pid', ''),
      (a) => guard(async () => (await import('./serve.js')).reloadCommand({ pidFile: a.pidFile }, env)),
    )
    .command(
      'check-config <file>',
      'validate a config file and print it resolved, with every default filled in (exit 0 valid, 1 not)',
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: 'config file (YAML or JSON)' })
          .option('set', { type: 'string', describe: 'override one key, KEY.PATH=VALUE (repeatable)' })
          .example('$0 check-config conf/production.yaml', ''),
      (a) => guard(async () => (await import('./serve.js')).checkConfigCommand({ file: a.file, set: list(a.set) }, env)),
    )
    .demandCommand(1, 'choose a command: serve, dev, bench, reload, check-config, status, ping or run')
    .strict()
    .parserConfiguration({ 'parse-positional-numbers': false })
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .alias('v', 'version')
    .wrap(100)
    .exitProcess(false)
    .fail((msg: string | null, err: Error | null) => {
      // Throwing stops yargs before the command handler runs.
      throw new UsageError(msg ?? err?.message ?? 'invalid arguments');
    });

  try {
    await parser.parseAsync();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    env.stderr.write(`fastcgi-gateway: ${err.message}\nRun "fastcgi-gateway --help" or "fastcgi-gateway <command> --help" for usage.\n`);
    return ExitCode.Usage;
  }
  return exitCode;
}

/** An argv problem found by yargs (unknown flag, missing value ...). */
class UsageError extends Error {}

/** A repeatable string flag as an array. */
function list(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}
