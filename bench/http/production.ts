/**
 * The production-server figures, each side by side in one run on one php-fpm pool:
 *
 *   1. hello.php over HTTP/1.1 (wrk): nginx 1 worker with upstream keepalive, the gateway in
 *      one process, the gateway with `--workers 2`;
 *   2. hello.php over TLS + HTTP/2 (h2load): nginx `listen … ssl http2` against the gateway's
 *      TLS listener, same certificate;
 *   3. RSS with IDLE (10 000) idle keep-alive client connections, gateway and nginx.
 *
 * Each server runs from the built CLI (dist/, plain node) in its own process tree, so its
 * CPU-seconds (utime + stime of the tree, from /proc) and peak RSS are its own. Rounds are
 * interleaved (A B C, B C A, C A B) and medians reported; only one server runs at a time (an
 * idle kept upstream connection pins a php-fpm worker).
 *
 *   npm run build && node --import tsx bench/http/production.ts
 *   ROUNDS=3 DURATION=10 WARMUP=2 CONNECTIONS=50 WORKERS=8 IDLE=10000 PARTS=http1,h2,idle
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import {
  type BenchNginx,
  benchMeta,
  envInt,
  httpGet,
  installCleanup,
  median,
  printTable,
  procStatusKb,
  processTree,
  REPO_ROOT,
  round,
  runWrk,
  startBenchPhpFpm,
  startNginx,
  stopTree,
  toolVersions,
  treeCpuTimeUs,
  treePeakRssKb,
  writeResult,
} from './lib.js';

const ROUNDS = envInt('ROUNDS', 3);
const DURATION_S = envInt('DURATION', 10);
const WARMUP_S = envInt('WARMUP', 2);
const CONNECTIONS = envInt('CONNECTIONS', 50);
const WORKERS = envInt('WORKERS', 8);
const IDLE = envInt('IDLE', 10_000);
const PARTS = new Set((process.env['PARTS'] ?? 'http1,h2,idle').split(','));
const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');

installCleanup();
const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
if (build.status !== 0) throw new Error('build failed');

const fpm = await startBenchPhpFpm({ workers: WORKERS });
const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-prod-'));
// A throwaway self-signed certificate for both servers' TLS listeners.
const CERT = join(dir, 'cert.pem');
const KEY = join(dir, 'key.pem');
const openssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', KEY, '-out', CERT], { stdio: ['ignore', 'ignore', 'pipe'] });
if (openssl.status !== 0) throw new Error(`openssl could not make a test certificate: ${openssl.stderr}`);

interface Server {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** `fastcgi-gateway serve --config` from dist/, started and waited for. */
async function startGateway(name: string, o: { workers: number; tls: boolean }): Promise<Server> {
  const file = join(dir, `${name}.yaml`);
  const listen = o.tls ? `[{ address: "127.0.0.1:0", tls: { cert: ${CERT}, key: ${KEY} } }]` : '["127.0.0.1:0"]';
  writeFileSync(
    file,
    `listen: ${listen}\nworkers: ${o.workers}\naccessLog: false\n${o.tls ? 'keepAliveRequests: 0\n' : ''}upstreams: { php: { servers: ["${fpm.address}"], connections: ${WORKERS} } }\nsites: [{ root: ${fpm.docRoot}, routes: [{ path: /, php: { upstream: php } }] }]\n`,
  );
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, CLI, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      err += c;
      const m = /serving .*? on ((?:http|https):\/\/[^\s,]+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error(`gateway exited: ${err}`)));
  });
  return { url, pid: child.pid!, stop: () => stopTree(child, 'SIGTERM', 5000) };
}

/**
 * nginx 1 worker. Upstream keepalive for HTTP/1 (its best case here); none under HTTP/2, where
 * 500 concurrent streams make nginx open more php-fpm connections than php-fpm has workers, and
 * the `keepalive` ones left idle pin every worker while the rest wait in php-fpm's backlog
 * (a stall seen in a trial run: 335 req/s).
 */
