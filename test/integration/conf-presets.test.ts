/**
 * Integration, real php-fpm: the presets in conf/presets/ loaded as files (only the root and
 * the php-fpm address overridden, with --set as a user would) and exercised with real requests
 * against small fixture apps in test/fixtures/apps/.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { loadConfigFile, setOverride } from '../../src/config/load.js';
import type { GatewayHandler } from '../../src/http/gateway-handler.js';
import { type GatewayServer, startConfiguredServer } from '../../src/server.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

const CONF = fileURLToPath(new URL('../../conf/presets/', import.meta.url));
const APPS = fileURLToPath(new URL('../fixtures/apps/', import.meta.url));

let fpm: PhpFpm;
const agent = new Agent();

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
});
after(async () => {
  await agent.close();
  await fpm?.stop();
});

async function preset(file: string, root: string, upstream: string): Promise<GatewayServer<GatewayHandler>> {
  const config = loadConfigFile(join(CONF, file), {
    flags: [setOverride(`sites[0].root=${root}`), setOverride(`upstreams.${upstream}.servers=["${fpm.address}"]`), setOverride('listen=127.0.0.1:0'), setOverride('accessLog=false')],
  });
  return startConfiguredServer(config);
}

async function get(gw: GatewayServer<GatewayHandler>, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) {
  const res = await request(`${gw.url}${path}`, { dispatcher: agent, method: (init.method ?? 'GET') as 'GET', ...(init.body !== undefined ? { body: init.body } : {}), headers: init.headers ?? {} });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

describe('conf/presets/wordpress.yaml', () => {
  let gw: GatewayServer<GatewayHandler>;
  before(async () => {
    gw = await preset('wordpress.yaml', join(APPS, 'wordpress'), 'wordpress');
  });
  after(() => gw?.close());

  test('pretty permalinks and ?p= go to index.php with the original URI', async () => {
    const r = await get(gw, '/2026/11/hello-world/?replytocom=3');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { app: 'wordpress', script: '/index.php', uri: '/2026/11/hello-world/?replytocom=3', query: { replytocom: '3' } });
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.deepEqual((await get(gw, '/?p=123')).json()['query'], { p: '123' });
  });

  test('wp-login.php takes a form POST; wp-admin/ runs its index.php', async () => {
    const r = await get(gw, '/wp-login.php', { method: 'POST', body: 'log=admin&pwd=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual(r.json(), { app: 'wordpress', script: '/wp-login.php', method: 'POST', post: { log: 'admin', pwd: 'x' } });
    assert.equal((await get(gw, '/wp-admin/')).json()['script'], '/wp-admin/index.php');
  });

  test('uploads are files only: an uploaded .php is neither run nor shown, an image is served with its cache header', async () => {
    const evil = await get(gw, '/wp-content/uploads/2026/evil.php');
    assert.equal(evil.status, 404);
    assert.ok(!evil.text.includes('UPLOADED CODE RAN'), 'not run, and its source not shown');
    const pic = await get(gw, '/wp-content/uploads/2026/pic.gif');
    assert.equal(pic.status, 200);
    assert.equal(pic.text, 'GIF89a');
    assert.equal(pic.headers['cache-control'], 'public, max-age=2592000');
    const css = await get(gw, '/wp-content/themes/t/style.css');
    assert.equal(css.status, 200);
    assert.match(String(css.headers['content-type']), /text\/css/);
  });
});

describe('conf/presets/symfony-laravel.yaml', () => {
  let gw: GatewayServer<GatewayHandler>;
  before(async () => {
    gw = await preset('symfony-laravel.yaml', join(APPS, 'symfony', 'public'), 'app');
  });
  after(() => gw?.close());

  test('every route that is not a file goes to public/index.php, with PATH_INFO when given', async () => {
    assert.deepEqual((await get(gw, '/blog/post/1?page=2')).json(), { app: 'symfony', script: '/index.php', uri: '/blog/post/1?page=2', path_info: null });
    assert.equal((await get(gw, '/index.php/blog')).json()['path_info'], '/blog');
    // A directory without an index is the app's too (try_files $uri /index.php).
    assert.equal((await get(gw, '/bundles/')).json()['script'], '/index.php');
  });

  test('no other script runs: stray .php files are 404', async () => {
    for (const path of ['/info.php', '/bundles/setup.php', '/info.php/x']) {
      const r = await get(gw, path);
      assert.equal(r.status, 404, path);
      assert.ok(!r.text.includes('A STRAY SCRIPT RAN'), path);
    }
  });

  test('assets are served; .env and src/ are outside the root and never reachable', async () => {
    const js = await get(gw, '/assets/app.js');
    assert.equal(js.status, 200);
    assert.equal(js.text, 'console.log(1);\n');
    const env = await get(gw, '/.env');
    assert.ok(!env.text.includes('SECRET_DOTENV'));
    // (The client resolves the "..": this asks for /src/Kernel.php under public/, which is not there.)
    const src = await get(gw, '/../src/Kernel.php');
    assert.equal(src.status, 404);
    assert.ok(!src.text.includes('SOURCE OUTSIDE THE ROOT'));
  });
});
