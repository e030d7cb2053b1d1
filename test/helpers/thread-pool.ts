/**
 * Stall libuv's thread pool on purpose, so that a test can hold file I/O (a temp file's open,
 * write or read) for as long as it likes without a timing guess: every thread is parked in an
 * open() of a FIFO that has no writer yet, and work queued after them waits its turn. The
 * returned function opens the writing ends (on the main thread, which returns at once since a
 * reader waits) and lets the pool go; call it in a `finally`, or the process cannot exit.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, open, openSync, stat } from 'node:fs';
import { join } from 'node:path';

/** The pool's size as libuv reads UV_THREADPOOL_SIZE: 4 when unset, at least 1, at most 1024. */
function poolSize(): number {
  const raw = process.env['UV_THREADPOOL_SIZE'];
  if (raw === undefined) return 4;
  return Math.min(1024, Math.max(1, Number.parseInt(raw, 10) || 1));
}

export async function holdThreadPool(dir: string): Promise<() => Promise<void>> {
  const fifos: string[] = [];
  const opened: Array<Promise<number>> = [];
  for (let i = 0; i < poolSize(); i++) {
    const fifo = join(mkdtempSync(join(dir, 'pool-')), 'fifo');
    execFileSync('mkfifo', [fifo]);
    fifos.push(fifo);
    opened.push(new Promise((res, rej) => open(fifo, 'r', (err, fd) => (err ? rej(err) : res(fd)))));
  }
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    for (const f of fifos) closeSync(openSync(f, 'w'));
    for (const fd of await Promise.all(opened)) closeSync(fd);
  };
  // A probe queued behind the opens must not finish while they hold every thread.
  let probed = false;
  stat(dir, () => {
    probed = true;
  });
  await new Promise((r) => setTimeout(r, 50));
  if (probed) {
    await release();
    throw new Error('the thread pool is not held: file I/O bypasses it (UV_USE_IO_URING?) or UV_THREADPOOL_SIZE is not what libuv uses');
  }
  return release;
}
