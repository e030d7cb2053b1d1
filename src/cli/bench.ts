/**
 * `fastcgi-gateway bench`: flags → options for src/bench/run.ts, live progress on stderr, the
 * table on stdout, the JSON and HTML report written. It installs nothing: a missing wrk, nginx
 * or php-fpm is named with its install command, exit 1.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CONTENDERS, type ContenderName, cliCommand, DEFAULT_CONTENDERS } from '../bench/contenders.js';
import { WRK_BIN } from '../bench/load.js';
import { NGINX_BIN } from '../bench/nginx.js';
import { benchMeta, formatTable, writeReport } from '../bench/report.js';
import { missingTools, runBench } from '../bench/run.js';
import { appWorkloads, BUILTIN_WORKLOADS, type Workload } from '../bench/workloads.js';
import { findPhpFpm } from '../fpm/launcher.js';
import type { CliIo } from './common.js';
import { guessRoot } from './dev.js';
import { CliError, ExitCode } from './exit-codes.js';

export interface BenchArgs {
  readonly rounds: number;
  readonly duration: number;
  readonly warmup: number;
  readonly warmupRequests: number;
  readonly workloads?: string | undefined;
  readonly contenders?: string | undefined;
  readonly concurrency: string;
  readonly out?: string | undefined;
  readonly fpm?: string | undefined;
  readonly fpmWorkers: number;
  readonly app?: string | undefined;
  readonly url: readonly string[];
  readonly constantRate: boolean;
  readonly baseline?: string | undefined;
}

/** A comma-separated flag as a list, repeats dropped (they would merge into one group). */
const csv = (s: string | undefined): string[] | undefined =>
  s === undefined
    ? undefined
    : [
        ...new Set(
          s
            .split(',')
            .map((x) => x.trim())
            .filter((x) => x !== ''),
        ),
      ];

export function parseBenchArgs(a: BenchArgs, cwd: string): { workloads: Workload[]; contenders: ContenderName[]; concurrency: number[]; app?: { root: string; frontController: string | null } } {
  const positive = (n: number, what: string): void => {
    if (!Number.isInteger(n) || n < 1) throw new CliError(ExitCode.Usage, `${what} must be a whole number ≥ 1, got ${n}`);
  };
  positive(a.rounds, '--rounds');
  positive(a.duration, '--duration');
  positive(a.fpmWorkers, '--fpm-workers');
  if (!Number.isInteger(a.warmup) || a.warmup < 0) throw new CliError(ExitCode.Usage, `--warmup must be a whole number ≥ 0, got ${a.warmup}`);
  if (!Number.isInteger(a.warmupRequests) || a.warmupRequests < 0) throw new CliError(ExitCode.Usage, `--warmup-requests must be a whole number ≥ 0, got ${a.warmupRequests}`);
  const contenders = (csv(a.contenders) ?? [...DEFAULT_CONTENDERS]) as ContenderName[];
  if (contenders.includes('gateway-base')) {
    if (a.baseline === undefined) throw new CliError(ExitCode.Usage, 'the gateway-base contender needs --baseline DIST (the dist/ directory of another build)');
    if (!existsSync(join(resolve(cwd, a.baseline), 'cli', 'main.js'))) throw new CliError(ExitCode.Usage, `--baseline ${a.baseline} has no cli/main.js: give the dist/ directory of a build`);
  }
  for (const c of contenders) if (!(c in CONTENDERS)) throw new CliError(ExitCode.Usage, `unknown contender ${JSON.stringify(c)}; choose from ${Object.keys(CONTENDERS).join(', ')}`);
  const concurrency = (csv(a.concurrency) ?? []).map(Number);
  if (concurrency.length === 0 || concurrency.some((n) => !Number.isInteger(n) || n < 1)) throw new CliError(ExitCode.Usage, `--concurrency must be whole numbers ≥ 1, such as 1,50,256`);
  let app: { root: string; frontController: string | null } | undefined;
  if (a.app !== undefined) {
    const dir = resolve(cwd, a.app);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(ExitCode.Usage, `--app ${dir} is not a directory`);
    const root = guessRoot(dir);
    app = { root, frontController: existsSync(join(root, 'index.php')) ? '/index.php' : null };
    if (a.url.length === 0) throw new CliError(ExitCode.Usage, '--app needs at least one --url /path to measure');
  } else if (a.url.length > 0) throw new CliError(ExitCode.Usage, '--url needs --app DIR (the app whose URLs they are)');
  const names = csv(a.workloads);
  const builtin = names === undefined ? (app ? [] : [...BUILTIN_WORKLOADS]) : names.map((n) => BUILTIN_WORKLOADS.find((w) => w.name === n) ?? n);
  const unknown = builtin.filter((w): w is string => typeof w === 'string');
  if (unknown.length > 0) throw new CliError(ExitCode.Usage, `unknown workload ${unknown.join(', ')}; choose from ${BUILTIN_WORKLOADS.map((w) => w.name).join(', ')}`);
  const workloads = [...(builtin as Workload[]), ...appWorkloads([...new Set(a.url)])];
  return { workloads, contenders, concurrency, ...(app ? { app } : {}) };
}

export async function benchCommand(a: BenchArgs, io: CliIo & { readonly cwd: string }): Promise<number> {
  const parsed = parseBenchArgs(a, io.cwd);
  const missing = missingTools({ contenders: parsed.contenders, fpm: a.fpm });
  if (missing.length > 0) throw new CliError(ExitCode.Usage, `missing, so nothing was measured:\n  ${missing.join('\n  ')}`);
  const php = a.fpm === undefined ? findPhpFpm(process.env) : null;
  const meta = benchMeta(php, parsed.contenders.some((c) => c.startsWith('nginx')) ? NGINX_BIN : null, WRK_BIN);
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  const say = (line: string): void => void io.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  const options = {
    rounds: a.rounds,
    durationS: a.duration,
    warmupS: a.warmup,
    warmupRequests: a.warmupRequests,
    workloads: parsed.workloads.map((w) => w.name),
    contenders: parsed.contenders,
    concurrency: parsed.concurrency,
    constantRate: a.constantRate,
    fpm: a.fpm ?? 'private php-fpm',
    fpmWorkers: a.fpmWorkers,
    ...(parsed.app ? { app: parsed.app.root } : {}),
    gatewayFrom: cliCommand().file,
  };
  if (cliCommand().execArgv.length > 0) say('note: the gateway runs from src/ under tsx here; for figures run the built CLI (npm run bench)');
  const result = await runBench({ ...options, workloads: parsed.workloads, fpm: a.fpm, app: parsed.app, baseline: a.baseline !== undefined ? resolve(io.cwd, a.baseline) : undefined, say });
  if (tty) io.stderr.write('\r\x1b[2K');
  io.stdout.write(`${formatTable(result.summary)}\n`);
  for (const m of result.mismatches) io.stdout.write(`answer differed: ${m}\n`);
  for (const f of result.failures) io.stdout.write(`turn failed: ${f}\n`);
  const files = writeReport(resolve(io.cwd, a.out ?? join('bench', 'results')), meta, result, options);
  io.stdout.write(`\nwrote ${files.json}\n      ${files.html}\n`);
  return ExitCode.Ok;
}
