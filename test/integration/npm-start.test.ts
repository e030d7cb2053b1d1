/**
 * Integration, real php-fpm: `npm start` (scripts/start.mjs, which runs `fastcgi-gateway dev
 * examples/public`) serves the example app through a private php-fpm — front controller, static
 * assets, form and upload — and stops both cleanly on SIGINT; it exits 1 when the port it is
 * given is taken, and starts php-fpm again when it dies.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent, FormData, request } from 'undici';
import { findPhpFpm } from '../../src/fpm/launcher.js';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';
import { freePort } from '../helpers/ports.js';
import { alive, argvOf, childrenOf } from '../helpers/procs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PUBLIC = `${ROOT}/examples/public`;




interface Started {
  child: ChildProcess;
  url: string;
  fpmPid: number;
  /** The dev server's temp dirs (its socket dir, php-fpm's config dir). */
  dirs: readonly string[];
  exit: Promise<number | null>;
  output: () => string;
}

/** Spawn `node scripts/start.mjs` and collect its output; `exit` resolves with its exit code. */
function spawnStart(t: TestContext, port: number): { child: ChildProcess; exit: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, ['scripts/start.mjs'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await exit;
    }
  });
  return { child, exit, output: () => out };
}

/** Start and wait for the URL line (or fail with the output when the script exits first). */
async function start(t: TestContext, port: number): Promise<Started> {
  const s = spawnStart(t, port);
  const ready = new Promise<Started>((resolve, reject) => {
    const check = (): void => {
      const url = /^ {2}(http:\/\/127\.0\.0\.1:\d+)$/m.exec(s.output());
      if (url) {
        s.child.stderr?.off('data', check);
        const state = devState();
        resolve({ ...s, url: url[1]!, fpmPid: state.fpmPid, dirs: [state.devDir, state.fpmDir] });
      }
    };
    s.child.stderr?.on('data', check);
    void s.exit.then((code) => reject(new Error(`npm start exited (${code}) before printing its URL:\n${s.output()}`)));
  });
  return ready;
}

/** What the dev server records for examples/public while it runs (its pids and temp dirs). */
function devState(): { fpmPid: number; fpmDir: string; devDir: string } {
  const file = join(tmpdir(), 'fastcgi-gateway-dev', `${createHash('sha1').update(realpathSync(PUBLIC)).digest('hex').slice(0, 16)}.json`);
  return JSON.parse(readFileSync(file, 'utf8')) as { fpmPid: number; fpmDir: string; devDir: string };
}

