// The installed command, bin/fastcgi-gateway: a shell script that execs node with the gateway's
// flags and dist/cli/main.js. Run here in a package laid out as npm installs one, with a stub
// main.js that reports what it was started with, so no build is needed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/node-flags.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'bin', 'fastcgi-gateway');

interface Seen {
  readonly pid: number;
  readonly execArgv: string[];
  readonly argv: string[];
  readonly cwd: string;
}

/** Runs `file ARGS`; resolves with its pid, exit code and what the stub printed. */
function run(file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<{ pid: number; code: number | null; out: string; err: string }> {
  return new Promise((res, rej) => {
    const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.once('error', rej);
    child.once('close', (code) => res({ pid: child.pid!, code, out, err }));
  });
}

describe('bin/fastcgi-gateway', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fcgi-bin-'));
    // <dir>/lib/node_modules/fastcgi-gateway/{package.json, bin/fastcgi-gateway, dist/cli/main.js}
    const pkg = join(dir, 'lib', 'node_modules', 'fastcgi-gateway');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    mkdirSync(join(pkg, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fastcgi-gateway', type: 'module' }));
    copyFileSync(SCRIPT, join(pkg, 'bin', 'fastcgi-gateway'));
    writeFileSync(
      join(pkg, 'dist', 'cli', 'main.js'),
      `const a = process.argv.slice(2);
process.stdout.write(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, argv: a, cwd: process.cwd() }));
process.exitCode = a[0] === 'exit' ? Number(a[1]) : 0;
`,
    );
    // A global install's link (relative, as npm makes it), a link to that link, and an absolute one.
    mkdirSync(join(dir, 'bin'));
    symlinkSync('../lib/node_modules/fastcgi-gateway/bin/fastcgi-gateway', join(dir, 'bin', 'fastcgi-gateway'));
    mkdirSync(join(dir, 'other'));
    symlinkSync('../bin/fastcgi-gateway', join(dir, 'other', 'fcgi'));
    symlinkSync(join(pkg, 'bin', 'fastcgi-gateway'), join(dir, 'other', 'absolute'));
    // `npm install -g .`: the package directory itself is a link, to the source tree.
    mkdirSync(join(dir, 'linked', 'node_modules'), { recursive: true });
    symlinkSync(pkg, join(dir, 'linked', 'node_modules', 'fastcgi-gateway'));
    mkdirSync(join(dir, 'linked', 'bin'));
    symlinkSync('../node_modules/fastcgi-gateway/bin/fastcgi-gateway', join(dir, 'linked', 'bin', 'fastcgi-gateway'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is executable in the repository and is the package\'s "bin"', () => {
    assert.ok((statSync(SCRIPT).mode & 0o111) !== 0, 'bin/fastcgi-gateway has its executable bits');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
    assert.deepEqual(pkg.bin, { 'fastcgi-gateway': 'bin/fastcgi-gateway' });
    assert.ok(pkg.files.includes('bin'), 'bin/ is in the published files');
  });

  test('passes the flags of src/node-flags.ts', () => {
    const m = /^exec node (.*) "\$\(dirname "\$self"\)\/\.\.\/dist\/cli\/main\.js" "\$@"$/m.exec(readFileSync(SCRIPT, 'utf8'));
    assert.ok(m, 'the script ends in one `exec node FLAGS …/dist/cli/main.js "$@"` line');
    assert.deepEqual(m[1]!.split(' '), [...SERVER_NODE_FLAGS]);
  });

  for (const via of ['bin/fastcgi-gateway', 'other/fcgi', 'other/absolute', 'linked/bin/fastcgi-gateway', 'lib/node_modules/fastcgi-gateway/bin/fastcgi-gateway']) {
    test(`through ${via}: one process, the flags, every argument as given`, async () => {
      const args = ['serve', '--root', 'a dir/with spaces', '', '*', '$HOME', "it's", '-l', '127.0.0.1:0'];
      const cwd = join(dir, 'other');
      const r = await run(join(dir, via), args, cwd);
      assert.equal(r.code, 0, r.err);
      const seen = JSON.parse(r.out) as Seen;
      assert.equal(seen.pid, r.pid, 'exec: node has the PID the caller started (signals and pid files reach it)');
      assert.deepEqual(seen.execArgv, [...SERVER_NODE_FLAGS]);
      assert.deepEqual(seen.argv, args);
      assert.equal(seen.cwd, cwd, 'the working directory is the caller\'s');
    });
  }

  test('`bash fastcgi-gateway`, found through PATH', async () => {
    const env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? ''}` };
    const r = await run('bash', ['fastcgi-gateway', 'status'], join(dir, 'other'), env);
    assert.equal(r.code, 0, r.err);
    const seen = JSON.parse(r.out) as Seen;
    assert.deepEqual([seen.execArgv, seen.argv], [[...SERVER_NODE_FLAGS], ['status']]);
  });

  test('run by node (as Yarn 2+ runs commands), it is JavaScript that starts the CLI without the flags', async () => {
    const r = await run(process.execPath, [join(dir, 'bin', 'fastcgi-gateway'), 'serve', 'a b'], dir);
    assert.equal(r.code, 0, r.err);
    const seen = JSON.parse(r.out) as Seen;
    assert.deepEqual([seen.execArgv, seen.argv], [[], ['serve', 'a b']]);
  });

  test('the container image starts the gateway through it', () => {
    const file = readFileSync(join(ROOT, 'conf', 'deploy', 'Containerfile'), 'utf8');
    assert.match(file, /^COPY bin \.\/bin$/m, 'the image has bin/');
    assert.match(file, /^ENTRYPOINT \["bin\/fastcgi-gateway"\]$/m);
  });

  test("node's exit code is the command's", async () => {
    const r = await run(join(dir, 'bin', 'fastcgi-gateway'), ['exit', '7'], dir);
    assert.equal(r.code, 7);
  });
});
