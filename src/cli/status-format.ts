/**
 * php-fpm status page: which query to send, parsing its JSON variant, and rendering it as
 * aligned text, a per-process table, and `--watch` rates. Pure: strings and numbers in,
 * strings out.
 *
 * php-fpm (fpm_status.c) understands the query words `json`, `xml`, `html`, `openmetrics` and
 * `full`. Text output is rendered here from `json` rather than relayed from php-fpm's own
 * text, so values can be formatted (times, durations, sizes) and rates added.
 */
import { CliError, ExitCode } from './exit-codes.js';

/** Output formats of `status`. */
export const STATUS_FORMATS = ['text', 'json', 'openmetrics'] as const;
export type StatusFormat = (typeof STATUS_FORMATS)[number];

/** QUERY_STRING for the status page. Text is rendered from JSON. */
export function statusQuery(format: StatusFormat, full: boolean): string {
  const base = format === 'openmetrics' ? 'openmetrics' : 'json';
  return full ? `${base}&full` : base;
}

/** One worker in the `full` status. Numbers php-fpm did not send are null. */
export interface FpmProcess {
  readonly pid: number | null;
  readonly state: string;
  /** Unix time, seconds. */
  readonly startTime: number | null;
  /** Seconds. */
  readonly startSince: number | null;
  readonly requests: number | null;
  /** Microseconds. */
  readonly requestDuration: number | null;
  readonly requestMethod: string;
  readonly requestUri: string;
  /** Bytes. */
  readonly contentLength: number | null;
  readonly user: string;
  readonly script: string;
  /** Percent. */
  readonly lastRequestCpu: number | null;
  /** Bytes. */
  readonly lastRequestMemory: number | null;
}

/** The pool summary fields in php-fpm's order, and the workers when `full` was asked. */
export interface FpmStatus {
  readonly fields: ReadonlyArray<readonly [string, string | number | boolean | null]>;
  readonly processes: readonly FpmProcess[] | null;
}

/**
 * Parse the body of `/status?json[&full]`. Throws CliError(Unexpected) when it is not the
 * JSON object php-fpm sends (older php-fpm versions did not escape the request URI, so a
 * quote in a URI could break the document).
 */
