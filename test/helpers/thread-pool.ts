/**
 * Stall libuv's thread pool on purpose, so that a test can hold file I/O (a temp file's open,
 * write or read) for as long as it likes without a timing guess: every thread is parked in an
 * open() of a FIFO that has no writer yet. The returned function opens the writing ends (on the
 * main thread, which returns at once since a reader waits) and lets the pool go; call it in a
 * `finally`, or the process cannot exit.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, open, openSync } from 'node:fs';
import { join } from 'node:path';

export async function holdThreadPool(dir: string): Promise<() => Promise<void>> {
  const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  const fifos: string[] = [];
  const opened: Array<Promise<number>> = [];
  for (let i = 0; i < threads; i++) {
    const fifo = join(mkdtempSync(join(dir, 'pool-')), 'fifo');
    execFileSync('mkfifo', [fifo]);
    fifos.push(fifo);
    opened.push(new Promise((res, rej) => open(fifo, 'r', (err, fd) => (err ? rej(err) : res(fd)))));
  }
  // Let the pool pick up every open (each thread then blocks in one until release).
  await new Promise((r) => setTimeout(r, 50));
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    for (const f of fifos) closeSync(openSync(f, 'w'));
    for (const fd of await Promise.all(opened)) closeSync(fd);
  };
}
