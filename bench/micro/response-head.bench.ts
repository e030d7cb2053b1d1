/**
 * Micro-benchmark: CGI head parser on a typical php-fpm head (one chunk, the common case) and
 * on the same head cut in two. Plain hrtime loop, no dependencies; prints heads parsed per
 * second. Run: node --import tsx bench/micro/response-head.bench.ts  (ITERATIONS=… to change)
 */
import { CgiHeadParser } from '../../src/cgi/response-head.js';

const HEAD = Buffer.from('X-Powered-By: PHP/8.2.26\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello, world!\n', 'latin1');
const SPLIT_AT = 30;
const FIRST = HEAD.subarray(0, SPLIT_AT);
const SECOND = HEAD.subarray(SPLIT_AT);
const iterations = Number(process.env['ITERATIONS'] ?? 1_000_000);

function oneChunk(): number {
  const r = new CgiHeadParser().push(HEAD);
  return r === null ? 0 : r.head.status;
}

function twoChunks(): number {
  const p = new CgiHeadParser();
  p.push(FIRST);
  const r = p.push(SECOND);
  return r === null ? 0 : r.head.status;
}

function run(name: string, fn: () => number): void {
  let sink = 0;
  for (let i = 0; i < Math.min(iterations, 100_000); i++) sink += fn(); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += fn();
  const ns = Number(process.hrtime.bigint() - t0);
  if (sink !== 200 * (iterations + Math.min(iterations, 100_000))) throw new Error('unexpected parse result');
  const perSec = Math.round((iterations * 1e9) / ns);
  console.log(`${name.padEnd(28)} ${perSec.toLocaleString('en-US').padStart(12)} heads/s  (${(ns / iterations).toFixed(0)} ns/head)`);
}

console.log(`node ${process.version}, ${iterations} iterations, head ${HEAD.length} bytes`);
run('php-fpm head, one chunk', oneChunk);
run('php-fpm head, two chunks', twoChunks);
