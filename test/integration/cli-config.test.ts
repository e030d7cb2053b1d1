/**
 * Integration: config files through the command line. `check-config` on every file in conf/
 * and on broken ones (file:line:column, key path, expected and found, did you mean), the
 * precedence defaults < file < FASTCGI_GATEWAY_* < flags, and `serve --config` against a real
 * php-fpm.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parse } from 'yaml';
import { type PhpFpm, PHP_FIXTURES, startPhpFpm } from '../helpers/php-fpm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONF = join(ROOT, 'conf');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-conf-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('check-config', () => {
  // conf/deploy/compose.yaml and kubernetes.yaml are recipes for other tools, not gateway configs.
  const gatewayConfigs = readdirSync(CONF, { recursive: true, encoding: 'utf8' }).filter((n) => /\.(ya?ml|json)$/.test(n) && !/^deploy\/(compose|kubernetes)\.yaml$/.test(n));
  test('every config in conf/ is checked, the deployment one included', () => {
    assert.ok(gatewayConfigs.includes('production.yaml') && gatewayConfigs.includes('deploy/gateway.yaml'), gatewayConfigs.join(', '));
  });
  for (const name of gatewayConfigs) {
    test(`accepts conf/${name} and prints it with every default filled in`, async () => {
      const r = await cli(['check-config', join(CONF, name)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /is valid/);
      const resolved = parse(r.stdout) as { listen: string[]; maxRequestLine: number; upstreams: Record<string, { idleTimeout: number }>; sites: Array<{ routes: unknown[] }> };
      assert.ok(Array.isArray(resolved.listen));
      assert.equal(resolved.maxRequestLine, 8192, 'a default no file sets, filled in');
      for (const up of Object.values(resolved.upstreams)) assert.equal(typeof up.idleTimeout, 'number');
      assert.ok(resolved.sites.length >= 1);
    });
  }

  const broken: Array<[string, string, RegExp]> = [
    [
      'a misspelt key',
      'sites:\n  - root: /srv\n    routes:\n      - path: /\n        static: {}\n        acessLog: false\n',
      /bad\.yaml:6:9: sites\[0\]\.routes\[0\]: unknown key "acessLog" \(did you mean "accessLog"\?\)/,
    ],
    ['a bad type', 'keepAliveTimeout: [1]\nsites:\n  - root: /srv\n    routes: [{ path: /, static: {} }]\n', /bad\.yaml:1:19: keepAliveTimeout: expected a number or a string, found a list/],
    [
      'a bad unit',
      'sites:\n  - root: /srv\n    routes:\n      - path: /\n        php: { upstream: "127.0.0.1:9000", maxBodySize: 10q }\n',
      /bad\.yaml:5:57: sites\[0\]\.routes\[0\]\.php\.maxBodySize: expected a size: bytes, or a number with k, m or g \(64k, 1m\), found "10q"/,
    ],
    [
      'an unknown upstream name',
      'upstreams:\n  app: { servers: ["unix:/run/php.sock"] }\nsites:\n  - root: /srv\n    routes:\n      - path: /\n        php: { upstream: ap }\n',
      /bad\.yaml:7:26: sites\[0\]\.routes\[0\]\.php\.upstream: no upstream named "ap" \(defined: app;/,
    ],
    [
      'a duplicate host',
      'sites:\n  - hosts: [a.test]\n    root: /srv\n    routes: [{ path: /, static: {} }]\n  - hosts: [b.test, A.test]\n    root: /srv\n    routes: [{ path: /, static: {} }]\n',
      /bad\.yaml:5:21: sites\[1\]\.hosts\[1\]: host "A\.test" is already served by site 0/,
    ],
    ['YAML that does not parse', 'sites:\n  - root: /srv\n   routes: []\n', /bad\.yaml:3:\d+: /],
    ['a duplicate key', 'listen: a\nlisten: b\nsites: []\n', /bad\.yaml:2:1: .*[Uu]nique/],
  ];
  for (const [what, text, expected] of broken) {
    test(`refuses ${what}: exit 1 with file:line:column, the key path and what was expected`, async () => {
      const r = await cli(['check-config', file('bad.yaml', text)]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, expected);
      assert.equal(r.stdout, '', 'nothing printed as resolved');
    });
  }

  test('JSON is accepted too, with positions in its errors', async () => {
    const ok = await cli(['check-config', file('gw.json', JSON.stringify({ sites: [{ root: '/srv', routes: [{ path: '/', static: {} }] }] }, null, 2))]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((parse(ok.stdout) as { sites: Array<{ hosts: string[] }> }).sites[0]!.hosts[0], '*');
    const bad = await cli(['check-config', file('bad.json', '{\n  "sites": [],\n  "listn": "x"\n}\n')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\.json:3:3: unknown key "listn" \(did you mean "listen"\?\)/);
  });

  test('a missing file: exit 1 with the reason', async () => {
    const r = await cli(['check-config', join(dir, 'nope.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read config file .*nope\.yaml: ENOENT/);
  });
});

describe('precedence: defaults < file < FASTCGI_GATEWAY_* < flags', () => {
  const text = 'headersTimeout: 10s\nupstreams:\n  php: { servers: ["unix:/run/php.sock"], connections: 3 }\nsites:\n  - root: /srv\n    routes: [{ path: /, php: { upstream: php } }]\n';

  test('each level overrides the one before it, units everywhere', async () => {
    const f = file('prec.yaml', text);
    const fromFile = parse((await cli(['check-config', f])).stdout) as { headersTimeout: number; keepAliveTimeout: number; upstreams: { php: { connections: number } } };
    assert.equal(fromFile.keepAliveTimeout, 75_000, 'default');
    assert.equal(fromFile.headersTimeout, 10_000, 'file');
    assert.equal(fromFile.upstreams.php.connections, 3);
    const env = { FASTCGI_GATEWAY_HEADERS_TIMEOUT: '20s', FASTCGI_GATEWAY_UPSTREAMS__PHP__CONNECTIONS: '7' };
    const fromEnv = parse((await cli(['check-config', f], env)).stdout) as typeof fromFile;
    assert.equal(fromEnv.headersTimeout, 20_000, 'env over file');
    assert.equal(fromEnv.upstreams.php.connections, 7, 'nested env key, upstream name matched');
    const fromFlag = parse((await cli(['check-config', f, '--set', 'headersTimeout=1m', '--set', 'upstreams.php.connections=9'], env)).stdout) as typeof fromFile;
    assert.equal(fromFlag.headersTimeout, 60_000, 'flag over env');
    assert.equal(fromFlag.upstreams.php.connections, 9);
  });

  test('a bad value from the environment or a flag is reported with where it came from', async () => {
    const f = file('prec.yaml', text);
    const r = await cli(['check-config', f], { FASTCGI_GATEWAY_KEEP_ALIVE_TIMEOUT: 'soon' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /env FASTCGI_GATEWAY_KEEP_ALIVE_TIMEOUT: keepAliveTimeout: expected a duration/);
    const s = await cli(['check-config', f, '--set', 'upstreams.php.connections=0']);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /flag --set upstreams\.php\.connections: upstreams\.php\.connections: expected ≥ 1, found 0/);
  });
});

describe('serve --config', () => {
  let fpm: PhpFpm;
  before(async () => {
    fpm = await startPhpFpm({ workers: 2 });
  });
  after(async () => {
    await fpm?.stop();
  });

  test('conf/minimal.yaml, pointed at a real php-fpm with --set, serves PHP and exits 0 on SIGINT', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--config', 'conf/minimal.yaml', '--set', `upstreams.php.servers=["${fpm.address}"]`, '--set', `sites[0].root=${PHP_FIXTURES}`, '--listen', '127.0.0.1:0', '--log', 'off'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    const exited = new Promise<number | null>((res) => child.once('close', (code) => res(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        const m = /on (http:\/\/\S+)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.once('close', () => reject(new Error(`serve exited early: ${stderr}`)));
    });
    try {
      const res = await request(`${url}/hello.php`);
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'Hello, World!');
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /serving 1 site from conf\/minimal\.yaml/);
  });

  test('flags of the one-site mode are refused next to --config, with the reason', async () => {
    const r = await cli(['serve', '--config', 'conf/minimal.yaml', '--root', '/srv']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--root describes the one site of flag mode; with --config, set it in the file/);
  });
});
