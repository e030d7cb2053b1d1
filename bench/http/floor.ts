/**
 * Where the gateway's CPU per request goes, by floors: the same wrk load (hello.php or a fixed
 * answer, c=50) against
 *
 *   node-http   a bare node:http server answering "Hello, World!" itself (node:http's own cost)
 *   raw         node:http + one constant, pre-encoded FastCGI request written to a kept-alive
 *               net.Socket, the answer awaited by walking record headers: Node's own cost of one
 *               round trip to php-fpm, with none of our code on the request path
 *   thin        node:http + our ConnectionPool + buildCgiParams + a minimal CGI head split:
 *               the FastCGI exchange with nothing else (no routing, checks, relay, timeouts)
 *   gateway     `fastcgi-gateway serve` from dist/, default options, log off, with the flags the
 *               installed command adds (src/node-flags.ts)
 *   gateway-plain  the same under plain node, without those flags
 *   nginx       nginx 1 worker with upstream keepalive, and stock
 *   extra       EXTRA=entry.mjs: any node entry taking PORT UPSTREAM ROOT (for an experiment)
 *   gateway-base  BASELINE=/other/dist: the gateway of another build, under that build's node
 *               flags (a before/after in one run)
 *
 * each in its own process, CPU and memory from /proc (RSS idle before the warm-up, RSS and peak
 * RSS after the measured run), rounds interleaved, medians.
 *
 *   node --import tsx bench/http/floor.ts        ROUNDS=5 DURATION=5 CONNECTIONS=50 CONTENDERS=raw,thin
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startPhpFpm } from '../../src/fpm/launcher.js';
import { nodeFlagsOf } from '../../src/bench/contenders.js';
import { runWrk } from '../../src/bench/load.js';
import { startNginx } from '../../src/bench/nginx.js';
import { childPids, freePort, installCleanup, procStatusKb, stopTree, treeCpuSplitUs } from '../../src/bench/procs.js';
import { writeBenchRoot } from '../../src/bench/workloads.js';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
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
import { ConnectionPool } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'upstream', 'pool.js'))};
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
const RAW = `import http from 'node:http';
import net from 'node:net';
import { encodeBeginRequest, encodeParamsStream, encodeStreamEnd } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'protocol', 'encoder.js'))};
const [port, upstream, root] = process.argv.slice(2);
const params = { SCRIPT_FILENAME: root + '/hello.php', SCRIPT_NAME: '/hello.php', REQUEST_METHOD: 'GET', REQUEST_URI: '/hello.php', QUERY_STRING: '', SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1', REMOTE_ADDR: '127.0.0.1', SERVER_NAME: 'localhost', SERVER_PORT: port, DOCUMENT_ROOT: root, HTTP_HOST: '127.0.0.1:' + port };
const REQ = Buffer.concat([encodeBeginRequest(1, 1, true), encodeParamsStream(1, params), encodeStreamEnd(5, 1)]);
const idle = []; const waiting = [];
function open() {
  const s = net.connect(upstream.replace(/^unix:/, ''));
  let acc = Buffer.alloc(0); let done = null; let out = [];
  s.on('data', (c) => {
    acc = acc.length ? Buffer.concat([acc, c]) : c;
    let o = 0;
    while (o + 8 <= acc.length) {
      const len = acc.readUInt16BE(o + 4); const end = o + 8 + len + acc[o + 6];
      if (end > acc.length) break;
      if (acc[o + 1] === 6) out.push(acc.subarray(o + 8, o + 8 + len));
      if (acc[o + 1] === 3) { const d = done; done = null; d(Buffer.concat(out)); out = []; }
      o = end;
    }
    acc = acc.subarray(o);
  });
  s.ask = () => new Promise((res) => { done = res; s.write(REQ); });
  return s;
}
for (let i = 0; i < 4; i++) idle.push(open());
function take() { return idle.length ? Promise.resolve(idle.pop()) : new Promise((r) => waiting.push(r)); }
function give(s) { const w = waiting.shift(); if (w) w(s); else idle.push(s); }
http.createServer(async (req, res) => {
  const s = await take();
  const out = await s.ask();
  give(s);
  const i = out.indexOf('\\r\\n\\r\\n');
  const body = out.subarray(i + 4);
  res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': String(body.length) });
  res.end(body);
}).listen(Number(port), '127.0.0.1', () => console.error('serving'));
process.on('SIGTERM', () => process.exit(0));
`;
writeFileSync(join(dir, 'node-http.mjs'), NODE_HTTP);
writeFileSync(join(dir, 'raw.mjs'), RAW);
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

/** node's arguments for `serve` from the build in `dist`, default options, log off. */
const serve = (flags: readonly string[], dist: string): string[] => [...flags, join(dist, 'cli', 'main.js'), 'serve', '-u', fpm.address, '-r', root, '-l', '127.0.0.1:PORT', '-c', '4', '--log', 'off'];

