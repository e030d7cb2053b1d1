/**
 * Codec micro-benchmark: records/s through the STDOUT encoder and the RecordDecoder (8 KiB and
 * 64 B records; decoder fed 64 KiB chunks and odd 1000-byte chunks that split headers and
 * content), and params/s through encodeRequestHead and decodePairs for a typical nginx-like
 * param set.
 *
 *   node --import tsx bench/micro/codec.bench.ts
 *   ROUNDS=7 ROUND_MS=250 WARMUP_MS=300   (env knobs, defaults shown)
 *
 * Each case: calibrate a batch size, warm up, then ROUNDS timed rounds of ~ROUND_MS; the
 * median round is reported. Writes bench/results/codec-<timestamp>.json. Figures from a shared
 * machine are noisy: compare medians of runs made the same way, never assert on them.
 */
import { RecordType, Role } from '../../src/protocol/constants.js';
import { RecordDecoder } from '../../src/protocol/decoder.js';
import { encodeRecord, encodeRequestHead, encodeStreamChunk, frameStreamChunk } from '../../src/protocol/encoder.js';
import { decodePairs, encodePairs } from '../../src/protocol/params.js';
import { benchMeta, envInt, median, nginxLikeParams, printTable, round, writeResult } from '../http/lib.js';

const ROUNDS = envInt('ROUNDS', 7);
const ROUND_MS = envInt('ROUND_MS', 250);
const WARMUP_MS = envInt('WARMUP_MS', 300);

/** Results feed this so the optimiser cannot drop the work. */
let sink = 0;

interface Case {
  readonly name: string;
  /** What one operation handles: `perOp` records or params. */
  readonly unit: 'records' | 'params';
  readonly perOp: number;
  /** Wire bytes one operation produces or consumes (for MB/s), 0 when not meaningful. */
  readonly bytesPerOp: number;
  /** One operation; returns a number derived from the output. */
  readonly op: () => number;
  /** Throws when one operation's output is wrong (run once before timing). */
  readonly check?: () => void;
}

interface CaseResult {
  readonly name: string;
  readonly unit: string;
  readonly perOp: number;
  readonly opsPerRound: number;
  readonly medianPerSec: number;
  readonly minPerSec: number;
  readonly maxPerSec: number;
  readonly medianMBPerSec: number | null;
  readonly roundsPerSec: number[];
}

function timeOps(op: () => number, iterations: number): number {
  const t0 = process.hrtime.bigint();
  let s = 0;
  for (let i = 0; i < iterations; i++) s += op();
  const t1 = process.hrtime.bigint();
  sink += s;
  return Number(t1 - t0) / 1e9;
}

function runCase(c: Case): CaseResult {
  c.check?.();
  // Calibrate: grow the batch until it takes ≥ 20 ms, then size rounds to ROUND_MS.
  let n = 1;
  let secs = timeOps(c.op, n);
  while (secs < 0.02) {
    n *= 2;
    secs = timeOps(c.op, n);
  }
  const perRound = Math.max(1, Math.round((n * ROUND_MS) / 1000 / secs));
  const warmUntil = Date.now() + WARMUP_MS;
  while (Date.now() < warmUntil) timeOps(c.op, Math.max(1, perRound >> 3));
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) rates.push((perRound * c.perOp) / timeOps(c.op, perRound));
  const med = median(rates);
  return {
    name: c.name,
    unit: `${c.unit}/s`,
    perOp: c.perOp,
    opsPerRound: perRound,
    medianPerSec: Math.round(med),
    minPerSec: Math.round(Math.min(...rates)),
    maxPerSec: Math.round(Math.max(...rates)),
    medianMBPerSec: c.bytesPerOp > 0 ? round(((med / c.perOp) * c.bytesPerOp) / 2 ** 20, 1) : null,
    roundsPerSec: rates.map((x) => Math.round(x)),
  };
}

// ── inputs ─────────────────────────────────────────────────────────────────────────────────

