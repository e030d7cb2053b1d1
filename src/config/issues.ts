/**
 * Schema issues as people read them: the key path, what was expected, what was found, and for
 * an unknown key the closest known one. Pure; config/load.ts adds file:line:column.
 */
import type * as v from 'valibot';
import { safeParse } from 'valibot';
import { ConfigError, type ConfigIssue } from '../errors.js';

/** Any schema of config/schema.ts. */
export type Schema = v.GenericSchema;
/** A schema issue, as valibot reports it. */
type Issue = v.BaseIssue<unknown>;

/** One issue of a failed validation: ours, plus the unknown key it names (to point at it in a file). */
export interface SchemaIssue extends ConfigIssue {
  readonly unknownKey?: string;
}

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

/** What a schema type expects, in words (valibot's `expects` of the type schemas). */
const TYPE_NAMES: Readonly<Record<string, string>> = { Object: 'an object', Array: 'a list', string: 'a string', number: 'a number', boolean: 'true or false', null: 'null' };
const typeName = (expects: string | null): string => (expects === null ? 'something else' : (TYPE_NAMES[expects] ?? expects));
/** `"json" | "pretty"` (how valibot lists a picklist's options) as `"json", "pretty"`. */
const options = (expects: string | null): string => (expects ?? '').replace(/^\(|\)$/g, '').split(' | ').join(', ');

/** valibot's own messages begin "Invalid "; any other message is one the schema gave. */
const given = (issue: Issue): string | null => (issue.message.startsWith('Invalid ') ? null : issue.message);

/** What the alternatives of a failed union accept, nested unions flattened: ["a number", "a string"]. */
function alternatives(issue: Issue): string[] {
  const parts: string[] = [];
  for (const sub of issue.issues ?? []) {
    if (sub.path !== undefined || sub.kind !== 'schema') continue;
    const more =
      sub.type === 'union'
        ? alternatives(sub)
        : sub.type === 'picklist'
          ? [`one of ${options(sub.expected)}`]
          : sub.type === 'literal'
            ? [String(sub.expected)]
            : sub.type === 'boolean'
              ? ['true', 'false']
              : sub.type === 'custom'
                ? [sub.message.replace(/^expected /, '')]
                : [typeName(sub.expected)];
    for (const p of more) if (!parts.includes(p)) parts.push(p);
  }
  return parts;
}

/** `a, b or c` */
const either = (parts: readonly string[]): string => (parts.length <= 1 ? (parts[0] ?? 'something else') : `${parts.slice(0, -1).join(', ')} or ${parts.at(-1)!}`);

/** The message of one issue, without its path; `expectsAt` names the schema type of a missing key. */
function describe(issue: Issue, expectsAt: () => string | null): string {
  const input = issue.input;
  switch (issue.type) {
    case 'strict_object':
    case 'object':
      // A missing key: valibot's "expected" is the key's name, the type is the key's schema's.
      if (issue.kind === 'schema' && issue.path?.at(-1)?.origin === 'key') return `is required (expected ${typeName(expectsAt())})`;
      return `expected an object, found ${found(input)}`;
    case 'string':
    case 'number':
    case 'boolean':
    case 'array':
    case 'record':
    case 'null':
      if (input === undefined) return `is required (expected ${typeName(issue.expected)})`;
      return `expected ${typeName(issue.expected)}, found ${found(input)}`;
    case 'safe_integer':
      return `expected an integer, found ${found(input)}`;
    case 'custom':
      // The mapping checks of object() and names(): what was found, unless it was a mapping.
      return input !== null && typeof input === 'object' && !Array.isArray(input) ? issue.message : `${issue.message}, found ${found(input)}`;
    case 'min_value':
      return `expected ≥ ${String(issue.requirement)}, found ${found(input)}`;
    case 'max_value':
      return `expected ≤ ${String(issue.requirement)}, found ${found(input)}`;
    case 'min_length': {
      const custom = given(issue);
      if (custom !== null) return custom;
      const n = Number(issue.requirement);
      return Array.isArray(input) ? `expected at least ${n} entr${n === 1 ? 'y' : 'ies'}` : 'expected a non-empty string';
    }
    case 'picklist':
    case 'literal':
      return `expected ${issue.type === 'picklist' ? `one of ${options(issue.expected)}` : issue.expected}, found ${found(input)}`;
    case 'union':
      return `expected ${either(alternatives(issue))}, found ${found(input)}`;
    case 'raw_check':
      return issue.message;
    default: {
      // regex, starts_with, the unit transforms: the schema's message and what was found.
      const custom = given(issue) ?? issue.message;
      return input !== undefined && typeof input !== 'object' ? `${custom}, found ${found(input)}` : custom;
    }
  }
}

