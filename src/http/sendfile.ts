/**
 * X-Accel-Redirect / X-Sendfile: a script names a file and the gateway serves it from
 * `sendfile.root` (Range, ETag, 304 as for any static file), keeping the few headers of the
 * script's that describe the content. A name that leaves the root is a 502, never a read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute, join, normalize, relative } from 'node:path';
import type { CgiHead } from '../cgi/response-head.js';
import type { SendfileOptions } from '../config/options.js';
import { SendfileOutsideError } from '../errors.js';
import type { LoggerLike } from './logger.js';
import { sendError } from './send-error.js';
import { serveFile } from './serve-file.js';

/** The script's headers that travel with the file (nginx keeps these on X-Accel-Redirect). */
const KEPT = new Set(['content-type', 'content-disposition', 'set-cookie', 'cache-control', 'expires']);

/** Serve the file `head` names, if it names one; true when the response is taken care of. */
export function trySendfile(req: IncomingMessage, res: ServerResponse, sf: SendfileOptions, head: CgiHead, log: LoggerLike): boolean {
  const wanted = sf.header.toLowerCase();
  const entry = head.headers.find(([n]) => n.toLowerCase() === wanted);
  if (!entry) return false;
  const rel = normalize('/' + entry[1]).replace(/^\/+/, '');
  const full = join(sf.root, rel);
  const inside = relative(sf.root, full);
  if (inside.startsWith('..') || isAbsolute(inside) || entry[1].includes('\0')) {
    const err = new SendfileOutsideError(entry[1]);
    log.error({ err, code: err.code, path: err.path }, err.message);
    sendError(res, 502);
    return true;
  }
  for (const [n, v] of head.headers) if (KEPT.has(n.toLowerCase())) res.appendHeader(n, v);
  serveFile(req, res, sf.root, '/' + rel, undefined);
  return true;
}
