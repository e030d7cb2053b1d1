/**
 * Integration, real php-fpm, the real CLI: `fastcgi-gateway dev` in a temp project with
 * public/index.php. It serves / and a front-controller route, shows an edit on the next
 * request, passes PHP's warnings through inline, restarts a php-fpm that was killed, removes
 * php-fpm and its temp dir on SIGINT, cleans up after a dev run that was SIGKILLed, and says
 * how to install php-fpm when there is none.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { type Dev, startDev } from '../helpers/cli-serve.js';
import { alive, childrenOf, signalTree } from '../helpers/procs.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const LIVE_TAG = '\n<script src="/__fastcgi-gateway/live.js" async></script>\n';
/** One GET; `text` without the live-reload tag that dev appends to HTML (PHP's default type). */
const get = async (url: string): Promise<{ status: number; text: string; raw: string }> => {
  const r = await request(url, { headers: { connection: 'close' } });
  const raw = await r.body.text();
  return { status: r.statusCode, text: raw.replace(LIVE_TAG, ''), raw };
};

let project: string;
const stateOf = (dir: string): { devPid: number; fpmPid: number; fpmDir: string; devDir: string } => {
  const file = join(tmpdir(), 'fastcgi-gateway-dev', `${createHash('sha1').update(realpathSync(dir)).digest('hex').slice(0, 16)}.json`);
  return JSON.parse(readFileSync(file, 'utf8'));
};

