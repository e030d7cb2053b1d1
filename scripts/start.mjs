#!/usr/bin/env node
// `npm start`: serve the example PHP app in examples/public on http://127.0.0.1:8080 (PORT
// overrides) through a private php-fpm. Installs what a fresh clone lacks (scripts/ensure-deps.mjs),
// builds dist/ when it is missing or older than src/, then runs php-fpm and the gateway until
// SIGINT/SIGTERM, stopping both in order. Exits non-zero when php-fpm dies or the port is taken.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOC_ROOT = join(ROOT, 'examples', 'public');
const ENTRIES = [join(ROOT, 'dist', 'server.js'), join(ROOT, 'dist', 'fpm', 'launcher.js')];
const WORKERS = 4;

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

// 3. php-fpm, then the gateway in front of it.
const portText = process.env.PORT ?? '8080';
if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) fail(`PORT=${portText} is not a port number (0-65535)`);
const port = Number(portText);

const { startPhpFpm } = await import(pathToFileURL(ENTRIES[1]).href);
const { startGatewayServer } = await import(pathToFileURL(ENTRIES[0]).href);

let fpm;
try {
  // php-fpm's own NOTICE lines (started, stopping) are noise here; warnings, errors and what
  // workers write to stderr are shown.
  const onLog = (line) => {
    if (!/\] NOTICE: /.test(line)) console.error(`php-fpm: ${line}`);
  };
  fpm = await startPhpFpm({ workers: WORKERS, onLog });
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}

let gateway;
try {
  gateway = await startGatewayServer({
    root: DOC_ROOT,
    upstream: fpm.address,
    listen: `127.0.0.1:${port}`,
    accessLog: 'pretty',
    pool: { connections: WORKERS },
  });
} catch (err) {
  await fpm.stop();
  if (err?.code === 'EADDRINUSE') {
    fail(`port ${port} on 127.0.0.1 is already in use (another npm start?); stop that program or choose another port, e.g. PORT=${port === 65535 ? 8081 : port + 1} npm start`);
  }
  fail(`cannot start the gateway: ${err instanceof Error ? err.message : String(err)}`);
}

console.log(`php-fpm pid ${fpm.pid} listening on ${fpm.address}`);
console.log(`example app: ${gateway.url}/  (document root ${DOC_ROOT}; Ctrl-C stops)`);

// 4. Shutdown: on a signal, stop accepting, let running requests finish (briefly), stop php-fpm.
let stopping = false;

async function shutdown(exitCode) {
  stopping = true;
  // Requests still running after this long (a slow upload, a hung script) are cut.
  const force = setTimeout(() => gateway.server.closeAllConnections(), 5000);
  force.unref();
  await gateway.close();
  clearTimeout(force);
  await fpm.stop();
  process.exit(exitCode);
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) {
      // Second Ctrl-C: leave now; the launcher's exit hook kills php-fpm's process group.
      console.error('npm start: forced exit');
      process.exit(1);
    }
    console.error(`\nnpm start: ${signal}, stopping the gateway and php-fpm`);
    void shutdown(0);
  });
}

fpm.exited.then((code) => {
  if (stopping) return;
  console.error(`npm start: php-fpm (pid ${fpm.pid}) exited unexpectedly (exit code ${code ?? 'none, killed by a signal'}); its log ends with:`);
  console.error(fpm.logTail(30).replace(/^/gm, '  '));
  gateway.server.closeAllConnections();
  void shutdown(1);
});
