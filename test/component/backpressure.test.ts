/**
 * Backpressure toward the responder: a handler that returns false from onStdout (or calls
 * pause()) stops the pool reading the socket, so a responder writing without end blocks; the
 * read timeout is suspended meanwhile; resume() lets the response finish intact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordType } from '../../src/protocol/constants.js';
import { encodeEndRequest, encodeStreamChunk } from '../../src/protocol/encoder.js';
import type { ExchangeController } from '../../src/upstream/exchange.js';
import { type FakeConnection, assertPoolQuiet, patternBytes, startFakeWithPool } from '../helpers/fake-fpm.js';

const PARAMS = { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: '/srv/big.php' };
const T = { timeout: 30_000 };
/**
 * Far more than the socket buffers between the fake and the pool hold (a paused exchange
 * stalls the fake after about 256 KiB here): without backpressure it would all flow through.
 */
const TOTAL = 8 * 1024 * 1024;
/** A stalled responder must have sent less than this. */
const STALL_LIMIT = TOTAL / 4;
/** How long we watch a stalled responder. */
const OBSERVE_MS = 300;

const setup = startFakeWithPool;

/** Collects STDOUT, checking every byte against the pattern as it arrives. */
class PatternSink {
  received = 0;
  mismatch = -1;
  push(chunk: Buffer): void {
    if (this.mismatch < 0 && !chunk.equals(patternBytes(this.received, chunk.length))) this.mismatch = this.received;
    this.received += chunk.length;
  }
}

/**
 * Wait until the responder is stalled: blocked on a full socket buffer and still blocked
 * OBSERVE_MS later. While the client-side buffers fill up it blocks and resumes a few times;
 * if the client never stopped reading, the byte count passes `limit` and the assertion fails.
 * During the stalled window nothing may reach the handler.
 */
async function waitUntilStalled(conn: FakeConnection, sink: PatternSink, limit: number): Promise<void> {
  for (;;) {
    assert.ok(conn.bytesSent < limit, `the responder kept sending (${conn.bytesSent} bytes): reading was not paused`);
    await conn.blocked();
    const sent = conn.bytesSent;
    const received = sink.received;
    await new Promise((r) => setTimeout(r, OBSERVE_MS));
    if (conn.waitingDrain && conn.bytesSent === sent) {
      assert.equal(sink.received, received, 'nothing was delivered while paused');
      return;
    }
  }
}

test('onStdout returning false pauses reading: an endless responder blocks; resume() finishes the response', T, async (t) => {
  const { fake, pool } = await setup(t, {
    script: async (_req, conn) => {
      await conn.stream(RecordType.Stdout, TOTAL, 16384);
      conn.end(7);
    },
  });
  const sink = new PatternSink();
  let controller!: ExchangeController;
  let pausedOnce = false;
  let markPaused!: () => void;
  const paused = new Promise<void>((r) => (markPaused = r));
  const done = new Promise<number>((resolve, reject) => {
    controller = pool.dispatch({ params: PARAMS }, {
      onStdout: (chunk) => {
        sink.push(chunk);
        if (!pausedOnce) {
          pausedOnce = true;
          markPaused();
          return false;
        }
        return true;
      },
      onEnd: (end) => resolve(end.appStatus),
      onError: reject,
    });
  });
  const conn = (await fake.nextRequest()).conn;
  await paused;
  await waitUntilStalled(conn, sink, STALL_LIMIT);
  assert.equal(pool.stats.busy, 1);
  controller.resume();
  assert.equal(await done, 7);
  assert.equal(sink.received, TOTAL);
  assert.equal(sink.mismatch, -1, 'bytes arrive intact and in order');
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
  assert.equal(pool.stats.idle, 1, 'a paused-then-resumed exchange still leaves a reusable socket');
});

test('pause() from onStart: no byte is delivered until resume(), then everything arrives', T, async (t) => {
  const size = TOTAL;
  const { fake, pool } = await setup(t, {
    script: async (_req, conn) => {
      await conn.stream(RecordType.Stdout, size, 65528);
      conn.end();
    },
  });
  const sink = new PatternSink();
  let controller!: ExchangeController;
  const done = new Promise<void>((resolve, reject) => {
    pool.dispatch({ params: PARAMS }, {
      onStart: (c) => {
        controller = c;
        c.pause();
      },
      onStdout: (chunk) => void sink.push(chunk),
      onEnd: () => resolve(),
      onError: reject,
    });
  });
  const conn = (await fake.nextRequest()).conn;
  await waitUntilStalled(conn, sink, STALL_LIMIT);
  assert.equal(sink.received, 0);
  // Pausing twice and resuming once is one resume (pause is a state, not a counter).
  controller.pause();
  controller.resume();
  await done;
  assert.equal(sink.received, size);
  assert.equal(sink.mismatch, -1);
  assertPoolQuiet(pool.stats, { completed: 1, failed: 0 });
});

