/**
 * Integration, real php-fpm: large bodies stream in both directions without being buffered
 * whole. A 50 MiB request body from a generated Readable, a 10 MiB response hashed as it
 * arrives, and a consumer that pauses after every chunk. Memory is checked as RSS growth of this
 * process, with a generous bound (the point is "not proportional to the body", not a budget).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, type ExchangeController } from '../../src/index.js';
import { type PhpFpm, scriptParams, startPhpFpm } from '../helpers/php-fpm.js';

const MiB = 1024 * 1024;
/** RSS growth allowed while moving tens of MiB through the pool. */
const RSS_BOUND = 64 * MiB;

/** Samples RSS on an interval; `stop()` returns the peak growth over the baseline. */
function rssSampler(intervalMs = 5): { stop(): number } {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > peak) peak = rss;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const rss = process.memoryUsage.rss();
      if (rss > peak) peak = rss;
      return peak - base;
    },
  };
}

/** A Readable producing `size` deterministic pseudo-random bytes on demand; md5 computed as it goes. */
function generatedBody(size: number, chunkSize = 64 * 1024): { stream: Readable; md5(): string } {
  const hash = createHash('md5');
  let sent = 0;
  let x = 0x9e3779b9;
  const stream = new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, size - sent);
      const chunk = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        if (i + 4 <= n) chunk.writeUInt32LE(x, i);
        else for (let j = i; j < n; j++) chunk[j] = (x >>> ((j - i) * 8)) & 0xff;
      }
      hash.update(chunk);
      sent += n;
      this.push(chunk);
    },
  });
  return { stream, md5: () => hash.digest('hex') };
}

/** md5 of big.php's output of `size` bytes: byte i is (i mod 65536) mod 251. */
function expectedBigMd5(size: number): string {
  const block = Buffer.alloc(65536);
  for (let i = 0; i < 65536; i++) block[i] = i % 251;
  const hash = createHash('md5');
  for (let left = size; left > 0; left -= 65536) hash.update(left >= 65536 ? block : block.subarray(0, left));
  return hash.digest('hex');
}

/** Consumes a CGI response incrementally: head until the blank line, then hashes the body. */
class CgiBodyHasher {
  head: string | null = null;
  bodyBytes = 0;
  #pending: Buffer = Buffer.alloc(0);
  readonly #hash = createHash('md5');

  push(chunk: Buffer): void {
    if (this.head !== null) {
      this.#hash.update(chunk);
      this.bodyBytes += chunk.length;
      return;
    }
    this.#pending = Buffer.concat([this.#pending, chunk]);
    const i = this.#pending.indexOf('\r\n\r\n');
    if (i < 0) {
      assert.ok(this.#pending.length < 8192, 'CGI head longer than 8 KiB');
      return;
    }
    this.head = this.#pending.subarray(0, i).toString('latin1');
    const rest = this.#pending.subarray(i + 4);
    this.#pending = Buffer.alloc(0);
    this.#hash.update(rest);
    this.bodyBytes += rest.length;
  }

  md5(): string {
    return this.#hash.digest('hex');
  }
}

let fpm: PhpFpm;

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
});

after(async () => {
  await fpm?.stop();
});

describe('streaming request bodies', () => {
  test('a 50 MiB body from a generated Readable arrives whole, with bounded memory', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const size = 50 * MiB;
    const body = generatedBody(size);
    const rss = rssSampler();
    const res = await pool.request({
      params: scriptParams('echo.php', {
        REQUEST_METHOD: 'POST',
        CONTENT_TYPE: 'application/octet-stream',
        CONTENT_LENGTH: String(size),
      }),
      body: body.stream,
    });
    const growth = rss.stop();
    t.diagnostic(`rss peak growth during a 50 MiB upload: ${(growth / MiB).toFixed(1)} MiB`);
    const i = res.stdout.indexOf('\r\n\r\n');
    const report = JSON.parse(res.stdout.subarray(i + 4).toString()) as { md5: string; len: number };
    assert.equal(report.len, size);
    assert.equal(report.md5, body.md5());
    assert.ok(growth < RSS_BOUND, `rss grew ${(growth / MiB).toFixed(1)} MiB (bound ${RSS_BOUND / MiB} MiB)`);
    assert.equal(pool.stats.failed, 0);
  });
});