describe('npm start', () => {
  // Without php-fpm these fail with findPhpFpm's install hint: no silent skip.
  before(() => void findPhpFpm());
  test('serves the example app through php-fpm and stops both on SIGINT', { timeout: 240_000 }, async (t) => {
    const port = await freePort();
    const app = await start(t, port);
    assert.equal(app.url, `http://127.0.0.1:${port}`);
    assert.ok(alive(app.fpmPid), 'php-fpm runs');
    // The dev server, start.mjs's child, runs under the installed command's node flags.
    const dev = childrenOf(app.child.pid!).map(argvOf);
    assert.ok(dev.some((argv) => argv.includes('dev') && SERVER_NODE_FLAGS.every((f) => argv.includes(f))), `a child runs dev with ${SERVER_NODE_FLAGS.join(' ')}: ${JSON.stringify(dev)}`);
    const agent = new Agent();
    t.after(() => (agent.closed ? undefined : agent.close()));
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await request(app.url + path, { dispatcher: agent, headers });
      return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
    };

    const home = await get('/');
    assert.equal(home.status, 200);
    assert.match(String(home.headers['content-type']), /^text\/html; charset=utf-8/);
    for (const link of ['/hello/world', '/form', '/upload', '/info.php', '/assets/style.css', '/assets/logo.svg']) {
      assert.ok(home.body.includes(`"${link}"`), `home page links ${link}`);
    }

    const css = await get('/assets/style.css');
    assert.equal(css.status, 200);
    assert.match(String(css.headers['content-type']), /^text\/css/);
    assert.equal(css.body, readFileSync(`${PUBLIC}/assets/style.css`, 'utf8'));
    const etag = css.headers['etag'];
    assert.equal(typeof etag, 'string');
    const again = await get('/assets/style.css', { 'if-none-match': etag as string });
    assert.equal(again.status, 304);
    const svg = await get('/assets/logo.svg');
    assert.equal(svg.status, 200);
    assert.match(String(svg.headers['content-type']), /^image\/svg\+xml/);

    const hello = await get('/hello/world');
    assert.equal(hello.status, 200);
    assert.match(hello.body, /Hello, world!/);
    const sneaky = await get('/hello/%3Cscript%3Ealert(1)%3C%2Fscript%3E');
    assert.match(sneaky.body, /Hello, &lt;script&gt;alert\(1\)&lt;\/script&gt;!/);
    assert.ok(!sneaky.body.includes('<script>'));

    const formPage = await get('/form');
    assert.match(formPage.body, /<form method="post" action="\/form">/);
    const posted = await request(`${app.url}/form`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'Ada <Lovelace>', colour: 'green', message: 'x & "y"' }).toString(),
    });
    assert.equal(posted.statusCode, 200);
    const postedBody = await posted.body.text();
    assert.match(postedBody, /<dt>name<\/dt><dd>Ada &lt;Lovelace&gt;<\/dd>/);
    assert.match(postedBody, /<dt>colour<\/dt><dd>green<\/dd>/);
    assert.match(postedBody, /<dt>message<\/dt><dd>x &amp; &quot;y&quot;<\/dd>/);

    const bytes = Buffer.alloc(300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 8)) % 256;
    const form = new FormData();
    form.append('file', new Blob([bytes]), 'data & more.bin');
    const uploaded = await request(`${app.url}/upload`, { dispatcher: agent, method: 'POST', body: form });
    assert.equal(uploaded.statusCode, 200);
    const uploadBody = await uploaded.body.text();
    assert.match(uploadBody, /<dd class="name">data &amp; more\.bin<\/dd>/);
    assert.match(uploadBody, new RegExp(`<dd class="size">${bytes.length}</dd>`));
    assert.match(uploadBody, new RegExp(`<dd class="md5">${createHash('md5').update(bytes).digest('hex')}</dd>`));

    const noFile = await request(`${app.url}/upload`, { dispatcher: agent, method: 'POST', body: new FormData() });
    assert.equal(noFile.statusCode, 400);
    assert.match(await noFile.body.text(), /Upload failed/);

    const info = await get('/info.php?x=1');
    assert.equal(info.status, 200);
    assert.match(info.body, /<th>SCRIPT_NAME<\/th><td>\/info\.php<\/td>/);
    assert.match(info.body, /<th>QUERY_STRING<\/th><td>x=1<\/td>/);
    assert.equal((await get('/no/such/page')).status, 404);
    assert.equal((await get('/assets/missing.css')).status, 404);

    await agent.close();
    app.child.kill('SIGINT');
    assert.equal(await app.exit, 0, app.output());
    assert.equal(alive(app.fpmPid), false, 'php-fpm was stopped');
    for (const d of app.dirs) assert.equal(existsSync(d), false, `${d} was removed`);
  });

  test('exits 1 with a clear message when the port is taken', { timeout: 240_000 }, async (t) => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    t.after(() => blocker.close());
    const port = (blocker.address() as net.AddressInfo).port;
    const s = spawnStart(t, port);
    assert.equal(await s.exit, 1, s.output());
    assert.match(s.output(), new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
  });

  test('php-fpm killed: the dev server starts it again and serves', { timeout: 240_000 }, async (t) => {
    const app = await start(t, await freePort());
    process.kill(app.fpmPid, 'SIGKILL');
    for (let n = 0; n < 200 && !/started again/.test(app.output()); n++) await new Promise((r) => setTimeout(r, 50));
    assert.match(app.output(), new RegExp(`php-fpm ${app.fpmPid} exited \\(killed\\); starting it again`));
    const res = await request(`${app.url}/hello/again`);
    assert.equal(res.statusCode, 200);
    await res.body.text();
    const again = devState().fpmPid;
    assert.notEqual(again, app.fpmPid);
    app.child.kill('SIGINT');
    assert.equal(await app.exit, 0, app.output());
    assert.equal(alive(again), false, 'the new php-fpm was stopped too');
  });
});
