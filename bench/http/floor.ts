/**
 * Where the gateway's CPU per request goes, by floors: the same wrk load (hello.php or a fixed
 * answer, c=50) against
 *
 *   node-http   a bare node:http server answering "Hello, World!" itself (node:http's own cost)
 *   thin        node:http + our ConnectionPool + buildCgiParams + a minimal CGI head split:
 *               the FastCGI exchange with nothing else (no routing, checks, relay, timeouts)
 *   gateway     `fastcgi-gateway serve` from dist/, default options, log off
 *   nginx       nginx 1 worker with upstream keepalive, and stock
 *
 * each in its own process, CPU from /proc, rounds interleaved, medians.
 *
 *   node --import tsx bench/http/floor.ts        ROUNDS=5 DURATION=5 CONNECTIONS=50
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startPhpFpm } from '../../src/fpm/launcher.js';
import { runWrk } from '../../src/bench/load.js';
import { startNginx } from '../../src/bench/nginx.js';
import { freePort, installCleanup, stopTree, treeCpuTimeUs } from '../../src/bench/procs.js';
import { writeBenchRoot } from '../../src/bench/workloads.js';
import { envInt, median, printTable, REPO_ROOT } from './lib.js';

const ROUNDS = envInt('ROUNDS', 5);
const DURATION = envInt('DURATION', 5);
const CONNECTIONS = envInt('CONNECTIONS', 50);

installCleanup();
const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-floor-'));
const root = writeBenchRoot(dir);
const fpm = await startPhpFpm({ workers: 4, poolName: 'bench', extraPoolConfig: 'listen.mode = 0666' });

const NODE_HTTP = `import http from 'node:http';
const s = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8' }); res.end('Hello, World!'); });
s.keepAliveTimeout = 75000;
s.listen(Number(process.argv[2]), '127.0.0.1', () => console.error('serving'));
process.on('SIGTERM', () => process.exit(0));
`;
const THIN = `import http from 'node:http';
import { ConnectionPool } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'index.js'))};
import { buildCgiParams } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'cgi', 'params-builder.js'))};
const [port, upstream, root] = process.argv.slice(2);
const pool = new ConnectionPool(upstream, { connections: 4 });
const settings = { serverSoftware: 'fastcgi-gateway', serverName: null, extraParams: {} };
http.createServer(async (req, res) => {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const params = buildCgiParams(
    { method: req.method, rawUrl: req.url, httpVersion: req.httpVersion, rawHeaders: req.rawHeaders, remoteAddress: '127.0.0.1', remotePort: 1, serverAddress: '127.0.0.1', serverPort: Number(port), https: false },
    { scriptName: path, pathInfo: '', documentUri: path, query: q < 0 ? '' : req.url.slice(q + 1), documentRoot: root },
    settings, { contentLength: null, contentType: null });
  const r = await pool.request({ params });
  const out = r.stdout; const i = out.indexOf('\\r\\n\\r\\n');
  const flat = []; let status = 200;
  for (const l of out.subarray(0, i).toString('latin1').split('\\r\\n')) { const c = l.indexOf(':'); const n = l.slice(0, c); const v = l.slice(c + 1).trim(); if (n.toLowerCase() === 'status') status = parseInt(v); else flat.push(n, v); }
  const body = out.subarray(i + 4);
  flat.push('Content-Length', String(body.length));
  res.writeHead(status, flat); res.end(body);
}).listen(Number(port), '127.0.0.1', () => console.error('serving'));
process.on('SIGTERM', () => process.exit(0));
`;
writeFileSync(join(dir, 'node-http.mjs'), NODE_HTTP);
writeFileSync(join(dir, 'thin.mjs'), THIN);

interface Server {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function startNode(args: string[]): Promise<Server> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, args.map((a) => a.replace('PORT', String(port))), { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((res, rej) => {
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      err += c;
      if (err.includes('serving')) res();
    });
    child.once('exit', () => rej(new Error(`exited: ${err}`)));
  });
  return { url: `http://127.0.0.1:${port}/hello.php`, pid: child.pid!, stop: () => stopTree(child, 'SIGTERM', 3000) };
}

const contenders: Record<string, () => Promise<Server>> = {
  'node-http': () => startNode([join(dir, 'node-http.mjs'), 'PORT']),
  thin: () => startNode([join(dir, 'thin.mjs'), 'PORT', fpm.address, root]),
  gateway: () => startNode([join(REPO_ROOT, 'dist', 'cli', 'main.js'), 'serve', '-u', fpm.address, '-r', root, '-l', '127.0.0.1:PORT', '-c', '4', '--log', 'off']),
  'nginx-keepalive': async () => {
    const n = await startNginx({ fpmSocket: fpm.address.replace(/^unix:/, ''), docRoot: root, keepalive: 4 });
    return { url: `${n.origin}/hello.php`, pid: n.pid, stop: () => n.stop() };
  },
  'nginx-stock': async () => {
    const n = await startNginx({ fpmSocket: fpm.address.replace(/^unix:/, ''), docRoot: root, keepalive: 0 });
    return { url: `${n.origin}/hello.php`, pid: n.pid, stop: () => n.stop() };
  },
};

const names = Object.keys(contenders);
const results = new Map<string, Array<{ rps: number; us: number }>>(names.map((n) => [n, []]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of [...names.slice(r % names.length), ...names.slice(0, r % names.length)]) {
      const s = await contenders[name]!();
      try {
        await runWrk({ url: s.url, connections: CONNECTIONS, durationS: 2 }, join(dir, 'wrk.lua'));
        const cpu0 = treeCpuTimeUs(s.pid);
        const w = await runWrk({ url: s.url, connections: CONNECTIONS, durationS: DURATION }, join(dir, 'wrk.lua'));
        const us = (treeCpuTimeUs(s.pid) - cpu0) / w.requests;
        results.get(name)!.push({ rps: w.rps, us });
        console.error(`round ${r + 1} ${name}: ${Math.round(w.rps)} req/s, ${us.toFixed(1)} µs/req${w.errors + w.non2xx > 0 ? `, ${w.errors + w.non2xx} errors` : ''}`);
      } finally {
        await s.stop();
      }
    }
  }
} finally {
  await fpm.stop();
  rmSync(dir, { recursive: true, force: true });
}
printTable([
  ['server', 'req/s (median)', 'CPU µs/req (median)', 'CPU µs/req (min–max)'],
  ...names.map((n) => {
    const l = results.get(n)!;
    return [n, Math.round(median(l.map((x) => x.rps))), median(l.map((x) => x.us)), `${Math.min(...l.map((x) => x.us)).toFixed(1)}–${Math.max(...l.map((x) => x.us)).toFixed(1)}`];
  }),
]);
