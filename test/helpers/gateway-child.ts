/**
 * Entry point of a gateway running in its own process, started by `gateway-process.ts` as
 * `node --import tsx gateway-child.ts '<options as JSON>'`. Its memory is then its own:
 * the test reads this process's /proc/PID/status while its own client moves the bytes.
 *
 *   parent ──argv JSON──▶ startGatewayServer ──stdout──▶ {"url": ..., "pid": ...}\n
 *   SIGTERM ─▶ close (running requests finish) ─▶ exit 0
 *   stdin closed (the parent died) ─▶ exit 1 at once, so no gateway outlives its test
 */
import { startGatewayServer, type GatewayServerOptions } from '../../src/server.js';

/** What a child gateway accepts: the server options that survive JSON. */
export type ChildGatewayOptions = Omit<GatewayServerOptions, 'logger'>;

/** The line the child prints once it listens. */
export interface ChildReady {
  readonly url: string;
  readonly pid: number;
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('usage: gateway-child.ts <options JSON>');
  const options = JSON.parse(raw) as ChildGatewayOptions;
  const gw = await startGatewayServer(options);
  let closing = false;
  process.once('SIGTERM', () => {
    closing = true;
    void gw.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  process.stdin.on('end', () => {
    if (!closing) process.exit(1);
  });
  process.stdin.resume();
  const ready: ChildReady = { url: gw.url, pid: process.pid };
  process.stdout.write(JSON.stringify(ready) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
