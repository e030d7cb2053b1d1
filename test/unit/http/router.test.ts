import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseRequestTarget, type RequestTarget } from '../../../src/cgi/uri.js';
import { FileKindCache, type RoutingOptions, route } from '../../../src/http/router.js';
import { hostMatcher, hostName, prefixMatcher } from '../../../src/http/site-match.js';

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'fcgi-router-'));
  mkdirSync(join(root, 'sub'));
  mkdirSync(join(root, 'empty'));
  mkdirSync(join(root, '.git'));
  writeFileSync(join(root, 'index.php'), '');
  writeFileSync(join(root, 'a.php'), '');
  writeFileSync(join(root, 'x.jpg'), '');
  writeFileSync(join(root, 'style.css'), '');
  writeFileSync(join(root, 'UPPER.PHP'), '');
  writeFileSync(join(root, '.env'), '');
  writeFileSync(join(root, 'sub', 'index.php'), '');
});
after(() => rmSync(root, { recursive: true, force: true }));

const opts = (o: Partial<RoutingOptions> = {}): RoutingOptions => ({
  root,
  allowedDotfiles: ['.well-known'],
  scriptExtensions: ['.php'],
  static: true,
  index: ['index.php', 'index.html'],
  frontController: '/index.php',
  frontControllerOnly: false,
  ...o,
});
const t = (url: string): RequestTarget => {
  const r = parseRequestTarget(url);
  assert.ok(!('status' in r), url);
  return r as RequestTarget;
};
const at = (url: string, o?: Partial<RoutingOptions>) => route(t(url), opts(o), new FileKindCache(0));

describe('route (the canonical nginx + php-fpm setup)', () => {
  test('a script, with PATH_INFO after it; a missing script is 404, never the front controller', () => {
    assert.deepEqual(at('/a.php/x/y?q=1'), { kind: 'script', target: { scriptName: '/a.php', pathInfo: '/x/y', documentUri: '/a.php', query: 'q=1', documentRoot: root } });
    assert.deepEqual(at('/nope.php'), { kind: 'not-found' });
    assert.deepEqual(at('/x.jpg/evil.php'), { kind: 'not-found' }, 'an upload path is not a script');
  });

  test('static files; a directory redirects to its slash, then its index; an empty one is 403', () => {
    assert.deepEqual(at('/style.css'), { kind: 'static', path: '/style.css' });
    assert.deepEqual(at('/sub?x=1'), { kind: 'redirect', location: '/sub/?x=1' });
    assert.equal(at('/sub/').kind, 'script');
    assert.deepEqual(at('/empty/'), { kind: 'forbidden' });
    assert.deepEqual(at('/style.css', { static: false }), { kind: 'not-found' });
  });

  test('everything else goes to the front controller, or is not found without one', () => {
    const r = at('/blog/post?p=2');
    assert.equal(r.kind, 'script');
    assert.deepEqual(r.kind === 'script' && r.target, { scriptName: '/index.php', pathInfo: '', documentUri: '/index.php', query: 'p=2', documentRoot: root });
    assert.deepEqual(at('/blog/post', { frontController: null }), { kind: 'not-found' });
  });

  test('dotfiles are hidden when they exist; a dot path naming nothing goes on (nginx: /x.jpg/.php is not a script)', () => {
    assert.deepEqual(at('/.env'), { kind: 'hidden' });
    assert.deepEqual(at('/.git/'), { kind: 'hidden' });
    assert.deepEqual(at('/.env/x.php'), { kind: 'hidden' });
    assert.equal(at('/x.jpg/.php').kind, 'script');
    assert.equal(at('/.well-known/none').kind, 'script');
    assert.deepEqual(at('/UPPER.PHP'), { kind: 'hidden' }, 'a script in another letter case is neither run nor shown');
  });

  test('frontControllerOnly: no other script runs; a directory without an index is the app\'s', () => {
    assert.deepEqual(at('/a.php', { frontControllerOnly: true }), { kind: 'not-found' });
    assert.equal(at('/index.php/x', { frontControllerOnly: true }).kind, 'script');
    const sub = at('/sub/', { frontControllerOnly: true });
    assert.equal(sub.kind === 'script' && sub.target.scriptName, '/index.php');
  });
});

describe('site and route lookup', () => {
  test('hostName: lower case, no port, no trailing dot, IPv6 kept in brackets', () => {
    assert.equal(hostName('Example.COM:8080'), 'example.com');
    assert.equal(hostName('example.com.'), 'example.com');
    assert.equal(hostName('[::1]:80'), '[::1]');
    assert.equal(hostName(undefined), '');
  });

  test('hosts: exact first, then the longest wildcard, then "*", else the first site', () => {
    const m = hostMatcher([
      { hosts: ['a.test'], value: 'a' },
      { hosts: ['*.test'], value: 'any.test' },
      { hosts: ['*.b.test'], value: 'any.b.test' },
      { hosts: ['*'], value: 'default' },
    ]);
    assert.equal(m('a.test'), 'a');
    assert.equal(m('x.b.test'), 'any.b.test');
    assert.equal(m('y.x.b.test'), 'any.b.test');
    assert.equal(m('b.test'), 'any.test');
    assert.equal(m('test'), 'default');
    assert.equal(hostMatcher([{ hosts: ['only.test'], value: 1 }, { hosts: ['two.test'], value: 2 }])('else'), 1);
  });

  test('paths: the longest matching prefix wins; none matching is null', () => {
    const m = prefixMatcher([
      { prefix: '/', value: 'root' },
      { prefix: '/api/', value: 'api' },
      { prefix: '/api/v2/', value: 'v2' },
    ]);
    assert.equal(m('/api/v2/x'), 'v2');
    assert.equal(m('/api/x'), 'api');
    assert.equal(m('/apix'), 'root');
    assert.equal(prefixMatcher([{ prefix: '/api/', value: 1 }])('/other'), null);
  });
});

describe('FileKindCache', () => {
  test('bounded LRU: when full, the least recently used path goes, the others stay', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fcgi-lru-'));
    try {
      for (const n of ['a', 'b', 'c']) writeFileSync(join(dir, n), '');
      const cache = new FileKindCache(60_000, 2);
      const k = (n: string) => cache.kindOf(join(dir, n));
      assert.equal(k('a'), 'file');
      assert.equal(k('b'), 'file');
      assert.equal(k('a'), 'file'); // a is now the most recently used
      assert.equal(k('c'), 'file'); // full: b goes
      for (const n of ['a', 'b', 'c']) rmSync(join(dir, n));
      // What is still cached answers without a stat; what went is stat'ed again (and is gone).
      assert.equal(k('a'), 'file');
      assert.equal(k('c'), 'file');
      assert.equal(k('b'), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
