/**
 * Integration, real php-fpm: the launcher behind `npm start` generates a config, starts php-fpm,
 * serves FastCGI requests through ConnectionPool, surfaces exits and startup failures with the
 * log tail, and stop() leaves no process and no temp dir behind.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { findPhpFpm, startPhpFpm, type PhpFpmLaunchOptions, type PhpFpmProcess } from '../../src/fpm/launcher.js';
import { ConnectionPool, type GatewayError } from '../../src/index.js';
import { scriptParams } from '../helpers/php-fpm.js';
import { waitFor } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { alive, childrenOf } from '../helpers/procs.js';


/** A private parent for the launcher's temp dir, so the test can see that nothing is left in it. */
function parentDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'fpm-launcher-test-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function launch(t: TestContext, options: PhpFpmLaunchOptions = {}): Promise<PhpFpmProcess> {
  const fpm = await startPhpFpm({ workers: 2, ...options });
  t.after(() => fpm.stop());
  return fpm;
}

function body(stdout: Buffer): string {
  const i = stdout.indexOf('\r\n\r\n');
  assert.ok(i >= 0, `no CGI head in ${JSON.stringify(stdout.toString())}`);
  return stdout.subarray(i + 4).toString('utf8');
}


describe('findPhpFpm', () => {
  test('PHP_FPM_BIN wins when it exists, and a missing one names the install command', () => {
    assert.equal(findPhpFpm({ PHP_FPM_BIN: '/bin/sh', PATH: '' }), '/bin/sh');
    assert.throws(
      () => findPhpFpm({ PHP_FPM_BIN: '/nonexistent/php-fpm9', PATH: '' }),
      (err: Error) => err.message.includes('/nonexistent/php-fpm9') && err.message.includes('sudo apt-get install -y php8.2-fpm'),
    );
  });

  test('picks the newest php-fpm* on PATH before /usr/sbin', (t) => {
    const d = mkdtempSync(join(tmpdir(), 'fpm-path-'));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    for (const n of ['php-fpm', 'php-fpm7.4', 'php-fpm8.10', 'php-fpm8.2', 'php-fpm-helper']) writeFileSync(join(d, n), '');
    assert.equal(findPhpFpm({ PATH: d }), join(d, 'php-fpm8.10'));
  });
});

