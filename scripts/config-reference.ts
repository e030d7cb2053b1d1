#!/usr/bin/env node
/**
 * Print the key tables of docs/configuration.md from the schema (config/schema.ts): one row per
 * key with its default and meaning. The doc's prose is written by hand; its tables are pasted
 * from here, and test/meta/config-doc.test.ts fails when the two disagree.
 *
 *   node --import tsx scripts/config-reference.ts
 */
import { schemaKeys } from '../src/config/issues.js';
import { configSchema } from '../src/config/schema.js';
import { formatDuration, formatSize } from '../src/config/units.js';

const show = (v: unknown, unit: string | null): string => {
  if (v === undefined) return '—';
  if (typeof v === 'number' && unit === 'size') return `\`${formatSize(v)}\``;
  if (typeof v === 'number' && unit === 'duration') return `\`${formatDuration(v)}\``;
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 3) return '(see its keys)';
  return `\`${JSON.stringify(v)}\``;
};

const sections = new Map<string, string[]>();
for (const k of schemaKeys(configSchema)) {
  const dot = k.path.lastIndexOf('.');
  const head = dot < 0 ? '' : k.path.slice(0, dot);
  const unit = k.unit === 'size' ? ' (size)' : k.unit === 'duration' ? ' (duration)' : '';
  const rows = sections.get(head) ?? [];
  rows.push(`| \`${k.path}\` | ${show(k.default, k.unit)}${unit} | ${k.description.replace(/\|/g, '\\|')} |`);
  sections.set(head, rows);
}
for (const [head, rows] of sections) {
  console.log(`\n### ${head === '' ? 'Top level' : `\`${head}\``}\n\n| key | default | meaning |\n|---|---|---|\n${rows.join('\n')}`);
}