async function startNginxServer(o: { tls: boolean; workerConnections?: number; keepalive?: boolean }): Promise<Server & { nginx: BenchNginx }> {
  const nginx = await startNginx({
    fpmSocket: fpm.socketPath,
    docRoot: fpm.docRoot,
    keepalive: o.keepalive === false || o.tls ? 0 : WORKERS,
    // h2load does not reconnect after a GOAWAY: with the default 1000 streams per connection,
    // 50 clients stop after 50 000 requests whatever the server's speed (seen in a trial run).
    ...(o.tls ? { keepaliveRequests: 1_000_000 } : {}), ...(o.tls ? { tls: { cert: CERT, key: KEY } } : {}), ...(o.workerConnections ? { workerConnections: o.workerConnections } : {}) });
  return { url: nginx.origin, pid: nginx.pid, nginx, stop: () => nginx.stop() };
}

interface Contender {
  readonly name: string;
  start(): Promise<Server>;
}

interface Sample {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly cpuUsPerReq: number;
  readonly peakRssMb: number;
  readonly requests: number;
}

/** One measured turn: fresh server, warm-up, measured load, CPU from /proc around it. */
async function turn(c: Contender, load: (url: string, seconds: number) => Promise<{ requests: number; rps: number; p50Ms: number; p99Ms: number; errors: number }>): Promise<Sample> {
  const server = await c.start();
  try {
    await load(server.url, WARMUP_S);
    const cpu0 = treeCpuTimeUs(server.pid);
    const r = await load(server.url, DURATION_S);
    const cpu = treeCpuTimeUs(server.pid) - cpu0;
    const rss = treePeakRssKb(server.pid).totalKb / 1024;
    return { ...r, cpuUsPerReq: r.requests > 0 ? cpu / r.requests : 0, peakRssMb: rss };
  } finally {
    await server.stop();
  }
}

async function compare(part: string, contenders: readonly Contender[], load: Parameters<typeof turn>[1]): Promise<Record<string, Sample[]>> {
  const samples: Record<string, Sample[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(r + k) % contenders.length]!;
      process.stderr.write(`${part}: round ${r + 1}/${ROUNDS}, ${c.name}\n`);
      samples[c.name]!.push(await turn(c, load));
    }
  }
  const base = median(samples[contenders[0]!.name]!.map((s) => s.rps));
  const rows: Array<Array<string | number>> = [['contender', 'req/s', `÷ ${contenders[0]!.name}`, 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req', 'peak RSS MiB']];
  for (const c of contenders) {
    const s = samples[c.name]!;
    const rps = median(s.map((x) => x.rps));
    rows.push([c.name, round(rps, 0), round(rps / base, 2), round(median(s.map((x) => x.p50Ms)), 2), round(median(s.map((x) => x.p99Ms)), 2), s.reduce((n, x) => n + x.errors, 0), round(median(s.map((x) => x.cpuUsPerReq)), 1), round(Math.max(...s.map((x) => x.peakRssMb)), 1)]);
  }
  console.log(`\n${part}`);
  printTable(rows);
  return samples;
}

const wrkLoad = async (url: string, seconds: number) => {
  const r = await runWrk({ url: `${url}/hello.php`, connections: CONNECTIONS, durationS: seconds, timeoutS: 5 }, join(dir, 'wrk.lua'));
  return { requests: r.requests, rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.non2xx + r.errors };
};

/** h2load: CONNECTIONS clients, 10 streams each, for `seconds`. */
const h2Load = (url: string, seconds: number) =>
  new Promise<{ requests: number; rps: number; p50Ms: number; p99Ms: number; errors: number }>((resolve, reject) => {
    const p = spawn('h2load', ['-c', String(CONNECTIONS), '-m', '10', '-t', '1', '-D', String(seconds), `${url}/hello.php`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.stderr.resume();
    p.once('exit', (code) => {
      const fin = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(out);
      const req = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
      const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
      const lat = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
      if (code !== 0 || !fin || !req || !status) {
        reject(new Error(`h2load failed (${code}):\n${out}`));
        return;
      }
      const ms = (v: string, u: string): number => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : 1);
      const succeeded = Number(req[3]);
      resolve({
        requests: succeeded,
        rps: Number(fin[2]),
        // h2load reports min/max/mean per request, not percentiles: mean in the p50 column.
        p50Ms: lat ? ms(lat[5]!, lat[6]!) : 0,
        p99Ms: lat ? ms(lat[3]!, lat[4]!) : 0,
        errors: Number(req[4]) + Number(req[5]) + Number(req[6]) + Number(status[3]) + Number(status[4]),
      });
    });
  });

/** RSS of a server's tree before and with IDLE kept-alive client connections, each used once. */
async function idleRss(c: Contender): Promise<{ beforeMb: number; withIdleMb: number; perConnectionKb: number; connections: number }> {
  const server = await c.start();
  const socks: net.Socket[] = [];
  try {
    const { port } = new URL(server.url);
    for (let i = 0; i < 50; i++) await httpGet(`${server.url}/hello.php`);
    await new Promise((r) => setTimeout(r, 500));
    const rss = (): number => processTree(server.pid).reduce((n, p) => n + (procStatusKb(p, 'VmRSS') ?? 0), 0) / 1024;
    const beforeMb = rss();
    const batch = 500;
    for (let i = 0; i < IDLE; i += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, IDLE - i) }, () =>
          new Promise<void>((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: Number(port) }, () => s.write('GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n'));
            let got = '';
            s.setEncoding('latin1');
            const onData = (d: string): void => {
              got += d;
              if (got.includes('Hello, World!')) {
                s.removeListener('data', onData);
                socks.push(s);
                resolve();
              }
            };
            s.on('data', onData);
            s.once('error', reject);
          }),
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
    const open = socks.filter((s) => !s.destroyed).length;
    const withIdleMb = rss();
    return { beforeMb: round(beforeMb, 1), withIdleMb: round(withIdleMb, 1), perConnectionKb: round(((withIdleMb - beforeMb) * 1024) / open, 2), connections: open };
  } finally {
    for (const s of socks) s.destroy();
    await server.stop();
  }
}

