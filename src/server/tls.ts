/**
 * Certificates: read from their files once per (re)load, and chosen per connection by SNI.
 * The site that serves a name (the same lookup as for Host: exact, wildcard, default site)
 * gives its own certificate when it has one; otherwise the listener's is used. A reload reads
 * every file again, so a renewed certificate takes effect without a restart.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../errors.js';
import { hostMatcher, hostName } from '../http/site-match.js';

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

/** Key and certificate of `files`, read now; ConfigError naming the file that failed. */
export function readTlsFiles(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const read = (what: 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(files[what]);
    } catch (err) {
      throw new ConfigError(`cannot read the TLS ${what === 'cert' ? 'certificate' : 'key'} ${files[what]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const pair = { cert: read('cert'), key: read('key') };
  try {
    createSecureContext(pair);
  } catch (err) {
    throw new ConfigError(`TLS certificate ${files.cert} with key ${files.key}: ${(err as Error).message}`, { cause: err });
  }
  return pair;
}

/** SNI name → the site's context, or null for the listener's own. */
export type SniLookup = (servername: string) => SecureContext | null;

/** Build the SNI lookup for `sites`; reads every site certificate (throws ConfigError). */
export function sniLookup(sites: ReadonlyArray<{ readonly hosts: readonly string[]; readonly tls: TlsFiles | null }>): SniLookup {
  if (!sites.some((s) => s.tls !== null)) return () => null;
  // Boxed: a site without a certificate is a value too (the default site may be one).
  const match = hostMatcher(sites.map((s) => ({ hosts: s.hosts, value: { context: s.tls === null ? null : createSecureContext(readTlsFiles(s.tls)) } })));
  return (servername) => match(hostName(servername)).context;
}
