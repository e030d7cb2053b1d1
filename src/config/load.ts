/**
 * The config file, the environment and flags → one validated GatewayConfig. The only config
 * module that does I/O (it reads the file); env and flag values are handed in.
 *
 * Precedence: schema defaults < file < FASTCGI_GATEWAY_* environment < flags (`--set`).
 * Environment and `--set` name a key path (`FASTCGI_GATEWAY_UPSTREAMS__APP__CONNECTIONS`,
 * `--set upstreams.app.connections=8`) and take YAML values (`8`, `true`, `30s`, `[a, b]`).
 *
 * Every issue says where it comes from: `gw.yaml:6:5` (the yaml package's LineCounter), or
 * the variable or flag that set the value.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import type { Node as YamlNode } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { check, formatPath, knownKeysAt } from './issues.js';
import { configSchema, type GatewayConfig } from './schema.js';

// yaml is loaded when a config file or a YAML-valued override is read, not by `serve` with flags.
const requireCjs = createRequire(import.meta.url);
let yamlModule: typeof Yaml | null = null;
const yaml = (): typeof Yaml => (yamlModule ??= requireCjs('yaml') as typeof Yaml);

/** Prefix of the environment variables that set config keys. */
export const ENV_PREFIX = 'FASTCGI_GATEWAY_';

/** One value set outside the file: its key path and where it came from. */
export interface ConfigOverride {
  readonly path: ReadonlyArray<string | number>;
  readonly value: unknown;
  /** `env FASTCGI_GATEWAY_LISTEN`, `flag --listen` */
  readonly origin: string;
}

/** What to build a config from. */
export interface ConfigSources {
  /** The file's path (for messages and relative paths) and text; null: no file. */
  readonly file?: { readonly path: string; readonly text: string } | null;
  /** A config given as a value (library use, or the one-site config that plain `serve` flags mean). */
  readonly base?: unknown;
  /** Environment overrides (usually `envOverrides(process.env)`). */
  readonly env?: readonly ConfigOverride[];
  /** Flag overrides. */
  readonly flags?: readonly ConfigOverride[];
}

/** Read and resolve a config file with env and flag overrides; throws ConfigError listing every issue. */
export function loadConfigFile(path: string, overrides: { env?: readonly ConfigOverride[]; flags?: readonly ConfigOverride[] } = {}): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return resolveConfig({ file: { path, text }, ...overrides });
}

/** Build the config from its sources (see the module comment). */
export function resolveConfig(sources: ConfigSources): GatewayConfig {
  const issues: ConfigIssue[] = [];
  let raw: unknown = sources.base ?? {};
  let locate: (path: ReadonlyArray<string | number>, key?: string) => string | undefined = () => undefined;
  const file = sources.file ?? null;
  if (file !== null) {
    const { isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml();
    const lineCounter = new LineCounter();
    const doc = parseDocument(file.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
    const at = (offset: number): string => {
      const p = lineCounter.linePos(offset);
      return `${file.path}:${p.line}:${p.col}`;
    };
    for (const e of doc.errors) issues.push({ path: [], message: e.message.split('\n')[0]!, where: at(e.pos[0]) });
    if (issues.length > 0) throw fail(issues);
    raw = doc.toJS() ?? {};
    locate = (path, key) => {
      // The deepest node that exists along the path (a missing key points at its parent).
      let node: unknown = doc.contents;
      let best: YamlNode | null = (doc.contents as YamlNode | null) ?? null;
      for (const step of path) {
        if (isMap(node)) {
          const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(step));
          if (!pair) break;
          node = pair.value;
        } else if (isSeq(node) && typeof step === 'number') {
          node = node.items[step];
        } else break;
        if (node && typeof node === 'object' && 'range' in node) best = node as YamlNode;
        else break;
      }
      if (key !== undefined && isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
        if (pair && isScalar(pair.key) && pair.key.range) return at(pair.key.range[0]);
      }
      return best?.range ? at(best.range[0]) : `${file.path}:1:1`;
    };
  }
  const origins = new Map<string, string>();
  for (const o of [...(sources.env ?? []), ...(sources.flags ?? [])]) {
    raw = setPath(raw, o.path, o.value);
    origins.set(formatPath(o.path), o.origin);
  }
  if (file !== null && (raw === null || typeof raw !== 'object' || Array.isArray(raw))) {
    throw fail([{ path: [], message: 'the config file must be a mapping of keys (listen, upstreams, sites)', where: `${file.path}:1:1` }]);
  }
  const r = check(configSchema, raw);
  if (!r.ok) {
    for (const { unknownKey, ...i } of r.issues) {
      const where = originOf(origins, i.path) ?? locate(i.path, unknownKey);
      issues.push(where === undefined ? i : { ...i, where });
    }
    throw fail(issues);
  }
  return file === null ? r.value : resolvePaths(r.value, dirname(resolve(file.path)));
}

/** The env or flag that set `path` or one of its parents. */
function originOf(origins: ReadonlyMap<string, string>, path: ReadonlyArray<string | number>): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const o = origins.get(formatPath(path.slice(0, n)));
    if (o !== undefined) return o;
  }
  return undefined;
}

