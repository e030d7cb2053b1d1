/**
 * Integration, real php-fpm: large bodies go through the gateway in bounded memory (issue 3).
 * The gateway runs in a child process (test/helpers/gateway-process.ts) so its resident memory
 * is measured apart from this process, which generates and checks the bytes:
 *
 *   generated Readable ──undici──▶ gateway child ──FastCGI──▶ php-fpm ─▶ md5 of what PHP got
 *   md5 of what arrived ◀──undici (slow reader)── gateway child ◀── big.php (deterministic)
 *
 * Bodies are produced and hashed on the fly, never held whole in this process. Each test starts
 * its own child, warms it up, then takes the baseline; the bound is on peak RSS growth over that
 * baseline (VmHWM reset at the start, VmRSS sampled every 50 ms), never on time.
 *
 * Backpressure is checked where it matters, in bytes: while one end is held (a paused reader,
 * a script stalled mid-body via slow-input.php), the other end must stop a bounded distance
 * ahead (socket buffers), counted with php-fpm's /proc/PID/io or the client's own counters.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import { ConnectionPool } from '../../src/upstream/pool.js';
import { listDir, openFilesUnder, waitFor } from '../helpers/gateway.js';
import { type ChildGatewayOptions, childPids, type GatewayProcess, startGatewayProcess, type RssReport, sumIoBytes, watchRss } from '../helpers/gateway-process.js';
import { PHP_FIXTURES, type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Allowed peak RSS growth of the gateway over its warmed-up baseline. */
const RSS_BOUND_KB = 64 * 1024;
const CHUNK = 64 * KiB;

/** The largest value of a `min default max` triple in /proc/sys/net/ipv4 (bytes). */
function tcpBufferMax(name: 'tcp_rmem' | 'tcp_wmem', fallback: number): number {
  try {
    const max = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
    return Number.isFinite(max) && max > 0 ? max : fallback;
  } catch {
    return fallback;
  }
}

/**
 * How far a producer may legitimately run ahead of a stopped consumer: what loopback TCP
 * buffers can hold once autotuned (receive max + send max: 32 + 4 MiB with this machine's
 * sysctls), plus 8 MiB for the unix socket to php-fpm and stream buffers. Without
 * backpressure the whole rest of the body (76 MiB) piles up instead.
 */
const IN_FLIGHT_BOUND = tcpBufferMax('tcp_rmem', 32 * MiB) + tcpBufferMax('tcp_wmem', 4 * MiB) + 8 * MiB;

interface UploadReport {
  files: Record<string, { name: string; size: number; error: number; md5: string | null }>;
  post: Record<string, string>;
  input_md5: string;
  input_len: number;
  content_length: string | null;
  content_type: string | null;
}

let fpm: PhpFpm;
/** php-fpm's workers (pm = static, never recycled): their /proc/PID/io counts FastCGI bytes. */
let workers: number[];

before(async () => {
  fpm = await startPhpFpm({ workers: 2 });
  await waitFor(() => childPids(fpm.pid).length === 2, 'two php-fpm workers');
  workers = childPids(fpm.pid);
});

after(async () => {
  await fpm?.stop();
});

/** A socket per connection the client opened, so the test can read `bytesRead`. */
interface MeasuredClient {
  readonly client: Client;
  readonly sockets: net.Socket[];
}

/** An undici Client for `url` whose sockets are kept for inspection. */
function measuredClient(url: string): MeasuredClient {
  const { hostname, port } = new URL(url);
  const sockets: net.Socket[] = [];
  const client = new Client(url, {
    // No timeouts from the client side: the slow reader is deliberate.
    bodyTimeout: 0,
    headersTimeout: 0,
    connect: (_opts, cb) => {
      const s = net.connect({ host: hostname, port: Number(port) });
      sockets.push(s);
      s.once('connect', () => cb(null, s));
      s.once('error', (err) => cb(err, null));
    },
  });
  return { client, sockets };
}

