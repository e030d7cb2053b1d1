import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveHandlerOptions } from '../../../src/config/options.js';
import { check, closest, knownKeysAt, parseOrThrow } from '../../../src/config/issues.js';
import { configSchema, handlerSchema } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/errors.js';
import { POOL_DEFAULTS, resolvePoolOptions } from '../../../src/upstream/pool.js';

const issuesOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    return err.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  }
  assert.fail('expected a ConfigError');
};

/** The issues of a config that must be rejected, as `path: message` lines. */
const issueLines = (config: unknown): string[] => {
  const r = check(configSchema, config);
  assert.ok(!r.ok, `rejected: ${JSON.stringify(config)}`);
  return r.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};
const ONE_SITE = { root: '/srv', routes: [{ path: '/', static: {} }] };
/** The same, for keys given beside one valid site. */
const besideOneSite = (keys: Record<string, unknown>): string[] => issueLines({ sites: [ONE_SITE], ...keys });

test('pool options: defaults, units, and every bad key named with its path', () => {
  assert.equal(POOL_DEFAULTS.connections, 4);
  assert.equal(POOL_DEFAULTS.idleTimeout, 1000);
  const p = resolvePoolOptions({ connections: 8, idleTimeout: '2s', retryBufferSize: '128k' });
  assert.equal(p.connections, 8);
  assert.equal(p.idleTimeout, 2000);
  assert.equal(p.retryBufferSize, 131_072);
  assert.ok(Object.isFrozen(p));
  assert.deepEqual(issuesOf(() => resolvePoolOptions({ connections: 0 })), ['connections: expected ≥ 1, found 0 (a number)']);
  assert.deepEqual(issuesOf(() => resolvePoolOptions({ conections: 3 } as never)), [': unknown key "conections" (did you mean "connections"?)']);
  assert.throws(() => resolvePoolOptions({ keepAlive: 'yes' } as never, 'upstreams.app'), /^ConfigError: upstreams\.app\.keepAlive: expected true or false, found "yes"/);
  assert.throws(() => resolvePoolOptions({ connectTimeout: '5 parsecs' }), /connectTimeout: expected a duration/);
});

test('handler options: defaults filled, root resolved, values checked', () => {
  const o = resolveHandlerOptions({ root: '/srv/app/', upstream: 'unix:/run/php.sock' }, '/tmp');
  assert.equal(o.root, '/srv/app');
  assert.equal(o.tmpDir, '/tmp');
  assert.deepEqual(o.index, ['index.php', 'index.html']);
  assert.equal(o.frontController, '/index.php');
  assert.equal(o.maxBodySize, 1024 ** 3);
  assert.equal(o.pool.connections, 4);
  assert.ok(Object.isFrozen(o) && Object.isFrozen(o.pool) && Object.isFrozen(o.index));
  // undefined means "not given", as the library has always taken it.
  assert.equal(resolveHandlerOptions({ root: '/srv', upstream: 'x:1', maxBodySize: undefined }, '/tmp').maxBodySize, 1024 ** 3);
  assert.equal(resolveHandlerOptions({ root: '/srv', upstream: 'x:1', maxBodySize: '10m', sendTimeout: '1m' }, '/tmp').sendTimeout, 60_000);
  const problems = issuesOf(() =>
    resolveHandlerOptions({ root: '', upstream: 'x:1', index: ['a/b'], scriptExtensions: ['php'], frontController: 'index.php', sendfile: { header: 'X Bad', root: 'rel' } } as never, '/tmp'),
  );
  assert.deepEqual(problems.map((p) => p.split(':')[0]), ['root', 'index.0', 'frontController', 'scriptExtensions.0', 'sendfile.header', 'sendfile.root']);
  assert.match(issuesOf(() => resolveHandlerOptions({ upstream: 'x:1' } as never, '/tmp'))[0]!, /^root: is required/);
});

test('"did you mean": near keys are suggested, unrelated ones are not', () => {
  const keys = knownKeysAt(handlerSchema, []);
  assert.ok(keys.includes('maxBodySize') && keys.includes('pool'));
  assert.equal(closest('maxBodysize', keys), 'maxBodySize');
  assert.equal(closest('frontcontroler', keys), 'frontController');
  assert.equal(closest('colour', keys), null);
  assert.deepEqual(knownKeysAt(configSchema, ['sites', 0, 'routes', 3, 'php']).includes('upstream'), true);
  assert.deepEqual(knownKeysAt(configSchema, ['upstreams', 'app']).includes('servers'), true);
});