type SchemaNode = { readonly type: string; readonly [k: string]: unknown };

/**
 * The schema a pipe ends in (`object()` is a check for a mapping piped into a strict object; a
 * described schema is a pipe of it and its description), or null when `n` is not a pipe.
 */
function piped(n: SchemaNode): SchemaNode | null {
  const items = (n['pipe'] as SchemaNode[] | undefined) ?? [];
  const last = [...items].reverse().find((item) => item['kind'] === 'schema');
  return last === undefined || last === n ? null : last;
}

/** Past the wrappers that do not change the shape: pipes, optional, nullable. */
function unwrap(node: SchemaNode): SchemaNode {
  let n = node;
  for (;;) {
    const inner = piped(n) ?? (n.type === 'optional' || n.type === 'nullable' || n.type === 'nullish' ? (n['wrapped'] as SchemaNode) : null);
    if (inner === null) return n;
    n = inner;
  }
}

const isObjectSchema = (n: SchemaNode): boolean => n.type === 'object' || n.type === 'strict_object';

/** The option of a union that a step into it (`key`, or a list index) goes through. */
function optionFor(union: SchemaNode, step: PropertyKey): SchemaNode | undefined {
  for (const n of optionsOf(union)) {
    if (typeof step === 'number' ? n.type === 'array' : n.type === 'record' || (isObjectSchema(n) && String(step) in (n['entries'] as object))) return n;
  }
  return undefined;
}

/** A union's options, unwrapped, nested unions flattened. */
function optionsOf(union: SchemaNode): SchemaNode[] {
  return (union['options'] as SchemaNode[]).flatMap((o) => {
    const n = unwrap(o);
    return n.type === 'union' ? optionsOf(n) : [n];
  });
}

/** The schema at `path` (list indexes and record keys step into their entries), or null. */
function schemaAt(schema: Schema, path: readonly PropertyKey[]): SchemaNode | null {
  let node: SchemaNode | undefined = schema as unknown as SchemaNode;
  for (const step of path) {
    let n: SchemaNode | undefined = unwrap(node);
    if (n.type === 'union') n = optionFor(n, step);
    if (n === undefined) return null;
    if (isObjectSchema(n)) node = (n['entries'] as Record<string, SchemaNode>)[String(step)];
    else if (n.type === 'array') node = n['item'] as SchemaNode;
    else if (n.type === 'record') node = n['value'] as SchemaNode;
    else return null;
    if (node === undefined) return null;
  }
  return node;
}

/** The keys an object schema at `path` accepts (for "did you mean"); for "a string or an object", the object's. */
export function knownKeysAt(schema: Schema, path: readonly PropertyKey[]): string[] {
  const node = schemaAt(schema, path);
  if (node === null) return [];
  const n = unwrap(node);
  const objects = n.type === 'union' ? optionsOf(n) : [n];
  return objects.flatMap((o) => (isObjectSchema(o) ? Object.keys(o['entries'] as object) : []));
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

/**
 * Issues with their whole key paths. A union none of whose options took the input reports its
 * options' issues; when an option took the input's shape and failed inside it (`listen: [{
 * adress: ... }]`), those inner issues are the ones that say what is wrong.
 */
function flatten(issues: readonly Issue[], prefix: ReadonlyArray<string | number>): Array<{ issue: Issue; path: Array<string | number> }> {
  const out: Array<{ issue: Issue; path: Array<string | number> }> = [];
  for (const issue of issues) {
    const path = [...prefix, ...(issue.path ?? []).map((p) => p.key as string | number)];
    const inner = issue.type === 'union' ? deeper(issue) : [];
    if (inner.length > 0) out.push(...flatten(inner, path));
    else out.push({ issue, path });
  }
  return out;
}

/**
 * The issues of a union's options that took the input's type and failed further in: below it
 * (a path), or a check on the value itself (`listen: ['']`: a string, but empty). Nested unions
 * are looked into; their issues' paths are relative to the same value.
 */
function deeper(union: Issue): Issue[] {
  const out: Issue[] = [];
  for (const sub of union.issues ?? []) {
    if (sub.path !== undefined || sub.kind !== 'schema') out.push(sub);
    else if (sub.type === 'union') out.push(...deeper(sub));
  }
  return out;
}

/**
 * Turn valibot issues into ours (path + message). valibot names the first unknown key of an
 * object; the issue carries the object, so every unknown key of it is named, in one issue.
 */
export function toConfigIssues(schema: Schema, issues: readonly Issue[]): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  // Missing keys that an unknown key is a typo of: "did you mean" says it, "is required" would repeat it.
  const meant = new Set<string>();
  for (const { issue: i, path } of flatten(issues, [])) {
    const last = i.path?.at(-1);
    if (i.type === 'strict_object' && i.expected === 'never' && last !== undefined) {
      const parent = path.slice(0, -1);
      const known = knownKeysAt(schema, parent);
      const unknown = Object.keys(last.input as object).filter((k) => !known.includes(k));
      const message = unknown
        .map((k) => {
          const near = closest(k, known);
          if (near !== null) meant.add(formatPath([...parent, near]));
          return `unknown key ${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`;
        })
        .join('; ');
      out.push({ path: parent, message, unknownKey: unknown[0] ?? String(last.key) });
      continue;
    }
    // Everything else, a bad record key (an upstream's name) included, at its own path.
    out.push({ path, message: describe(i, () => expectsOf(schemaAt(schema, path))) });
  }
  return out.filter((i) => !(i.message.startsWith('is required') && meant.has(formatPath(i.path))));
}