export function parseStatusJson(text: string): FpmStatus {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CliError(ExitCode.Unexpected, `status page did not return valid JSON: ${(err as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new CliError(ExitCode.Unexpected, 'status page JSON is not an object');
  }
  const fields: Array<readonly [string, string | number | boolean | null]> = [];
  let processes: FpmProcess[] | null = null;
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (key === 'processes') {
      if (!Array.isArray(value)) throw new CliError(ExitCode.Unexpected, 'status page "processes" is not an array');
      processes = value.map(parseProcess);
      continue;
    }
    if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      fields.push([key, value]);
    } else {
      fields.push([key, JSON.stringify(value)]);
    }
  }
  return { fields, processes };
}

function parseProcess(p: unknown): FpmProcess {
  const o = p !== null && typeof p === 'object' ? (p as Record<string, unknown>) : {};
  const num = (k: string): number | null => {
    const v = o[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
    return null;
  };
  const str = (k: string): string => {
    const v = o[k];
    return v === undefined || v === null ? '-' : String(v);
  };
  return {
    pid: num('pid'),
    state: str('state'),
    startTime: num('start time'),
    startSince: num('start since'),
    requests: num('requests'),
    requestDuration: num('request duration'),
    requestMethod: str('request method'),
    requestUri: str('request uri'),
    contentLength: num('content length'),
    user: str('user'),
    script: str('script'),
    lastRequestCpu: num('last request cpu'),
    lastRequestMemory: num('last request memory'),
  };
}

/** A numeric summary field, or null. */
export function statusNumber(status: FpmStatus, key: string): number | null {
  const hit = status.fields.find(([k]) => k === key);
  const v = hit?.[1];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** What `--watch` remembers of one snapshot to compute rates. */
export interface StatusSample {
  readonly acceptedConn: number | null;
  readonly startTime: number | null;
  /** Monotonic clock, ms. */
  readonly atMs: number;
}

/** Rates between two snapshots. */
export interface StatusRates {
  /** Accepted connections per second, excluding the one status request of this tool; null when unknown. */
  readonly acceptedPerSec: number | null;
  /** Seconds between the snapshots. */
  readonly intervalSec: number;
  /** php-fpm restarted between the snapshots (start time changed or the counter went back). */
  readonly restarted: boolean;
}

/** Sample a status for rate computation. */
export function sampleStatus(status: FpmStatus, atMs: number): StatusSample {
  return { acceptedConn: statusNumber(status, 'accepted conn'), startTime: statusNumber(status, 'start time'), atMs };
}

/**
 * Rates from `prev` to `cur`. Every snapshot is itself one accepted connection, counted in
 * `cur`, so one is subtracted. Null for the first snapshot.
 */
export function computeRates(prev: StatusSample | null, cur: StatusSample): StatusRates | null {
  if (prev === null) return null;
  const intervalSec = (cur.atMs - prev.atMs) / 1000;
  const restarted =
    (prev.startTime !== null && cur.startTime !== null && prev.startTime !== cur.startTime) ||
    (prev.acceptedConn !== null && cur.acceptedConn !== null && cur.acceptedConn < prev.acceptedConn);
  let acceptedPerSec: number | null = null;
  if (!restarted && intervalSec > 0 && prev.acceptedConn !== null && cur.acceptedConn !== null) {
    acceptedPerSec = Math.max(0, cur.acceptedConn - prev.acceptedConn - 1) / intervalSec;
  }
  return { acceptedPerSec, intervalSec, restarted };
}

/** Options of {@link renderStatusText}. */
export interface RenderOptions {
  /** Append the per-process table (needs `processes`). */
  readonly full?: boolean;
  /** Rates to show (`--watch`); undefined hides the rate line, null shows "n/a". */
  readonly rates?: StatusRates | null;
  /** Terminal width: long URI and script columns are shortened to fit. */
  readonly width?: number;
}

/** The pool summary as aligned `key: value` lines, like php-fpm's own text, plus the table. */
export function renderStatusText(status: FpmStatus, options: RenderOptions = {}): string {
  const rows: Array<[string, string]> = [];
  for (const [key, value] of status.fields) {
    rows.push([key, formatField(key, value)]);
    if (key === 'accepted conn' && options.rates !== undefined) rows.push(['accepted conn/s', formatRate(options.rates)]);
  }
  const pad = Math.max(0, ...rows.map(([k]) => k.length)) + 2;
  let out = rows.map(([k, v]) => `${(k + ':').padEnd(pad)}${v}`.trimEnd()).join('\n') + '\n';
  if (options.full) {
    const procs = status.processes ?? [];
    out += `\nprocesses (${procs.length}):\n`;
    out += renderProcessTable(procs, options.width);
  }
  return out;
}

function formatRate(rates: StatusRates | null): string {
  if (rates === null) return 'n/a (first snapshot)';
  if (rates.restarted) return 'n/a (php-fpm restarted)';
  if (rates.acceptedPerSec === null) return 'n/a';
  return rates.acceptedPerSec.toFixed(rates.acceptedPerSec >= 100 ? 0 : 1);
}

function formatField(key: string, value: string | number | boolean | null): string {
  if (value === null) return '-';
  if (typeof value === 'number') {
    if (key === 'start time') return formatUnixTime(value);
    if (key === 'start since') return formatDuration(value);
  }
  return sanitize(String(value));
}

/** Unix seconds → `2024-01-02T03:04:05Z`. */
export function formatUnixTime(sec: number): string {
  if (!Number.isFinite(sec)) return String(sec);
  return new Date(sec * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Seconds → `45s`, `2m 5s`, `3h 2m 5s`, `4d 3h 2m`. */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return String(sec);
  const s = Math.floor(sec);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${r}s`;
  if (m > 0) return `${m}m ${r}s`;
  return `${r}s`;
}

/** Microseconds → `850µs`, `12.3ms`, `4.56s`. */
export function formatMicros(us: number): string {
  if (!Number.isFinite(us) || us < 0) return String(us);
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)}ms`;
  return `${(us / 1_000_000).toFixed(2)}s`;
}

/** Bytes → `512B`, `12.0K`, `2.5M`, `1.0G` (powers of 1024). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return String(n);
  if (n < 1024) return `${Math.round(n)}B`;
  const units = ['K', 'M', 'G', 'T'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)}${units[i]}`;
}

