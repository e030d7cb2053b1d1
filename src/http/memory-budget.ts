/**
 * One process-wide allowance for bytes held in memory on behalf of clients: request bodies
 * being buffered and response bytes a slow client has not taken yet. Each request may hold up
 * to its own limit (`bodyBufferSize`, `responseBufferSize`) while the total stays within the
 * budget; past it, new bytes go to temp files. So a few requests run from memory at full speed,
 * and ten thousand slow clients cost disk, not RAM.
 */
export class MemoryBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes currently held. */
  get used(): number {
    return this.#used;
  }

  /** Reserve `n` bytes; false (and nothing reserved) when that would pass the limit. */
  take(n: number): boolean {
    if (this.#used + n > this.limit) return false;
    this.#used += n;
    return true;
  }

  /** Return `n` bytes taken earlier. */
  give(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}