const results: Record<string, unknown> = { meta: benchMeta(), tools: toolVersions(), rounds: ROUNDS, durationS: DURATION_S, connections: CONNECTIONS, phpFpmWorkers: WORKERS };
try {
  if (PARTS.has('http1')) {
    results['http1'] = await compare('hello.php over HTTP/1.1 (wrk)', [
      { name: 'nginx-keepalive', start: () => startNginxServer({ tls: false }) },
      { name: 'gateway', start: () => startGateway('one', { workers: 1, tls: false }) },
      { name: 'gateway-workers-2', start: () => startGateway('two', { workers: 2, tls: false }) },
    ], wrkLoad);
  }
  if (PARTS.has('h2')) {
    results['h2'] = await compare('hello.php over TLS + HTTP/2 (h2load, 10 streams per connection)', [
      { name: 'nginx-ssl-http2-stock', start: () => startNginxServer({ tls: true }) },
      { name: 'gateway-tls-h2', start: () => startGateway('h2', { workers: 1, tls: true }) },
      { name: 'gateway-tls-h2-workers-2', start: () => startGateway('h2two', { workers: 2, tls: true }) },
    ], h2Load);
  }
  if (PARTS.has('idle')) {
    const gw = await idleRss({ name: 'gateway', start: () => startGateway('idle', { workers: 1, tls: false }) });
    // 500 connections at a time would stall nginx's kept upstream connections as under HTTP/2.
    const ng = await idleRss({ name: 'nginx', start: () => startNginxServer({ tls: false, workerConnections: IDLE + 1024, keepalive: false }) });
    results['idle'] = { gateway: gw, nginx: ng };
    console.log(`\nRSS with ${IDLE} idle keep-alive connections (server process tree, VmRSS)`);
    printTable([
      ['server', 'before MiB', 'with idle MiB', 'KiB per connection', 'connections open'],
      ['gateway', gw.beforeMb, gw.withIdleMb, gw.perConnectionKb, gw.connections],
      ['nginx', ng.beforeMb, ng.withIdleMb, ng.perConnectionKb, ng.connections],
    ]);
  }
} finally {
  await fpm.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\n${writeResult('production', results)}`);
