/**
 * The request target of a request, parsed once (cgi/uri.ts) whichever handler asks first: the
 * config handler routes on it and the php route maps it. Kept on the request under a symbol,
 * which costs less than a WeakMap entry per request (ephemerons are extra work for the GC).
 */
import type { IncomingMessage } from 'node:http';
import { parseRequestTarget, type RequestTarget, type TargetRejection } from '../cgi/uri.js';

const kTarget = Symbol('fastcgi-gateway.target');

type WithTarget = IncomingMessage & { [kTarget]?: RequestTarget | TargetRejection };

/** `parseRequestTarget(req.url)`, memoised on `req`. */
export function targetOf(req: IncomingMessage): RequestTarget | TargetRejection {
  const r = req as WithTarget;
  r[kTarget] ??= parseRequestTarget(req.url ?? '/');
  return r[kTarget];
}
