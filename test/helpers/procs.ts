/** Processes the tests started, found by PID only (never by name). */
import { readdirSync, readFileSync } from 'node:fs';

/** A process's arguments, from /proc/PID/cmdline ([] once it is gone). */
export function argvOf(pid: number): string[] {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.at(-1) === '') argv.pop(); // each argument ends in a NUL
    return argv;
  } catch {
    return [];
  }
}

/** Direct children of a process, from /proc/PID/task/*\/children ([] once it is gone). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone already
  }
  return out;
}

/**
 * Send `signal` to a process and its direct children; ignores those already gone. The parent
 * goes first: a php-fpm master that outlives its workers forks new ones at once, and those
 * would survive it (orphaned, still holding the listening socket).
 */
export function signalTree(pid: number, signal: NodeJS.Signals): number[] {
  const children = childrenOf(pid);
  const pids = [pid, ...children];
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
  return pids;
}

/** True while `pid` runs; a zombie (killed, not yet reaped by its parent) counts as gone. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}
