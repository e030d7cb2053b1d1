/**
 * The argv layer in-process, for failures found before any connection: usage errors exit 1
 * with a message on stderr (and never reach the network), and the non-loopback warning.
 * Real exchanges are covered by test/integration/cli-*.test.ts.
 */
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { runCli } from '../../../src/cli/cli.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}

/** A unix socket path that cannot exist: if a command got as far as connecting, it would exit 2. */
const NOWHERE = 'unix:/nonexistent-dir-for-cli-tests/fpm.sock';

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli(argv, { stdout, stderr, stdin: Readable.from([]), cwd: '/tmp' });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('usage errors exit 1 with a message and a pointer to --help', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['no command', [], /choose a command: serve, dev, bench, reload, check-config, status, ping or run/],
    ['unknown command', ['frobnicate'], /Unknown argument: frobnicate/],
    ['missing --upstream', ['status'], /Missing required argument: upstream/],
    ['unknown flag', ['ping', '-u', NOWHERE, '--bogus'], /Unknown argument: bogus/],
    ['bad format', ['status', '-u', NOWHERE, '--format', 'xml'], /Invalid values/],
    ['run without script', ['run', '-u', NOWHERE], /Not enough non-option arguments/],
  ];
  for (const [name, argv, re] of cases) {
    test(name, async () => {
      const r = await cli(...argv);
      assert.equal(r.code, 1);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /--help/);
      assert.equal(r.stdout, '');
    });
  }
});

describe('bad values are refused before connecting (exit 1, not 2)', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['address without port', ['status', '-u', 'php-fpm'], /bad --upstream: upstream address "php-fpm" has no port/],
    ['address with a bad port', ['ping', '-u', '127.0.0.1:99999'], /bad --upstream: port 99999 is out of range/],
    ['--json with another --format', ['status', '-u', NOWHERE, '--json', '--format', 'openmetrics'], /--json conflicts with --format openmetrics/],
    ['--watch below 0.1 s', ['status', '-u', NOWHERE, '--watch', '0'], /--watch must be a number of seconds/],
    ['negative --timeout', ['ping', '-u', NOWHERE, '--timeout', '-5'], /--timeout must be an integer ≥ 0/],
    ['non-numeric --timeout', ['status', '-u', NOWHERE, '--timeout', 'soon'], /--timeout must be an integer ≥ 0/],
    ['relative --path', ['ping', '-u', NOWHERE, '--path', 'ping'], /--path must be an absolute path/],
    ['PHP_VALUE', ['run', 'x.php', '-u', NOWHERE, '--param', 'PHP_VALUE=auto_prepend_file=/etc/passwd'], /--param PHP_VALUE refused/],
    ['php_admin_value', ['run', 'x.php', '-u', NOWHERE, '--param', 'php_admin_value=x=1'], /--param php_admin_value refused/],
    ['-d twice', ['run', 'x.php', '-u', NOWHERE, '-d', 'a', '-d', 'b'], /-d can be given once/],
    ['Content-Length header', ['run', 'x.php', '-u', NOWHERE, '-H', 'Content-Length: 3'], /Content-Length is not allowed/],
    ['bad header line', ['run', 'x.php', '-u', NOWHERE, '-H', 'nocolon'], /must look like "Name: value"/],
    ['missing body file', ['run', 'x.php', '-u', NOWHERE, '-d', '@/nonexistent/body.bin'], /-d @\/nonexistent\/body.bin: cannot open: ENOENT/],
  ];
  for (const [name, argv, re] of cases) {
    test(name, async () => {
      const r = await cli(...argv);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /cannot connect/);
    });
  }
});

test('with a valid command line the same harness reaches the connect step (exit 2): the cases above are not vacuous', async () => {
  const r = await cli('run', 'x.php', '-u', NOWHERE, '--param', 'APP_ENV=test');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot connect to unix:\/nonexistent-dir-for-cli-tests\/fpm\.sock: ENOENT/);
});

test('run warns when the upstream is neither loopback nor a unix socket', async () => {
  // The PHP_VALUE refusal stops it before any connection attempt.
  const r = await cli('run', 'x.php', '-u', '10.255.255.1:9000', '--param', 'PHP_VALUE=x');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /warning: 10\.255\.255\.1:9000 is neither a loopback address nor a unix socket/);
  const local = await cli('run', 'x.php', '-u', '127.0.0.1:9000', '--param', 'PHP_VALUE=x');
  assert.doesNotMatch(local.stderr, /warning/);
});
