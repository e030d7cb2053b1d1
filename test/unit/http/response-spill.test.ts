/**
 * SpillingWriter against a scripted response (a fake `res` whose write() accepts or pushes
 * back as the test says): bytes come out in order whatever mix of direct writes, memory
 * backlog, temp file and batches they took; the upstream is paused only past the limits; the
 * temp file and the memory budget are given back; the send timeout drops a stalled client.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { MemoryBudget } from '../../../src/http/memory-budget.js';
import { type SpillOptions, SpillingWriter } from '../../../src/http/response-spill.js';
import { openFilesUnder, waitFor } from '../../helpers/gateway.js';
import { holdThreadPool } from '../../helpers/thread-pool.js';

const dir = mkdtempSync(join(tmpdir(), 'spill-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A response that takes `capacity` bytes, then says "full" until the test drains it. */
class FakeRes extends EventEmitter {
  readonly out: Buffer[] = [];
  pending = 0;
  ended = false;
  destroyed = false;
  constructor(readonly capacity: number) {
    super();
  }
  write(chunk: Buffer): boolean {
    this.out.push(Buffer.from(chunk));
    this.pending += chunk.length;
    return this.pending < this.capacity;
  }
  /** The client read everything: 'drain' if a write had pushed back. */
  drain(): void {
    const was = this.pending >= this.capacity;
    this.pending = 0;
    if (was) this.emit('drain');
  }
  end(): void {
    this.ended = true;
    queueMicrotask(() => this.emit('finish'));
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
  get bytes(): Buffer {
    return Buffer.concat(this.out);
  }
}

function make(res: FakeRes, o: Partial<SpillOptions> = {}) {
  const budget = o.budget ?? new MemoryBudget(1 << 30);
  const events = { resumed: 0, failed: [] as string[] };
  const w = new SpillingWriter(res as unknown as ServerResponse, { memory: 4096, maxSpill: 1 << 30, tmpDir: dir, sendTimeout: 0, budget, ...o }, {
    resume: () => void events.resumed++,
    failed: (e) => void events.failed.push(e.code),
  });
  return { w, events, budget };
}

test('bytes arrive in order through direct writes, memory, the temp file and batches (property)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 40 }),
      fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
      fc.integer({ min: 0, max: 20_000 }),
      async (sizes, drains, memory) => {
        const res = new FakeRes(16 * 1024);
        const { w, budget } = make(res, { memory });
        const input: Buffer[] = [];
        let n = 0;
        for (const [i, size] of sizes.entries()) {
          const chunk = Buffer.alloc(size, n++ % 251);
          if (size >= 4) chunk.writeUInt32BE(i, 0); // a lost or doubled chunk changes the bytes
          input.push(chunk);
          assert.equal(w.write(chunk), true, 'never paused below maxSpill');
          if (drains[i]) res.drain();
          await new Promise((r) => setImmediate(r));
        }
        w.end();
        // The client now reads whatever it is given until the writer ends the response.
        await waitFor(() => {
          res.drain();
          return res.ended;
        }, 'the writer to end the response', 20_000);
        assert.ok(res.bytes.equals(Buffer.concat(input)), 'same bytes, same order');
        assert.equal(budget.used, 0, 'memory reservation returned');
        await waitFor(() => openFilesUnder(dir).length === 0, 'temp file closed');
        assert.deepEqual(readdirSync(dir), []);
      },
    ),
    { numRuns: 60 },
  );
});

test('past maxSpill the upstream is paused, and resumed once the client caught up', async () => {
  const res = new FakeRes(1024);
  const { w, events } = make(res, { memory: 0, maxSpill: 64 * 1024 });
  assert.equal(w.write(Buffer.alloc(2048)), true); // direct; the client is now full
  let paused = false;
  for (let i = 0; i < 40 && !paused; i++) paused = !w.write(Buffer.alloc(4096, i));
  assert.ok(paused, 'write() said pause once the spilled backlog passed maxSpill');
  await waitFor(() => {
    res.drain();
    return events.resumed === 1;
  }, 'resume after the client drained');
  w.end();
  await waitFor(() => {
    res.drain();
    return res.ended;
  }, 'end');
});

test('maxSpill 0 and memory 0: plain backpressure, nothing on disk', async () => {
  await waitFor(() => openFilesUnder(dir).length === 0, 'earlier temp files closed');
  const res = new FakeRes(1024);
  const { w, events } = make(res, { memory: 0, maxSpill: 0 });
  assert.equal(w.write(Buffer.alloc(2048)), false, 'pause as soon as the client pushes back');
  assert.equal(openFilesUnder(dir).length, 0);
  res.drain();
  assert.equal(events.resumed, 1);
  w.end();
  await waitFor(() => res.ended, 'end');
});

test('the memory budget is shared: when it is spent, the backlog goes to disk', async () => {
  const budget = new MemoryBudget(8192);
  const res = new FakeRes(1);
  const { w } = make(res, { memory: 1 << 20, budget });
  w.write(Buffer.alloc(10)); // direct, then the client is full
  w.write(Buffer.alloc(8000)); // memory (budget 8000 / 8192)
  assert.equal(budget.used, 8000);
  w.write(Buffer.alloc(8000)); // budget spent: spilled
  await waitFor(() => openFilesUnder(dir).length === 1, 'a temp file for the rest');
  w.destroy();
  assert.equal(budget.used, 0);
  await waitFor(() => openFilesUnder(dir).length === 0, 'temp file closed on destroy');
});

test('a client that reads nothing for sendTimeout is dropped', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const res = new FakeRes(1);
  const { w, events } = make(res, { sendTimeout: 5000 });
  w.write(Buffer.alloc(100));
  t.mock.timers.tick(4999);
  assert.equal(res.destroyed, false);
  t.mock.timers.tick(1);
  assert.equal(res.destroyed, true);
  assert.deepEqual(events.failed, ['GW_ERR_CLIENT_SEND_TIMEOUT']);
});

test('a drain restarts the send timeout', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const res = new FakeRes(1);
  const { w } = make(res, { sendTimeout: 5000 });
  w.write(Buffer.alloc(100));
  t.mock.timers.tick(4000);
  res.drain(); // progress
  w.write(Buffer.alloc(100));
  t.mock.timers.tick(4000);
  assert.equal(res.destroyed, false, 'progress within the timeout keeps the client');
  t.mock.timers.tick(1000);
  assert.equal(res.destroyed, true);
});

test('waiting for the temp file is not the client waiting: the send timeout does not drop a client that keeps up', { timeout: 20_000 }, async () => {
  const res = new FakeRes(1);
  const { w, events } = make(res, { memory: 0, sendTimeout: 40 });
  const spilled = Buffer.alloc(100_000, 'spill');
  // The pool is held first: the temp file's open queues behind it and waits until release.
  const release = await holdThreadPool(dir);
  try {
    w.write(Buffer.alloc(100, 'd')); // direct; the client is now full
    w.write(spilled); // bound for the temp file, which cannot open yet
    res.drain(); // the client took everything it was given: the rest waits for our disk
    w.end();
    // Many times sendTimeout with the client keeping up and the disk stalled on our side.
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(events.failed, [], 'not dropped while the gateway waited for its disk');
    assert.equal(res.destroyed, false);
  } finally {
    await release();
  }
  await waitFor(() => {
    res.drain();
    return res.ended;
  }, 'the writer to end the response');
  assert.ok(res.bytes.equals(Buffer.concat([Buffer.alloc(100, 'd'), spilled])), 'every byte, in order');
  assert.deepEqual(events.failed, []);
});
