/**
 * statSync / readFileSync against their async forms, as the request path would call them: 50
 * calls in flight at a time on a 10 KiB file (the router's stat, the small-file cache's stat +
 * read), CPU of this process per call (the thread pool's included) and wall time per call.
 *
 *   node --import tsx bench/micro/stat.bench.ts        N=200000
 */
import { mkdtempSync, readFileSync, rmSync, stat, statSync, writeFileSync } from 'node:fs';
import { readFile, stat as statP } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';

const N = Number(process.env['N'] ?? 200_000);
const CONCURRENCY = 50;
const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-stat-'));
const file = join(dir, 'f.txt');
writeFileSync(file, Buffer.alloc(10 * 1024, 0x61));

async function measure(name: string, one: () => Promise<unknown> | unknown): Promise<void> {
  for (let i = 0; i < 2000; i++) await one();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next++ < N) await one();
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  const cpu = process.cpuUsage(c0);
  const wall = performance.now() - t0;
  console.log(`${name.padEnd(34)} ${(((cpu.user + cpu.system) / N)).toFixed(2).padStart(6)} µs CPU/call  ${((wall * 1000) / N).toFixed(2).padStart(6)} µs wall/call`);
}

await measure('statSync', () => statSync(file, { throwIfNoEntry: false }));
await measure('fs.stat (callback)', () => new Promise((r) => stat(file, r)));
await measure('fs.promises.stat', () => statP(file));
await measure('statSync + readFileSync', () => {
  statSync(file);
  return readFileSync(file);
});
await measure('fs.promises stat + readFile', async () => {
  await statP(file);
  return readFile(file);
});
rmSync(dir, { recursive: true, force: true });
