/**
 * An anonymous temp file for spooled request bodies and spilled responses: opened with mode
 * 0600 and unlinked at once, so it lives exactly as long as its file descriptor. Nothing is
 * left on disk whatever order close, error and finish arrive in, or if the process dies.
 *
 * Operations (write, read, close) run one after another on an internal queue, so a read never
 * overtakes the write it depends on and the descriptor is closed exactly once, after the last
 * pending operation returned. (Closing earlier, or twice, would hit whatever reused the fd
 * number: another request's socket, or libuv's own.)
 */
import { randomBytes } from 'node:crypto';
import { close, open, read, unlink, write, writev } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** Bytes a body stream reads at a time. */
const READ_CHUNK = 256 * 1024;

type Op = (done: () => void) => void;

/** See the module comment. */
export class TempFile {
  readonly #fd: number;
  #ops: Op[] = [];
  #running = false;
  #closed = false;
  /** Bytes appended so far (the next write position). */
  #size = 0;
  /** Bytes whose write completed. */
  #written = 0;
  #error: Error | null = null;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Create the file in `dir` (0600) and unlink its name. */
  static create(dir: string): Promise<TempFile> {
    const path = join(dir, `fcgi-gw-${process.pid}-${randomBytes(8).toString('hex')}`);
    return new Promise((resolve, reject) => {
      open(path, 'wx+', 0o600, (err, fd) => {
        if (err) {
          reject(err);
          return;
        }
        unlink(path, () => resolve(new TempFile(fd)));
      });
    });
  }

  /** Bytes appended (including writes still in progress). */
  get size(): number {
    return this.#size;
  }

  /** Bytes on disk: readable with `read`. */
  get written(): number {
    return this.#written;
  }

  /** Bytes appended whose write has not completed yet (they are still held in memory). */
  get pending(): number {
    return this.#size - this.#written;
  }

  /** The first I/O error, if any (later operations fail with it). */
  get error(): Error | null {
    return this.#error;
  }

  /** Append `chunk`; `cb` runs once it is on disk (or with the error). */
  append(chunk: Buffer, cb?: (err: Error | null) => void): void {
    const pos = this.#size;
    this.#size += chunk.length;
    this.#enqueue((done) => {
      if (this.#error) {
        done();
        cb?.(this.#error);
        return;
      }
      this.#writeAll(chunk, 0, pos, (err) => {
        if (err) this.#error ??= err;
        else this.#written += chunk.length;
        done();
        cb?.(err);
      });
    });
  }

  /** Append several chunks in one system call (writev); `cb` as for append. */
  appendv(chunks: readonly Buffer[], cb?: (err: Error | null) => void): void {
    if (chunks.length === 1) {
      this.append(chunks[0]!, cb);
      return;
    }
    let total = 0;
    for (const c of chunks) total += c.length;
    const pos = this.#size;
    this.#size += total;
    const list = [...chunks];
    this.#enqueue((done) => {
      if (this.#error) {
        done();
        cb?.(this.#error);
        return;
      }
      writev(this.#fd, list, pos, (err, n) => {
        if (err || n === total) {
          if (err) this.#error ??= err;
          else this.#written += total;
          done();
          cb?.(err);
          return;
        }
        // A short writev (rare on regular files): write the rest as one buffer.
        const rest = Buffer.concat(list, total).subarray(n);
        this.#writeAll(rest, 0, pos + n, (e) => {
          if (e) this.#error ??= e;
          else this.#written += total;
          done();
          cb?.(e);
        });
      });
    });
  }

  /** Read up to `length` bytes at `position` into a new buffer (shorter at the end). */
  readAt(position: number, length: number, cb: (err: Error | null, data: Buffer) => void): void {
    const buf = Buffer.allocUnsafe(length);
    this.readInto(position, buf, (err, n) => cb(err, err ? Buffer.alloc(0) : buf.subarray(0, n)));
  }

  /** Read up to `buf.length` bytes at `position` into `buf`; `n` is how many arrived. */
  readInto(position: number, buf: Buffer, cb: (err: Error | null, n: number) => void): void {
    this.#enqueue((done) => {
      if (this.#error) {
        done();
        cb(this.#error, 0);
        return;
      }
      read(this.#fd, buf, 0, buf.length, position, (err, n) => {
        done();
        cb(err, err ? 0 : n);
      });
    });
  }

  /**
   * A stream of the whole content, from byte 0, for FCGI_STDIN. Its reads go through the
   * same queue as everything else, so `close()` never races one: a read asked for after
   * close fails the stream (its error is handled here; the consumer sees 'error' or 'close').
   */
  stream(): Readable {
    const end = this.#size;
    let pos = 0;
    const r = new Readable({
      highWaterMark: READ_CHUNK,
      read: () => {
        if (pos >= end) {
          r.push(null);
          return;
        }
        this.readAt(pos, Math.min(READ_CHUNK, end - pos), (err, data) => {
          if (r.destroyed) return;
          if (err || data.length === 0) {
            r.destroy(err ?? new Error('temp file ended early'));
            return;
          }
          pos += data.length;
          r.push(data);
        });
      },
    });
    r.on('error', () => {});
    return r;
  }

  /** Close the descriptor after every operation already asked for. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#enqueue((done) => {
      close(this.#fd, () => done());
    }, true);
  }

  #writeAll(chunk: Buffer, offset: number, position: number, cb: (err: Error | null) => void): void {
    write(this.#fd, chunk, offset, chunk.length - offset, position, (err, n) => {
      if (err) cb(err);
      else if (offset + n < chunk.length) this.#writeAll(chunk, offset + n, position + n, cb);
      else cb(null);
    });
  }

  #enqueue(op: Op, internal = false): void {
    if (this.#closed && !internal) {
      // Closed: fail fast with the same callback shape, never touch the fd.
      this.#error ??= new Error('temp file closed');
    }
    this.#ops.push(op);
    if (!this.#running) this.#next();
  }

  #next(): void {
    const op = this.#ops.shift();
    if (op === undefined) {
      this.#running = false;
      return;
    }
    this.#running = true;
    op(() => this.#next());
  }
}
