/**
 * Baseline: nginx (nginx-light, 1 worker, canonical fastcgi_pass config with upstream
 * keepalive) in front of the same php-fpm pool the client bench uses, loaded by wrk on
 * hello.php. Reports requests/s, p50/p99 latency, nginx CPU µs per request (master + worker,
 * from /proc), nginx peak RSS (VmHWM), php-fpm CPU µs per request and wrk's own CPU.
 * The gateway side of the comparison is to be added using the same helpers (lib.ts).
 *
 *   node --import tsx bench/http/nginx-baseline.ts
 *   CONNECTIONS=50 DURATION=10 RUNS=3 WARMUP=2 FPM_WORKERS=4 KEEPALIVE=4   (defaults;
 *   KEEPALIVE=0: no upstream keepalive, a new php-fpm connection per request)
 *
 * wrk, nginx and php-fpm share the machine's cores; the median run is reported.
 * Writes bench/results/nginx-baseline-<timestamp>.json.
 */
import {
  type BenchNginx,
  type BenchPhpFpm,
  CANONICAL_FASTCGI_PARAMS,
  type WrkResult,
  benchMeta,
  envInt,
  httpGet,
  installCleanup,
  listenQueueAfterLoad,
  median,
  printTable,
  reapedChildrenCpuUs,
  round,
  startBenchPhpFpm,
  startNginx,
  toolVersions,
  treeCpuTimeUs,
  treePeakRssKb,
  runWrk,
  watchListenQueue,
  writeResult,
} from './lib.js';

const CONNECTIONS = envInt('CONNECTIONS', 50);
const DURATION_S = envInt('DURATION', 10);
const RUNS = envInt('RUNS', 3);
const WARMUP_S = envInt('WARMUP', 2);
const FPM_WORKERS = envInt('FPM_WORKERS', 4);
/** 0 turns upstream keepalive off (fastcgi_keep_conn off, one php-fpm connection per request). */
const KEEPALIVE = process.env['KEEPALIVE'] === '0' ? 0 : envInt('KEEPALIVE', FPM_WORKERS);

interface RunResult {
  readonly run: number;
  readonly requests: number;
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly nginxCpuUsPerReq: number;
  readonly fpmCpuUsPerReq: number;
  readonly wrkCpuUsPerReq: number;
  /** Largest php-fpm accept-queue length sampled during the run (connections not yet accepted). */
  readonly fpmListenQueueMax: number | null;
  /** Accept-queue length once the load stopped (after ≤ 2 s of draining): > 0 means stalled connections. */
  readonly fpmListenQueueAfter: number | null;
  readonly non2xx3xx: number;
  readonly socketErrors: WrkResult['socketErrors'];
  readonly wrkOutput: string;
}