describe('startPhpFpm with real php-fpm', () => {
  // Without php-fpm every test here fails with findPhpFpm's install hint: no silent skip.
  before(() => void findPhpFpm());
  test('serves a fixture over its unix socket; stop() ends master and workers and removes the temp dir', async (t) => {
    const parent = parentDir(t);
    process.env['LAUNCHER_TEST_LEAK'] = 'visible-to-node';
    t.after(() => delete process.env['LAUNCHER_TEST_LEAK']);
    const fpm = await launch(t, { tmpDir: parent, phpAdminValues: { memory_limit: '77M' } });
    assert.match(fpm.address, /^unix:\//);
    assert.ok(fpm.address.startsWith(`unix:${fpm.dir}/`), `${fpm.address} is inside ${fpm.dir}`);
    assert.ok(fpm.dir.startsWith(parent));
    assert.ok(alive(fpm.pid));
    // The socket accepts as soon as the master listens; the workers may still be forking.
    await waitFor(() => childrenOf(fpm.pid).length === 2, 'pm = static to start every worker');
    const workers = childrenOf(fpm.pid);
    assert.equal(workers.length, 2, 'pm = static starts every worker');

    const pool = new ConnectionPool(fpm.address, { connections: 2 });
    t.after(() => pool.close());
    const pidRes = await pool.request({ params: scriptParams('pid.php') });
    assert.equal(pidRes.appStatus, 0);
    assert.ok(workers.includes(Number(body(pidRes.stdout))), 'the answer came from one of the workers');

    const keys = 'upload_max_filesize,post_max_size,upload_tmp_dir,memory_limit';
    const iniRes = await pool.request({ params: scriptParams('launcher-ini.php', { QUERY_STRING: `keys=${keys}` }) });
    const info = JSON.parse(body(iniRes.stdout)) as { ini: Record<string, string>; getenv: Record<string, string> };
    assert.deepEqual(info.ini, {
      upload_max_filesize: '100M',
      post_max_size: '100M',
      upload_tmp_dir: join(fpm.dir, 'uploads'),
      memory_limit: '77M',
    });
    assert.equal(info.getenv['LAUNCHER_TEST_LEAK'], undefined, 'clear_env keeps the parent environment out');

    const ping = await pool.request({ params: { SCRIPT_NAME: '/ping', SCRIPT_FILENAME: '/ping', REQUEST_METHOD: 'GET', QUERY_STRING: '' } });
    assert.equal(body(ping.stdout), 'pong');
    await pool.close();

    await fpm.stop();
    assert.equal(await fpm.exited, 0);
    assert.equal(alive(fpm.pid), false);
    assert.deepEqual(workers.filter(alive), []);
    assert.equal(existsSync(fpm.dir), false);
    assert.deepEqual(readdirSync(parent), []);
    assert.match(fpm.logTail(), /ready to handle connections/, 'the log tail outlives the temp dir');
    await fpm.stop(); // idempotent
  });

  test('listens on 127.0.0.1:PORT, and a second launcher on that port fails with a clear message', async (t) => {
    const port = await freePort();
    const fpm = await launch(t, { listen: `127.0.0.1:${port}`, statusPath: null, pingPath: null });
    assert.equal(fpm.address, `127.0.0.1:${port}`);
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const res = await pool.request({ params: scriptParams('hello.php') });
    assert.equal(body(res.stdout), 'Hello, World!');
    await assert.rejects(startPhpFpm({ listen: `127.0.0.1:${port}` }), /127\.0\.0\.1:\d+ is already in use/);
  });

  test('onLog receives php-fpm notices and worker stderr lines', async (t) => {
    const marker = `launcher-marker-${process.pid}-${Date.now()}`;
    const lines: string[] = [];
    let seen!: () => void;
    const markerSeen = new Promise<void>((r) => (seen = r));
    const fpm = await launch(t, {
      onLog: (line) => {
        lines.push(line);
        if (line.includes(marker)) seen();
      },
    });
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const res = await pool.request({ params: scriptParams('launcher-log.php', { QUERY_STRING: `marker=${marker}` }) });
    assert.equal(body(res.stdout), 'logged');
    assert.equal(res.stderr.length, 0, 'php://stderr goes to the php-fpm log, not FCGI_STDERR');
    await markerSeen;
    assert.ok(lines.some((l) => l.includes('ready to handle connections')), lines.join('\n'));
    assert.ok(lines.some((l) => l.trim() === marker), 'decorate_workers_output = no: the line arrives undecorated');
  });

  test('exited resolves when php-fpm dies on its own; stop() still cleans up', async (t) => {
    const parent = parentDir(t);
    const fpm = await launch(t, { tmpDir: parent });
    const workers = childrenOf(fpm.pid);
    process.kill(fpm.pid, 'SIGTERM'); // the process this test started, as if killed from outside
    assert.equal(await fpm.exited, 0);
    assert.match(fpm.logTail(), /Terminating|exiting/);
    await fpm.stop();
    assert.deepEqual(workers.filter(alive), []);
    assert.deepEqual(readdirSync(parent), []);
  });

  test('stop() ends php-fpm while a worker is busy in a long request', async (t) => {
    const parent = parentDir(t);
    const fpm = await launch(t, { tmpDir: parent, workers: 1, stopGrace: 300 });
    const workers = childrenOf(fpm.pid);
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.destroy());
    let started!: () => void;
    const firstChunk = new Promise<void>((r) => (started = r));
    const outcome = new Promise<GatewayError | 'ended'>((resolve) => {
      pool.dispatch(
        { params: scriptParams('launcher-busy.php', { QUERY_STRING: 's=600' }) },
        { onStdout: () => started(), onEnd: () => resolve('ended'), onError: (err) => resolve(err) },
      );
    });
    await firstChunk;
    await fpm.stop();
    const end = await outcome;
    // SIGQUIT may interrupt the script's sleep() so that it finishes early, or the worker is
    // killed after stopGrace: either way the request settles and nothing is left running.
    assert.ok(end === 'ended' || end.code === 'GW_ERR_UPSTREAM_CLOSED', `settled with ${end === 'ended' ? end : end.code}`);
    assert.equal(alive(fpm.pid), false);
    assert.deepEqual(workers.filter(alive), []);
    assert.deepEqual(readdirSync(parent), []);
  });

  test('php-fpm exiting during startup rejects with its own message from the log', async (t) => {
    const parent = parentDir(t);
    await assert.rejects(
      startPhpFpm({ tmpDir: parent, workers: 1, statusPath: 'status' }),
      (err: Error) => {
        assert.match(err.message, /exited during startup \(code 78\)/);
        assert.match(err.message, /the status path 'status' must start with a '\/'/);
        return true;
      },
    );
    assert.deepEqual(readdirSync(parent), []);
  });
});

