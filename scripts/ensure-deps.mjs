#!/usr/bin/env node
// First step of `npm test` and `npm start`: install what a fresh clone lacks.
// npm dependencies via `npm ci`; php-fpm via apt-get when root, else print the command and stop.
// Uses only Node built-ins: it runs before node_modules exists.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter } from 'node:path';

const need = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ['npm', 'php-fpm']);

function run(cmd, args) {
  console.error(`> ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function findPhpFpm() {
  if (process.env.PHP_FPM_BIN) return existsSync(process.env.PHP_FPM_BIN) ? process.env.PHP_FPM_BIN : null;
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']) {
    if (!dir || !existsSync(dir)) continue;
    try {
      if (readdirSync(dir).some((n) => /^php-fpm[0-9.]*$/.test(n))) return dir;
    } catch {}
  }
  return null;
}

if (need.has('npm') && (!existsSync('node_modules/.package-lock.json') || !existsSync('node_modules/tsx'))) {
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

const aptPackages = [];
if (need.has('php-fpm') && !findPhpFpm()) aptPackages.push('php8.2-fpm', 'php8.2-cli');
if (need.has('nginx') && !existsSync(process.env.NGINX_BIN ?? '/usr/sbin/nginx')) aptPackages.push('nginx-light');
// The fastcgi route is tested against a real fcgiwrap running git-http-backend.
if (need.has('fcgiwrap') && !existsSync('/usr/sbin/fcgiwrap')) aptPackages.push('fcgiwrap');
if (need.has('fcgiwrap') && !existsSync('/usr/lib/git-core/git-http-backend')) aptPackages.push('git');
// The dev server's browser test drives a real headless Chromium (no browser download).
if (need.has('chromium') && !existsSync(process.env.CHROMIUM_BIN ?? '/usr/bin/chromium')) aptPackages.push('chromium');
if (aptPackages.length > 0) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (isRoot && hasApt) {
    run('apt-get', ['update', '-q']);
    run('apt-get', ['install', '-y', '-q', ...aptPackages]);
  } else {
    console.error(`\nMissing: ${aptPackages.join(', ')}. Install with:\n\n  sudo apt-get update && sudo apt-get install -y ${aptPackages.join(' ')}\n\nor set PHP_FPM_BIN to a php-fpm binary, then run the command again.`);
    process.exit(1);
  }
}
