/**
 * FCGI_GET_VALUES probing: the pool asks once for FCGI_MAX_CONNS before its first connection
 * and caps itself; a responder that does not answer (or answers badly) leaves the pool as
 * configured and the requests working.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { ConnectionPool, type PoolOptions } from '../../src/upstream/pool.js';
import { type FakeFpmOptions, type FakeRequest, assertPoolQuiet, startFakeFpm } from '../helpers/fake-fpm.js';

const PARAMS = { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: '/srv/index.php' };
const T = { timeout: 20_000 };

async function setup(t: TestContext, fakeOptions: FakeFpmOptions = {}, poolOptions: PoolOptions = {}) {
  const fake = await startFakeFpm(fakeOptions);
  const pool = new ConnectionPool(fake.address, { probeLimits: true, ...poolOptions });
  t.after(async () => {
    pool.destroy();
    await fake.close();
  });
  return { fake, pool };
}

test('probeLimits caps the pool to the responder\'s FCGI_MAX_CONNS', T, async (t) => {
  const { fake, pool } = await setup(t, { script: () => {}, values: { FCGI_MAX_CONNS: '2' } }, { connections: 8 });
  const all = Array.from({ length: 6 }, () => pool.request({ params: PARAMS }));
  const held: FakeRequest[] = [await fake.nextRequest(), await fake.nextRequest()];
  const s = pool.stats;
  assert.equal(s.limit, 2);
  assert.equal(s.responder?.maxConns, 2);
  assert.equal(s.connected, 2);
  assert.equal(s.connecting, 0, 'no third connect under way');
  assert.equal(s.queued, 4);
  for (let i = 0; i < 6; i++) {
    const r = i < 2 ? held[i]! : await fake.nextRequest();
    r.conn.respond(String(i));
  }
  await Promise.all(all);
  assert.equal(fake.getValuesQueries, 1, 'probed once');
  assert.equal(fake.requestConnections.length, 2);
  assertPoolQuiet(pool.stats, { completed: 6, failed: 0 });
});

test('probeLimits(): returns what the responder reported', T, async (t) => {
  const { pool } = await setup(t, { values: { FCGI_MAX_CONNS: '3', FCGI_MAX_REQS: '7', FCGI_MPXS_CONNS: '0' } }, { connections: 8 });
  const v = await pool.probeLimits();
  assert.equal(v?.maxConns, 3);
  assert.equal(v?.maxReqs, 7);
  assert.equal(v?.mpxsConns, false);
  assert.equal(pool.stats.limit, 3);
});

test('a FCGI_MAX_CONNS above the configured limit does not raise it', T, async (t) => {
  const { fake, pool } = await setup(t, { values: { FCGI_MAX_CONNS: '50' } }, { connections: 2 });
  await pool.request({ params: PARAMS });
  assert.equal(pool.stats.limit, 2);
  assert.equal(pool.stats.responder?.maxConns, 50);
  assert.equal(fake.getValuesQueries, 1);
});

for (const bad of ['0', 'many', '']) {
  test(`a meaningless FCGI_MAX_CONNS (${JSON.stringify(bad)}) leaves the limit as configured`, T, async (t) => {
    const { pool } = await setup(t, { values: { FCGI_MAX_CONNS: bad } }, { connections: 3 });
    await pool.request({ params: PARAMS });
    assert.equal(pool.stats.limit, 3);
    assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
  });
}

for (const mode of ['ignore', 'close', 'unknown-type'] as const) {
  test(`a responder whose GET_VALUES reply is "${mode}" does not break the pool`, T, async (t) => {
    // connectTimeout also bounds the probe's wait for an answer.
    const { fake, pool } = await setup(t, { getValues: mode }, { connections: 3, connectTimeout: 1000 });
    const results = await Promise.all(Array.from({ length: 4 }, () => pool.request({ params: PARAMS })));
    assert.equal(results.length, 4);
    assert.equal(pool.stats.limit, 3);
    assert.equal(pool.stats.responder, null);
    assert.equal(fake.getValuesQueries, 1);
    // Later requests do not probe again.
    await pool.request({ params: PARAMS });
    assert.equal(fake.getValuesQueries, 1);
    assertPoolQuiet(pool.stats, { completed: 5, failed: 0 });
  });
}

test('with probeLimits false no GET_VALUES is sent', T, async (t) => {
  const { fake, pool } = await setup(t, {}, { probeLimits: false });
  await pool.request({ params: PARAMS });
  assert.equal(fake.getValuesQueries, 0);
  assert.equal(fake.accepted, 1);
});

test('requests dispatched while the probe runs wait for it and then all complete', T, async (t) => {
  const { fake, pool } = await setup(t, { values: { FCGI_MAX_CONNS: '1' } }, { connections: 4 });
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => pool.request({ params: { ...PARAMS, I: String(i) } })));
  assert.equal(results.length, 5);
  assert.equal(fake.requestConnections.length, 1);
  assert.deepEqual(fake.requests.map((r) => r.params.get('I')), ['0', '1', '2', '3', '4'], 'FIFO order kept');
  assertPoolQuiet(pool.stats, { completed: 5, failed: 0 });
});
