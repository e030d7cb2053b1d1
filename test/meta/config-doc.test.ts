// docs/configuration.md lists every key of the config schema, and nothing else, in its tables.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { schemaKeys } from '../../src/config/issues.js';
import { configSchema } from '../../src/config/schema.js';

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
const documented = [...doc.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
const keys = schemaKeys(configSchema);

test('every key of the schema is documented', () => {
  const missing = keys.map((k) => k.path).filter((p) => !documented.includes(p));
  assert.deepEqual(missing, [], 'keys without a row in docs/configuration.md (print the tables with scripts/config-reference.ts)');
});

test('no documented key is missing from the schema', () => {
  const known = new Set(keys.map((k) => k.path));
  assert.deepEqual(documented.filter((p) => !known.has(p)), []);
});

test('every key has a description in the schema', () => {
  assert.deepEqual(keys.filter((k) => k.description === '').map((k) => k.path), []);
});
