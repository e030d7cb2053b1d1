/**
 * Integration, real php-fpm, the real CLI: `serve --config` with workers (node:cluster) and in
 * one process. Requests spread over the workers; a killed worker is replaced; SIGHUP under a
 * steady load rolls the workers (or swaps the handler) ten times with no failed request and
 * the change visible; an invalid config is refused while the old one serves; SIGTERM with
 * requests in flight lets them finish and exits 0 with every worker gone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Pool, request } from 'undici';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import { type ServeProcess, startServe } from '../helpers/cli-serve.js';
import { GATEWAY_ROOT_FIXTURE, waitFor } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';
import { alive, argvOf } from '../helpers/procs.js';

let fpm: PhpFpm;
let dir: string;

before(async () => {
  fpm = await startPhpFpm({ workers: 6 });
  dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-cluster-'));
});
after(async () => {
  await fpm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A config file whose answers carry `X-Generation: generation`. */
function writeConfig(file: string, generation: number, workers: number): void {
  writeFileSync(
    file,
    `listen: ["127.0.0.1:0"]
workers: ${workers}
accessLog: json
upstreams:
  php: { servers: ["${fpm.address}"], connections: 4 }
sites:
  - root: ${GATEWAY_ROOT_FIXTURE}
    routes:
      - path: /
        php: { upstream: php }
        headers: { set: { X-Generation: "${generation}" } }
`,
  );
}

/** Several client loops on kept-alive connections until stopped: every failure is counted. */
function loadLoop(url: string, loops: number): { stop(): Promise<{ ok: number; failures: string[] }> } {
  const pool = new Pool(url, { connections: loops, pipelining: 1 });
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loop = async (): Promise<void> => {
    while (running) {
      try {
        const res = await pool.request({ path: '/hello.php', method: 'GET' });
        const text = await res.body.text();
        if (res.statusCode === 200 && text === 'hello from php') ok++;
        else failures.push(`status ${res.statusCode}: ${text.slice(0, 80)}`);
      } catch (err) {
        failures.push(`${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`);
      }
    }
  };
  const all = Promise.all(Array.from({ length: loops }, loop));
  return {
    async stop() {
      running = false;
      await all;
      await pool.close();
      return { ok, failures };
    },
  };
}

const generationOf = async (url: string): Promise<string> => {
  const res = await request(`${url}/hello.php`, { headers: { connection: 'close' } });
  await res.body.text();
  return String(res.headers['x-generation']);
};

/** Ten reloads under load, each with a new generation; returns what the load loop saw. */
async function reloadTenTimes(gw: ServeProcess, file: string, workers: number, reload: () => Promise<void> | void): Promise<{ ok: number; failures: string[] }> {
  const load = loadLoop(gw.urls[0]!, 4);
  try {
    for (let g = 1; g <= 10; g++) {
      writeConfig(file, g, workers);
      const from = gw.stderr().length;
      await reload();
      await gw.waitForStderr(/reloaded/, 60_000, from);
      assert.equal(await generationOf(gw.urls[0]!), String(g), `generation ${g} serves after its reload`);
    }
  } finally {
    // Let the load run on the last config a moment, across the old workers' drain.
    await new Promise((r) => setTimeout(r, 300));
  }
  return load.stop();
}

