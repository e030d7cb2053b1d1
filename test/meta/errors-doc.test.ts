import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as errors from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| (\w+) \| (\d{3}) \|/gm)].map((m) => ({ code: m[1]!, cls: m[2]!, status: Number(m[3]) }));

test('docs/errors.md lists exactly the codes of the error table, with the same statuses', () => {
  const table: Record<string, { status: number }> = errors.ERRORS;
  assert.deepEqual(rows.map((r) => r.code).sort(), Object.keys(table).sort());
  for (const r of rows) assert.equal(r.status, table[r.code]!.status, `status of ${r.code}`);
});

test('every documented class really throws its code', () => {
  const made: Record<string, errors.GatewayError> = {
    CgiRedirectLoopError: new errors.CgiRedirectLoopError(10, '/x'),
    SendfileOutsideError: new errors.SendfileOutsideError('../etc/passwd'),
    UpstreamShortBodyError: new errors.UpstreamShortBodyError(100, 10),
  };
  for (const r of rows) if (made[r.cls]) assert.equal(made[r.cls]!.code, r.code, r.cls);
});

test('every documented class is exported and is a GatewayError', () => {
  for (const r of rows) {
    const cls = (errors as Record<string, unknown>)[r.cls];
    assert.equal(typeof cls, 'function', `${r.cls} exported`);
    assert.ok((cls as { prototype: unknown }).prototype instanceof errors.GatewayError, `${r.cls} extends GatewayError`);
  }
});

test('statusFor maps codes through the table and unknown errors to 500', () => {
  assert.equal(errors.statusFor(new errors.PoolQueueFullError(1)), 503);
  assert.equal(errors.statusFor(new errors.ParamsTooLargeError('X', 70000, 65528)), 431);
  assert.equal(errors.statusFor(new Error('x')), 500);
  const e = new errors.ConnectError('unix:/x.sock', Object.assign(new Error('boom'), { code: 'ECONNREFUSED' }));
  assert.equal(e.name, 'ConnectError');
  assert.match(e.message, /unix:\/x\.sock.*ECONNREFUSED/);
});
