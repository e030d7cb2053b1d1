/**
 * Profile the gateway under load: `fastcgi-gateway serve` from dist/ under `node --cpu-prof`, in
 * front of a private php-fpm, loaded by wrk; then the functions with the most self time.
 *
 *   node --import tsx bench/http/profile.ts            WORKLOAD=hello DURATION=10 CONNECTIONS=50
 *   PROF_DIR=/tmp/prof  (keeps the .cpuprofile for a flame graph: open it in Chrome DevTools;
 *                       without it the profile goes with the temp dir once summarised)
 *   SERVE_ARGS="--log json"  (extra serve flags)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startPhpFpm } from '../../src/fpm/launcher.js';
import { runWrk } from '../../src/bench/load.js';
import { freePort, spawnUntilListening, stopTree } from '../../src/bench/procs.js';
import { BUILTIN_WORKLOADS, writeBenchRoot } from '../../src/bench/workloads.js';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import { REPO_ROOT } from './lib.js';

const workload = BUILTIN_WORKLOADS.find((w) => w.name === (process.env['WORKLOAD'] ?? 'hello'));
if (workload?.backend !== 'php-fpm') throw new Error(`WORKLOAD must be one of ${BUILTIN_WORKLOADS.filter((w) => w.backend === 'php-fpm').map((w) => w.name)}`);
const duration = Number(process.env['DURATION'] ?? 10);
const connections = Number(process.env['CONNECTIONS'] ?? 50);
const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-prof-'));
const profDir = process.env['PROF_DIR'] ?? join(dir, 'prof');
const root = writeBenchRoot(dir);
const fpm = await startPhpFpm({ workers: 4, poolName: 'bench' });
const port = await freePort();
const extra = (process.env['SERVE_ARGS'] ?? '').split(' ').filter(Boolean);
const args = [...SERVER_NODE_FLAGS, '--cpu-prof', '--cpu-prof-dir', profDir, join(REPO_ROOT, 'dist', 'cli', 'main.js'), 'serve', '-u', fpm.address, '-r', root, '-l', `127.0.0.1:${port}`, '-c', '4', ...(extra.includes('--log') ? [] : ['--log', 'off']), ...extra];
// Waits for the port, not a log line: with `--log json` the "serving" line is JSON on stdout.
const gw = await spawnUntilListening(process.execPath, args, { host: '127.0.0.1', port }, '/dev/null');
try {
  const url = `http://127.0.0.1:${port}${workload.path}`;
  const run = { url, connections, ...(workload.postBytes !== undefined ? { postBytes: workload.postBytes } : {}), ...(workload.headers ? { headers: workload.headers } : {}) };
  await runWrk({ ...run, durationS: 2 }, join(dir, 'wrk.lua'));
  const r = await runWrk({ ...run, durationS: duration }, join(dir, 'wrk.lua'));
  console.log(`${workload.name}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors + r.non2xx}`);
} finally {
  await stopTree(gw, 'SIGINT', 10_000);
  await fpm.stop();
}

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
// The newest profile: PROF_DIR may hold earlier runs'.
const file = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).sort().at(-1);
if (!file) throw new Error(`no profile in ${profDir}`);
const prof = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as { nodes: Node[]; samples: number[] };
const self = new Map<string, number>();
let total = 0;
for (const n of prof.nodes) {
  const f = n.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^node:/, '')}:${f.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + n.hitCount);
  total += n.hitCount;
}
const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env['TOP'] ?? 40));
for (const [k, v] of top) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
if (process.env['PROF_DIR']) console.log(`profile: ${join(profDir, file)}`);
// The document root, wrk script and (without PROF_DIR) the profile.
rmSync(dir, { recursive: true, force: true });
