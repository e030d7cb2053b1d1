#!/usr/bin/env node
// `npm start`: `fastcgi-gateway dev examples/public`, the example PHP app on http://127.0.0.1:8000
// (the next free port when that one is taken; PORT sets it instead). Installs what a fresh clone
// lacks (scripts/ensure-deps.mjs) and builds dist/ when it is missing or older than src/ first.
// The dev server supervises php-fpm; SIGINT/SIGTERM stop it and php-fpm in order.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOC_ROOT = join(ROOT, 'examples', 'public');
const ENTRIES = [join(ROOT, 'dist', 'cli', 'main.js'), join(ROOT, 'dist', 'cli', 'dev.js'), join(ROOT, 'dist', 'node-flags.js')];

function fail(message, code = 1) {
  console.error(`npm start: ${message}`);
  process.exit(code);
}

// 1. npm dependencies and php-fpm.
const deps = spawnSync(process.execPath, [join(ROOT, 'scripts', 'ensure-deps.mjs')], { cwd: ROOT, stdio: 'inherit' });
if (deps.status !== 0) process.exit(deps.status ?? 1);

// 2. Build when dist/ is missing or a source file changed since the last build.
function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}
const built = ENTRIES.every((f) => existsSync(f));
if (!built || newestMtime(join(ROOT, 'src')) > Math.min(...ENTRIES.map((f) => statSync(f).mtimeMs))) {
  console.error(built ? '> src/ changed since the last build; rebuilding dist/' : '> building dist/');
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  // tsc still writes JavaScript when it reports type errors; go on if the entry points exist.
  if (tsc.status !== 0) {
    if (!ENTRIES.every((f) => existsSync(f))) fail('the build failed (see the errors above)');
    console.error('npm start: the build reported type errors (above); starting with the JavaScript it emitted');
  }
}

// 3. The dev server, in its own process group: a Ctrl-C reaches it once, forwarded from here.
const portText = process.env.PORT;
if (portText !== undefined && (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535)) fail(`PORT=${portText} is not a port number (0-65535)`);
// Under this node, with the node flags the installed command (bin/fastcgi-gateway) adds.
const { SERVER_NODE_FLAGS } = await import(pathToFileURL(ENTRIES[2]).href);
const args = [...SERVER_NODE_FLAGS, ENTRIES[0], 'dev', DOC_ROOT, ...(portText !== undefined ? ['--listen', `127.0.0.1:${portText}`] : [])];
const dev = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit', detached: true });
let forwarded = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (forwarded) return;
    forwarded = true;
    dev.kill(signal);
  });
}
dev.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
