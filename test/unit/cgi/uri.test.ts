import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasHiddenSegment, isRejection, normalizePath, parseRequestTarget, splitScriptPath } from '../../../src/cgi/uri.js';

function ok(url: string): { path: string; query: string } {
  const t = parseRequestTarget(url);
  assert.ok(!isRejection(t), `${url} was rejected: ${JSON.stringify(t)}`);
  return t;
}
function rejected(url: string): string {
  const t = parseRequestTarget(url);
  assert.ok(isRejection(t), `${url} should be rejected, got ${JSON.stringify(t)}`);
  assert.equal(t.status, 400);
  return t.reason;
}

describe('parseRequestTarget', () => {
  it('splits path and raw query, keeping the query undecoded', () => {
    assert.deepEqual(ok('/a/b.php?x=%20y&z'), { path: '/a/b.php', query: 'x=%20y&z' });
    assert.deepEqual(ok('/'), { path: '/', query: '' });
    assert.deepEqual(ok('/x?'), { path: '/x', query: '' });
  });
  it('percent-decodes the path byte-wise as UTF-8', () => {
    assert.equal(ok('/d%75mp.php').path, '/dump.php');
    assert.equal(ok('/caf%C3%A9/').path, '/café/');
  });
  it('accepts raw UTF-8 bytes that node:http hands over as latin1 characters', () => {
    assert.equal(ok(Buffer.from('/café', 'utf8').toString('latin1')).path, '/café');
  });
  it('merges slashes and resolves dot segments like nginx $uri', () => {
    assert.equal(ok('//a///b/./c/../d').path, '/a/b/d');
    assert.equal(ok('/a/b/..').path, '/a/');
    assert.equal(ok('/a/.').path, '/a/');
  });
  it('resolves encoded traversal after decoding, and refuses climbing above the root', () => {
    assert.equal(ok('/a/%2e%2e/b').path, '/b');
    assert.equal(ok('/a%2f..%2fb').path, '/b');
    for (const u of ['/..', '/../etc/passwd', '/%2e%2e/x', '/a/../../x', '/%2e%2e%2fetc', '/..%2f..%2fetc']) rejected(u);
  });
  it('treats backslashes as ordinary bytes (no separator on POSIX)', () => {
    assert.equal(ok('/..\\..\\etc').path, '/..\\..\\etc');
  });
  it('refuses NUL, CR and LF raw or encoded (CVE-2019-11043 used %0a)', () => {
    for (const u of ['/a%00.php', '/index.php/%0afoo', '/x%0d', '/a\nb', '/a\0']) rejected(u);
  });
  it('refuses bad percent-encoding and invalid UTF-8', () => {
    rejected('/a%zz');
    rejected('/a%4');
    rejected('/a%ff');
  });
  it('reduces absolute-form targets to path and query', () => {
    assert.deepEqual(ok('http://example.com/a.php?q=1'), { path: '/a.php', query: 'q=1' });
    assert.deepEqual(ok('http://example.com'), { path: '/', query: '' });
    rejected('*');
  });
});

describe('normalizePath', () => {
  it('returns null when .. leaves the root', () => {
    assert.equal(normalizePath('/a/../..'), null);
    assert.equal(normalizePath('/a/b/../../c'), '/c');
  });
});

describe('splitScriptPath', () => {
  const php = ['.php'];
  it('splits at the first segment ending in .php', () => {
    assert.deepEqual(splitScriptPath('/index.php/a/b', php), { scriptName: '/index.php', pathInfo: '/a/b' });
    assert.deepEqual(splitScriptPath('/a.php/b.php/c', php), { scriptName: '/a.php', pathInfo: '/b.php/c' });
    assert.deepEqual(splitScriptPath('/x/y.php', php), { scriptName: '/x/y.php', pathInfo: '' });
    assert.deepEqual(splitScriptPath('/uploads/evil.jpg/x.php', php), { scriptName: '/uploads/evil.jpg/x.php', pathInfo: '' });
  });
  it('needs a name before the extension and a segment boundary after it', () => {
    assert.equal(splitScriptPath('/.php', php), null);
    assert.equal(splitScriptPath('/a.php.txt', php), null);
    assert.equal(splitScriptPath('/a.phpx/b', php), null);
    assert.equal(splitScriptPath('/', php), null);
  });
  it('is case-sensitive and byte-wise: upper case and Unicode look-alikes do not match', () => {
    assert.equal(splitScriptPath('/a.PHP', php), null);
    assert.equal(splitScriptPath('/a.ph\u0440', php), null); // Cyrillic er
    assert.equal(splitScriptPath('/a\uff0ephp', php), null); // fullwidth full stop
  });
  it('honours several extensions', () => {
    assert.deepEqual(splitScriptPath('/a.phtml/x', ['.php', '.phtml']), { scriptName: '/a.phtml', pathInfo: '/x' });
  });
});

describe('hasHiddenSegment', () => {
  it('flags dotfiles and dot-directories except allowed ones', () => {
    assert.equal(hasHiddenSegment('/.env', []), true);
    assert.equal(hasHiddenSegment('/.git/config', []), true);
    assert.equal(hasHiddenSegment('/a/.htaccess', []), true);
    assert.equal(hasHiddenSegment('/.well-known/x', ['.well-known']), false);
    assert.equal(hasHiddenSegment('/a.b/c', []), false);
  });
});
