/**
 * Schema issues as people read them: the key path, what was expected, what was found, and for
 * an unknown key the closest known one. Pure; config/load.ts adds file:line:column.
 */
import type * as z from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';

/** `sites[0].routes[1].php.upstream` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

function found(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'an object';
  if (typeof input === 'string') return `${JSON.stringify(input.length > 60 ? `${input.slice(0, 57)}...` : input)} (a string)`;
  return `${String(input)} (a ${typeof input})`;
}

const TYPE_NAMES: Readonly<Record<string, string>> = { object: 'an object', array: 'a list', string: 'a string', number: 'a number', boolean: 'true or false', int: 'an integer' };

/** The message of one issue, without its path. */
function describe(issue: z.core.$ZodIssue, known: readonly string[]): string {
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'invalid_type':
      if (input === undefined) return `is required (expected ${TYPE_NAMES[issue.expected] ?? issue.expected})`;
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, found ${found(input)}`;
    case 'too_small':
      if (issue.origin === 'array') return `expected at least ${String(issue.minimum)} entr${issue.minimum === 1 ? 'y' : 'ies'}`;
      if (issue.origin === 'string') return `expected a non-empty string`;
      return `expected ${issue.inclusive === false ? '>' : '≥'} ${String(issue.minimum)}, found ${found(input)}`;
    case 'too_big':
      return `expected ${issue.inclusive === false ? '<' : '≤'} ${String(issue.maximum)}, found ${found(input)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, found ${found(input)}`;
    case 'invalid_union': {
      // Each alternative failed: say what the alternatives accept.
      const kinds = new Set<string>();
      for (const alt of issue.errors) for (const e of alt) if (e.code === 'invalid_type' && e.path.length === 0) kinds.add(TYPE_NAMES[e.expected] ?? e.expected);
      return kinds.size > 0 ? `expected ${[...kinds].join(' or ')}, found ${found(input)}` : `${issue.message}, found ${found(input)}`;
    }
    case 'unrecognized_keys': {
      const parts = issue.keys.map((k) => {
        const near = closest(k, known);
        return `unknown key ${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`;
      });
      return parts.join('; ');
    }
    case 'invalid_format':
      return `${issue.message}, found ${found(input)}`;
    default:
      return input !== undefined && typeof input !== 'object' ? `${issue.message}, found ${found(input)}` : issue.message;
  }
}

/** The keys an object schema at `path` accepts (for "did you mean"). */
export function knownKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let node: unknown = schema;
  const unwrap = (n: unknown): unknown => {
    for (;;) {
      const def = (n as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
      if (def === undefined) return n;
      if (def['type'] === 'default' || def['type'] === 'optional' || def['type'] === 'nullable' || def['type'] === 'prefault' || def['type'] === 'readonly') n = def['innerType'];
      else if (def['type'] === 'pipe') n = def['in'];
      else return n;
    }
  };
  for (const step of path) {
    node = unwrap(node);
    const def = (node as { _zod: { def: Record<string, unknown> } })._zod.def;
    if (def['type'] === 'object') node = (def['shape'] as Record<string, unknown>)[String(step)];
    else if (def['type'] === 'array') node = def['element'];
    else if (def['type'] === 'record') node = def['valueType'];
    else return [];
    if (node === undefined) return [];
  }
  node = unwrap(node);
  const def = (node as { _zod: { def: Record<string, unknown> } })._zod.def;
  return def['type'] === 'object' ? Object.keys(def['shape'] as object) : [];
}

/** Levenshtein distance, for key suggestions. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The known key nearest to `key`, when near enough to be a typo. */
export function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

/** Turn zod issues into ours (path + message). */
export function toConfigIssues(schema: z.ZodType, issues: readonly z.core.$ZodIssue[]): ConfigIssue[] {
  return issues.map((i) => ({
    path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
    message: describe(i, i.code === 'unrecognized_keys' ? knownKeysAt(schema, i.path) : []),
  }));
}

/** Parse `input` with `schema`, or throw one ConfigError listing every issue (`what` prefixes paths). */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what = ''): z.output<S> {
  const r = schema.safeParse(input, { reportInput: true });
  if (r.success) return r.data;
  const issues = toConfigIssues(schema, r.error.issues);
  const lines = issues.map((i) => {
    const path = formatPath([...(what ? [what] : []), ...i.path]);
    return path ? `${path}: ${i.message}` : i.message;
  });
  throw new ConfigError(lines.length === 1 ? lines[0]! : `invalid options:\n  ${lines.join('\n  ')}`, { issues });
}

/**
 * `{ a: undefined }` means "not given" in the library API (exactOptionalPropertyTypes callers
 * spread optional values); the schema sees it as absent.
 */
export function stripUndefined<T>(o: T): T {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return o;
  const r: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) r[k] = stripUndefined(v);
  return r as T;
}

export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** One documented key of a schema: `sites[].routes[].php.index`. */
export interface SchemaKey {
  readonly path: string;
  readonly description: string;
  readonly default: unknown;
  /** 'size' or 'duration' when the value takes units. */
  readonly unit: string | null;
}

/**
 * Every key of an object schema, depth first: records as `<name>`, lists as `[]`. The
 * reference doc is checked against this list.
 */
export function schemaKeys(schema: z.ZodType): SchemaKey[] {
  const out: SchemaKey[] = [];
  const defOf = (n: unknown): Record<string, unknown> => (n as { _zod: { def: Record<string, unknown> } })._zod.def;
  const metaOf = (n: unknown): Record<string, unknown> | undefined =>
    (n as { meta?: () => Record<string, unknown> | undefined }).meta?.();
  const visit = (node: unknown, path: string): void => {
    let description = '';
    let def: unknown;
    let unit: string | null = null;
    let n = node;
    for (;;) {
      const m = metaOf(n);
      if (m) {
        if (!description && typeof m['description'] === 'string') description = m['description'];
        if (unit === null && typeof m['unit'] === 'string') unit = m['unit'];
      }
      const d = defOf(n);
      if (d['type'] === 'default') def ??= d['defaultValue'];
      if (d['type'] === 'default' || d['type'] === 'optional' || d['type'] === 'nullable' || d['type'] === 'readonly' || d['type'] === 'prefault') n = d['innerType'];
      else if (d['type'] === 'pipe') n = d['in'];
      else break;
    }
    const d = defOf(n);
    if (path !== '') out.push({ path, description, default: def, unit });
    if (d['type'] === 'object') {
      for (const [k, v] of Object.entries(d['shape'] as Record<string, unknown>)) visit(v, path === '' ? k : `${path}.${k}`);
    } else if (d['type'] === 'array') {
      visitElements(d, path);
    } else if (d['type'] === 'union') {
      // "One entry, or a list of them" (listen): the entries' keys.
      for (const o of d['options'] as unknown[]) if (defOf(o)['type'] === 'array') visitElements(defOf(o), path);
    } else if (d['type'] === 'record') {
      visit(d['valueType'], `${path}.<name>`);
    }
  };
  const visitElements = (array: Record<string, unknown>, path: string): void => {
    const el = defOf(array['element']);
    if (el['type'] === 'object') visit(array['element'], `${path}[]`);
    // A list of "a string, or an object": the object's keys.
    else if (el['type'] === 'union') for (const o of el['options'] as unknown[]) if (defOf(o)['type'] === 'object') visit(o, `${path}[]`);
  };
  visit(schema, '');
  // A list of objects and a record of objects are listed by their entries' keys.
  return out.filter((k) => !k.path.endsWith('[]') && !k.path.endsWith('.<name>') || k.description !== '');
}
