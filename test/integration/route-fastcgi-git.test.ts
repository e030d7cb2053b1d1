/**
 * Integration, real fcgiwrap + git: a `fastcgi` route sends every request under /git/ to
 * git-http-backend. `git push` (with a pack large enough that git sends it chunked, which the
 * gateway buffers and sends with a CONTENT_LENGTH) and `git clone` over smart HTTP.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { resolveConfig } from '../../src/config/load.js';
import type { GatewayHandler } from '../../src/http/gateway-handler.js';
import { type GatewayServer, startConfiguredServer } from '../../src/server.js';
import { type Fcgiwrap, startFcgiwrap } from '../helpers/fcgiwrap.js';

const run = promisify(execFile);
const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

let dir: string;
let wrap: Fcgiwrap;
let gw: GatewayServer<GatewayHandler>;
let gitEnv: NodeJS.ProcessEnv;

const git = async (cwd: string, ...args: string[]): Promise<string> => (await run('git', args, { cwd, env: gitEnv, maxBuffer: 64 * 1024 * 1024 })).stdout;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fcgi-gw-git-'));
  mkdirSync(join(dir, 'home'));
  // A clean git: no user or system config, no prompts.
  gitEnv = { PATH: process.env['PATH'], HOME: join(dir, 'home'), GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' };
  mkdirSync(join(dir, 'repos'));
  await git(join(dir, 'repos'), 'init', '--bare', '-q', '-b', 'main', 'app.git');
  await git(join(dir, 'repos', 'app.git'), 'config', 'http.receivepack', 'true');
  wrap = await startFcgiwrap(2);
  const config = resolveConfig({
    base: {
      listen: ['127.0.0.1:0'],
      accessLog: false,
      sites: [
        {
          root: dir,
          routes: [
            { path: '/git/', fastcgi: { upstream: wrap.address, script: GIT_HTTP_BACKEND, params: { GIT_PROJECT_ROOT: join(dir, 'repos'), GIT_HTTP_EXPORT_ALL: '1' } } },
            { path: '/', static: {} },
          ],
        },
      ],
    },
  });
  gw = await startConfiguredServer(config);
});

after(async () => {
  await gw?.close();
  await wrap?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('git push and git clone over smart HTTP through fcgiwrap + git-http-backend', { timeout: 120_000 }, async () => {
  const remote = `${gw.url}/git/app.git`;
  const work = join(dir, 'work');
  mkdirSync(work);
  await git(work, 'init', '-q', '-b', 'main');
  writeFileSync(join(work, 'README'), 'hello over fastcgi\n');
  // Random bytes do not compress: the pack is > http.postBuffer (1 MiB), so git streams it chunked.
  writeFileSync(join(work, 'blob.bin'), randomBytes(3 * 1024 * 1024));
  await git(work, 'add', '.');
  await git(work, 'commit', '-q', '-m', 'first');
  await git(work, 'push', '-q', remote, 'main');
  const head = (await git(work, 'rev-parse', 'HEAD')).trim();
  assert.equal((await git(join(dir, 'repos', 'app.git'), 'rev-parse', 'main')).trim(), head, 'the bare repository has the pushed commit');

  await git(dir, 'clone', '-q', remote, 'clone');
  assert.equal(readFileSync(join(dir, 'clone', 'README'), 'utf8'), 'hello over fastcgi\n');
  assert.ok(readFileSync(join(dir, 'clone', 'blob.bin')).equals(readFileSync(join(work, 'blob.bin'))), 'the large file arrives intact');

  // A second push from the clone, then a fetch in the first tree sees it.
  writeFileSync(join(dir, 'clone', 'README'), 'changed\n');
  await git(join(dir, 'clone'), 'commit', '-q', '-am', 'second');
  await git(join(dir, 'clone'), 'push', '-q', 'origin', 'main');
  await git(work, 'pull', '-q', remote, 'main');
  assert.equal(readFileSync(join(work, 'README'), 'utf8'), 'changed\n');
  assert.equal(gw.handler.pools.get(wrap.address)!.stats.failed, 0, 'no FastCGI exchange failed');
});

test('PATH_INFO is the path after the prefix, SCRIPT_NAME the prefix: a missing repository is 404 from git', async () => {
  const res = await fetch(`${gw.url}/git/nope.git/info/refs?service=git-upload-pack`);
  assert.equal(res.status, 404);
  await res.arrayBuffer();
});