/** The type a schema expects (`string`, `Object`), for a missing key. */
function expectsOf(node: SchemaNode | null): string | null {
  if (node === null) return null;
  const n = unwrap(node);
  return isObjectSchema(n) ? 'Object' : ((n['expects'] as string | undefined) ?? null);
}

/** Validate `input`: the output with every default filled in, or every issue. */
export function check<S extends Schema>(schema: S, input: unknown): { ok: true; value: v.InferOutput<S> } | { ok: false; issues: SchemaIssue[] } {
  const r = safeParse(schema, input);
  return r.success ? { ok: true, value: r.output } : { ok: false, issues: toConfigIssues(schema, r.issues) };
}

/** Parse `input` with `schema`, or throw one ConfigError listing every issue (`what` prefixes paths). */
export function parseOrThrow<S extends Schema>(schema: S, input: unknown, what = ''): v.InferOutput<S> {
  const r = check(schema, input);
  if (r.ok) return r.value;
  const issues: ConfigIssue[] = r.issues.map(({ path, message }) => ({ path, message }));
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
export function schemaKeys(schema: Schema): SchemaKey[] {
  const out: SchemaKey[] = [];
  const visit = (node: SchemaNode, path: string): void => {
    let description = '';
    let def: unknown;
    let unit: string | null = null;
    let n = node;
    for (;;) {
      // A pipe is its schema spread, plus the actions: the description and metadata are there.
      for (const item of (n['pipe'] as SchemaNode[] | undefined) ?? []) {
        if (!description && item.type === 'description') description = item['description'] as string;
        const meta = item.type === 'metadata' ? (item['metadata'] as Record<string, unknown>) : undefined;
        if (unit === null && typeof meta?.['unit'] === 'string') unit = meta['unit'];
      }
      const inner = piped(n);
      if (inner !== null) {
        n = inner;
        continue;
      }
      if (n.type !== 'optional' && n.type !== 'nullable' && n.type !== 'nullish') break;
      if (n.type === 'optional') def ??= n['default'];
      n = n['wrapped'] as SchemaNode;
    }
    if (path !== '') out.push({ path, description, default: def, unit });
    if (isObjectSchema(n)) {
      for (const [k, child] of Object.entries(n['entries'] as Record<string, SchemaNode>)) visit(child, path === '' ? k : `${path}.${k}`);
    } else if (n.type === 'array') {
      visitElements(n, path);
    } else if (n.type === 'union') {
      // "One entry, or a list of them" (listen): the entries' keys.
      for (const o of optionsOf(n)) if (o.type === 'array') visitElements(o, path);
    } else if (n.type === 'record') {
      visit(n['value'] as SchemaNode, `${path}.<name>`);
    }
  };
  const visitElements = (array: SchemaNode, path: string): void => {
    const el = unwrap(array['item'] as SchemaNode);
    if (isObjectSchema(el)) visit(el, `${path}[]`);
    // A list of "a string, or an object": the object's keys.
    else if (el.type === 'union') for (const o of el['options'] as SchemaNode[]) if (isObjectSchema(unwrap(o))) visit(o, `${path}[]`);
  };
  visit(schema as unknown as SchemaNode, '');
  // A list of objects and a record of objects are listed by their entries' keys.
  return out.filter((k) => !k.path.endsWith('[]') && !k.path.endsWith('.<name>') || k.description !== '');
}
