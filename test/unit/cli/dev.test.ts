// The pure parts of `dev`: the document-root guess and the project php.ini.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { guessRoot, iniValues, phpFpmFor } from '../../../src/cli/dev.js';

test('guessRoot: public/, web/, htdocs/ in that order, else the folder; --root wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-guess-'));
  try {
    assert.equal(guessRoot(dir), dir);
    mkdirSync(join(dir, 'htdocs'));
    assert.equal(guessRoot(dir), join(dir, 'htdocs'));
    mkdirSync(join(dir, 'web'));
    assert.equal(guessRoot(dir), join(dir, 'web'));
    mkdirSync(join(dir, 'public'));
    assert.equal(guessRoot(dir), join(dir, 'public'));
    assert.equal(guessRoot(dir, 'htdocs'), join(dir, 'htdocs'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('iniValues: key = value lines, quotes removed, comments and sections skipped', () => {
  assert.deepEqual(iniValues('; comment\n[PHP]\nmemory_limit = 256M\ndate.timezone = "Europe/Paris"\n# other\nempty =\nbad line\n'), {
    memory_limit: '256M',
    'date.timezone': 'Europe/Paris',
  });
});

test('phpFpmFor: a version that is not installed names the package to install', () => {
  assert.throws(() => phpFpmFor('7.9', { PATH: '/nonexistent' }), /install it with: sudo apt-get install -y php7\.9-fpm/);
  assert.throws(() => phpFpmFor('latest', { PATH: '' }), /must be a version such as 8\.2/);
});
