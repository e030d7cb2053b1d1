/**
 * The package version, read from package.json at run time: `src/cli/` (tsx) and `dist/cli/`
 * (built) both sit two levels below the package root.
 */
import { readFileSync } from 'node:fs';

let cached: string | null = null;

/** `version` from package.json, or "0.0.0" when it cannot be read. */
export function packageVersion(): string {
  if (cached !== null) return cached;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    cached = '0.0.0';
  }
  return cached;
}

/** SERVER_SOFTWARE sent to php-fpm. */
export function serverSoftware(): string {
  return `fastcgi-gateway/${packageVersion()}`;
}