const contenders: Record<string, () => Promise<Server>> = {
  'node-http': () => startNode([join(dir, 'node-http.mjs'), 'PORT']),
  raw: () => startNode([join(dir, 'raw.mjs'), 'PORT', fpm.address, root]),
  thin: () => startNode([join(dir, 'thin.mjs'), 'PORT', fpm.address, root]),
  gateway: () => startNode(serve(SERVER_NODE_FLAGS, join(REPO_ROOT, 'dist'))),
  // The same build under plain node, without the flags the command adds (src/node-flags.ts).
  'gateway-plain': () => startNode(serve([], join(REPO_ROOT, 'dist'))),
  ...(process.env['EXTRA'] ? { extra: () => startNode([process.env['EXTRA']!, 'PORT', fpm.address, root]) } : {}),
  ...(process.env['BASELINE'] ? { 'gateway-base': async () => startNode(serve(await nodeFlagsOf(process.env['BASELINE']!), process.env['BASELINE']!)) } : {}),
  'nginx-keepalive': async () => {
    const n = await startNginx({ fpmSocket: fpm.address.replace(/^unix:/, ''), docRoot: root, keepalive: 4 });
    return { url: `${n.origin}/hello.php`, pid: n.pid, stop: () => n.stop() };
  },
  'nginx-stock': async () => {
    const n = await startNginx({ fpmSocket: fpm.address.replace(/^unix:/, ''), docRoot: root, keepalive: 0 });
    return { url: `${n.origin}/hello.php`, pid: n.pid, stop: () => n.stop() };
  },
};

// CONTENDERS=raw,thin picks some.
const names = process.env['CONTENDERS']?.split(',') ?? Object.keys(contenders);
for (const n of names) if (!(n in contenders)) throw new Error(`unknown contender ${n}: one of ${Object.keys(contenders)}`);
const results = new Map<string, Array<{ rps: number; us: number; user: number; sys: number; idleMiB: number; afterMiB: number; peakMiB: number }>>(names.map((n) => [n, []]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of [...names.slice(r % names.length), ...names.slice(0, r % names.length)]) {
      const s = await contenders[name]!();
      // nginx's figure is its worker's (the master only forks); a node server is one process.
      const memPid = (): number => childPids(s.pid)[0] ?? s.pid;
      const mib = (field: string): number => (procStatusKb(memPid(), field) ?? Number.NaN) / 1024;
      try {
        const idleMiB = mib('VmRSS');
        await runWrk({ url: s.url, connections: CONNECTIONS, durationS: 2 }, join(dir, 'wrk.lua'));
        const cpu0 = treeCpuSplitUs(s.pid);
        const w = await runWrk({ url: s.url, connections: CONNECTIONS, durationS: DURATION }, join(dir, 'wrk.lua'));
        const cpu1 = treeCpuSplitUs(s.pid);
        const user = (cpu1.user - cpu0.user) / w.requests;
        const sys = (cpu1.sys - cpu0.sys) / w.requests;
        const us = user + sys;
        const afterMiB = mib('VmRSS');
        const peakMiB = mib('VmHWM');
        results.get(name)!.push({ rps: w.rps, us, user, sys, idleMiB, afterMiB, peakMiB });
        console.error(`round ${r + 1} ${name}: ${Math.round(w.rps)} req/s, ${us.toFixed(1)} µs/req, RSS ${idleMiB.toFixed(1)} → ${afterMiB.toFixed(1)} MiB (peak ${peakMiB.toFixed(1)})${w.errors + w.non2xx > 0 ? `, ${w.errors + w.non2xx} errors` : ''}`);
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
  ['server', 'req/s (median)', 'CPU µs/req (median)', 'user', 'sys', 'CPU µs/req (min–max)', 'RSS idle MiB', 'RSS after MiB', 'peak MiB'],
  ...names.map((n) => {
    const l = results.get(n)!;
    return [n, Math.round(median(l.map((x) => x.rps))), median(l.map((x) => x.us)), median(l.map((x) => x.user)), median(l.map((x) => x.sys)), `${Math.min(...l.map((x) => x.us)).toFixed(1)}–${Math.max(...l.map((x) => x.us)).toFixed(1)}`, median(l.map((x) => x.idleMiB)), median(l.map((x) => x.afterMiB)), median(l.map((x) => x.peakMiB))];
  }),
]);