function payload(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** A stream of `count` STDOUT records of `size` bytes, cut into chunks of `chunk` bytes. */
function stdoutStream(size: number, count: number, chunk: number): { chunks: Buffer[]; bytes: number } {
  const one = encodeRecord(RecordType.Stdout, 1, payload(size));
  const all = Buffer.concat(Array.from({ length: count }, () => one));
  const chunks: Buffer[] = [];
  for (let o = 0; o < all.length; o += chunk) chunks.push(Buffer.from(all.subarray(o, o + chunk)));
  return { chunks, bytes: all.length };
}

function decodeCase(label: string, size: number, count: number, chunk: number): Case {
  const { chunks, bytes } = stdoutStream(size, count, chunk);
  // One decoder for the whole case, as one per connection: the stream ends on a record boundary.
  const decoder = new RecordDecoder({ requestId: 1 });
  let records = 0;
  let contentBytes = 0;
  const onRecord = (rec: { content: Buffer }): void => {
    records++;
    contentBytes += rec.content.length;
  };
  const op = (): number => {
    records = 0;
    for (const c of chunks) decoder.push(c, onRecord);
    return records;
  };
  return {
    name: `decode STDOUT ${label}, ${chunk === 65536 ? '64 KiB' : `${chunk} B`} chunks`,
    unit: 'records',
    perOp: count,
    bytesPerOp: bytes,
    op,
    check: () => {
      contentBytes = 0;
      if (op() !== count || contentBytes !== size * count || !decoder.atBoundary) {
        throw new Error(`decoder check failed for ${label}/${chunk}: ${records} records, ${contentBytes} bytes`);
      }
    },
  };
}

// A typical browser GET as nginx passes it with the canonical config (26 params, two of them
// longer than 127 bytes so the 4-byte length form is exercised).
const PARAMS = nginxLikeParams({
  docRoot: '/var/www/html',
  script: '/index.php',
  query: 'page=2&sort=desc',
  host: 'www.example.com',
  serverPort: 80,
  headers: [
    ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0'],
    ['Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8'],
    ['Cookie', 'PHPSESSID=3f2a9c1b7d6e5f4a3b2c1d0e9f8a7b6c; theme=dark; lang=en-GB; _ga=GA1.1.1234567890.1700000000; consent=necessary%2Canalytics'],
  ],
});
const PAIRS = encodePairs(PARAMS);
const HEAD_BYTES = encodeRequestHead(1, Role.Responder, true, PARAMS, true).length;

const small = payload(64);
const large = payload(8192);

const cases: Case[] = [
  {
    name: 'encode STDOUT 8 KiB (encodeStreamChunk, copy)',
    unit: 'records',
    perOp: 1,
    bytesPerOp: 8 + 8192,
    op: () => encodeStreamChunk(RecordType.Stdout, 1, large).length,
    check: () => {
      if (encodeStreamChunk(RecordType.Stdout, 1, large).length !== 8200) throw new Error('8 KiB record size');
    },
  },
  {
    name: 'encode STDOUT 8 KiB (frameStreamChunk, views)',
    unit: 'records',
    perOp: 1,
    // Nothing is copied: a bytes/s figure would only measure the loop.
    bytesPerOp: 0,
    op: () => frameStreamChunk(RecordType.Stdout, 1, large).length,
  },
  {
    name: 'encode STDOUT 64 B (encodeStreamChunk)',
    unit: 'records',
    perOp: 1,
    bytesPerOp: 8 + 64,
    op: () => encodeStreamChunk(RecordType.Stdout, 1, small).length,
    check: () => {
      if (encodeStreamChunk(RecordType.Stdout, 1, small).length !== 72) throw new Error('64 B record size');
    },
  },
  decodeCase('8 KiB', 8192, 64, 65536),
  decodeCase('8 KiB', 8192, 64, 1000),
  decodeCase('64 B', 64, 8192, 65536),
  decodeCase('64 B', 64, 8192, 1000),
  {
    name: `encodeRequestHead (${PARAMS.length} params, ${HEAD_BYTES} B)`,
    unit: 'params',
    perOp: PARAMS.length,
    bytesPerOp: HEAD_BYTES,
    op: () => encodeRequestHead(1, Role.Responder, true, PARAMS, true).length,
  },
  {
    name: `decodePairs (${PARAMS.length} params, ${PAIRS.length} B)`,
    unit: 'params',
    perOp: PARAMS.length,
    bytesPerOp: PAIRS.length,
    op: () => decodePairs(PAIRS).length,
    check: () => {
      const back = decodePairs(PAIRS);
      const ok = back.length === PARAMS.length && back.every(([n, v], i) => n.toString() === PARAMS[i]![0] && v.toString() === PARAMS[i]![1]);
      if (!ok) throw new Error('decodePairs round trip failed');
    },
  },
];

// ── run ────────────────────────────────────────────────────────────────────────────────────

const meta = benchMeta();
console.log(`codec micro-bench — node ${meta.node}, commit ${meta.commit ?? '?'}${meta.dirty ? ' (dirty)' : ''}, ${meta.cpus} CPUs, load ${meta.loadavg.join(' ')}`);
console.log(`${ROUNDS} rounds of ~${ROUND_MS} ms after ${WARMUP_MS} ms warm-up; median per case\n`);

const results: CaseResult[] = [];
for (const c of cases) {
  const r = runCase(c);
  results.push(r);
  process.stdout.write(`  done: ${c.name}\n`);
}
console.log('');
printTable([
  ['case', 'median', 'unit', 'min', 'max', 'MB/s'],
  ...results.map((r) => [r.name, r.medianPerSec, r.unit, r.minPerSec, r.maxPerSec, r.medianMBPerSec ?? '-']),
]);

const file = writeResult('codec', {
  bench: 'codec',
  meta,
  config: { rounds: ROUNDS, roundMs: ROUND_MS, warmupMs: WARMUP_MS },
  params: { count: PARAMS.length, pairBytes: PAIRS.length, requestHeadBytes: HEAD_BYTES },
  results,
});
console.log(`\nwrote ${file}`);
if (sink === -1) console.log(sink);