describe('streaming responses', () => {
  const size = 10 * MiB;
  const expected = expectedBigMd5(size);

  test('a 10 MiB response hashed chunk by chunk matches, with bounded memory', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const hasher = new CgiBodyHasher();
    let chunks = 0;
    const rss = rssSampler();
    await new Promise<void>((resolve, reject) => {
      pool.dispatch(
        { params: scriptParams('big.php', { QUERY_STRING: `size=${size}` }) },
        {
          onStdout: (c) => {
            chunks++;
            hasher.push(c);
          },
          onEnd: () => resolve(),
          onError: reject,
        },
      );
    });
    const growth = rss.stop();
    t.diagnostic(`rss peak growth during a 10 MiB download: ${(growth / MiB).toFixed(1)} MiB over ${chunks} chunks`);
    assert.match(hasher.head ?? '', new RegExp(`^Content-Length: ${size}$`, 'im'));
    assert.equal(hasher.bodyBytes, size);
    assert.equal(hasher.md5(), expected);
    assert.ok(growth < RSS_BOUND, `rss grew ${(growth / MiB).toFixed(1)} MiB (bound ${RSS_BOUND / MiB} MiB)`);
  });

  test('a consumer that pauses after every chunk still gets every byte, never while paused', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1 });
    t.after(() => pool.close());
    const hasher = new CgiBodyHasher();
    let controller: ExchangeController | null = null;
    let paused = false;
    let pauses = 0;
    let deliveredWhilePaused = 0;
    await new Promise<void>((resolve, reject) => {
      pool.dispatch(
        { params: scriptParams('big.php', { QUERY_STRING: `size=${size}` }) },
        {
          onStart: (c) => (controller = c),
          onStdout: (c) => {
            if (paused) deliveredWhilePaused++;
            hasher.push(c);
            paused = true;
            pauses++;
            // Resume later: every 8th pause waits for a timer, the others for setImmediate.
            const resume = (): void => {
              paused = false;
              controller!.resume();
            };
            if (pauses % 8 === 0) setTimeout(resume, 1);
            else setImmediate(resume);
            return false;
          },
          onEnd: () => resolve(),
          onError: reject,
        },
      );
    });
    t.diagnostic(`${pauses} pauses`);
    assert.equal(deliveredWhilePaused, 0, 'onStdout was called while the consumer had paused');
    assert.ok(pauses > 10, `only ${pauses} chunks`);
    assert.equal(hasher.bodyBytes, size);
    assert.equal(hasher.md5(), expected);
    // The socket went back to the pool clean after a paused exchange.
    assert.equal(pool.stats.idle, 1);
    const again = await pool.request({ params: scriptParams('hello.php') });
    assert.match(again.stdout.toString(), /Hello, World!$/);
    assert.equal(pool.stats.connects, 1);
  });

  test('controller.pause() from outside the handler holds the response until resume()', async (t) => {
    const pool = new ConnectionPool(fpm.address, { connections: 1, readTimeout: 5000 });
    t.after(() => pool.close());
    const hasher = new CgiBodyHasher();
    let controller: ExchangeController | null = null;
    let held = false;
    let holds = 0;
    let deliveredWhileHeld = 0;
    await new Promise<void>((resolve, reject) => {
      pool.dispatch(
        { params: scriptParams('big.php', { QUERY_STRING: `size=${2 * MiB}` }) },
        {
          onStart: (c) => (controller = c),
          onStdout: (c) => {
            if (held) deliveredWhileHeld++;
            hasher.push(c);
            if (holds < 3 && !held && hasher.bodyBytes > (holds + 1) * 256 * 1024) {
              holds++;
              // Pause from a later tick, as a consumer reacting to its own backpressure would.
              setImmediate(() => {
                held = true;
                controller!.pause();
                // Long enough for php-fpm to fill the socket buffers; nothing may reach us.
                setTimeout(() => {
                  held = false;
                  controller!.resume();
                }, 50);
              });
            }
          },
          onEnd: () => resolve(),
          onError: reject,
        },
      );
    });
    assert.equal(holds, 3);
    assert.equal(deliveredWhileHeld, 0);
    assert.equal(hasher.bodyBytes, 2 * MiB);
    assert.equal(hasher.md5(), expectedBigMd5(2 * MiB));
  });
});
