/** Loopback port helpers shared by tests and benches (src/bench/procs.ts). */
export { freePort } from '../../src/bench/procs.js';
