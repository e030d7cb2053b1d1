/**
 * `fastcgi-gateway status`: php-fpm's status page over FastCGI, read to END_REQUEST over any
 * number of records (the page with `full` easily exceeds one record or one socket read),
 * rendered as text, pretty JSON or raw OpenMetrics; `--watch` redraws it like `top`.
 *
 *   watch loop:  fetch ─▶ render frame ─▶ sleep until start + interval ─▶ fetch ...
 *                  └─ SIGINT at any point: abort the fetch, stop the timer, exit 0
 */
import { performance } from 'node:perf_hooks';
import type { UpstreamAddress } from '../upstream/address.js';
import { type CliIo, checkPageAnswer, checkPagePath, checkTimeout, pageParams, parseUpstream } from './common.js';
import { exchangeOnce } from '../client/one-shot.js';
import { CliError, ExitCode, describeFailure, exitCodeFor } from './exit-codes.js';
import {
  type FpmStatus,
  type StatusFormat,
  type StatusSample,
  STATUS_FORMATS,
  computeRates,
  parseStatusJson,
  renderStatusText,
  sampleStatus,
  statusQuery,
} from './status-format.js';

/** Options of the `status` command, as parsed from argv. */
export interface StatusOptions {
  readonly upstream: string;
  /** php-fpm pm.status_path (default /status). */
  readonly path: string;
  /** Ask for the per-process list. */
  readonly full: boolean;
  readonly format: StatusFormat;
  /** Seconds between snapshots; null = one snapshot. */
  readonly watch: number | null;
  /** Deadline per snapshot (ms); 0 = none. */
  readonly timeout: number;
}

/** One snapshot: the raw body and, for text and json, the parsed status. */
export interface StatusSnapshot {
  readonly body: string;
  readonly status: FpmStatus | null;
}

/** Fetch one snapshot; throws CliError / GatewayError (see exit-codes.ts). */
export async function fetchStatus(
  address: UpstreamAddress,
  options: { path: string; format: StatusFormat; full: boolean; timeout: number; signal?: AbortSignal },
): Promise<StatusSnapshot> {
  const query = statusQuery(options.format, options.full);
  const res = await exchangeOnce({
    address,
    params: pageParams(options.path, query),
    timeoutMs: options.timeout,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  checkPageAnswer('status', options.path, address, res);
  const body = res.body.toString('utf8');
  return { body, status: options.format === 'openmetrics' ? null : parseStatusJson(body) };
}

/** Render a snapshot in the chosen format (watch mode prints JSON one document per line). */
export function renderSnapshot(
  snap: StatusSnapshot,
  format: StatusFormat,
  extra: { full: boolean; rates?: ReturnType<typeof computeRates>; width?: number; compactJson?: boolean },
): string {
  if (format === 'openmetrics') return snap.body.endsWith('\n') ? snap.body : `${snap.body}\n`;
  const status = snap.status as FpmStatus;
  if (format === 'json') {
    const doc = JSON.parse(snap.body) as unknown;
    return `${extra.compactJson ? JSON.stringify(doc) : JSON.stringify(doc, null, 2)}\n`;
  }
  return renderStatusText(status, {
    full: extra.full,
    ...(extra.rates !== undefined ? { rates: extra.rates } : {}),
    ...(extra.width !== undefined ? { width: extra.width } : {}),
  });
}

/** Validate options that yargs cannot (format, watch interval, path, timeout). */
export function checkStatusOptions(o: StatusOptions): void {
  if (!(STATUS_FORMATS as readonly string[]).includes(o.format)) {
    throw new CliError(ExitCode.Usage, `--format must be one of ${STATUS_FORMATS.join(', ')}`);
  }
  if (o.watch !== null && (!Number.isFinite(o.watch) || o.watch < 0.1)) {
    throw new CliError(ExitCode.Usage, '--watch must be a number of seconds ≥ 0.1');
  }
  checkPagePath('--path', o.path);
  checkTimeout(o.timeout);
}

/**
 * Run the command; returns the exit code. `--watch` runs until SIGINT or until `stop` aborts
 * (for callers that embed the command).
 */
export async function statusCommand(options: StatusOptions, io: CliIo, stop?: AbortSignal): Promise<number> {
  checkStatusOptions(options);
  const address = parseUpstream(options.upstream);
  if (options.watch !== null) return watchStatus(address, options, options.watch, io, stop);
  const snap = await fetchStatus(address, options);
  io.stdout.write(renderSnapshot(snap, options.format, { full: options.full, ...widthOf(io) }));
  return ExitCode.Ok;
}

function widthOf(io: CliIo): { width?: number } {
  return io.stdout.isTTY && io.stdout.columns ? { width: io.stdout.columns } : {};
}

/** ANSI: cursor home, clear screen. */
const CLEAR = '\x1b[H\x1b[2J';

/**
 * Redraw every `interval` seconds until SIGINT (exit 0). Transient failures (connect, busy,
 * protocol) are shown and retried at the next tick, as php-fpm may be restarting; a missing
 * status page or a usage error ends the command with its exit code.
 */
async function watchStatus(
  address: UpstreamAddress,
  options: StatusOptions,
  interval: number,
  io: CliIo,
  stop: AbortSignal | undefined,
): Promise<number> {
  const tty = io.stdout.isTTY === true;
  const ac = new AbortController();
  let stopped = false;
  let wake: (() => void) | null = null;
  const onSigint = (): void => {
    stopped = true;
    ac.abort();
    wake?.();
  };
  process.on('SIGINT', onSigint);
  stop?.addEventListener('abort', onSigint, { once: true });
  if (stop?.aborted) onSigint();
  let prev: StatusSample | null = null;
  let frames = 0;
  try {
    while (!stopped) {
      const t0 = performance.now();
      let frame: string;
      try {
        const snap = await fetchStatus(address, { ...options, signal: ac.signal });
        if (stopped) break;
        let rates: ReturnType<typeof computeRates> | undefined;
        if (snap.status !== null && options.format === 'text') {
          const sample = sampleStatus(snap.status, t0);
          rates = computeRates(prev, sample);
          prev = sample;
        }
        frame = renderSnapshot(snap, options.format, {
          full: options.full,
          compactJson: true,
          ...(rates !== undefined ? { rates } : {}),
          ...widthOf(io),
        });
      } catch (err) {
        if (stopped) break;
        const code = exitCodeFor(err);
        if (code === ExitCode.NotFound || code === ExitCode.Usage) throw err;
        if (tty && options.format !== 'json') {
          // On a terminal the next clear would wipe a stderr line: show it in the view.
          frame = `error: ${describeFailure(err)}\n`;
        } else {
          io.stderr.write(`fastcgi-gateway: ${new Date().toISOString()} ${describeFailure(err)}\n`);
          frame = '';
        }
      }
      if (options.format === 'json') {
        // One JSON document per line (NDJSON): pipe into `jq -c` or a log shipper.
        io.stdout.write(frame);
      } else {
        const header = `every ${interval}s: ${options.path} on ${address.text} at ${new Date().toISOString()}  (Ctrl-C to quit)\n\n`;
        if (tty) io.stdout.write(CLEAR + header + frame);
        else io.stdout.write((frames > 0 ? `\n${'-'.repeat(72)}\n` : '') + header + frame);
      }
      frames++;
      const wait = Math.max(0, t0 + interval * 1000 - performance.now());
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    stop?.removeEventListener('abort', onSigint);
  }
  if (tty) io.stdout.write('\n');
  return ExitCode.Ok;
}
