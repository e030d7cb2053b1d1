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
  logging: ['logging', 'errors'],
  config: ['config', 'errors'],
  fpm: ['fpm', 'errors'],
  // The benchmark harness starts the CLI as a child process; it imports only the codec and the launcher.
  bench: ['bench', 'protocol', 'fpm', 'errors', 'version'],
};
/**
 * The schema and its helpers are leaves like errors.ts (zod and each other only): every layer
 * above the pure ones validates its options through them. config/load.ts, which reads files,
 * is not a leaf (only server.ts and cli/ may import it).
 */
const LEAVES = new Set(['config/schema.ts', 'config/issues.ts', 'config/units.ts', 'config/options.ts']);
const leafImportable = new Set(['upstream', 'http', 'logging', 'fpm']);
const pureForbidden = /^node:(net|stream|http|https|http2|fs|child_process|timers|process|os|dgram|tls)/;

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
    if ((layer === 'protocol' || layer === 'cgi' || layer === 'upstream' || layer === 'http') && /process\.(env|argv)/.test(text)) {
      problems.push(`${relative(SRC, f)} reads process.env/argv (only config/load, server and cli may)`);
    }
  }
  assert.deepEqual(problems, []);
});
