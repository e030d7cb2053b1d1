/**
 * Client benchmark: our ConnectionPool against a private php-fpm running hello.php, closed
 * loop at several concurrency levels (N requests in flight; each completion dispatches the
 * next) for a fixed time per level. Reports requests/s, p50/p99 latency (dispatch → END_REQUEST,
 * pool queueing included), client CPU µs per request (process.cpuUsage delta / requests) and
 * php-fpm CPU µs per request (/proc, master + workers).
 *
 *   node --import tsx bench/http/client.bench.ts
 *   DURATION=5 RUNS=3 WARMUP=2 LEVELS=1,8,64 FPM_WORKERS=4 POOL_CONNECTIONS=4   (defaults)
 *
 * Runs are interleaved (every level once per run) and the median run per level is reported.
 * The client, php-fpm and the OS share the same cores: read figures as a relative baseline.
 * Writes bench/results/client-<timestamp>.json.
 */
import { ConnectionPool, type FastCgiRequest, type GatewayError } from '../../src/index.js';
import {
  type BenchPhpFpm,
  benchMeta,
  envInt,
  envIntList,
  envNumber,
  installCleanup,
  median,
  nginxLikeParams,
  percentile,
  printTable,
  round,
  startBenchPhpFpm,
  toolVersions,
  treeCpuTimeUs,
  treePeakRssKb,
  writeResult,
} from './lib.js';

const DURATION_S = envNumber('DURATION', 5);
const RUNS = envInt('RUNS', 3);
const WARMUP_S = envNumber('WARMUP', 2);
const LEVELS = envIntList('LEVELS', [1, 8, 64]);
const FPM_WORKERS = envInt('FPM_WORKERS', 4);
const POOL_CONNECTIONS = envInt('POOL_CONNECTIONS', 4);

/** One closed-loop run at one concurrency level. */
interface LoopResult {
  readonly concurrency: number;
  readonly requests: number;
  readonly failed: number;
  readonly errors: Record<string, number>;
  readonly elapsedS: number;
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly clientCpuUsPerReq: number;
  readonly clientUserUs: number;
  readonly clientSystemUs: number;
  readonly fpmCpuUsPerReq: number;
}

/**
 * Keep `concurrency` requests in flight for `durationS`; then stop dispatching and wait for
 * the last ones. A response whose STDOUT size differs from `expectBytes` counts as failed.
 */
function closedLoop(
  pool: ConnectionPool,
  request: FastCgiRequest,
  concurrency: number,
  durationS: number,
  expectBytes: number,
  fpmPid: number,
): Promise<LoopResult> {
  return new Promise((resolve) => {
    let stopping = false;
    let inFlight = 0;
    let ok = 0;
    let failed = 0;
    const errors: Record<string, number> = {};
    const latencies: number[] = [];
    const fpmCpu0 = treeCpuTimeUs(fpmPid);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const timer = setTimeout(() => (stopping = true), durationS * 1000);

    const settle = (): void => {
      inFlight--;
      if (!stopping) {
        launch();
        return;
      }
      if (inFlight > 0) return;
      const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const fpmCpu = treeCpuTimeUs(fpmPid) - fpmCpu0;
      const done = ok + failed;
      resolve({
        concurrency,
        requests: ok,
        failed,
        errors,
        elapsedS: round(elapsedS),
        requestsPerSec: round(ok / elapsedS, 1),
        p50Ms: round(percentile(latencies, 50)),
        p99Ms: round(percentile(latencies, 99)),
        clientCpuUsPerReq: round((cpu.user + cpu.system) / Math.max(1, done), 1),
        clientUserUs: cpu.user,
        clientSystemUs: cpu.system,
        fpmCpuUsPerReq: round(fpmCpu / Math.max(1, done), 1),
      });
    };

    const fail = (code: string): void => {
      failed++;
      errors[code] = (errors[code] ?? 0) + 1;
      // A dead upstream fails at once; do not spin for the whole duration.
      if (failed >= 1000 && !stopping) {
        stopping = true;
        clearTimeout(timer);
      }
    };

    const launch = (): void => {
      inFlight++;
      const start = process.hrtime.bigint();
      let bytes = 0;
      try {
        pool.dispatch(request, {
          onStdout(chunk) {
            bytes += chunk.length;
          },
          onEnd() {
            if (bytes === expectBytes) {
              ok++;
              latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
            } else {
              fail('BENCH_BAD_BODY_SIZE');
            }
            settle();
          },
          onError(err: GatewayError) {
            fail(err.code);
            settle();
          },
        });
      } catch (err) {
        fail((err as { code?: string }).code ?? 'BENCH_DISPATCH_THREW');
        queueMicrotask(settle);
      }
    };

    for (let i = 0; i < concurrency; i++) launch();
  });
}

function headerEnd(stdout: Buffer): number {
  const i = stdout.indexOf('\r\n\r\n');
  if (i < 0) throw new Error(`no CGI head in response: ${JSON.stringify(stdout.toString().slice(0, 200))}`);
  return i + 4;
}