describe('startPhpFpm fault injection', () => {
  test('a binary that never opens the socket is killed after startTimeout, with its output in the error', async (t) => {
    const parent = parentDir(t);
    const fake = join(parent, 'fake-fpm.sh');
    writeFileSync(fake, '#!/bin/sh\necho "fake fpm pid $$ args $*" >&2\nexec sleep 600\n');
    chmodSync(fake, 0o755);
    let message = '';
    await assert.rejects(startPhpFpm({ bin: fake, tmpDir: parent, startTimeout: 300 }), (err: Error) => {
      message = err.message;
      return /did not accept connections on unix:\/.*php-fpm\.sock within 300 ms/.test(err.message);
    });
    const m = /fake fpm pid (\d+) args --nodaemonize --fpm-config \S+php-fpm\.conf/.exec(message);
    assert.ok(m, message);
    assert.equal(alive(Number(m[1])), false, 'the spawned process was killed');
    assert.deepEqual(readdirSync(parent), ['fake-fpm.sh']);
  });

  test('stop() SIGKILLs the process group when the master ignores SIGQUIT past stopGrace', async (t) => {
    const parent = parentDir(t);
    // A master that opens the configured socket, ignores SIGQUIT and has a "worker" child.
    const fake = join(parent, 'stubborn-fpm.mjs');
    writeFileSync(
      fake,
      [
        `#!${process.execPath}`,
        "import { readFileSync } from 'node:fs';",
        "import net from 'node:net';",
        "import { spawn } from 'node:child_process';",
        "const conf = readFileSync(process.argv[process.argv.indexOf('--fpm-config') + 1], 'utf8');",
        "const listen = /^listen = (.*)$/m.exec(conf)[1];",
        "process.on('SIGQUIT', () => console.error('ignoring SIGQUIT'));",
        "const worker = spawn('sleep', ['600'], { stdio: 'ignore' });",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the source of a script, with its own template literal
        "net.createServer((s) => s.destroy()).listen(listen, () => console.error(`worker pid ${worker.pid}`));",
        '',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);
    const lines: string[] = [];
    let reportWorker!: (pid: number) => void;
    const workerPid = new Promise<number>((r) => (reportWorker = r));
    const fpm = await startPhpFpm({
      bin: fake,
      tmpDir: parent,
      stopGrace: 200,
      onLog: (line) => {
        lines.push(line);
        const m = /^worker pid (\d+)$/.exec(line);
        if (m) reportWorker(Number(m[1]));
      },
    });
    t.after(() => fpm.stop());
    const worker = await workerPid;
    assert.ok(alive(worker));
    await fpm.stop();
    assert.equal(await fpm.exited, null, 'ended by a signal');
    assert.ok(lines.includes('ignoring SIGQUIT'), 'SIGQUIT was tried first');
    assert.equal(alive(fpm.pid), false);
    assert.equal(alive(worker), false, 'the group kill reached the child');
    assert.deepEqual(readdirSync(parent), ['stubborn-fpm.mjs']);
  });

  test('a missing binary rejects without leaving a temp dir', async (t) => {
    const parent = parentDir(t);
    await assert.rejects(startPhpFpm({ bin: join(parent, 'nope'), tmpDir: parent }), /could not be started: .*ENOENT/);
    assert.deepEqual(readdirSync(parent), []);
  });

  test('invalid options throw before anything starts', async () => {
    await assert.rejects(startPhpFpm({ workers: 0 }), /workers must be an integer ≥ 1/);
    await assert.rejects(startPhpFpm({ listen: 'localhost:9000' as `127.0.0.1:${number}` }), /listen must be 'unix' or '127\.0\.0\.1:PORT'/);
    await assert.rejects(startPhpFpm({ phpAdminValues: { memory_limit: '1M\nuser = nobody' } }), /single-line/);
    await assert.rejects(startPhpFpm({ phpAdminValues: { 'a]b': '1' } }), /not an ini name/);
  });
});
