/**
 * The garbage collector's share of a workload: `fastcgi-gateway serve` from dist/ under
 * `node --trace-gc-nvp`, in front of a private php-fpm, loaded by wrk; then CPU per request and
 * what V8 collected during the measured run (scavenges, mark-compacts, their final main-thread
 * pauses, without a mark-compact's incremental steps before it, bytes promoted, heap size before
 * and after), and the gateway's peak RSS during that run.
 *
 *   npm run build && node --import tsx bench/http/gc.ts     WORKLOAD=upload-1m CONNECTIONS=10 DURATION=8
 *   SERVE_ARGS="--config my.yaml"  (replaces -u/-r; -l and --log off are kept)
 *   NODE_FLAGS="--max-semi-space-size=4"  (extra V8 flags for the gateway)
 *   SERVER_FLAGS=0  (without the flags bin/fastcgi-gateway adds, src/node-flags.ts)
 *   TRACE_OUT=gc.txt  (writes V8's trace of the measured run there; with NODE_FLAGS=--trace-gc it
 *   includes each collection's reason)
 *
 * A GC line V8 prints before the measured run (startup, warm-up) is not counted.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { runWrk } from '../../src/bench/load.js';
import { freePort, installCleanup, onInterrupt, procStatusKb, resetPeakRss, stopTree, treeCpuSplitUs } from '../../src/bench/procs.js';
import { BUILTIN_WORKLOADS, writeBenchRoot } from '../../src/bench/workloads.js';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import { builtDist, envInt, printTable, startBenchPhpFpm } from './lib.js';

const workload = BUILTIN_WORKLOADS.find((w) => w.name === (process.env['WORKLOAD'] ?? 'upload-1m'));
if (workload?.backend !== 'php-fpm') throw new Error(`WORKLOAD must be one of ${BUILTIN_WORKLOADS.filter((w) => w.backend === 'php-fpm').map((w) => w.name)}`);
const DURATION = envInt('DURATION', 8);
const CONNECTIONS = envInt('CONNECTIONS', 10);

installCleanup();
const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-gc-'));
const root = writeBenchRoot(dir);
const fpm = await startBenchPhpFpm();
const port = await freePort();
const extra = (process.env['SERVE_ARGS'] ?? '').split(' ').filter(Boolean);
const target = extra.includes('--config') ? extra : ['-u', fpm.address, '-r', root, '-c', '4', ...extra];
// The installed command's flags (src/node-flags.ts) unless SERVER_FLAGS=0, then NODE_FLAGS.
const flags = [...(process.env['SERVER_FLAGS'] === '0' ? [] : SERVER_NODE_FLAGS), ...(process.env['NODE_FLAGS'] ?? '').split(' ').filter(Boolean)];
const gw = spawn(process.execPath, ['--trace-gc-nvp', ...flags, join(builtDist(), 'cli', 'main.js'), 'serve', ...target, '-l', `127.0.0.1:${port}`, '--log', 'off'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
const unregister = onInterrupt(() => stopTree(gw, 'SIGKILL', 1000));
let trace = '';
gw.stdout!.setEncoding('utf8').on('data', (c: string) => (trace += c));
/** Resolves on the gateway's "serving" line (stderr, with --log off), rejects if it exits first. */
const serving = new Promise<void>((res, rej) => {
  let err = '';
  gw.stderr!.setEncoding('utf8').on('data', (c: string) => {
    err += c;
    if (err.includes('serving')) res();
  });
  gw.once('exit', () => rej(new Error(`the gateway exited: ${err}`)));
});

interface Gc {
  readonly kind: string;
  readonly pauseMs: number;
  readonly promoted: number;
  readonly before: number;
  readonly after: number;
}
/** The GC lines of a --trace-gc-nvp text: `gc=s` scavenges, `gc=mc` mark-compacts. */
function parse(text: string): Gc[] {
  const out: Gc[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(' gc=')) continue;
    const f = Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    out.push({ kind: f['gc']!, pauseMs: Number(f['pause']), promoted: Number(f['promoted']), before: Number(f['total_size_before']), after: Number(f['total_size_after']) });
  }
  return out;
}

try {
  await serving;
  const run = { url: `http://127.0.0.1:${port}${workload.path}`, connections: CONNECTIONS, ...(workload.postBytes !== undefined ? { postBytes: workload.postBytes } : {}), ...(workload.headers ? { headers: workload.headers } : {}) };
  await runWrk({ ...run, durationS: 2 }, join(dir, 'wrk.lua'));
  const from = trace.length;
  resetPeakRss(gw.pid!);
  const cpu0 = treeCpuSplitUs(gw.pid!);
  const w = await runWrk({ ...run, durationS: DURATION }, join(dir, 'wrk.lua'));
  const cpu1 = treeCpuSplitUs(gw.pid!);
  const peakKb = procStatusKb(gw.pid!, 'VmHWM') ?? 0;
  const gcs = parse(trace.slice(from));
  if (process.env['TRACE_OUT']) writeFileSync(process.env['TRACE_OUT'], trace.slice(from));
  const of = (kind: string): Gc[] => gcs.filter((g) => g.kind === kind);
  const MB = (n: number): string => (n / 1e6).toFixed(1);
  console.log(`${workload.name}, c=${CONNECTIONS}, ${DURATION} s: ${Math.round(w.rps)} req/s, ${w.requests} requests, ${w.errors + w.non2xx} errors`);
  console.log(`gateway CPU per request: user ${((cpu1.user - cpu0.user) / w.requests).toFixed(0)} µs, system ${((cpu1.sys - cpu0.sys) / w.requests).toFixed(0)} µs; peak RSS ${(peakKb / 1024).toFixed(1)} MiB`);
  printTable([
    ['collection', 'count', 'requests per one', 'final pauses ms (sum)', 'pause µs per request', 'promoted KB (mean)', 'heap MB before → after (median)'],
    ...(['s', 'mc'] as const).map((k) => {
      const l = of(k);
      const pause = l.reduce((n, g) => n + g.pauseMs, 0);
      const mid = [...l].sort((a, b) => a.before - b.before)[Math.floor(l.length / 2)];
      return [
        k === 's' ? 'scavenge' : 'mark-compact',
        String(l.length),
        l.length > 0 ? String(Math.round(w.requests / l.length)) : '—',
        pause.toFixed(0),
        ((pause * 1000) / w.requests).toFixed(0),
        l.length > 0 ? (l.reduce((n, g) => n + g.promoted, 0) / l.length / 1024).toFixed(1) : '—',
        mid ? `${MB(mid.before)} → ${MB(mid.after)}` : '—',
      ];
    }),
  ]);
} finally {
  unregister();
  await stopTree(gw, 'SIGTERM', 5000);
  await fpm.stop();
  rmSync(dir, { recursive: true, force: true });
}
