/**
 * The benchmark harness's pure parts: wrk's summary line, the round rotation, medians and
 * ratios to nginx, flags, the report's name, table and HTML, and the flags of the command.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { nodeFlagsOf } from '../../../src/bench/contenders.js';
import { parseWrkSummary, wrkScript } from '../../../src/bench/load.js';
import { type BenchMeta, formatTable, renderHtml, reportName } from '../../../src/bench/report.js';
import { MAX_WARMUP_S, rotation, summarize, type Turn, warmupExtensionS } from '../../../src/bench/run.js';
import { BUILTIN_WORKLOADS, postBody } from '../../../src/bench/workloads.js';
import { parseBenchArgs } from '../../../src/cli/bench.js';
import { CliError } from '../../../src/cli/exit-codes.js';

const load = (rps: number, extra: Partial<Turn['load']> = {}): Turn['load'] => ({
  requests: rps * 2,
  durationS: 2,
  rps,
  p50Ms: 1,
  p99Ms: 2,
  p999Ms: 3,
  maxMs: 4,
  non2xx: 0,
  errors: 0,
  generatorCpuS: 0.1,
  ...extra,
});

describe('wrk', () => {
  test('the Lua script sets the POST body, headers, and prints one JSON summary line', () => {
    const s = wrkScript(1_048_580, { cookie: 'a=1; b="2"' });
    assert.match(s, /wrk\.method = "POST"/);
    assert.match(s, /string\.sub\(string\.rep\("0123456789abcdef", 65537\), 1, 1048580\)/, 'the pattern cut to the length, as postBody');
    assert.match(s, /wrk\.headers\["cookie"\] = "a=1; b=\\"2\\""/);
    assert.match(s, /latency:percentile\(99\.9\)/);
    assert.doesNotMatch(wrkScript(undefined), /POST/);
  });
  test('the summary line becomes req/s, ms and error counts', () => {
    const out = 'Running 2s test\n  1 threads and 50 connections\nFCGW-BENCH {"requests":20000,"durationUs":2000000,"p50":1500,"p99":12000,"p999":40000,"max":51000,"status":3,"connect":1,"read":2,"write":0,"timeout":4}\n';
    const r = parseWrkSummary(out, 0.5);
    assert.deepEqual(r, { requests: 20000, durationS: 2, rps: 10000, p50Ms: 1.5, p99Ms: 12, p999Ms: 40, maxMs: 51, non2xx: 3, errors: 7, generatorCpuS: 0.5 });
    assert.throws(() => parseWrkSummary('no summary', 0), /printed no summary/);
  });
});

describe('rounds and summary', () => {
  test('round r runs the contenders rotated by r', () => {
    assert.deepEqual([0, 1, 2, 3].map((r) => rotation(['a', 'b', 'c'], r).join('')), ['abc', 'bca', 'cab', 'abc']);
  });
  test('medians over rounds, ratios to the two nginx configurations, CPU per request', () => {
    const t = (contender: Turn['contender'], round: number, rps: number, cpuS: number): Turn => ({ workload: 'hello', concurrency: 50, contender, round, load: load(rps), serverCpuS: cpuS, backendCpuS: 0.1, peakRssKb: 1024 * (10 + round), warmupS: 1 });
    const s = summarize([
      t('nginx-keepalive', 0, 10_000, 0.4),
      t('nginx-keepalive', 1, 12_000, 0.4),
      t('nginx-keepalive', 2, 11_000, 0.44),
      t('nginx-stock', 0, 8_000, 0.5),
      t('gateway', 0, 9_000, 0.9),
      t('gateway', 1, 5_000, 0.9),
      t('gateway', 2, 9_900, 0.99),
    ]);
    const ka = s.find((x) => x.contender === 'nginx-keepalive')!;
    const gw = s.find((x) => x.contender === 'gateway')!;
    assert.equal(ka.rps, 11_000);
    assert.equal(gw.rps, 9_000);
    assert.equal(gw.vsNginxKeepalive, 9_000 / 11_000);
    assert.equal(gw.vsNginxStock, 9_000 / 8_000);
    // CPU per request: 0.9 s / 18 000 requests = 50 µs; nginx 0.44 s / 22 000 = 20 µs (medians).
    assert.equal(Math.round(gw.cpuUsPerReq), 50);
    assert.equal(Math.round(ka.cpuUsPerReq), 20);
    assert.equal(gw.peakRssMiB, 12, 'the largest peak of the rounds');
    assert.equal(gw.flagged, null);
  });
  test('errors, non-2xx answers and wrong answers flag a contender', () => {
    const turn = (contender: Turn['contender'], l: Turn['load']): Turn => ({ workload: 'w', concurrency: 1, contender, round: 0, load: l, serverCpuS: 0, backendCpuS: null, peakRssKb: 0, warmupS: 1 });
    const s = summarize([turn('gateway', load(10, { errors: 2 })), turn('gateway-w2', load(10, { non2xx: 5 })), turn('nginx-stock', load(10))], new Map([['w nginx-stock', 'status 502']]));
    assert.deepEqual(
      s.map((x) => x.flagged),
      ['2 errors', '5 non-2xx', 'wrong answer: status 502'],
    );
    assert.equal(s[0]!.vsNginxStock, null, 'a flagged nginx is no yardstick');
    assert.ok(Number.isNaN(summarize([turn('gateway', load(0))])[0]!.cpuUsPerReq), 'no answers: no CPU per request');
  });
});

describe('report', () => {
  const meta: BenchMeta = { date: '2026-12-01T16:40:00.123Z', gateway: '0.1.0', commit: 'abc1234', node: 'v20.19.0', gatewayNodeFlags: ['--initial-old-space-size=64'], php: '8.2.29', nginx: '1.22.1', wrk: '4.1.0', cpus: 2, cpuModel: 'cpu', loadavg: [0.5, 0.4, 0.3] };
  const turns: Turn[] = [
    { workload: 'hello', concurrency: 50, contender: 'nginx-keepalive', round: 0, load: load(10_000), serverCpuS: 0.4, backendCpuS: 0.5, peakRssKb: 12_000, warmupS: 1 },
    { workload: 'hello', concurrency: 50, contender: 'gateway', round: 0, load: load(8_000), serverCpuS: 0.8, backendCpuS: 0.5, peakRssKb: 90_000, warmupS: 7 },
  ];
  const result = { turns, summary: summarize(turns), constantRate: [], mismatches: ['app /: gateway: body of 3 bytes differs <b>'], failures: [], backend: { php: 'php-fpm8.2', workers: 4, root: '/tmp/x' } };
  test('the file name carries date, commit, versions and cores', () => {
    assert.equal(reportName(meta), 'bench-2026-12-01T16-40-00Z-abc1234-node20.19.0-php8.2.29-nginx1.22.1-2cpu');
    assert.equal(reportName({ ...meta, commit: null }), 'bench-2026-12-01T16-40-00Z-v0.1.0-node20.19.0-php8.2.29-nginx1.22.1-2cpu');
  });
  test('the table has a row per contender with its ratio', () => {
    const lines = formatTable(result.summary).split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[3]!, /^hello\s+50\s+gateway\s+8,000\s+0\.80×/);
  });
  test('the HTML is self-contained: inline SVG and CSS, nothing fetched, text escaped', () => {
    const html = renderHtml(meta, result, { rounds: 1 });
    assert.match(html, /<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal((html.match(/<svg /g) ?? []).length, 2, 'a throughput and a CPU chart');
    assert.doesNotMatch(html, /<(script|link|img|iframe)\b|\burl\(|\bsrc=/i, 'nothing loaded from anywhere');
    assert.match(html, /differs &lt;b&gt;/);
    assert.match(html, /0\.80× nginx-keepalive/);
    assert.match(html, /Node v20\.19\.0 \(gateway: --initial-old-space-size=64\)/, 'the gateway\'s node flags are in the header');
  });
});

describe('gateway-base', () => {
  test("runs under its own build's node flags: those of its dist/node-flags.js, none before that file existed", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fcgi-flags-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    assert.deepEqual(await nodeFlagsOf(dir), []);
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(join(dir, 'node-flags.js'), "export const SERVER_NODE_FLAGS = ['--max-semi-space-size=8'];\n");
    assert.deepEqual(await nodeFlagsOf(dir), ['--max-semi-space-size=8']);
  });
});

describe('bench flags', () => {
  const base = { rounds: 3, duration: 5, warmup: 1, warmupRequests: 3000, concurrency: '1,50,256', fpmWorkers: 4, url: [] as string[], constantRate: true };
  test('defaults: every built-in workload, four contenders', () => {
    const p = parseBenchArgs(base, '/');
    assert.deepEqual(
      p.workloads.map((w) => w.name),
      BUILTIN_WORKLOADS.map((w) => w.name),
    );
    assert.deepEqual(p.contenders, ['nginx-keepalive', 'nginx-stock', 'gateway', 'gateway-w2']);
    assert.deepEqual(p.concurrency, [1, 50, 256]);
  });
  test('bad values are usage errors that name the choices', () => {
    assert.throws(() => parseBenchArgs({ ...base, workloads: 'hello,nope' }, '/'), (e: unknown) => e instanceof CliError && /unknown workload nope; choose from hello, json/.test(e.message));
    assert.throws(() => parseBenchArgs({ ...base, contenders: 'apache' }, '/'), /unknown contender "apache"/);
    assert.throws(() => parseBenchArgs({ ...base, rounds: 0 }, '/'), /--rounds must be a whole number ≥ 1/);
    assert.throws(() => parseBenchArgs({ ...base, warmupRequests: -1 }, '/'), /--warmup-requests must be a whole number ≥ 0/);
    assert.throws(() => parseBenchArgs({ ...base, concurrency: '10,x' }, '/'), /--concurrency/);
    assert.throws(() => parseBenchArgs({ ...base, url: ['/'] }, '/'), /--url needs --app/);
    assert.throws(() => parseBenchArgs({ ...base, app: '/nonexistent-dir-xyz', url: ['/'] }, '/'), /is not a directory/);
  });
  test('the warm-up is extended until enough requests, within its cap, by what the first part\'s rate says', () => {
    assert.equal(warmupExtensionS(6000, 6000, 1, 3000), 0, 'a fast workload: 1 s was enough');
    assert.equal(warmupExtensionS(450, 450, 1, 3000), 6, '2,550 more at 450/s: 6 s');
    assert.equal(warmupExtensionS(20, 20, 1, 3000), MAX_WARMUP_S - 1, 'never past the cap in all');
    assert.equal(warmupExtensionS(0, 0, 1, 3000), 0, 'no rate (every request failed): nothing to extrapolate');
    assert.equal(warmupExtensionS(450, 450, 1, 0), 0, '--warmup-requests 0: seconds only');
  });
  test('the POST body is the pattern wrk sends', () => {
    assert.equal(postBody(20).toString(), '0123456789abcdef0123');
  });
});
