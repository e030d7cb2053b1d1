/**
 * Sizes and durations as people write them in a config file: `64k`, `1m`, `1.5g` (binary
 * multiples, as nginx reads `k` and `m`), `500ms`, `30s`, `5m`, `1h30m`. A plain number is
 * bytes or milliseconds, which is what the library API has always taken. Pure.
 */

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Bytes for `64k`, `1m`, `1.5g`, `100` (bytes) or a number of bytes; null when it is not a size. */
export function parseSize(input: number | string): number | null {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
  if (!m) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/**
 * Milliseconds for `500ms`, `30s`, `5m`, `1h30m`, `0` or a number of ms; null otherwise. A
 * string needs its unit (nginx reads a bare `30` as seconds, the library as ms: neither is
 * guessed), except `0`.
 */
export function parseDuration(input: number | string): number | null {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : null;
  const s = input.trim().toLowerCase();
  if (s === '0') return 0;
  if (!/^(\d+(?:\.\d+)?\s*(ms|s|m|h|d)\s*)+$/.test(s)) return null;
  let total = 0;
  for (const part of s.matchAll(/(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/g)) total += Number(part[1]) * DURATION_UNITS[part[2]!]!;
  const ms = Math.round(total);
  return Number.isSafeInteger(ms) ? ms : null;
}

/** `65536` → `64k`, for printing resolved values the way they are written. */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/** `90000` → `90s`, `1500` → `1500ms`. */
export function formatDuration(ms: number): string {
  for (const [unit, n] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}