/** Start a gateway child for this test (torn down in t.after) and warm it up. */
async function startChild(t: TestContext, extra: Partial<ChildGatewayOptions> = {}): Promise<{ gw: GatewayProcess; mc: MeasuredClient; tmp: string }> {
  const tmp = mkdtempSync(join(tmpdir(), 'fcgi-mem-'));
  let gw: GatewayProcess;
  try {
    gw = await startGatewayProcess({
      root: PHP_FIXTURES,
      upstream: fpm.address,
      listen: '127.0.0.1:0',
      accessLog: false,
      tmpDir: tmp,
      bodyBufferSize: 1 * MiB,
      ...extra,
    });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const mc = measuredClient(gw.url);
  t.after(async () => {
    await mc.client.close().catch(() => {});
    await gw.stop();
    rmSync(tmp, { recursive: true, force: true });
  });
  // Warm-up: every path the measured transfer takes (multipart, chunked spool, big response)
  // runs once at a small size, so code loading and JIT are in the baseline, not the growth.
  for (let i = 0; i < 2; i++) {
    const up = uploadPattern(4 * MiB, 'warm');
    const r1 = await postMultipart(mc.client, up.body, up.contentLength);
    assert.equal(r1.files['file']?.md5, up.md5());
    const ch = patternStream(2 * MiB, 'warm-chunked');
    const r2 = await postJson(mc.client, '/upload-md5.php', ch.stream, { 'content-type': 'application/octet-stream' });
    assert.equal(r2.input_md5, ch.md5());
    const dl = await mc.client.request({ path: `/big.php?size=${4 * MiB}`, method: 'GET' });
    const h = createHash('md5');
    for await (const c of dl.body) h.update(c as Buffer);
    assert.equal(h.digest('hex'), bigPhpMd5(4 * MiB));
  }
  await waitFor(() => listDir(tmp).length === 0, 'warm-up spool files removed');
  return { gw, mc, tmp };
}

// ── generated bodies ─────────────────────────────────────────────────────────────────────────

/** A byte stream of `size` bytes, hashed as it is produced. */
interface PatternStream {
  readonly stream: Readable;
  /** md5 of everything produced (complete once the stream ended). */
  md5(): string;
  /** Bytes produced so far. */
  produced(): number;
}

/**
 * `size` bytes: a random 64 KiB block repeated, each copy stamped with its index and a tag
 * (so a lost, doubled or reordered chunk changes the md5). `hold(offset)` is awaited before
 * the chunk at `offset` when given.
 */
function patternStream(size: number, tag: string, hold?: (offset: number) => Promise<void> | void): PatternStream {
  const block = randomBytes(CHUNK);
  const hash: Hash = createHash('md5');
  let produced = 0;
  let digest: string | null = null;
  async function* gen(): AsyncGenerator<Buffer> {
    for (let off = 0, i = 0; off < size; off += CHUNK, i++) {
      if (hold) await hold(off);
      const n = Math.min(CHUNK, size - off);
      const chunk = Buffer.allocUnsafe(n);
      block.copy(chunk, 0, 0, n);
      chunk.write(`${tag}:${i};`.slice(0, n), 0, 'latin1');
      hash.update(chunk);
      produced += n;
      yield chunk;
    }
  }
  return {
    stream: Readable.from(gen(), { objectMode: false }),
    md5() {
      digest ??= hash.digest('hex');
      return digest;
    },
    produced: () => produced,
  };
}

const BOUNDARY = `----fcgi-mem-${randomBytes(12).toString('hex')}`;

/** A multipart/form-data body (a text field "note", then the file "file") built as a stream. */
function uploadPattern(fileSize: number, tag: string): { body: Readable; contentLength: number; md5(): string } {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nmemory-test\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${tag}.bin"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
    'latin1',
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`, 'latin1');
  const file = patternStream(fileSize, tag);
  async function* gen(): AsyncGenerator<Buffer> {
    yield head;
    for await (const c of file.stream) yield c as Buffer;
    yield tail;
  }
  return { body: Readable.from(gen(), { objectMode: false }), contentLength: head.length + fileSize + tail.length, md5: () => file.md5() };
}

/** POST and parse upload-md5.php's JSON answer. */
async function postJson(client: Client, path: string, body: Readable, headers: Record<string, string>): Promise<UploadReport> {
  const res = await client.request({ path, method: 'POST', headers, body });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `POST ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
  return JSON.parse(text) as UploadReport;
}

async function postMultipart(client: Client, body: Readable, contentLength?: number): Promise<UploadReport> {
  return postJson(client, '/upload-md5.php', body, {
    'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
    ...(contentLength !== undefined ? { 'content-length': String(contentLength) } : {}),
  });
}

/** md5 of big.php?size=N: byte i is (i mod 65536) mod 251. */
function bigPhpMd5(size: number): string {
  const block = Buffer.alloc(65536);
  for (let i = 0; i < block.length; i++) block[i] = i % 251;
  const h = createHash('md5');
  for (let off = 0; off < size; off += block.length) h.update(block.subarray(0, Math.min(block.length, size - off)));
  return h.digest('hex');
}

/** How a `settled()` wait ended. */
interface Settled {
  readonly reason: 'settled' | 'passed the bound' | 'timed out';
  readonly waitedMs: number;
}

/** How long a counter must stay unchanged to count as stopped. */
const QUIET_MS = 500;

/**
 * Wait until `read()` has not changed for QUIET_MS, or exceeds `bound`, or 20 s pass. Used
 * while one side of a transfer is held: with backpressure the other side stops after filling
 * fixed-size buffers; without, it runs on until the bound. The time only ends the wait; the
 * assertions are on the bytes.
 */
async function settled(read: () => number, bound: number): Promise<Settled> {
  const start = Date.now();
  let last = read();
  let lastChange = start;
  for (;;) {
    await sleep(25);
    const now = Date.now();
    const v = read();
    if (v > bound) return { reason: 'passed the bound', waitedMs: now - start };
    if (v !== last) {
      last = v;
      lastChange = now;
    } else if (now - lastChange >= QUIET_MS) {
      return { reason: 'settled', waitedMs: now - start };
    }
    if (now - start > 20_000) return { reason: 'timed out', waitedMs: now - start };
  }
}

function reportRss(t: TestContext, what: string, r: RssReport): void {
  t.diagnostic(
    `${what}: gateway RSS baseline ${(r.baselineKb / 1024).toFixed(1)} MiB, peak ${(r.peakKb / 1024).toFixed(1)} MiB ` +
      `(sampled max ${(r.maxSampleKb / 1024).toFixed(1)}, VmHWM ${r.hwmKb === null ? 'n/a' : (r.hwmKb / 1024).toFixed(1)}), ` +
      `growth ${(r.growthKb / 1024).toFixed(1)} MiB over ${r.samples} samples`,
  );
}

// ── tests ────────────────────────────────────────────────────────────────────────────────────

test('a 100 MiB multipart upload streams through with bounded gateway memory; PHP gets the exact file', { timeout: 120_000 }, async (t) => {
  const { gw, mc } = await startChild(t);
  const SIZE = 100 * MiB;
  const up = uploadPattern(SIZE, 'upload100');
  const watch = watchRss(gw.pid);
  let report: UploadReport;
  try {
    report = await postMultipart(mc.client, up.body, up.contentLength);
  } finally {
    reportRss(t, '100 MiB multipart upload', watch.stop());
  }
  const rss = watch.stop();
  assert.deepEqual(report.post, { note: 'memory-test' });
  assert.equal(report.content_length, String(up.contentLength));
  const file = report.files['file'];
  assert.ok(file, `no file in ${JSON.stringify(report)}`);
  assert.equal(file.error, 0);
  assert.equal(file.name, 'upload100.bin');
  assert.equal(file.size, SIZE);
  assert.equal(file.md5, up.md5());
  assert.ok(rss.growthKb < RSS_BOUND_KB, `gateway RSS grew by ${rss.growthKb} kB (bound ${RSS_BOUND_KB} kB)`);
});

/** What a big-download test watches: the md5 to expect, php-fpm's bytes written since now, RSS. */
function downloadProbe(gwPid: number, size: number): { expected: string; fpmWritten: () => number; watch: ReturnType<typeof watchRss>; hash: Hash } {
  const fpmBefore = sumIoBytes(workers, 'wchar');
  return { expected: bigPhpMd5(size), fpmWritten: () => sumIoBytes(workers, 'wchar') - fpmBefore, watch: watchRss(gwPid), hash: createHash('md5') };
}

test('maxResponseSpill 0: a 100 MiB download to a slow reader arrives intact; backpressure reaches php-fpm and gateway memory stays bounded', { timeout: 120_000 }, async (t) => {
  const { gw, mc } = await startChild(t, { maxResponseSpill: 0 });
  const SIZE = 100 * MiB;
  const PAUSE_AT = 24 * MiB;
  const { expected, fpmWritten, watch, hash } = downloadProbe(gw.pid, SIZE);
  let received = 0;
  let pause: {
    received: number;
    settle: Settled;
    socketGrowth: number;
    fpmWritten: number;
    rssBeforeKb: number;
    rssAfterKb: number;
  } | null = null;
  try {
    const res = await mc.client.request({ path: `/big.php?size=${SIZE}`, method: 'GET' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(SIZE));
    const sock = mc.sockets.at(-1)!;
    let sinceSleep = 0;
    for await (const chunk of res.body) {
      const c = chunk as Buffer;
      hash.update(c);
      received += c.length;
      sinceSleep += c.length;
      if (pause === null && received >= PAUSE_AT) {
        // Stop reading until php-fpm stops writing (its counter is still for QUIET_MS), or it
        // got IN_FLIGHT_BOUND ahead. With backpressure it blocks once the fixed-size socket
        // buffers between us are full; without, it writes the whole rest into the gateway.
        const socketBefore = sock.bytesRead;
        const rssBeforeKb = watch.current();
        const settle = await settled(() => fpmWritten() - received, IN_FLIGHT_BOUND);
        pause = {
          received,
          settle,
          socketGrowth: sock.bytesRead - socketBefore,
          fpmWritten: fpmWritten(),
          rssBeforeKb,
          rssAfterKb: watch.current(),
        };
      }
      if (sinceSleep >= 64 * KiB) {
        sinceSleep = 0;
        await sleep(2);
      }
    }
  } finally {
    reportRss(t, '100 MiB slow download', watch.stop());
  }
  const rss = watch.stop();
  assert.equal(received, SIZE);
  assert.equal(hash.digest('hex'), expected);
  assert.ok(pause, 'the reader paused mid-transfer');
  const inFlight = pause.fpmWritten - pause.received;
  t.diagnostic(
    `paused at ${(pause.received / MiB).toFixed(1)} MiB until php-fpm ${pause.settle.reason} (${pause.settle.waitedMs} ms): ` +
      `client socket read ${pause.socketGrowth} B more, php-fpm had written ${(pause.fpmWritten / MiB).toFixed(1)} MiB ` +
      `(${(inFlight / MiB).toFixed(1)} MiB ahead of the reader), gateway RSS ${(pause.rssBeforeKb / 1024).toFixed(1)} → ` +
      `${(pause.rssAfterKb / 1024).toFixed(1)} MiB`,
  );
  // wchar counts php-fpm's socket writes (FastCGI records: the body plus a little framing).
  assert.ok(pause.fpmWritten >= pause.received, 'php-fpm write counter covers what arrived');
  // php-fpm stopped writing while the reader was paused, a bounded distance ahead, far from done.
  assert.notEqual(pause.settle.reason, 'passed the bound');
  assert.ok(inFlight < IN_FLIGHT_BOUND, `php-fpm ran ${inFlight} B ahead of a paused reader (bound ${IN_FLIGHT_BOUND} B)`);
  assert.ok(pause.fpmWritten < SIZE, 'php-fpm finished the response while the reader was paused');
  // The client's socket stops reading once undici's body buffer is full.
  assert.ok(pause.socketGrowth < 8 * MiB, `client socket kept reading during the pause: ${pause.socketGrowth} B`);
  // Nothing piled up in the gateway meanwhile.
  assert.ok(
    pause.rssAfterKb - pause.rssBeforeKb < 16 * 1024,
    `gateway RSS grew ${pause.rssAfterKb - pause.rssBeforeKb} kB while the reader was paused`,
  );
  assert.ok(rss.growthKb < RSS_BOUND_KB, `gateway RSS grew by ${rss.growthKb} kB (bound ${RSS_BOUND_KB} kB)`);
});

test('a 20 MiB chunked upload is spooled to a temp file past bodyBufferSize, sent with its CONTENT_LENGTH, and removed', { timeout: 120_000 }, async (t) => {
  const { gw, mc, tmp } = await startChild(t);
  const SIZE = 20 * MiB;
  let spoolSeen = false;
  // Halfway (well past the 1 MiB buffer) the body waits until the spool file exists: proof
  // that the gateway moved it to disk rather than holding it.
  const body = patternStream(SIZE, 'chunked20', async (offset) => {
    if (offset !== 10 * MiB) return;
    await waitFor(() => openFilesUnder(tmp, gw.pid).length > 0, 'a spool file in tmpDir');
    spoolSeen = true;
  });
  const watch = watchRss(gw.pid);
  let report: UploadReport;
  try {
    // No content-length: undici sends Transfer-Encoding: chunked.
    report = await postJson(mc.client, '/upload-md5.php', body.stream, { 'content-type': 'application/octet-stream' });
  } finally {
    reportRss(t, '20 MiB chunked upload', watch.stop());
  }
  const rss = watch.stop();
  assert.ok(spoolSeen);
  assert.equal(body.produced(), SIZE);
  assert.equal(report.content_length, String(SIZE));
  assert.equal(report.input_len, SIZE);
  assert.equal(report.input_md5, body.md5());
  assert.ok(rss.growthKb < RSS_BOUND_KB, `gateway RSS grew by ${rss.growthKb} kB (bound ${RSS_BOUND_KB} kB)`);
  await waitFor(() => openFilesUnder(tmp, gw.pid).length === 0, 'the spool file closed');
  assert.deepEqual(listDir(tmp), []);
});

test('requestBuffering off: a 100 MiB upload to a stalled script: backpressure reaches the client and gateway memory stays bounded', { timeout: 120_000 }, async (t) => {
  const { gw, mc, tmp } = await startChild(t, { requestBuffering: false });
  const SIZE = 100 * MiB;
  const PAUSE_AFTER = 24 * MiB;
  const signals = mkdtempSync(join(tmpdir(), 'fcgi-mem-signal-'));
  t.after(() => rmSync(signals, { recursive: true, force: true }));
  const stalledFile = join(signals, 'stalled');
  const releaseFile = join(signals, 'release');
  const body = patternStream(SIZE, 'stalled');
  const watch = watchRss(gw.pid);
  // PUT: php-fpm hands the body to the script as it reads php://input (a POST body would be
  // read in full first), so slow-input.php really stops reading until the release file exists.
  const query = `pause_after=${PAUSE_AFTER}&stalled=${encodeURIComponent(stalledFile)}&release=${encodeURIComponent(releaseFile)}`;
  let stall: { settle: Settled; produced: number; rssBeforeKb: number; rssAfterKb: number } | null = null;
  let res: Awaited<ReturnType<typeof mc.client.request>>;
  let text: string;
  try {
    const pending = mc.client.request({
      path: `/slow-input.php?${query}`,
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) },
      body: body.stream,
    });
    pending.catch(() => {}); // awaited below; a failure must not go unhandled while we wait
    // Once the script has stalled, wait until the client stops producing (or got too far
    // ahead of the script), then let the script go on.
    await waitFor(() => existsSync(stalledFile), 'the script to stall', 60_000);
    const stalledAt = Number(readFileSync(stalledFile, 'utf8'));
    const rssBeforeKb = watch.current();
    const settle = await settled(() => body.produced() - stalledAt, IN_FLIGHT_BOUND);
    stall = { settle, produced: body.produced(), rssBeforeKb, rssAfterKb: watch.current() };
    writeFileSync(releaseFile, '');
    res = await pending;
    text = await res.body.text();
  } finally {
    writeFileSync(releaseFile, '');
    reportRss(t, '100 MiB upload to a stalled script', watch.stop());
  }
  const rss = watch.stop();
  assert.equal(res.statusCode, 200, text.slice(0, 300));
  const report = JSON.parse(text) as { md5: string; len: number; paused_at: number | null; released: boolean | null; method: string; content_length: string | null };
  assert.equal(report.method, 'PUT');
  assert.equal(report.content_length, String(SIZE));
  assert.equal(report.len, SIZE);
  assert.equal(report.md5, body.md5());
  assert.equal(report.released, true, 'the script waited for the release file');
  assert.ok(report.paused_at !== null && report.paused_at >= PAUSE_AFTER, 'the script stalled mid-body');
  const ahead = stall.produced - report.paused_at;
  t.diagnostic(
    `script stalled at ${(report.paused_at / MiB).toFixed(1)} MiB; the client ${stall.settle.reason} after ${stall.settle.waitedMs} ms, ` +
      `${(ahead / MiB).toFixed(1)} MiB ahead of the script; gateway RSS ${(stall.rssBeforeKb / 1024).toFixed(1)} → ` +
      `${(stall.rssAfterKb / 1024).toFixed(1)} MiB`,
  );
  // The client stopped a bounded distance ahead of the stalled script: the gateway paused
  // reading the request once php-fpm's socket was full, and TCP told the client.
  assert.notEqual(stall.settle.reason, 'passed the bound');
  assert.ok(ahead < IN_FLIGHT_BOUND, `the client ran ${ahead} B ahead of a stalled script (bound ${IN_FLIGHT_BOUND} B)`);
  assert.ok(stall.produced < SIZE, 'the client sent the whole body while the script was stalled');
  assert.ok(
    stall.rssAfterKb - stall.rssBeforeKb < 16 * 1024,
    `gateway RSS grew ${stall.rssAfterKb - stall.rssBeforeKb} kB while the script was stalled`,
  );
  assert.ok(rss.growthKb < RSS_BOUND_KB, `gateway RSS grew by ${rss.growthKb} kB (bound ${RSS_BOUND_KB} kB)`);
  assert.deepEqual(listDir(tmp), [], 'a body with Content-Length is streamed, never spooled');
});

