/**
 * Writes an upstream response body to the client without letting a slow client hold the
 * upstream. Data goes straight to `res` while the client keeps up, so `flush()` output and
 * server-sent events arrive at once. When the client falls behind, the excess is kept: in
 * memory up to `memory` bytes, then in an unlinked temp file, so that php-fpm can finish and
 * its worker go back to the pool while the client is still reading. Only when the unsent
 * backlog passes `maxSpill` (or the disk falls behind) is the upstream paused.
 *
 *   write(chunk) ─▶ direct ──res.write false──▶ behind ──backlog > memory──▶ spilling
 *                    ▲                            │                            │
 *                    └────────── 'drain', backlog sent (temp file closed) ◀────┘
 *
 * Backlog order: memory chunks first, then the file region [readPos, size). Once the file
 * holds anything, new chunks go to the file until it is drained, so bytes never reorder.
 *
 * Buffers: a chunk lent by `blocks` (upstream/blocks.ts) becomes this writer's, and goes back
 * to the pool once node is done with it: after its write to the client completed (only when
 * that callback means so, see writeCallbackFreesChunk) or after its write to the temp file.
 * The file is read back into lent blocks too. So a long download reuses a few dozen blocks
 * instead of allocating three fresh buffers per 64 KiB.
 *
 * Send timeout (nginx `send_timeout`): while the client has not drained what it was given,
 * and between res.end() and 'finish', a timer runs; when it fires the client is dropped. Time
 * spent waiting for the temp file is not the client's and does not count.
 */
import type { ServerResponse } from 'node:http';
import { ClientSendTimeoutError, type GatewayError, ResponseSpillError } from '../errors.js';
import { BLOCK_SIZE, blocks } from '../upstream/blocks.js';
import type { MemoryBudget } from './memory-budget.js';
import { TempFile } from './temp-file.js';
import { responseDestroyed, writeCallbackFreesChunk } from './wire.js';

/** Limits of one writer. */
export interface SpillOptions {
  /** Backlog bytes kept in memory before spilling (0: spill at once). */
  readonly memory: number;
  /** Most unsent bytes spilled to disk before the upstream is paused (0: never spill). */
  readonly maxSpill: number;
  /** Directory for the temp file. */
  readonly tmpDir: string;
  /** ms the client may read nothing before it is dropped (0: never). */
  readonly sendTimeout: number;
  /** Process-wide allowance for bytes held in memory; past it the backlog goes to disk. */
  readonly budget: MemoryBudget;
}

/** What the writer tells its owner. */
export interface SpillEvents {
  /** The upstream was asked to pause (write() returned false) and may resume now. */
  resume(): void;
  /** The writer failed (send timeout, spill I/O): the client connection is being dropped. */
  failed(err: GatewayError): void;
}

/** Bytes read back from the temp file at a time: one block. */
const READ_CHUNK = BLOCK_SIZE;
/** Spilled bytes not yet on disk (held in memory meanwhile) above which the upstream pauses. */
const MAX_PENDING_DISK = 1024 * 1024;
/** Chunks bound for the temp file are gathered into writes of about this size (one writev). */
const DISK_BATCH = 256 * 1024;

/** See the module comment. */
export class SpillingWriter {
  readonly #res: ServerResponse;
  readonly #o: SpillOptions;
  readonly #events: SpillEvents;
  /** Lent blocks may go back to the pool from res.write callbacks. */
  readonly #reuse: boolean;
  /** Memory backlog (sent before anything in the file). */
  #queue: Buffer[] = [];
  #queued = 0;
  /** Memory #queue holds (blocks.footprint of each chunk). */
  #queuedCost = 0;
  /** Bytes of #queue reserved from the budget (all of it, unless maxSpill is 0). */
  #reserved = 0;
  /** Chunks for the next write to the temp file (after everything in it). */
  #batch: Buffer[] = [];
  #batchBytes = 0;
  #file: TempFile | null = null;
  /** Chunks that arrived while the temp file was being created. */
  #opening: Buffer[] | null = null;
  #openingBytes = 0;
  #readPos = 0;
  #reading = false;
  /** res.write returned false; waiting for 'drain'. */
  #blocked = false;
  /** write() returned false; the owner waits for events.resume(). */
  #upstreamPaused = false;
  #ending = false;
  /** res.end() was called: waiting for 'finish', i.e. for the client to take the last bytes. */
  #finishing = false;
  /** end() asked to destroy instead of ending cleanly (the upstream sent a short body). */
  #destroyAtEnd = false;
  #done = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(res: ServerResponse, options: SpillOptions, events: SpillEvents) {
    this.#res = res;
    this.#o = options;
    this.#events = events;
    this.#reuse = writeCallbackFreesChunk(res);
    res.once('close', this.#onClose);
  }

