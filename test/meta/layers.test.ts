// Fails on an import that points up the layer stack (STYLE §3): protocol and cgi are pure,
// upstream knows nothing of HTTP, and only the edges read env, files or argv.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));
const files: string[] = [];
const walk = (d: string): void => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith('.ts')) files.push(p);
  }
};
walk(SRC);

const allowed: Record<string, string[]> = {
  protocol: ['protocol', 'errors'],
  cgi: ['cgi', 'errors'],
  upstream: ['upstream', 'protocol', 'errors'],
  http: ['http', 'upstream', 'protocol', 'cgi', 'errors'],
  // One FastCGI request on a fresh connection with its CGI answer (status, ping, run, metrics).
  client: ['client', 'upstream', 'protocol', 'cgi', 'errors'],
  logging: ['logging', 'errors'],
  config: ['config', 'errors'],
  fpm: ['fpm', 'errors'],
  // The benchmark harness starts the CLI as a child process; it imports only the codec and the launcher.
  bench: ['bench', 'protocol', 'fpm', 'errors', 'version', 'node-flags'],
};
/**
 * The schema and its helpers are leaves like errors.ts (valibot and each other only): every layer
 * above the pure ones validates its options through them. config/load.ts, which reads files,
 * is not a leaf (only server.ts and cli/ may import it).
 */
const LEAVES = new Set(['config/schema.ts', 'config/issues.ts', 'config/units.ts', 'config/options.ts']);
const leafImportable = new Set(['upstream', 'http', 'client', 'logging', 'fpm']);
const pureForbidden = /^node:(net|stream|http|https|http2|fs|child_process|timers|process|os|dgram|tls)/;

/** The layers that read env and argv (STYLE §3: the edges), and the benchmark harness, a CLI command of its own. */
const EDGES = new Set(['cli', 'server', 'bench']);
/**
 * Library files allowed a counted number of env reads, each with its reason:
 * - config/load.ts: `envOverrides(process.env)` is its job (mentioned in a comment);
 * - fpm/launcher.ts: `findPhpFpm(env = process.env)` looks php-fpm up as a shell would
 *   (PHP_FPM_BIN, then PATH), the one default that saves every caller passing it; the
 *   launcher takes everything else as values.
 */
const ENV_READERS: Record<string, number> = { 'config/load.ts': 1, 'fpm/launcher.ts': 1 };

function layerOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.split('/')[0]! : rel.replace(/\.ts$/, '');
}

test('imports only point down the layer stack', () => {
  const problems: string[] = [];
  for (const f of files) {
    const layer = layerOf(f);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) {
        const targetFile = join(f, '..', spec).replace(/\.js$/, '.ts');
        const target = layerOf(targetFile);
        const ok = allowed[layer];
        const leaf = LEAVES.has(relative(SRC, targetFile));
        if (LEAVES.has(relative(SRC, f)) && !(leaf || target === 'errors')) problems.push(`${relative(SRC, f)} is a leaf but imports ${spec}`);
        else if (leaf && leafImportable.has(layer)) continue;
        else if (ok && !ok.includes(target)) problems.push(`${relative(SRC, f)} imports ${spec} (${layer} → ${target})`);
      } else if ((layer === 'protocol' || layer === 'cgi') && pureForbidden.test(spec)) {
        problems.push(`${relative(SRC, f)} (pure layer) imports ${spec}`);
      }
    }
    const envReads = text.match(/process\.(env|argv)/g)?.length ?? 0;
    const allowedReads = ENV_READERS[relative(SRC, f)] ?? (EDGES.has(layer) ? Number.POSITIVE_INFINITY : 0);
    if (envReads > allowedReads) {
      problems.push(`${relative(SRC, f)} reads process.env/argv ${envReads} times (only config/load, server and cli may; see ENV_READERS)`);
    }
  }
  assert.deepEqual(problems, []);
});
