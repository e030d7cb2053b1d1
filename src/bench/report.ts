/**
 * The bench's output: the table on the terminal, and a JSON file plus a self-contained HTML
 * report (inline SVG charts and CSS, nothing loaded from the network) named with the date,
 * commit, Node/PHP/nginx versions and core count.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../node-flags.js';
import { VERSION } from '../version.js';
import type { ContenderName } from './contenders.js';
import { CONTENDERS } from './contenders.js';
import type { BenchResult, Summary } from './run.js';

export interface BenchMeta {
  readonly date: string;
  readonly gateway: string;
  readonly commit: string | null;
  readonly node: string;
  /** The node flags the gateway contenders ran under (src/node-flags.ts). */
  readonly gatewayNodeFlags: readonly string[];
  readonly php: string | null;
  readonly nginx: string | null;
  readonly wrk: string | null;
  readonly cpus: number;
  readonly cpuModel: string;
  /** 1/5/15-minute load averages at the start: the machine may be shared. */
  readonly loadavg: readonly number[];
}

function firstLine(bin: string, args: readonly string[]): string | null {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  if (r.error) return null;
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text.split('\n')[0] ?? null;
}

/** Facts about this run; `php` and `nginx` are the binaries used (null: not used). */
export function benchMeta(php: string | null, nginx: string | null, wrk: string | null): BenchMeta {
  let commit: string | null = null;
  try {
    // Only this package's own checkout: installed under another project, git would name that one.
    const repo = realpathSync(fileURLToPath(new URL('../..', import.meta.url)));
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (realpathSync(git('rev-parse', '--show-toplevel')) === repo) {
      commit = git('rev-parse', '--short', 'HEAD') + (git('--no-optional-locks', 'status', '--porcelain', '--untracked-files=no') !== '' ? '-dirty' : '');
    }
  } catch {
    commit = null; // an installed package: no git
  }
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    gateway: VERSION,
    commit,
    node: process.version,
    gatewayNodeFlags: SERVER_NODE_FLAGS,
    php: php !== null ? (/PHP (\S+)/.exec(firstLine(php, ['-v']) ?? '')?.[1] ?? null) : null,
    nginx: nginx !== null ? (/nginx\/(\S+)/.exec(firstLine(nginx, ['-v']) ?? '')?.[1] ?? null) : null,
    wrk: wrk !== null ? (/wrk (\S+)/.exec(firstLine(wrk, ['-v']) ?? '')?.[1] ?? null) : null,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    loadavg: os.loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/** `bench-2026-12-01T16-40-00Z-abc1234-node20.19.0-php8.2.29-nginx1.22.1-2cpu`. */
export function reportName(m: BenchMeta): string {
  const stamp = m.date.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  return ['bench', stamp, m.commit ?? `v${m.gateway}`, `node${m.node.replace(/^v/, '')}`, `php${m.php ?? 'none'}`, `nginx${m.nginx ?? 'none'}`, `${m.cpus}cpu`].join('-');
}

const fmt = (n: number | null, digits = 2): string => {
  if (n === null || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 100) return n.toFixed(0);
  return n.toFixed(digits);
};
const ratio = (n: number | null): string => (n === null || !Number.isFinite(n) ? '–' : `${n.toFixed(2)}×`);

/** The terminal table: one row per workload, concurrency and contender. */
export function formatTable(summary: readonly Summary[]): string {
  const rows: string[][] = [['workload', 'c', 'contender', 'req/s', '÷ nginx-ka', '÷ nginx', 'p50 ms', 'p99 ms', 'p99.9 ms', 'CPU µs/req', 'CPU ÷ nginx-ka', 'RSS MiB', 'flag']];
  for (const s of summary) {
    rows.push([
      s.workload,
      String(s.concurrency),
      s.contender,
      fmt(s.rps, 0),
      ratio(s.vsNginxKeepalive),
      ratio(s.vsNginxStock),
      fmt(s.p50Ms),
      fmt(s.p99Ms),
      fmt(s.p999Ms),
      fmt(s.cpuUsPerReq, 1),
      ratio(s.cpuVsNginxKeepalive),
      fmt(s.peakRssMiB, 1),
      s.flagged ?? '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i <= 2 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLOURS: Readonly<Record<ContenderName, string>> = {
  'nginx-keepalive': '#2f7d4f',
  'nginx-stock': '#7fb78f',
  'nginx-log': '#a7d3b3',
  gateway: '#4f5b93',
  'gateway-w2': '#8a93c8',
  'gateway-log': '#b9bfe3',
  'gateway-base': '#c9a227',
};

/** One horizontal bar chart: a bar per contender, the value and a note on the right. */
function barChart(title: string, bars: ReadonlyArray<{ label: ContenderName; value: number; note: string; flagged: boolean }>, unit: string): string {
  const rowH = 26;
  const labelW = 130;
  const barW = 300;
  const noteW = 300;
  const h = 30 + bars.length * rowH + 8;
  const max = Math.max(1e-9, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + barW + noteW}" height="${h}" role="img" aria-label="${esc(title)}">`, `<text x="0" y="16" class="t">${esc(title)}</text>`];
  bars.forEach((b, i) => {
    const y = 28 + i * rowH;
    const w = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * barW) : 0;
    parts.push(
      `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end" class="l">${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${COLOURS[b.label]}"${b.flagged ? ' fill-opacity="0.35"' : ''}/>`,
      `<text x="${labelW + w + 6}" y="${y + 15}" class="v">${esc(`${fmt(b.value, 1)} ${unit}`)}${b.note ? ` <tspan class="n">${esc(b.note)}</tspan>` : ''}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function renderHtml(meta: BenchMeta, result: BenchResult, options: Record<string, unknown>): string {
  const sections: string[] = [];
  const keys = [...new Set(result.summary.map((s) => `${s.workload}\0${s.concurrency}`))];
  for (const k of keys) {
    const [workload, c] = k.split('\0') as [string, string];
    const rows = result.summary.filter((s) => s.workload === workload && String(s.concurrency) === c);
    const rps = barChart(
      `${workload}, ${c} connections: requests per second (higher is better)`,
      rows.map((s) => ({ label: s.contender, value: s.rps, note: s.flagged ? `flagged: ${s.flagged}` : s.vsNginxKeepalive !== null ? `${ratio(s.vsNginxKeepalive)} nginx-keepalive` : '', flagged: s.flagged !== null })),
      'req/s',
    );
    const cpu = barChart(
      `${workload}, ${c} connections: server CPU per request (lower is better)`,
      rows.map((s) => ({ label: s.contender, value: s.cpuUsPerReq, note: s.cpuVsNginxKeepalive !== null ? `${ratio(s.cpuVsNginxKeepalive)} nginx-keepalive` : '', flagged: s.flagged !== null })),
      'µs',
    );
    const table = [
      '<table><tr><th>contender</th><th>req/s</th><th>÷ nginx-ka</th><th>÷ nginx</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>CPU µs/req</th><th>php-fpm µs/req</th><th>load gen µs/req</th><th>peak RSS MiB</th><th>flag</th></tr>',
      ...rows.map(
        (s) =>
          `<tr><td>${esc(s.contender)}</td><td>${fmt(s.rps, 0)}</td><td>${ratio(s.vsNginxKeepalive)}</td><td>${ratio(s.vsNginxStock)}</td><td>${fmt(s.p50Ms)}</td><td>${fmt(s.p99Ms)}</td><td>${fmt(s.p999Ms)}</td><td>${fmt(s.cpuUsPerReq, 1)}</td><td>${fmt(s.backendCpuUsPerReq, 1)}</td><td>${fmt(s.generatorCpuUsPerReq, 1)}</td><td>${fmt(s.peakRssMiB, 1)}</td><td>${esc(s.flagged ?? '')}</td></tr>`,
      ),
      '</table>',
    ].join('\n');
    sections.push(`<section><h2>${esc(workload)} · c=${esc(c)}</h2><div class="charts">${rps}${cpu}</div>${table}</section>`);
  }
  const rate = result.constantRate.length
    ? [
        '<section><h2>Constant rate (open loop, half of the reference contender\'s throughput)</h2><p>Latency is counted from when each request was due, so queueing shows; requests unanswered at the end count at least the time they waited. "send lag" is how late the load generator itself was: a large one means the row measures the generator too. "rate not held": fewer than 95 % of the requests were answered at the rate (the server, or on a small machine the generator competing with it for the cores, could not keep up).</p>',
        '<table><tr><th>workload</th><th>contender</th><th>rate/s (½ of)</th><th>connections</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th><th>answered/s</th><th>send lag ms</th></tr>',
        ...result.constantRate.map(
          (r) =>
            `<tr><td>${esc(r.workload)}</td><td>${esc(r.contender)}</td><td>${r.rate} (${esc(r.reference)})</td><td>${r.connections}</td><td>${fmt(r.load.p50Ms)}</td><td>${fmt(r.load.p99Ms)}</td><td>${fmt(r.load.p999Ms)}</td><td>${fmt(r.load.maxMs)}</td><td>${r.load.errors + r.load.non2xx}</td><td>${fmt(r.load.rps, 0)}${r.load.rps < 0.95 * r.rate ? ' (rate not held)' : ''}</td><td>${fmt(r.load.maxSendLagMs)}</td></tr>`,
        ),
        '</table></section>',
      ].join('\n')
    : '';
  const contenders = [...new Set(result.summary.map((s) => s.contender))].map((c) => `<li><b>${esc(c)}</b>: ${esc(CONTENDERS[c])}</li>`).join('');
  const mism = result.mismatches.length ? `<section class="warn"><h2>Answers that differed</h2><ul>${result.mismatches.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></section>` : '';
  const fail = result.failures.length ? `<section class="warn"><h2>Turns that failed</h2><ul>${result.failures.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></section>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fastcgi-gateway bench · ${esc(meta.date)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;color:#1d2433;background:#fbfbfd;margin:0 auto;max-width:1100px;padding:1.5rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.meta{color:#5b6475}.charts{display:flex;flex-wrap:wrap;gap:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{padding:.2rem .6rem;border-bottom:1px solid #e3e5ec;text-align:right}th:first-child,td:first-child{text-align:left}
svg .t{font-weight:600;font-size:13px}svg .l{font-size:12px}svg .v{font-size:12px}svg .n{fill:#5b6475}
.warn{background:#fff4e5;padding:.5rem 1rem}
</style></head><body>
<h1>fastcgi-gateway bench</h1>
<p class="meta">${esc(meta.date)} · gateway ${esc(meta.gateway)}${meta.commit ? ` (${esc(meta.commit)})` : ''} · Node ${esc(meta.node)}${meta.gatewayNodeFlags.length > 0 ? ` (gateway: ${esc(meta.gatewayNodeFlags.join(' '))})` : ''} · PHP ${esc(meta.php ?? '–')} · nginx ${esc(meta.nginx ?? '–')} · wrk ${esc(meta.wrk ?? '–')} · ${meta.cpus} × ${esc(meta.cpuModel)} · load ${meta.loadavg.join(' / ')}</p>
<p class="meta">Same backend for every contender (${esc(result.backend.php)}, ${result.backend.workers} workers), started fresh for each turn; rounds interleaved, medians shown. CPU is each server's own CPU-seconds from /proc ÷ requests (php-fpm's apart). Percentiles of the closed-loop runs are wrk's, which corrects its histogram for coordinated omission; the open-loop table below times requests from when they were due. Options: <code>${esc(JSON.stringify(options))}</code></p>
<ul>${contenders}</ul>
${mism}
${fail}
${sections.join('\n')}
${rate}
</body></html>
`;
}

/** Write `<name>.json` and `<name>.html` into `dir`; returns both paths. */
export function writeReport(dir: string, meta: BenchMeta, result: BenchResult, options: Record<string, unknown>): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const name = reportName(meta);
  const json = join(dir, `${name}.json`);
  const html = join(dir, `${name}.html`);
  writeFileSync(json, `${JSON.stringify({ meta, options, ...result }, null, 2)}\n`);
  writeFileSync(html, renderHtml(meta, result, options));
  return { json, html };
}