describe('serve --config with workers: 2', () => {
  let gw: ServeProcess;
  let file: string;
  before(async () => {
    file = join(dir, 'cluster.yaml');
    writeConfig(file, 0, 2);
    gw = await startServe(['--config', file]);
  });
  after(async () => {
    await gw?.kill();
  });

  test('two workers share the listener; requests are answered by both', async () => {
    assert.equal(gw.workers().length, 2);
    // Forked workers run under the primary's node flags (src/node-flags.ts), as the command starts it.
    for (const w of gw.workers()) for (const f of SERVER_NODE_FLAGS) assert.ok(argvOf(w).includes(f), `worker ${w} runs with ${f}: ${argvOf(w).join(' ')}`);
    // Fresh connections, spread by the primary round robin; the access log names the worker.
    await Promise.all(Array.from({ length: 60 }, () => generationOf(gw.urls[0]!)));
    await waitFor(() => new Set(gw.logLines().map((l) => l['worker'])).size >= 2, 'access-log lines from two worker pids', 10_000);
    const pids = new Set(gw.logLines().map((l) => l['worker']));
    for (const p of pids) assert.ok(gw.workers().includes(p as number), `${String(p)} is a worker of this primary`);
  });

  test('a killed worker is replaced, and the event is logged', async () => {
    const [victim, other] = gw.workers() as [number, number];
    const from = gw.stderr().length;
    process.kill(victim, 'SIGKILL');
    await gw.waitForStderr(new RegExp(`worker ${victim} \\(slot \\d\\) exited unexpectedly \\(SIGKILL\\); starting a new one in \\d+ ms`), 10_000, from);
    await gw.waitForStderr(new RegExp(`worker (\\d+) \\(slot \\d\\) started, replacing ${victim}`), 30_000, from);
    const now = gw.workers();
    assert.equal(now.length, 2);
    assert.ok(now.includes(other) && !now.includes(victim));
    assert.equal(await generationOf(gw.urls[0]!), '0');
  });

  test('SIGHUP under load, ten times: no request fails, and each new config serves', async () => {
    const seen = await reloadTenTimes(gw, file, 2, () => gw.signal('SIGHUP'));
    assert.deepEqual(seen.failures, [], `failures across 10 reloads (${seen.ok} requests succeeded)`);
    assert.ok(seen.ok > 50, `the load ran throughout (${seen.ok} requests)`);
    await waitFor(() => gw.workers().length === 2, 'the old workers to drain and exit', 30_000);
  });

  test('an invalid config is refused with its error, and the running one keeps serving', async () => {
    writeFileSync(file, `listen: ["127.0.0.1:0"]\nworkers: 2\nsites: [{ root: /srv, routes: [{ path: /, php: { upstream: nowhere } }] }]\n`);
    const before = gw.workers();
    const from = gw.stderr().length;
    gw.signal('SIGHUP');
    const m = await gw.waitForStderr(/reload refused, the running config keeps serving: (.*)\n/, 30_000, from);
    assert.match(m[1]!, /no upstream named "nowhere"/);
    assert.deepEqual(gw.workers(), before, 'no worker was replaced');
    assert.equal(await generationOf(gw.urls[0]!), '10');
  });

  test('SIGTERM with requests in flight: each finishes, then every worker is gone and the exit code is 0', async () => {
    const workers = gw.workers();
    const inFlight = Array.from({ length: 4 }, () => request(`${gw.urls[0]}/sleep.php?ms=1500`).then(async (r) => ({ status: r.statusCode, text: await r.body.text() })));
    await new Promise((r) => setTimeout(r, 400));
    gw.signal('SIGTERM');
    const answers = await Promise.all(inFlight);
    assert.deepEqual(answers, Array.from({ length: 4 }, () => ({ status: 200, text: 'slept' })));
    assert.equal(await gw.exited, 0, gw.stderr());
    assert.ok(workers.every((p) => !alive(p)), 'no worker left behind');
    assert.match(gw.stderr(), /stopped: every worker drained and exited/);
  });
});

describe('serve --config in one process', () => {
  test('ten reloads under load (SIGHUP, and `reload --pid-file`): the handler is swapped in place, no request fails', async () => {
    const file = join(dir, 'single.yaml');
    const pidFile = join(dir, 'gw.pid');
    writeConfig(file, 0, 1);
    const gw = await startServe(['--config', file, '--pid-file', pidFile]);
    try {
      assert.deepEqual(gw.workers(), [], 'no workers: one process');
      const cli = promisify(execFile);
      let n = 0;
      const seen = await reloadTenTimes(gw, file, 1, async () => {
        // The last one through the command an operator (or systemd's ExecReload) runs.
        if (++n < 10) gw.signal('SIGHUP');
        else await cli(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'reload', '--pid-file', pidFile]);
      });
      assert.deepEqual(seen.failures, [], `failures across 10 reloads (${seen.ok} requests succeeded)`);
      assert.ok(seen.ok > 50, `the load ran throughout (${seen.ok} requests)`);
      gw.signal('SIGTERM');
      assert.equal(await gw.exited, 0);
      assert.equal(alive(gw.pid), false);
    } finally {
      await gw.kill();
    }
  });
});