function fail(issues: readonly ConfigIssue[]): ConfigError {
  const lines = issues.map(formatIssue);
  return new ConfigError(lines.length === 1 ? lines[0]! : `${issues.length} problems in the config:\n  ${lines.join('\n  ')}`, { issues });
}

/** `gw.yaml:6:5: sites[0].routes[0].php.upstream: no upstream named "ap"` */
export function formatIssue(i: ConfigIssue): string {
  const path = formatPath(i.path);
  return [i.where, path, i.message].filter((s) => s !== undefined && s !== '').join(': ');
}

/** Relative roots in a file are relative to the file's directory, as nginx's are to its prefix. */
function resolvePaths(c: GatewayConfig, dir: string): GatewayConfig {
  const abs = (p: string): string => resolve(dir, p);
  return {
    ...c,
    ...(c.tmpDir ? { tmpDir: abs(c.tmpDir) } : {}),
    sites: c.sites.map((s) => ({
      ...s,
      ...(s.root !== undefined ? { root: abs(s.root) } : {}),
      routes: s.routes.map((r) => ({
        ...r,
        ...(r.php ? { php: { ...r.php, ...(r.php.root !== undefined ? { root: abs(r.php.root) } : {}) } } : {}),
        ...(r.static ? { static: { ...r.static, ...(r.static.root !== undefined ? { root: abs(r.static.root) } : {}) } } : {}),
      })),
    })),
  };
}

/** `{}` with `a.b[0]` set to v: copies along the path, never mutates `root`. */
function setPath(root: unknown, path: ReadonlyArray<string | number>, value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (typeof head === 'number') {
    const arr = Array.isArray(root) ? [...root] : [];
    arr[head] = setPath(arr[head], rest, value);
    return arr;
  }
  const obj = root !== null && typeof root === 'object' && !Array.isArray(root) ? { ...(root as Record<string, unknown>) } : {};
  obj[head!] = setPath(obj[head!], rest, value);
  return obj;
}

/**
 * Map a SNAKE_CASE path (from an env name) onto the schema's keys: each segment matches a
 * schema key or an existing record key case-insensitively, ignoring `_`; a number is a list
 * index. Unknown segments are kept (lower-cased) so that validation reports them.
 */
function keyPath(segments: readonly string[], existing: unknown): Array<string | number> {
  const out: Array<string | number> = [];
  let here: unknown = existing;
  for (const seg of segments) {
    const want = seg.toLowerCase().replace(/_/g, '');
    let key: string | number;
    if (/^\d+$/.test(seg)) key = Number(seg);
    else {
      const candidates = [...knownKeysAt(configSchema, out), ...(here && typeof here === 'object' ? Object.keys(here) : [])];
      key = candidates.find((k) => k.toLowerCase().replace(/[_-]/g, '') === want) ?? seg.toLowerCase();
    }
    out.push(key);
    here = here && typeof here === 'object' ? (here as Record<string | number, unknown>)[key] : undefined;
  }
  return out;
}

/** A YAML scalar or flow value (`8`, `true`, `30s`, `[a, b]`); text that is not YAML stays a string. */
function yamlValue(text: string): unknown {
  try {
    return yaml().parse(text) ?? '';
  } catch {
    return text;
  }
}

/**
 * Overrides from `FASTCGI_GATEWAY_*` variables: `__` separates path segments, and a single `_`
 * is a word break (`HEADERS_TIMEOUT` → `headersTimeout`). `existing` (the file's content)
 * resolves the case of record keys such as upstream names.
 */
export function envOverrides(env: NodeJS.ProcessEnv, existing: unknown = {}): ConfigOverride[] {
  const out: ConfigOverride[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const segments = name.slice(ENV_PREFIX.length).split('__').filter((s) => s !== '');
    if (segments.length === 0) continue;
    out.push({ path: keyPath(segments, existing), value: yamlValue(value), origin: `env ${name}` });
  }
  return out;
}

/** An override from `--set key.path=value` (`sites[0].root=/srv` or `sites.0.root=/srv`). */
export function setOverride(text: string): ConfigOverride {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set ${JSON.stringify(text)} must be KEY.PATH=VALUE`);
  const path = text
    .slice(0, eq)
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter((s) => s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  return { path, value: yamlValue(text.slice(eq + 1)), origin: `flag --set ${text.slice(0, eq)}` };
}

/** The file's raw content, for envOverrides to resolve names against (null when unreadable: the load reports it). */
export function peekConfigFile(path: string): unknown {
  try {
    return yaml().parseDocument(readFileSync(path, 'utf8')).toJS();
  } catch {
    return null;
  }
}
