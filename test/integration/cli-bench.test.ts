/**
 * Integration, real programs: `fastcgi-gateway bench` puts the gateway and nginx in front of a
 * private php-fpm (and the minimal responder), checks their answers, loads them with wrk and
 * the open-loop runner, and writes the JSON and HTML report. No figure is asserted beyond
 * "requests were answered": the machine is shared. A missing load generator is named with its
 * install command and nothing runs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnCli } from '../helpers/cli-serve.js';

interface Report {
  meta: { commit: string | null; php: string | null; nginx: string | null; cpus: number };
  summary: Array<{ workload: string; contender: string; concurrency: number; rps: number; cpuUsPerReq: number; flagged: string | null; vsNginxStock: number | null }>;
  constantRate: Array<{ workload: string; contender: string; rate: number; load: { requests: number; errors: number } }>;
  mismatches: string[];
}

describe('fastcgi-gateway bench', () => {
  const out = mkdtempSync(join(tmpdir(), 'fcgi-gw-bench-out-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  test('a short run measures every contender on every workload, the user app included, and writes JSON and HTML', { timeout: 170_000 }, async () => {
    const cli = spawnCli([
      'bench',
      '--rounds',
      '1',
      '--duration',
      '1',
      '--warmup',
      '0',
      '--workloads',
      'hello,upload-1m,front-controller,responder',
      '--contenders',
      'nginx-stock,gateway',
      '--concurrency',
      '4',
      '--app',
      'examples',
      '--url',
      '/hello/world',
      '--out',
      out,
    ]);
    const code = await cli.exited;
    assert.equal(code, 0, `bench exited ${code}:\n${cli.all()}`);
    assert.match(cli.stderr(), /hello c=4 {2}round 1\/1 {2}nginx-stock .* left/, 'live progress: workload, round, contender, time left');
    assert.match(cli.stdout(), /^workload\s+c\s+contender\s+req\/s/m, 'the table');
    const files = readdirSync(out).sort();
    assert.equal(files.length, 2, `JSON and HTML: ${files.join(', ')}`);
    assert.match(files[0]!, /^bench-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-[\w-]+-node[\d.]+-php[\d.]+-nginx[\d.]+-\d+cpu\.html$/);
    assert.equal(files[1], files[0]!.replace(/\.html$/, '.json'));
    const report = JSON.parse(readFileSync(join(out, files[1]!), 'utf8')) as Report;
    assert.deepEqual(report.mismatches, [], 'every contender gave the expected answers');
    const cells = report.summary.map((s) => `${s.workload}/${s.contender}`).sort();
    assert.deepEqual(cells, ['app /hello/world', 'front-controller', 'hello', 'responder', 'upload-1m'].flatMap((w) => [`${w}/gateway`, `${w}/nginx-stock`]));
    for (const s of report.summary) {
      assert.equal(s.flagged, null, `${s.workload}/${s.contender} flagged: ${s.flagged}`);
      assert.ok(s.rps > 0 && s.cpuUsPerReq > 0, `${s.workload}/${s.contender}: ${s.rps} req/s, ${s.cpuUsPerReq} µs/req`);
      assert.equal(typeof s.vsNginxStock, 'number', 'a ratio to nginx');
    }
    assert.equal(report.constantRate.length, 10, 'one constant-rate run per workload and contender');
    for (const r of report.constantRate) assert.ok(r.load.requests > 0 && r.rate > 0, `${r.workload}/${r.contender} at ${r.rate}/s answered ${r.load.requests}`);
    const html = readFileSync(join(out, files[0]!), 'utf8');
    assert.equal((html.match(/<svg /g) ?? []).length, 10, 'two charts per workload');
    assert.doesNotMatch(html, /<(script|link|img)\b/i, 'self-contained');
  });

  test('without wrk it says how to install it and measures nothing', async () => {
    const cli = spawnCli(['bench', '--workloads', 'hello', '--out', out], { ...process.env, WRK_BIN: '/nonexistent/wrk' });
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr(), /missing, so nothing was measured:\n {2}wrk: sudo apt-get install -y wrk/);
  });
});