async function main(): Promise<void> {
  installCleanup();
  const meta = benchMeta();
  const tools = toolVersions();
  console.log(`nginx baseline — ${tools.nginx ?? 'nginx ?'}; ${tools.phpFpm ?? 'php-fpm ?'}; ${tools.wrk ?? 'wrk ?'}`);
  console.log(
    `php-fpm pm=static workers=${FPM_WORKERS}; nginx 1 worker, upstream keepalive ${KEEPALIVE > 0 ? KEEPALIVE : 'off'}; ` +
      `wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s --timeout 30s × ${RUNS} after ${WARMUP_S} s warm-up; load ${meta.loadavg.join(' ')}\n`,
  );

  let fpm: BenchPhpFpm | null = null;
  let nginx: BenchNginx | null = null;
  try {
    fpm = await startBenchPhpFpm({ workers: FPM_WORKERS });
    nginx = await startNginx({ fpmSocket: fpm.socketPath, docRoot: fpm.docRoot, keepalive: KEEPALIVE });
    const url = `${nginx.origin}/hello.php`;

    // Sanity: the page, a missing script (try_files → 404, php-fpm never asked), opcache on.
    const hello = await httpGet(url);
    if (hello.status !== 200 || hello.body !== 'Hello, World!') {
      throw new Error(`GET /hello.php gave ${hello.status} ${JSON.stringify(hello.body.slice(0, 200))}\n${nginx.errorLog()}`);
    }
    const missing = await httpGet(`${nginx.origin}/missing.php`);
    if (missing.status !== 404) throw new Error(`GET /missing.php gave ${missing.status}, expected 404 from try_files`);
    const check = await httpGet(`${nginx.origin}/opcache-check.php`);
    const phpInfo = JSON.parse(check.body) as Record<string, unknown>;
    console.log(`php: ${JSON.stringify(phpInfo)}`);

    const warm = await runWrk({ url, connections: CONNECTIONS, durationS: WARMUP_S });
    console.log(`warm-up: ${warm.requests} requests, ${warm.requestsPerSec} req/s\n`);

    const runs: RunResult[] = [];
    for (let r = 1; r <= RUNS; r++) {
      const nginxCpu0 = treeCpuTimeUs(nginx.pid);
      const fpmCpu0 = treeCpuTimeUs(fpm.pid);
      const wrkCpu0 = reapedChildrenCpuUs();
      const queue = watchListenQueue(fpm.socketPath);
      const w = await runWrk({ url, connections: CONNECTIONS, durationS: DURATION_S });
      const nginxCpu = treeCpuTimeUs(nginx.pid) - nginxCpu0;
      const fpmCpu = treeCpuTimeUs(fpm.pid) - fpmCpu0;
      const wrkCpu = reapedChildrenCpuUs() - wrkCpu0;
      const queueSamples = await queue.stop();
      const queueAfter = await listenQueueAfterLoad(fpm.socketPath);
      const n = Math.max(1, w.requests);
      const res: RunResult = {
        run: r,
        requests: w.requests,
        requestsPerSec: w.requestsPerSec,
        p50Ms: w.p50Ms,
        p99Ms: w.p99Ms,
        nginxCpuUsPerReq: round(nginxCpu / n, 1),
        fpmCpuUsPerReq: round(fpmCpu / n, 1),
        wrkCpuUsPerReq: round(wrkCpu / n, 1),
        fpmListenQueueMax: queueSamples.length > 0 ? Math.max(...queueSamples) : null,
        fpmListenQueueAfter: queueAfter,
        non2xx3xx: w.non2xx3xx,
        socketErrors: w.socketErrors,
        wrkOutput: w.raw,
      };
      runs.push(res);
      const se = w.socketErrors;
      const bad = w.non2xx3xx + se.connect + se.read + se.write + se.timeout;
      console.log(
        `  run ${r}: ${res.requestsPerSec} req/s, p50 ${res.p50Ms} ms, p99 ${res.p99Ms} ms, nginx ${res.nginxCpuUsPerReq} µs/req, ` +
          `php-fpm ${res.fpmCpuUsPerReq} µs/req, wrk ${res.wrkCpuUsPerReq} µs/req, php-fpm accept queue max ${res.fpmListenQueueMax ?? '?'} / after ${res.fpmListenQueueAfter ?? '?'}` +
          (bad > 0 ? `, ERRORS non-2xx ${w.non2xx3xx} socket ${JSON.stringify(se)}` : ''),
      );
    }

    const nginxRss = treePeakRssKb(nginx.pid);
    const fpmRss = treePeakRssKb(fpm.pid);
    const summary = {
      requestsPerSec: round(median(runs.map((r) => r.requestsPerSec)), 1),
      p50Ms: round(median(runs.map((r) => r.p50Ms))),
      p99Ms: round(median(runs.map((r) => r.p99Ms))),
      nginxCpuUsPerReq: round(median(runs.map((r) => r.nginxCpuUsPerReq)), 1),
      fpmCpuUsPerReq: round(median(runs.map((r) => r.fpmCpuUsPerReq)), 1),
      wrkCpuUsPerReq: round(median(runs.map((r) => r.wrkCpuUsPerReq)), 1),
      nginxPeakRssKb: nginxRss.totalKb,
      /** Connections left in php-fpm's accept queue after the load stopped, worst run. */
      stalledUpstreamConnections: Math.max(0, ...runs.map((r) => r.fpmListenQueueAfter ?? 0)),
      errors: runs.reduce((n, r) => n + r.non2xx3xx + r.socketErrors.connect + r.socketErrors.read + r.socketErrors.write + r.socketErrors.timeout, 0),
    };

    console.log('');
    printTable([
      ['nginx + php-fpm (median)', 'req/s', 'p50 ms', 'p99 ms', 'nginx µs/req', 'php-fpm µs/req', 'wrk µs/req', 'nginx peak RSS MB', 'errors'],
      [
        `hello.php, ${CONNECTIONS} conns`,
        summary.requestsPerSec,
        summary.p50Ms,
        summary.p99Ms,
        summary.nginxCpuUsPerReq,
        summary.fpmCpuUsPerReq,
        summary.wrkCpuUsPerReq,
        round(summary.nginxPeakRssKb / 1024, 1),
        String(summary.errors),
      ],
    ]);

    const file = writeResult('nginx-baseline', {
      bench: 'nginx-baseline',
      meta,
      tools,
      php: phpInfo,
      config: {
        connections: CONNECTIONS,
        durationS: DURATION_S,
        runs: RUNS,
        warmupS: WARMUP_S,
        wrkThreads: 1,
        wrkTimeoutS: 30,
        fpmWorkers: FPM_WORKERS,
        upstreamKeepalive: KEEPALIVE,
        script: 'hello.php',
        nginxConf: nginx.config,
        fastcgiParams: CANONICAL_FASTCGI_PARAMS,
        phpFpmConf: fpm.config,
      },
      summary,
      runs,
      nginxPeakRssKb: nginxRss,
      phpFpmPeakRssKb: fpmRss,
    });
    if (summary.stalledUpstreamConnections > 0) {
      console.log(
        `\nWARNING: ${summary.stalledUpstreamConnections} upstream connections were still waiting in php-fpm's accept queue after the load stopped.\n` +
          `  Every worker was pinned by an idle kept-alive nginx connection, so requests sent on the queued connections\n` +
          `  stall until nginx evicts a cached connection or fastcgi_read_timeout (60 s) answers 504. wrk only reports\n` +
          `  requests that completed within the run, so req/s and latency above describe the connections that were\n` +
          `  served. See bench/README.md; KEEPALIVE=0 runs without upstream keepalive.`,
      );
    }
    console.log(`\nwrote ${file}`);
    const warnings = nginx.errorLog().split('\n').filter((l) => / \[(warn|error|crit|alert|emerg)\] /.test(l));
    if (warnings.length > 0) console.log(`nginx error log (${warnings.length} lines):\n${warnings.slice(0, 10).join('\n')}`);
  } finally {
    if (nginx) await nginx.stop();
    if (fpm) await fpm.stop();
  }
}

await main();