test('config file schema: route kinds, unknown upstream names, duplicate hosts', () => {
  const site = (routes: unknown[], extra = {}) => ({ root: '/srv', routes, ...extra });
  const ok = parseOrThrow(configSchema, { upstreams: { app: { servers: ['unix:/a.sock'] } }, sites: [site([{ path: '/', php: { upstream: 'app' } }])] });
  assert.deepEqual(ok.listen, [{ address: '127.0.0.1:8080', tls: null, http2: true, mode: '0660', redirectToHttps: false }], 'a string listener is the object with defaults');
  assert.equal(ok.sites[0]!.hosts[0], '*');
  assert.equal(ok.upstreams['app']!.balance, 'least_conn');
  assert.equal(ok.sites[0]!.routes[0]!.php!.maxBodySize, 1024 ** 3);
  assert.match(issueLines({ sites: [site([{ path: '/', php: { upstream: 'app' } }])] })[0]!, /sites\.0\.routes\.0\.php\.upstream: no upstream named "app" \(none defined/);
  assert.match(issueLines({ sites: [site([{ path: '/', static: {}, redirect: { to: '/x' } }])] })[0]!, /exactly one of .*found static and redirect/);
  assert.match(issueLines({ sites: [site([{ path: '/' }])] })[0]!, /found none/);
  assert.match(issueLines({ sites: [site([{ path: '/', static: {} }], { hosts: ['a.test'] }), site([{ path: '/', static: {} }], { hosts: ['A.test'] })] })[0]!, /sites\.1\.hosts\.0: host "A\.test" is already served by site 0/);
  assert.match(issueLines({ sites: [{ routes: [{ path: '/', static: {} }] }] })[0]!, /needs a root/);
  // An address inline needs no upstreams entry.
  assert.ok(check(configSchema, { sites: [site([{ path: '/', php: { upstream: '127.0.0.1:9000' } }])] }).ok);
});

test('issue messages: unions say what each option takes, or what failed inside the one that took the input', () => {
  assert.deepEqual(besideOneSite({ listen: 5 }), ['listen: expected a string, an object or a list, found 5 (a number)']);
  // A typo of a required key: "did you mean" only, not also "is required".
  assert.deepEqual(besideOneSite({ listen: [{ adress: ':1' }] }), ['listen.0: unknown key "adress" (did you mean "address"?)']);
  assert.deepEqual(besideOneSite({ accessLog: 'xml' }), ['accessLog: expected one of "json", "pretty" or false, found "xml" (a string)']);
  assert.deepEqual(besideOneSite({ workers: 'many' }), ['workers: expected a number or "auto", found "many" (a string)']);
  assert.deepEqual(besideOneSite({ workers: 1.5 }), ['workers: expected an integer, found 1.5 (a number)']);
  assert.deepEqual(besideOneSite({ sites: [{ ...ONE_SITE, routes: [{ path: '/', redirect: { to: '/x', status: 304 } }] }] }), [
    'sites.0.routes.0.redirect.status: expected one of 301, 302, 303, 307, 308, found 304 (a number)',
  ]);
  assert.deepEqual(besideOneSite({ sites: [] }), ['sites: expected at least one site']);
});

test('every unknown key of an object is named in one issue, and the first is kept for locating it in a file', () => {
  const r = check(handlerSchema, { root: '/srv', upstream: 'x:1', pool: { conections: 3, keepalive: true, zzzzz: 1 } });
  assert.ok(!r.ok, 'rejected');
  assert.equal(r.issues.length, 1);
  assert.deepEqual(r.issues[0]!.path, ['pool']);
  assert.equal(r.issues[0]!.message, 'unknown key "conections" (did you mean "connections"?); unknown key "keepalive" (did you mean "keepAlive"?); unknown key "zzzzz"');
  assert.equal(r.issues[0]!.unknownKey, 'conections');
  // Known keys reach through "a string or an object" (a listen entry, an upstream server).
  assert.ok(knownKeysAt(configSchema, ['listen', 0]).includes('redirectToHttps'));
  assert.ok(knownKeysAt(configSchema, ['upstreams', 'app', 'servers', 0]).includes('weight'));
});

test('a list is not an object or a map, names a map would drop are refused, integers are safe ones', () => {
  // valibot's objects and records take lists; read as { 0: ... } they would switch features on.
  assert.deepEqual(besideOneSite({ admin: [] }), ['admin: expected an object, found a list']);
  assert.deepEqual(besideOneSite({ upstreams: [{ servers: ['x:1'] }] }), ['upstreams: expected an object, found a list']);
  assert.deepEqual(besideOneSite({ sites: [{ ...ONE_SITE, routes: [{ path: '/', static: {}, headers: { add: ['X-A: b'] } }] }] }), ['sites.0.routes.0.headers.add: expected an object, found a list']);
  // A record silently drops these keys: refused with a reason instead.
  assert.deepEqual(besideOneSite({ upstreams: { prototype: { servers: ['x:1'] } } }), ['upstreams: "prototype" cannot be used as a name']);
  assert.deepEqual(besideOneSite(JSON.parse('{"sites":[{"root":"/s","routes":[{"path":"/","php":{"upstream":"x:1","params":{"__proto__":"x"}}}]}]}')), [
    'sites.0.routes.0.php.params: "__proto__" cannot be used as a name',
  ]);
  // An inherited property is not an upstream.
  assert.match(besideOneSite({ sites: [{ ...ONE_SITE, routes: [{ path: '/', php: { upstream: 'toString' } }] }] })[0]!, /no upstream named "toString"/);
  assert.deepEqual(besideOneSite({ workers: 2 ** 60 }), [`workers: expected an integer, found ${2 ** 60} (a number)`]);
});

test('the cross-field checks run when other keys are wrong too: every problem in one report', () => {
  assert.deepEqual(
    issueLines({ lisen: ':1', workers: 'x', listen: [':1', ':1'], sites: [{ root: '/srv', routes: [{ path: '/', php: { upstream: 'app', indx: [] } }] }] }),
    [
      'workers: expected a number or "auto", found "x" (a string)',
      'sites.0.routes.0.php: unknown key "indx" (did you mean "index"?)',
      ': unknown key "lisen" (did you mean "listen"?)',
      'listen.1: :1 is listed twice',
      'sites.0.routes.0.php.upstream: no upstream named "app" (none defined; an address inline needs a ":" or "unix:")',
    ],
  );
});