/** php-fpm workers running a request other than this status request (its full status page). */
async function fpmBusyWorkers(): Promise<number> {
  const pool = new ConnectionPool(fpm.address, { connections: 1, keepAlive: false, probeLimits: false });
  try {
    const res = await pool.request({ params: { SCRIPT_NAME: '/status', SCRIPT_FILENAME: '/status', QUERY_STRING: 'json&full', REQUEST_METHOD: 'GET' } });
    const text = res.stdout.toString('latin1');
    const json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { processes: Array<{ state: string; 'request uri': string }> };
    // "Reading headers" with no request is a worker waiting on a kept connection for the
    // next request: free of the one it served.
    return json.processes.filter((p) => p.state !== 'Idle' && p.state !== 'Reading headers' && !p['request uri'].startsWith('/status')).length;
  } finally {
    await pool.close();
  }
}

/** Poll fpmBusyWorkers until it is 0 (or `ms` passed); returns the last value. */
async function fpmBusyUntilIdle(ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const n = await fpmBusyWorkers();
    if (n === 0 || Date.now() > deadline) return n;
    await sleep(50);
  }
}

test('a slow reader of a 100 MiB response: php-fpm finishes and its worker is idle long before the client, memory stays bounded, the spill file is closed', { timeout: 120_000 }, async (t) => {
  const { gw, mc, tmp } = await startChild(t);
  const SIZE = 100 * MiB;
  const PAUSE_AT = 8 * MiB;
  const { expected, fpmWritten, watch, hash } = downloadProbe(gw.pid, SIZE);
  let received = 0;
  let pause: { received: number; spillFiles: string[]; active: number; rssBeforeKb: number; rssAfterKb: number } | null = null;
  try {
    const res = await mc.client.request({ path: `/big.php?size=${SIZE}`, method: 'GET' });
    assert.equal(res.statusCode, 200);
    for await (const chunk of res.body) {
      const c = chunk as Buffer;
      hash.update(c);
      received += c.length;
      if (pause === null && received >= PAUSE_AT) {
        // Stop reading. php-fpm must still get to write its whole response: the gateway takes
        // what the client cannot, first in memory, then in a temp file.
        const rssBeforeKb = watch.current();
        await waitFor(() => fpmWritten() >= SIZE, 'php-fpm to finish the response while the client reads nothing', 60_000);
        pause = { received, spillFiles: openFilesUnder(tmp, gw.pid), active: await fpmBusyUntilIdle(10_000), rssBeforeKb, rssAfterKb: watch.current() };
      }
    }
  } finally {
    reportRss(t, '100 MiB response to a paused reader', watch.stop());
  }
  const rss = watch.stop();
  assert.equal(received, SIZE);
  assert.equal(hash.digest('hex'), expected);
  assert.ok(pause, 'the reader paused mid-transfer');
  t.diagnostic(
    `paused at ${(pause.received / MiB).toFixed(1)} MiB; php-fpm wrote all ${SIZE / MiB} MiB meanwhile; spill files ${pause.spillFiles.length}; ` +
      `php-fpm workers busy ${pause.active}; gateway RSS ${(pause.rssBeforeKb / 1024).toFixed(1)} → ${(pause.rssAfterKb / 1024).toFixed(1)} MiB`,
  );
  assert.ok(pause.received < SIZE / 2, 'the client was far from done when php-fpm finished');
  assert.equal(pause.spillFiles.length, 1, 'the excess went to one temp file');
  assert.match(pause.spillFiles[0]!, /\(deleted\)$/, 'the temp file has no name on disk');
  assert.equal(pause.active, 0, 'no php-fpm worker is busy: the one that ran the script went back to idle');
  // ~92 MiB went through the gateway into the temp file during the pause; what RSS shows on top
  // is the garbage of record copies not yet collected (2–21 MiB seen), never the spilled bytes.
  assert.ok(pause.rssAfterKb - pause.rssBeforeKb < 32 * 1024, `gateway RSS grew ${pause.rssAfterKb - pause.rssBeforeKb} kB while spilling`);
  assert.ok(rss.growthKb < RSS_BOUND_KB, `gateway RSS grew by ${rss.growthKb} kB (bound ${RSS_BOUND_KB} kB)`);
  await waitFor(() => openFilesUnder(tmp, gw.pid).length === 0, 'the spill file to be closed once sent');
  assert.deepEqual(listDir(tmp), []);
});