interface Column {
  readonly title: string;
  readonly align: 'left' | 'right';
  /** May be shortened to fit the width. */
  readonly shrink?: boolean;
  readonly value: (p: FpmProcess) => string;
}

const dash = (v: number | null, f: (n: number) => string): string => (v === null ? '-' : f(v));

const COLUMNS: readonly Column[] = [
  { title: 'PID', align: 'right', value: (p) => dash(p.pid, String) },
  { title: 'STATE', align: 'left', value: (p) => p.state },
  { title: 'START SINCE', align: 'right', value: (p) => dash(p.startSince, formatDuration) },
  { title: 'REQUESTS', align: 'right', value: (p) => dash(p.requests, String) },
  { title: 'REQ DURATION', align: 'right', value: (p) => dash(p.requestDuration, formatMicros) },
  { title: 'METHOD', align: 'left', value: (p) => p.requestMethod },
  { title: 'URI', align: 'left', shrink: true, value: (p) => p.requestUri },
  { title: 'CONTENT LEN', align: 'right', value: (p) => dash(p.contentLength, String) },
  { title: 'USER', align: 'left', value: (p) => p.user },
  { title: 'SCRIPT', align: 'left', shrink: true, value: (p) => p.script },
  { title: 'LAST CPU', align: 'right', value: (p) => dash(p.lastRequestCpu, (n) => `${n.toFixed(2)}%`) },
  { title: 'LAST MEM', align: 'right', value: (p) => dash(p.lastRequestMemory, formatBytes) },
];

/** Narrowest a shrinkable column gets. */
const MIN_SHRUNK = 12;

/**
 * Workers as a table, sorted by pid, one line each. With `width`, the URI and script columns
 * are shortened (ending in "…") so each line fits when that is possible.
 */
export function renderProcessTable(processes: readonly FpmProcess[], width?: number): string {
  const sorted = [...processes].sort((a, b) => (a.pid ?? 0) - (b.pid ?? 0));
  const cells = sorted.map((p) => COLUMNS.map((c) => sanitize(c.value(p))));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((row) => (row[i] ?? '').length)));
  if (width !== undefined && width > 0) fitWidths(widths, width);
  const line = (row: readonly string[]): string =>
    COLUMNS.map((c, i) => {
      const w = widths[i] ?? 0;
      const text = truncate(row[i] ?? '', w);
      return c.align === 'right' ? text.padStart(w) : text.padEnd(w);
    })
      .join('  ')
      .trimEnd();
  return [line(COLUMNS.map((c) => c.title)), ...cells.map(line)].join('\n') + '\n';
}

function fitWidths(widths: number[], width: number): void {
  const gaps = 2 * (widths.length - 1);
  let total = widths.reduce((a, b) => a + b, 0) + gaps;
  const shrinkable = COLUMNS.map((c, i) => (c.shrink ? i : -1)).filter((i) => i >= 0);
  // Take one character at a time from the widest shrinkable column.
  while (total > width) {
    let widest = -1;
    for (const i of shrinkable) if ((widths[i] ?? 0) > MIN_SHRUNK && (widest < 0 || (widths[i] ?? 0) > (widths[widest] ?? 0))) widest = i;
    if (widest < 0) return;
    widths[widest] = (widths[widest] ?? 0) - 1;
    total--;
  }
}

function truncate(s: string, w: number): string {
  return s.length <= w ? s : `${s.slice(0, Math.max(0, w - 1))}…`;
}

/** Control characters in a URI or script name must not reach the terminal. */
function sanitize(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