async function main(): Promise<void> {
  installCleanup();
  const meta = benchMeta();
  const tools = toolVersions();
  console.log(`client bench — ${tools.phpFpm ?? 'php-fpm ?'}; node ${meta.node}; commit ${meta.commit ?? '?'}${meta.dirty ? ' (dirty)' : ''}`);
  console.log(
    `php-fpm pm=static workers=${FPM_WORKERS}, pool connections=${POOL_CONNECTIONS}; levels ${LEVELS.join(',')}; ` +
      `${RUNS} run(s) × ${DURATION_S} s per level after ${WARMUP_S} s warm-up; load ${meta.loadavg.join(' ')}\n`,
  );

  let fpm: BenchPhpFpm | null = null;
  let pool: ConnectionPool | null = null;
  try {
    fpm = await startBenchPhpFpm({ workers: FPM_WORKERS });
    pool = new ConnectionPool(fpm.address, { connections: POOL_CONNECTIONS });

    // Sanity: the script answers as expected, and opcache is on in the pool being measured.
    const params = nginxLikeParams({ docRoot: fpm.docRoot, script: '/hello.php' });
    const request: FastCgiRequest = { params };
    const first = await pool.request(request);
    const body = first.stdout.subarray(headerEnd(first.stdout)).toString();
    if (body !== 'Hello, World!') throw new Error(`hello.php answered ${JSON.stringify(body)}`);
    const expectBytes = first.stdout.length;
    const check = await pool.request({ params: nginxLikeParams({ docRoot: fpm.docRoot, script: '/opcache-check.php' }) });
    const phpInfo = JSON.parse(check.stdout.subarray(headerEnd(check.stdout)).toString()) as Record<string, unknown>;
    console.log(`php: ${JSON.stringify(phpInfo)}; hello.php response ${expectBytes} bytes of STDOUT`);

    const warm = await closedLoop(pool, request, Math.max(...LEVELS, POOL_CONNECTIONS), WARMUP_S, expectBytes, fpm.pid);
    console.log(`warm-up: ${warm.requests} requests, ${warm.failed} failed\n`);

    const runs = new Map<number, LoopResult[]>(LEVELS.map((c) => [c, []]));
    for (let r = 1; r <= RUNS; r++) {
      for (const c of LEVELS) {
        const res = await closedLoop(pool, request, c, DURATION_S, expectBytes, fpm.pid);
        runs.get(c)!.push(res);
        const errs = res.failed > 0 ? ` FAILED ${res.failed} ${JSON.stringify(res.errors)}` : '';
        console.log(
          `  run ${r} c=${c}: ${res.requestsPerSec} req/s, p99 ${res.p99Ms} ms, client ${res.clientCpuUsPerReq} µs/req, php-fpm ${res.fpmCpuUsPerReq} µs/req${errs}`,
        );
      }
    }

    const summary = LEVELS.map((c) => {
      const list = runs.get(c)!;
      // The median run by throughput, reported whole so its figures belong together.
      const byRps = [...list].sort((a, b) => a.requestsPerSec - b.requestsPerSec);
      const mid = byRps[(byRps.length - 1) >> 1]!;
      return {
        concurrency: c,
        medianRun: mid,
        medianRequestsPerSec: round(median(list.map((x) => x.requestsPerSec)), 1),
        medianClientCpuUsPerReq: round(median(list.map((x) => x.clientCpuUsPerReq)), 1),
        medianFpmCpuUsPerReq: round(median(list.map((x) => x.fpmCpuUsPerReq)), 1),
        failed: list.reduce((n, x) => n + x.failed, 0),
      };
    });

    console.log('');
    printTable([
      ['concurrency', 'req/s', 'p50 ms', 'p99 ms', 'client µs/req', 'php-fpm µs/req', 'failed'],
      ...summary.map((s) => [
        String(s.concurrency),
        s.medianRequestsPerSec,
        s.medianRun.p50Ms,
        s.medianRun.p99Ms,
        s.medianClientCpuUsPerReq,
        s.medianFpmCpuUsPerReq,
        String(s.failed),
      ]),
    ]);

    const stats = pool.stats;
    const fpmRss = treePeakRssKb(fpm.pid);
    const file = writeResult('client', {
      bench: 'client',
      meta,
      tools,
      php: phpInfo,
      config: {
        durationS: DURATION_S,
        runs: RUNS,
        warmupS: WARMUP_S,
        levels: LEVELS,
        fpmWorkers: FPM_WORKERS,
        poolOptions: pool.options,
        script: 'hello.php',
        params: params.length,
        responseStdoutBytes: expectBytes,
        phpFpmConf: fpm.config,
      },
      summary,
      runs: Object.fromEntries([...runs].map(([c, list]) => [String(c), list])),
      pool: { connects: stats.connects, retries: stats.retries, completed: stats.completed, failed: stats.failed, limit: stats.limit, responder: stats.responder && { ...stats.responder, raw: Object.fromEntries(stats.responder.raw) } },
      clientMaxRssKb: process.resourceUsage().maxRSS,
      phpFpmPeakRssKb: fpmRss,
    });
    console.log(`\npool: ${stats.connects} sockets opened, ${stats.retries} retries, ${stats.failed} failed; client max RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
    console.log(`wrote ${file}`);
  } finally {
    if (pool) await pool.close();
    if (fpm) await fpm.stop();
  }
}

await main();