test('the read timeout is suspended while paused and re-armed on resume', T, async (t) => {
  // 64 KiB fits the socket buffers: after the pause the responder is silent, as a slow
  // client would make it, for longer than readTimeout; no timeout may fire meanwhile.
  const readTimeout = 150;
  const size = 65_536;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const { pool } = await setup(t, {
    script: async (_req, conn) => {
      await conn.stream(RecordType.Stdout, size, 4096);
      await released;
      conn.end();
    },
  }, { readTimeout });
  const sink = new PatternSink();
  let controller!: ExchangeController;
  let markPaused!: () => void;
  const paused = new Promise<void>((r) => (markPaused = r));
  const outcome = new Promise<string>((resolve) => {
    controller = pool.dispatch({ params: PARAMS }, {
      onStdout: (chunk) => {
        const first = sink.received === 0;
        sink.push(chunk);
        if (!first) return true;
        markPaused();
        return false;
      },
      onEnd: () => resolve('end'),
      onError: (err) => resolve(err.code),
    });
  });
  await paused;
  let settledEarly: string | null = null;
  void outcome.then((o) => (settledEarly = o));
  await new Promise((r) => setTimeout(r, readTimeout * 4));
  assert.equal(settledEarly, null, 'no read timeout while paused');
  // Resume with the responder still silent: the timer is armed again and fires.
  controller.resume();
  assert.equal(await outcome, 'GW_ERR_UPSTREAM_READ_TIMEOUT');
  release();
  assert.ok(sink.received > 0 && sink.received <= size);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a paused exchange can still be aborted: GW_ERR_UPSTREAM_ABORTED and the socket is closed', T, async (t) => {
  const { fake, pool } = await setup(t, { script: (_req, conn) => void conn.endlessStdout() });
  const sink = new PatternSink();
  let controller!: ExchangeController;
  const failed = new Promise<string>((resolve) => {
    controller = pool.dispatch({ params: PARAMS }, {
      onStdout: (chunk) => {
        sink.push(chunk);
        return false;
      },
      onEnd: () => resolve('ended'),
      onError: (err) => resolve(err.code),
    });
  });
  const conn = (await fake.nextRequest()).conn;
  await conn.blocked();
  controller.abort();
  assert.equal(await failed, 'GW_ERR_UPSTREAM_ABORTED');
  await conn.whenClosed;
  assert.ok(conn.bytesSent < TOTAL, `${conn.bytesSent} bytes sent before the abort took effect`);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
  assert.equal(pool.stats.connected, 0);
});

test('without a pause, the read timeout still fires while the responder is silent mid-response', T, async (t) => {
  // Counterpart of the first test: the timer is suspended only while paused.
  const { fake, pool } = await setup(t, {
    script: (_req, conn) => void conn.stdout(patternBytes(0, 1000)),
  }, { readTimeout: 100 });
  const res = await pool.request({ params: PARAMS }).then(() => 'ok', (e: { code: string }) => e.code);
  assert.equal(res, 'GW_ERR_UPSTREAM_READ_TIMEOUT');
  assert.equal(fake.accepted, 1);
  assertPoolQuiet(pool.stats, { completed: 0, failed: 1 });
});

test('a responder that closes right after END_REQUEST while the consumer is paused still completes the response', T, async (t) => {
  let closedConn!: FakeConnection;
  const { pool } = await setup(t, {
    script: (_req, conn) => {
      closedConn = conn;
      // Three STDOUT records and END_REQUEST in one write, then close (php-fpm without KEEP_CONN).
      conn.raw(Buffer.concat([
        encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('one,')),
        encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('two,')),
        encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('three')),
        encodeEndRequest(1, 0, 0),
      ]));
      conn.close();
    },
  }, { keepAlive: false });
  const got: string[] = [];
  let controller!: ExchangeController;
  let first!: () => void;
  const firstChunk = new Promise<void>((r) => (first = r));
  const done = new Promise<number>((resolve, reject) => {
    controller = pool.dispatch({ params: PARAMS }, {
      onStdout: (chunk) => {
        got.push(chunk.toString());
        if (got.length === 1) {
          first();
          return false; // pause with two records and END_REQUEST still held
        }
        return true;
      },
      onEnd: (end) => resolve(end.appStatus),
      onError: reject,
    });
  });
  await firstChunk;
  assert.ok(closedConn !== undefined, 'the responder ran');
  // The responder has written and closed; while we are paused we may or may not have read its
  // FIN (a paused socket stops reading), and either way the response must complete on resume.
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, ['one,'], 'nothing delivered while paused');
  controller.resume();
  assert.equal(await done, 0);
  assert.equal(got.join(''), 'one,two,three');
  assert.equal(pool.stats.connected, 0);
  assert.equal(pool.stats.failed, 0);
});