before(() => {
  project = mkdtempSync(join(tmpdir(), 'fcgi-gw-devproj-'));
  mkdirSync(join(project, 'public'));
  writeFileSync(
    join(project, 'public', 'index.php'),
    '<?php $p = parse_url($_SERVER["REQUEST_URI"], PHP_URL_PATH); if ($p === "/warn") trigger_error("careful here", E_USER_WARNING); echo "front: $p env=", getenv("DEV_TEST_VAR") ?: "-", " limit=", ini_get("memory_limit");',
  );
  writeFileSync(join(project, 'public', 'page.php'), '<?php echo "version 1";');
  writeFileSync(join(project, 'public', 'html.php'), '<?php echo "<!doctype html><html><head><link rel=stylesheet href=/style.css></head><body>hi</body></html>";');
  writeFileSync(join(project, 'public', 'api.php'), '<?php header("Content-Type: application/json"); echo "{}";');
  writeFileSync(join(project, 'public', 'static.html'), '<html><body>static</body></html>');
  writeFileSync(join(project, 'public', 'style.css'), 'body { color: red }');
  mkdirSync(join(project, 'vendor'));
  writeFileSync(join(project, 'vendor', 'lib.php'), '<?php // a dependency');
  // A php.ini in the project is applied to the pool.
  writeFileSync(join(project, 'php.ini'), '; project settings\nmemory_limit = 77M\n');
});
after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('fastcgi-gateway dev', () => {
  let dev: Dev;
  before(async () => {
    dev = await startDev([project, '--listen', '127.0.0.1:0'], { ...process.env, DEV_TEST_VAR: 'from-the-shell' });
  });
  after(async () => {
    // Normally the SIGINT test has stopped it. If not, stop it the same way; a SIGKILL would
    // leave php-fpm's workers behind (a killed master does not take them along).
    if (dev?.child.exitCode !== null || dev.child.signalCode !== null) return;
    dev.child.kill('SIGINT');
    const stopped = await Promise.race([dev.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    if (!stopped) {
      const { fpmPid } = stateOf(project);
      signalTree(dev.child.pid!, 'SIGKILL');
      try {
        process.kill(-fpmPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });

  test('serves / and a front-controller route from public/, with the environment and DIR/php.ini', async () => {
    assert.match(dev.stderr(), /serving .*\/public \(front controller \/index\.php\)/);
    const home = await get(`${dev.url}/`);
    assert.deepEqual([home.status, home.text], [200, 'front: / env=from-the-shell limit=77M']);
    const route = await get(`${dev.url}/products/42`);
    assert.deepEqual([route.status, route.text], [200, 'front: /products/42 env=from-the-shell limit=77M']);
    await dev.waitFor(/ 200 GET \/products\/42 \d+B [\d.]+ms upstream [\d.]+ms/);
  });

  test('an edit to a PHP file shows on the next request', async () => {
    assert.equal((await get(`${dev.url}/page.php`)).text, 'version 1');
    // opcache compares mtimes in whole seconds: an editor's save comes later than that.
    await new Promise((r) => setTimeout(r, 1100));
    writeFileSync(join(project, 'public', 'page.php'), '<?php echo "version 2";');
    assert.equal((await get(`${dev.url}/page.php`)).text, 'version 2');
  });

  test("PHP's warnings appear inline, on the page (display_errors) and in the log", async () => {
    const from = dev.mark();
    const page = await get(`${dev.url}/warn`);
    assert.match(page.text, /Warning.*careful here/);
    await dev.waitFor(/PHP PHP Warning: {2}careful here in .*index\.php on line 1/, from);
  });

  test('live reload: HTML answers get the script; a tab is told to reload after a PHP edit and to swap stylesheets after a CSS one', async () => {
    const tag = '<script src="/__fastcgi-gateway/live.js" async></script>';
    const page = await request(`${dev.url}/html.php`);
    const html = await page.body.text();
    assert.ok(html.startsWith('<!doctype html><html>') && html.includes(tag), html);
    assert.equal(page.headers['content-length'], undefined, 'the length no longer holds: chunked');
    const stat = await get(`${dev.url}/static.html`);
    assert.equal(stat.raw, `<html><body>static</body></html>${LIVE_TAG}`, 'static HTML too');
    assert.equal((await get(`${dev.url}/api.php`)).raw, '{}', 'JSON untouched');
    const js = await get(`${dev.url}/__fastcgi-gateway/live.js`);
    assert.match(js.text, /new EventSource\("\/__fastcgi-gateway\/live"\)/);
    // A tab's EventSource, read by hand.
    const events: string[] = [];
    const stream = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`${dev.url}/__fastcgi-gateway/live`, resolve).on('error', reject);
    });
    assert.equal(stream.headers['content-type'], 'text/event-stream');
    stream.setEncoding('utf8');
    let buf = '';
    stream.on('data', (c: string) => {
      buf += c;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        events.push(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    });
    try {
      const until = async (re: RegExp, from = 0): Promise<string> => {
        for (let n = 0; n < 500; n++) {
          const e = events.slice(from).find((x) => re.test(x));
          if (e) return e;
          await new Promise((r) => setTimeout(r, 20));
        }
        throw new Error(`no event ${re} in ${JSON.stringify(events)}`);
      };
      // A dependency's change is not the project's: nothing happens for vendor/.
      writeFileSync(join(project, 'vendor', 'lib.php'), '<?php // changed');
      writeFileSync(join(project, 'public', 'page.php'), '<?php echo "version 3";');
      const reload = await until(/^event: reload/m);
      assert.match(reload, /page\.php/);
      assert.doesNotMatch(reload, /vendor/);
      // Let the first edit's events settle: the CSS edit is a separate save.
      await new Promise((r) => setTimeout(r, 300));
      const mark = events.length;
      writeFileSync(join(project, 'public', 'style.css'), 'body { color: blue }');
      assert.match(await until(/^event: (css|reload)/m, mark), /^event: css\ndata: \["\/style\.css"\]$/);
    } finally {
      stream.destroy();
    }
  });

  test('php-fpm killed: it is started again and serves', async () => {
    const { fpmPid } = stateOf(project);
    const from = dev.mark();
    process.kill(fpmPid, 'SIGKILL');
    await dev.waitFor(new RegExp(`php-fpm ${fpmPid} exited \\(killed\\); starting it again in \\d+ ms`), from);
    await dev.waitFor(/php-fpm (\d+) started again/, from);
    assert.notEqual(stateOf(project).fpmPid, fpmPid);
    assert.equal((await get(`${dev.url}/`)).status, 200);
  });

  test('SIGINT: php-fpm and its workers are gone, the temp dirs removed, exit 0', async () => {
    const state = stateOf(project);
    const pids = [state.fpmPid, ...childrenOf(state.fpmPid)];
    assert.ok(pids.length > 1, 'a master and its workers');
    dev.child.kill('SIGINT');
    assert.equal(await dev.exited, 0, dev.stderr());
    for (const p of pids) assert.equal(alive(p), false, `php-fpm process ${p} is gone`);
    assert.equal(existsSync(state.devDir), false);
    assert.equal(existsSync(state.fpmDir), false);
  });
});

describe('fastcgi-gateway dev, after a SIGKILL and without php-fpm', () => {
  test('the next run stops the php-fpm a killed run left behind', async () => {
    const first = await startDev([project, '--listen', '127.0.0.1:0']);
    const orphan = stateOf(project);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(alive(orphan.fpmPid), true, 'php-fpm outlives a SIGKILLed dev');
    const second = await startDev([project, '--listen', '127.0.0.1:0']);
    try {
      assert.match(second.stderr(), new RegExp(`stopping php-fpm ${orphan.fpmPid}, left running by a dev run \\(pid ${first.child.pid}\\) that was killed`));
      assert.equal(alive(orphan.fpmPid), false);
      assert.equal(existsSync(orphan.fpmDir), false);
      assert.equal((await get(`${second.url}/`)).status, 200);
    } finally {
      second.child.kill('SIGINT');
      await second.exited;
    }
  });

  test('without --listen, a taken port 8000 moves it to the next free one, and says so', async () => {
    // Hold 8000 (unless something else already does: then it is taken either way).
    const holder = net.createServer();
    await new Promise<void>((r) => holder.once('error', () => r()).listen(8000, '127.0.0.1', () => r()));
    try {
      const dev = await startDev([project]);
      try {
        const m = /port 8000 is taken; using (\d+)/.exec(dev.stderr());
        assert.ok(m, dev.stderr());
        assert.equal(dev.url, `http://127.0.0.1:${m[1]}`);
        assert.equal((await get(`${dev.url}/`)).status, 200);
      } finally {
        dev.child.kill('SIGINT');
        await dev.exited;
      }
    } finally {
      holder.close();
    }
  });

  test('--no-live: no script in HTML, no event stream', async () => {
    const dev = await startDev([project, '--listen', '127.0.0.1:0', '--no-live']);
    try {
      assert.doesNotMatch(dev.stderr(), /live reload on/);
      assert.equal((await get(`${dev.url}/html.php`)).raw.includes('live.js'), false);
      const r = await request(`${dev.url}/__fastcgi-gateway/live`);
      await r.body.text();
      assert.notEqual(r.headers['content-type'], 'text/event-stream');
    } finally {
      dev.child.kill('SIGINT');
      await dev.exited;
    }
  });

  test('PHP_FPM_BIN pointing nowhere: the install command, exit 1', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'dev', project], { cwd: ROOT, env: { ...process.env, PHP_FPM_BIN: '/nonexistent/php-fpm' }, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /PHP_FPM_BIN=\/nonexistent\/php-fpm does not exist; install php-fpm \(sudo apt-get install -y php8\.2-fpm\)/);
  });
});
