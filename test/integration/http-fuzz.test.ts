/**
 * Integration, real php-fpm: HTTP-level fuzzing over raw TCP (generators, client and
 * invariants in test/helpers/http-fuzz.ts). Random and hostile request heads, bodies,
 * pipelines and clients that leave at any point; after every case the gateway must not have
 * crashed the process, must have released its pool slots, temp files, sockets and fds, and
 * must still serve; connections whose outcome HTTP/1.1 fixes get exactly those answers.
 *
 * FUZZ_RUNS (default 150), FUZZ_SEED, FUZZ_PATH (replay a reported counterexample with its
 * seed), FUZZ_NO_SHRINK=1, FUZZ_MAX_SHRINKS (default 40), FUZZ_TIME_LIMIT_MS (default 40000:
 * no case starts later, shrinking included). Long runs: scripts/fuzz-campaign.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { waitFor } from '../helpers/gateway.js';
import { FuzzHarness, fuzzParameters, fuzzProperty, namedCases, openFdCount } from '../helpers/http-fuzz.js';

let h: FuzzHarness;

before(async () => {
  h = await FuzzHarness.start();
});

after(async () => {
  await h?.stop();
});

describe('HTTP fuzz: hand-picked cases', () => {
  for (const { name, case: c, repeat = 1 } of namedCases()) {
    test(repeat > 1 ? `${name} (${repeat} runs)` : name, async () => {
      for (let i = 0; i < repeat; i++) await h.runCase(c);
    });
  }
});

describe('HTTP fuzz: generated cases', () => {
  test('random and hostile clients never crash, hang or leak the gateway, and valid ones get their answers in order', async (t) => {
    const started = Date.now();
    const casesBefore = h.stats.cases;
    try {
      await fc.assert(fuzzProperty(h, 40), fuzzParameters(150, 40_000));
    } finally {
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      t.diagnostic(`${h.stats.cases - casesBefore} case runs (shrinking included) in ${secs} s; whole file so far: ${h.summary()}`);
    }
  });
});

describe('HTTP fuzz: the whole run', () => {
  test('no crash was recorded and no descriptor leaked', async () => {
    await h.finalChecks();
    // Everything stopped: the process is back where it started (php-fpm pipes, pool and
    // client sockets all closed; +2 for descriptors node closes asynchronously).
    await h.stop();
    await waitFor(() => openFdCount() <= h.fdsAtStart + 2, `open fds to come back to ${h.fdsAtStart} (now ${openFdCount()})`);
    assert.ok(openFdCount() <= h.fdsAtStart + 2);
  });
});
