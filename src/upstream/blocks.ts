/**
 * Reusable 64 KiB blocks for response bodies. A 1 GiB download otherwise allocates three fresh
 * buffers per 64 KiB (the decoder's record assembly, the copy out of the socket's read buffer,
 * the spill file's read-back), and V8 frees such ArrayBuffers only once 32 MB of them have
 * piled up in its young generation: that pile, not the body, set the process's peak RSS (105
 * MiB, 75 with the pool), and the allocations cost 7-13 % of a 1 MiB download's CPU.
 *
 * Ownership: `take` lends a block as a fresh Buffer view; whoever holds that exact view last
 * may `give` it back once nothing refers to its bytes any more (no write in flight). A block
 * never given back is simply collected, so forgetting is safe; giving back too early is not,
 * which is why only the spill writer gives, and only from completion callbacks. Giving a view
 * twice, a subarray of it, or a buffer the pool never lent is ignored.
 */

/** Size of every block: a FastCGI record's largest content (65,535 bytes) fits in one. */
export const BLOCK_SIZE = 64 * 1024;

/**
 * Smaller requests get a plain allocation, so that a lent view pins at most twice its size:
 * memory limits count bytes, and a view that is never given back (a whole small response)
 * holds its whole block until collected.
 */
export const MIN_BLOCK_USE = 32 * 1024;

/** See the module comment. */
export class BlockPool {
  readonly #free: ArrayBuffer[] = [];
  /** The views currently lent (by identity: a stale view of a re-lent block is not in it). */
  readonly #lent = new WeakSet<Buffer>();
  readonly #maxFree: number;

  /** `maxFree`: blocks kept for reuse; more given back are left to the garbage collector. */
  constructor(maxFree: number) {
    this.#maxFree = maxFree;
  }

  /** `n` uninitialised bytes: lent from the pool when MIN_BLOCK_USE ≤ n ≤ BLOCK_SIZE. */
  take(n: number): Buffer {
    if (n < MIN_BLOCK_USE || n > BLOCK_SIZE) return Buffer.allocUnsafe(n);
    const ab = this.#free.pop() ?? (Buffer.allocUnsafeSlow(BLOCK_SIZE).buffer as ArrayBuffer);
    const view = Buffer.from(ab, 0, n);
    this.#lent.add(view);
    return view;
  }

  /** A copy of `src`, in a lent block when its size qualifies. */
  copy(src: Buffer): Buffer {
    const out = this.take(src.length);
    src.copy(out);
    return out;
  }

  /** Memory `buf` holds: a whole block when lent, else its length. */
  footprint(buf: Buffer): number {
    return this.#lent.has(buf) ? BLOCK_SIZE : buf.length;
  }

  /** True when `buf` is a view this pool lent and that was not given back yet. */
  lent(buf: Buffer): boolean {
    return this.#lent.has(buf);
  }

  /** Take back a lent view: its bytes may be handed out again from now on. */
  give(buf: Buffer): void {
    if (!this.#lent.delete(buf)) return;
    if (this.#free.length < this.#maxFree) this.#free.push(buf.buffer as ArrayBuffer);
  }

  /** Blocks waiting to be lent again. */
  get idle(): number {
    return this.#free.length;
  }
}

/** The process's pool: up to 4 MiB of idle blocks. */
export const blocks = new BlockPool(64);
