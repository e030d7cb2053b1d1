/**
 * Handler options resolved once through the schema (config/schema.ts): unknown keys and bad
 * values throw one ConfigError naming every bad key path; the result is frozen, with durations
 * in ms and sizes in bytes.
 */
import { resolve } from 'node:path';
import { deepFreeze, parseOrThrow, stripUndefined } from './issues.js';
import { type HandlerOptions, handlerSchema, type ResolvedHandlerOptions } from './schema.js';

export type { HandlerOptions, ResolvedHandlerOptions } from './schema.js';
/** How X-Accel-Redirect / X-Sendfile answers are served. */
export type SendfileOptions = NonNullable<ResolvedHandlerOptions['sendfile']>;

const PRIVILEGED = new Set(['PHP_VALUE', 'PHP_ADMIN_VALUE', 'REQUEST_BODY_FILE']);

/** Validate and default handler options. */
export function resolveHandlerOptions(input: HandlerOptions, tmpDirDefault: string): ResolvedHandlerOptions {
  const o = parseOrThrow(handlerSchema, stripUndefined(input));
  return deepFreeze({
    ...o,
    root: resolve(o.root).replace(/\/+$/, '') || '/',
    tmpDir: o.tmpDir || tmpDirDefault,
  });
}

/** True for params only configuration may set. */
export function isPrivilegedParam(name: string): boolean {
  return PRIVILEGED.has(name.toUpperCase());
}

