/**
 * BlockPool: which sizes are lent, and the one property everything rests on: a block is never
 * lent twice at once, whatever the order of takes and gives (stale views, subarrays and
 * double gives included).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BLOCK_SIZE, BlockPool, MIN_BLOCK_USE } from '../../../src/upstream/blocks.js';

test('only sizes between MIN_BLOCK_USE and BLOCK_SIZE are lent', () => {
  const pool = new BlockPool(4);
  const small = pool.take(MIN_BLOCK_USE - 1);
  const low = pool.take(MIN_BLOCK_USE);
  const full = pool.take(BLOCK_SIZE);
  const big = pool.take(BLOCK_SIZE + 1);
  assert.deepEqual([small.length, low.length, full.length, big.length], [MIN_BLOCK_USE - 1, MIN_BLOCK_USE, BLOCK_SIZE, BLOCK_SIZE + 1]);
  assert.deepEqual([pool.lent(small), pool.lent(low), pool.lent(full), pool.lent(big)], [false, true, true, false]);
  assert.equal(low.buffer.byteLength, BLOCK_SIZE, 'a lent view lies in a whole block');
  pool.give(small);
  pool.give(big);
  assert.equal(pool.idle, 0, 'buffers the pool never lent are not taken in');
});

test('a given block is lent again as a new view; stale views, subarrays and second gives are ignored', () => {
  const pool = new BlockPool(4);
  const a = pool.take(40_000);
  pool.give(a.subarray(0, 10));
  assert.equal(pool.idle, 0, 'a subarray is not the lent view');
  pool.give(a);
  pool.give(a);
  assert.equal(pool.idle, 1, 'given once');
  const b = pool.take(50_000);
  assert.equal(b.buffer, a.buffer, 'the block is reused');
  assert.notEqual(b, a);
  assert.equal(pool.lent(a), false);
  pool.give(a); // stale: the block is b's now
  assert.equal(pool.idle, 0);
  assert.equal(pool.take(50_000).buffer === b.buffer, false, 'still lent to b, so never handed out again');
});

test('copy() puts the bytes in a lent block when the size qualifies', () => {
  const pool = new BlockPool(4);
  const src = Buffer.alloc(40_000, 7);
  const c = pool.copy(src);
  assert.ok(c.equals(src));
  assert.equal(pool.lent(c), true);
  const tiny = pool.copy(Buffer.from('hello'));
  assert.equal(tiny.toString(), 'hello');
  assert.equal(pool.lent(tiny), false);
});

test('at most maxFree blocks are kept', () => {
  const pool = new BlockPool(2);
  const views = [pool.take(BLOCK_SIZE), pool.take(BLOCK_SIZE), pool.take(BLOCK_SIZE)];
  for (const v of views) pool.give(v);
  assert.equal(pool.idle, 2);
});

test('no block is ever lent twice at once, whatever is taken and given (property)', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('take' as const), size: fc.integer({ min: 1, max: BLOCK_SIZE + 10 }) }),
    fc.record({ kind: fc.constant('give' as const), pick: fc.nat(), how: fc.constantFrom('view', 'stale', 'sub', 'twice') }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), fc.integer({ min: 0, max: 8 }), (ops, maxFree) => {
      const pool = new BlockPool(maxFree);
      const held: Buffer[] = [];
      const given: Buffer[] = [];
      for (const o of ops) {
        if (o.kind === 'take') {
          const v = pool.take(o.size);
          assert.equal(v.length, o.size);
          if (pool.lent(v)) held.push(v);
        } else if (o.how === 'stale' && given.length > 0) {
          pool.give(given[o.pick % given.length]!);
        } else if (held.length > 0) {
          const v = held.splice(o.pick % held.length, 1)[0]!;
          if (o.how === 'sub') {
            pool.give(v.subarray(1));
            held.push(v); // still held: a subarray gives nothing back
            continue;
          }
          pool.give(v);
          if (o.how === 'twice') pool.give(v);
          given.push(v);
        }
        const blocks = held.map((v) => v.buffer);
        assert.equal(new Set(blocks).size, blocks.length, 'every held view has a block of its own');
        for (const v of held) assert.equal(pool.lent(v), true);
        assert.ok(pool.idle <= maxFree);
      }
    }),
    { numRuns: 300 },
  );
});
