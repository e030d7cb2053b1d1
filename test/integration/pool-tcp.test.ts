/**
 * Integration, real php-fpm on 127.0.0.1: large responses over one kept-alive TCP connection.
 * Correctness only: the delayed-ACK stall this scenario can show (docs/tcp-delayed-ack.md) is a
 * latency effect and is measured by hand, never asserted (the CI machine is shared and noisy).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool } from '../../src/index.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

const MiB = 1024 * 1024;

/** md5 of big.php's output of `size` bytes: byte i is (i mod 65536) mod 251. */
function expectedBigMd5(size: number): string {
  const block = Buffer.alloc(65536);
  for (let i = 0; i < 65536; i++) block[i] = i % 251;
  const hash = createHash('md5');
  for (let left = size; left > 0; left -= 65536) hash.update(left >= 65536 ? block : block.subarray(0, left));
  return hash.digest('hex');
}

/** Run big.php through `pool`, hashing the body as it streams; returns body md5, length, reuse. */
function fetchBig(pool: ConnectionPool, size: number): Promise<{ md5: string; length: number; reused: boolean; head: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('md5');
    let head: Buffer | null = Buffer.alloc(0);
    let headText = '';
    let length = 0;
    let reused = false;
    pool.dispatch(
      { params: scriptParams('big.php', { QUERY_STRING: `size=${size}` }) },
      {
        onStart: (c) => (reused = c.reused),
        onStdout: (chunk) => {
          if (head !== null) {
            head = Buffer.concat([head, chunk]);
            const i = head.indexOf('\r\n\r\n');
            if (i < 0) return;
            headText = head.subarray(0, i).toString('latin1');
            chunk = head.subarray(i + 4);
            head = null;
          }
          hash.update(chunk);
          length += chunk.length;
        },
        onEnd: () => resolve({ md5: hash.digest('hex'), length, reused, head: headText }),
        onError: reject,
      },
    );
  });
}

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ listen: 'tcp', workers: 2 });
  assert.match(fpm.address, /^127\.0\.0\.1:\d+$/);
});

after(async () => {
  await fpm?.stop();
});

describe('1 MiB responses over TCP keep-alive', () => {
  test('20 sequential 1 MiB responses on one kept TCP connection are byte-exact', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const size = MiB;
    const expected = expectedBigMd5(size);
    const reused: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await fetchBig(pool, size);
      assert.equal(r.length, size, `request ${i}`);
      assert.equal(r.md5, expected, `request ${i}`);
      assert.match(r.head, new RegExp(`^Content-Length: ${size}$`, 'im'));
      reused.push(r.reused);
    }
    assert.deepEqual(reused, [false, ...Array<boolean>(19).fill(true)]);
    assert.equal(pool.stats.connects, 1);
    assert.equal(pool.stats.completed, 20);
    assert.equal(pool.stats.failed, 0);
  });

  test('sizes around record and segment boundaries stay byte-exact on the kept socket', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    // 65528 = one full record; 65536 = one PHP block; odd sizes leave php-fpm a padded tail.
    for (const size of [1, 7, 8, 65527, 65528, 65529, 65536, 65537, MiB - 1, MiB + 1, 1_000_003]) {
      const r = await fetchBig(pool, size);
      assert.equal(r.length, size, `size ${size}`);
      assert.equal(r.md5, expectedBigMd5(size), `size ${size}`);
    }
    assert.equal(pool.stats.connects, 1);
  });

  test('two kept TCP connections serving 1 MiB responses concurrently', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 2 });
    t.after(() => pool.close());
    const expected = expectedBigMd5(MiB);
    const results = await Promise.all(Array.from({ length: 10 }, () => fetchBig(pool, MiB)));
    for (const r of results) {
      assert.equal(r.length, MiB);
      assert.equal(r.md5, expected);
    }
    assert.ok(pool.stats.connects <= 2);
  });
});
