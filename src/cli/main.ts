#!/usr/bin/env node
/**
 * The CLI entry, which `bin/fastcgi-gateway` (package.json "bin") runs under node. Everything
 * but process wiring lives in cli.ts, so tests can run the same code in-process.
 */
import { hideBin } from 'yargs/helpers';
import { runCli } from './cli.js';
import { ExitCode } from './exit-codes.js';

// `fastcgi-gateway ... | head`: the reader went away. Stop quietly instead of throwing EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(ExitCode.Usage);
  throw err;
});

process.exitCode = await runCli(hideBin(process.argv), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  cwd: process.cwd(),
});
