#!/usr/bin/env node
/**
 * A long HTTP fuzz campaign against a real gateway and php-fpm, outside CI: the case generator
 * and the invariants of test/integration/http-fuzz.test.ts (test/helpers/http-fuzz.ts), for as
 * many cases as asked, with a progress line every 10 s.
 *
 *   node --import tsx scripts/fuzz-campaign.ts                      # FUZZ_RUNS=1000000 by default
 *   FUZZ_RUNS=20000 FUZZ_SEED=42 node --import tsx scripts/fuzz-campaign.ts
 *   FUZZ_KEEP_GOING=1 node --import tsx scripts/fuzz-campaign.ts    # do not stop at the first failure
 *
 * Default mode is one fast-check run: it stops at the first failing case, shrinks it
 * (FUZZ_MAX_SHRINKS, default 300) and prints the counterexample with its seed and path.
 *
 * FUZZ_KEEP_GOING=1 runs every case as its own one-run property (seed FUZZ_SEED + i), so that a
 * known bug does not end the campaign: failures are grouped by message, and the first case of
 * each group is shrunk (for at most FUZZ_SHRINK_TIME_LIMIT_MS, default 60000) and printed with
 * the command that replays it in the test file. Cases slower than 4 s are listed too.
 *
 * Exit code: 0 when every case passed, 1 otherwise; Ctrl-C or SIGTERM prints the summary, stops
 * php-fpm and the gateway, and exits 130.
 */
import fc from 'fast-check';
import { FuzzHarness, fuzzParameters, fuzzProperty } from '../test/helpers/http-fuzz.js';

const PROGRESS_MS = 10_000;
/** Longer than any client pause plus the gateway's 2 s timeouts. */
const SLOW_CASE_MS = 4000;
const runs = fuzzParameters(1_000_000).numRuns ?? 1_000_000;
const maxShrinks = Number(process.env['FUZZ_MAX_SHRINKS'] || 300);
const keepGoing = process.env['FUZZ_KEEP_GOING'] === '1';
/** ms spent shrinking each new failure group in keep-going mode (FUZZ_SHRINK_TIME_LIMIT_MS). */
const shrinkTimeLimit = Number(process.env['FUZZ_SHRINK_TIME_LIMIT_MS'] || 60_000);
// Chosen here rather than by fast-check so that it is printed before the first case: an
// interrupted campaign can be replayed (or continued with another seed) from its first line.
const seed = process.env['FUZZ_SEED'] ? Number(process.env['FUZZ_SEED']) : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;

const h = await FuzzHarness.start();
const started = Date.now();
/** Generated cases (shrinking replays are counted by the harness, not here). */
let generated = 0;
let lastRuns = 0;
let lastAt = started;
let failures = 0;
/** Failure groups in keep-going mode: signature → count. */
const groups = new Map<string, number>();

function progress(): void {
  const now = Date.now();
  const ran = h.stats.cases;
  const rate = (ran / ((now - started) / 1000)).toFixed(1);
  const recent = ((ran - lastRuns) / ((now - lastAt) / 1000)).toFixed(1);
  lastRuns = ran;
  lastAt = now;
  const elapsed = Math.round((now - started) / 1000);
  const done = keepGoing ? `${generated} of ${runs} cases done` : `${ran} case runs (of ${runs} cases, plus shrinking replays)`;
  const failed = keepGoing ? `, ${failures} failed in ${groups.size} group(s)` : '';
  console.log(`[${elapsed} s] ${done}, ${rate} runs/s (last 10 s: ${recent}/s)${failed}; ${h.summary()}`);
}

/**
 * What cases of one bug share: the tag of a wrong answer (`conn 0 [earlier answer lost]: …`),
 * else the first line without numbers and quoted bytes (`timed out waiting for …`).
 */
function signature(message: string): string {
  const tag = /^conn \d+ \[([^\]]+)\]/m.exec(message);
  if (tag) return `answers: ${tag[1]}`;
  const line = message.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/\d+/g, 'N').slice(0, 200);
}

const timer = setInterval(progress, PROGRESS_MS);
// Ctrl-C or kill: php-fpm runs in its own process group and would outlive this process, so
// stop it (and the gateway, and their temp dirs) before exiting.
let stopping = false;
const onSignal = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  console.log(`\n${signal}: stopping`);
  progress();
  for (const [sig, n] of groups) console.log(`  ${n}× ${sig}`);
  void h.stop().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

console.log(`fuzz campaign: ${runs} cases, seed ${seed}${keepGoing ? ', keep going after failures' : ''} (pid ${process.pid})`);
try {
  if (!keepGoing) {
    const details = await fc.check(fuzzProperty(h, maxShrinks), { ...fuzzParameters(runs), seed, numRuns: runs });
    if (details.failed) {
      failures++;
      console.log(fc.defaultReportMessage(details));
    }
  } else {
    const property = fuzzProperty(h, 0);
    for (let i = 0; i < runs && !stopping; i++) {
      const caseSeed = (seed + i) | 0;
      const t0 = Date.now();
      const details = await fc.check(property, { seed: caseSeed, numRuns: 1, endOnFailure: true });
      generated++;
      // A case bounded only by a timeout (a socket that lingers, a slot held to the deadline) shows as time.
      if (Date.now() - t0 > SLOW_CASE_MS) console.log(`slow case: ${Date.now() - t0} ms, replay: FUZZ_SEED=${caseSeed} FUZZ_RUNS=1`);
      if (!details.failed) continue;
      // A case cut short by Ctrl-C or SIGTERM (the harness stops under it) is not a finding.
      if (stopping) break;
      failures++;
      const message = String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance);
      const sig = signature(message);
      const seen = groups.get(sig) ?? 0;
      groups.set(sig, seen + 1);
      if (seen > 0) continue;
      // First of its kind: shrink it (for at most shrinkTimeLimit: replays of a case that waits
      // for a deadline are slow), then print it with a replay command.
      const shrunk = await fc.check(fuzzProperty(h, maxShrinks), { seed: caseSeed, numRuns: 1, skipAllAfterTimeLimit: shrinkTimeLimit });
      console.log(`\n### new failure group ${groups.size}: ${sig}`);
      // The first failure's own message: the shrunk replay may pass when the failure hung on timing.
      console.log(`first failure (seed ${caseSeed}): ${message.slice(0, 2000)}`);
      if (shrunk.failed) console.log(`after shrinking: ${String((shrunk.errorInstance as Error | undefined)?.message ?? shrunk.errorInstance).slice(0, 2000)}`);
      console.log(fc.defaultReportMessage(shrunk.failed ? shrunk : details));
      console.log(`replay: FUZZ_SEED=${caseSeed} FUZZ_RUNS=1 node --import tsx --test test/integration/http-fuzz.test.ts\n`);
    }
  }
  // After a signal the harness is being stopped: its final checks would only report that.
  if (!stopping) {
    await h.finalChecks().catch((err: unknown) => {
      failures++;
      console.log(`final checks failed: ${(err as Error).message}`);
    });
  }
} finally {
  clearInterval(timer);
  progress();
  for (const [sig, n] of groups) console.log(`  ${n}× ${sig}`);
  await h.stop();
}
process.exit(failures === 0 ? 0 : 1);
