/** SERVER_SOFTWARE the commands send, from the package version (src/version.ts). */
import { VERSION } from '../version.js';

/** `fastcgi-gateway/<version>`. */
export function serverSoftware(): string {
  return `fastcgi-gateway/${VERSION}`;
}