  /** Bytes waiting to be given to the client (memory + file). */
  get backlog(): number {
    return this.#queued + this.#openingBytes + this.#batchBytes + (this.#file ? this.#file.size - this.#readPos : 0);
  }

  /** Queue `chunk` for the client. Returns false when the upstream should pause until resume(). */
  write(chunk: Buffer): boolean {
    if (this.#done || this.#ending) return true;
    if (!this.#blocked && this.backlog === 0) {
      if (this.#send(chunk, chunk)) return true;
      this.#block();
      return this.#o.maxSpill > 0 || this.#o.memory > 0 ? true : this.#pauseUpstream();
    }
    // The memory limits count what the chunk holds: a lent block is 64 KiB whatever its length.
    const cost = blocks.footprint(chunk);
    if (this.#file === null && this.#opening === null && this.#queuedCost + cost <= this.#o.memory && this.#o.budget.take(cost)) {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      this.#queuedCost += cost;
      this.#reserved += cost;
      return true;
    }
    if (this.#o.maxSpill === 0) {
      // No disk: keep it in memory and hold the upstream until the client drains.
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      this.#queuedCost += cost;
      return this.#pauseUpstream();
    }
    this.#spill(chunk);
    return this.#mustPause() ? this.#pauseUpstream() : true;
  }

  /** No more data: end the response once the backlog is sent (destroy it instead when `short`). */
  end(short = false): void {
    if (this.#done || this.#ending) return;
    this.#ending = true;
    this.#destroyAtEnd = short;
    this.#pump();
  }

  /** Drop everything (the response failed or the client left). Idempotent. */
  destroy(): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    this.#res.removeListener('drain', this.#onDrain);
    this.#res.removeListener('close', this.#onClose);
    this.#res.removeListener('finish', this.#onFinish);
    this.#queue = [];
    this.#queued = 0;
    this.#queuedCost = 0;
    this.#o.budget.give(this.#reserved);
    this.#reserved = 0;
    this.#batch = [];
    this.#batchBytes = 0;
    this.#opening = null;
    this.#openingBytes = 0;
    this.#file?.close();
    this.#file = null;
  }

  #pauseUpstream(): false {
    this.#upstreamPaused = true;
    return false;
  }

  #mustPause(): boolean {
    const f = this.#file;
    const spilled = (f ? f.size - this.#readPos : 0) + this.#openingBytes + this.#batchBytes;
    return spilled > this.#o.maxSpill || (f !== null && f.pending > MAX_PENDING_DISK) || this.#openingBytes > MAX_PENDING_DISK;
  }

  #spill(chunk: Buffer): void {
    if (this.#file !== null) {
      this.#batch.push(chunk);
      this.#batchBytes += chunk.length;
      if (this.#batchBytes >= DISK_BATCH) this.#flushBatch();
      return;
    }
    if (this.#opening !== null) {
      this.#opening.push(chunk);
      this.#openingBytes += chunk.length;
      return;
    }
    this.#opening = [chunk];
    this.#openingBytes = chunk.length;
    TempFile.create(this.#o.tmpDir).then(
      (f) => {
        const waiting = this.#opening;
        if (this.#done || waiting === null) {
          f.close();
          return;
        }
        this.#file = f;
        this.#opening = null;
        this.#openingBytes = 0;
        this.#append(f, waiting);
        this.#pump();
      },
      (err: unknown) => this.#fail(new ResponseSpillError(err)),
    );
  }

  #flushBatch(): void {
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    this.#append(this.#file!, batch);
  }

  /** Write `chunks` to the file; lent ones go back to the pool once the write returned. */
  #append(f: TempFile, chunks: Buffer[]): void {
    f.appendv(chunks, (err) => {
      for (const c of chunks) blocks.give(c);
      this.#afterAppend(err);
    });
  }

  #afterAppend = (err: Error | null): void => {
    if (this.#done) return;
    if (err) {
      this.#fail(new ResponseSpillError(err));
      return;
    }
    this.#maybeResume();
    this.#pump();
  };

  #block(): void {
    this.#blocked = true;
    this.#res.once('drain', this.#onDrain);
    this.#armTimer();
  }

  #onDrain = (): void => {
    // The timer is not cleared here: a fast client drains and blocks every 16 KiB, and a
    // timer per block would cost an object and a timer-list insert each time. The running
    // timer checks, when it fires, how long the current wait has really lasted.
    this.#blocked = false;
    this.#pump();
  };

  /** Give the client what is backlogged, until it pushes back or nothing is left. */
  #pump(): void {
    if (this.#done || this.#reading) return;
    while (!this.#blocked) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        this.#queued -= next.length;
        const cost = blocks.footprint(next);
        this.#queuedCost -= cost;
        const back = Math.min(cost, this.#reserved);
        this.#reserved -= back;
        this.#o.budget.give(back);
        if (!this.#send(next, next)) this.#block();
        continue;
      }
      const f = this.#file;
      if (f !== null && this.#readPos < f.written) {
        this.#readFile(f);
        return;
      }
      if (f !== null && this.#batchBytes > 0 && f.pending === 0) {
        // The file is drained but a batch waits: write it, read on once it is on disk.
        this.#flushBatch();
        return;
      }
      if (f !== null && this.#readPos === f.size && f.pending === 0) {
        // Caught up: drop the file; a later spill makes a new one.
        f.close();
        this.#file = null;
        this.#readPos = 0;
      }
      break;
    }
    this.#maybeResume();
    if (this.#ending && !this.#blocked && this.backlog === 0) this.#finish();
  }

  #readFile(f: TempFile): void {
    this.#reading = true;
    const buf = blocks.take(Math.min(READ_CHUNK, f.written - this.#readPos));
    f.readInto(this.#readPos, buf, (err, n) => {
      this.#reading = false;
      if (this.#done || err || n === 0) {
        blocks.give(buf);
        if (!this.#done) this.#fail(new ResponseSpillError(err ?? new Error('short read')));
        return;
      }
      this.#readPos += n;
      if (!this.#send(n === buf.length ? buf : buf.subarray(0, n), buf)) this.#block();
      this.#pump();
    });
  }

  /**
   * res.write(data); `lent` (the block `data` lies in, when the pool lent it) goes back to the
   * pool once the write completed. A failed write, or one that completes on a destroyed
   * response, may have left bytes in a socket write still under way: that block is left to the
   * garbage collector instead.
   */
  #send(data: Buffer, lent: Buffer): boolean {
    if (!this.#reuse || !blocks.lent(lent)) return this.#res.write(data);
    return this.#res.write(data, (err) => {
      if (!err && !responseDestroyed(this.#res)) blocks.give(lent);
    });
  }

  #maybeResume(): void {
    if (!this.#upstreamPaused || this.#done) return;
    const memoryOk = this.#o.maxSpill > 0 || (!this.#blocked && this.#queued === 0);
    if (memoryOk && !this.#mustPause()) {
      this.#upstreamPaused = false;
      this.#events.resume();
    }
  }

  #finish(): void {
    const res = this.#res;
    const short = this.#destroyAtEnd;
    this.#file?.close();
    this.#file = null;
    if (short) {
      this.destroy();
      res.destroy();
      return;
    }
    // The last bytes may still sit in the socket buffer: keep the send timeout until 'finish'.
    this.#finishing = true;
    res.once('finish', this.#onFinish);
    this.#armTimer();
    res.end();
  }

  #onFinish = (): void => {
    this.destroy();
  };

  #onClose = (): void => {
    this.destroy();
  };

  #fail(err: GatewayError): void {
    if (this.#done) return;
    this.destroy();
    this.#events.failed(err);
    this.#res.destroy();
  }

  /** A wait for the client starts now (a block, or the end waiting for 'finish'). */
  #armTimer(): void {
    if (this.#o.sendTimeout <= 0) return;
    this.#waitingSince = Date.now();
    if (this.#timer === null) this.#startTimer(this.#o.sendTimeout);
  }

  #startTimer(ms: number): void {
    this.#timer = setTimeout(this.#onTimeout, ms);
    this.#timer.unref();
  }

  /** When the current wait for the client began (Date.now()). */
  #waitingSince = 0;

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #onTimeout = (): void => {
    this.#timer = null;
    // Not waiting for the client now. (Ending with a backlog still on its way from the temp
    // file is waiting for our disk, not the client: it does not count either.)
    if (!this.#blocked && !this.#finishing) return;
    const waited = Date.now() - this.#waitingSince;
    if (waited < this.#o.sendTimeout) {
      // The client made progress since this timer started: wait out the rest of this wait.
      this.#startTimer(this.#o.sendTimeout - waited);
      return;
    }
    this.#fail(new ClientSendTimeoutError(this.#o.sendTimeout));
  };
}
