/**
 * Exit codes: the table matches README.md, every library error code has a deliberate exit
 * code, and errors and HTTP statuses map to the documented numbers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  ConnectError,
  ConnectTimeoutError,
  ERROR_STATUS,
  AddressError,
  CgiHeadInvalidError,
  PoolQueueFullError,
  ProtocolError,
  ReadTimeoutError,
  UpstreamClosedError,
  UpstreamRejectedError,
} from '../../../src/errors.js';
import {
  CliError,
  EXIT_CODE_TABLE,
  ExitCode,
  GATEWAY_EXIT_CODES,
  describeFailure,
  exitCodeFor,
  exitCodeForStatus,
} from '../../../src/cli/exit-codes.js';

describe('exit code table', () => {
  test('README.md lists exactly the codes and meanings of EXIT_CODE_TABLE', () => {
    const doc = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('### Exit codes'));
    assert.ok(section.length > 0, 'README.md has no "### Exit codes" section');
    const rows = [...section.matchAll(/^\| (\d+) \| (.+?) \|$/gm)].map((m) => ({ code: Number(m[1]), meaning: m[2] }));
    assert.deepEqual(rows, EXIT_CODE_TABLE.map((r) => ({ code: r.code, meaning: r.meaning })));
  });

  test('codes are distinct and numbered 0..7 in order', () => {
    assert.deepEqual(EXIT_CODE_TABLE.map((r) => r.code), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(Object.values(ExitCode).sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test('every library error code has an exit code', () => {
    const missing = Object.keys(ERROR_STATUS).filter((code) => !(code in GATEWAY_EXIT_CODES));
    assert.deepEqual(missing, []);
  });
});

describe('exitCodeFor', () => {
  test('connect failures and connect timeouts → 2', () => {
    assert.equal(exitCodeFor(new ConnectError('unix:/x.sock', Object.assign(new Error('x'), { code: 'ENOENT' }))), 2);
    assert.equal(exitCodeFor(new ConnectTimeoutError('10.0.0.1:9000', 100)), 2);
  });

  test('overload and pool queue errors → 4', () => {
    assert.equal(exitCodeFor(new UpstreamRejectedError('GW_ERR_UPSTREAM_OVERLOADED', 2)), 4);
    assert.equal(exitCodeFor(new PoolQueueFullError(0)), 4);
  });

  test('protocol errors, early close, read timeout, bad CGI head → 5', () => {
    assert.equal(exitCodeFor(new ProtocolError('bad version', 0)), 5);
    assert.equal(exitCodeFor(new UpstreamClosedError(false)), 5);
    assert.equal(exitCodeFor(new ReadTimeoutError(10)), 5);
    assert.equal(exitCodeFor(new CgiHeadInvalidError('line 1: header line without a colon')), 5);
  });

  test('a bad address → 1; a CliError keeps its own code; anything else → 1', () => {
    assert.equal(exitCodeFor(new AddressError('no port')), 1);
    assert.equal(exitCodeFor(new CliError(ExitCode.ScriptError, 'x')), 7);
    assert.equal(exitCodeFor(new Error('boom')), 1);
    assert.equal(exitCodeFor('string'), 1);
  });
});

describe('exitCodeForStatus', () => {
  test('2xx → 0, 404 → 3, 503 → 4, other → 6', () => {
    assert.equal(exitCodeForStatus(200), 0);
    assert.equal(exitCodeForStatus(204), 0);
    assert.equal(exitCodeForStatus(404), 3);
    assert.equal(exitCodeForStatus(503), 4);
    assert.equal(exitCodeForStatus(500), 6);
    assert.equal(exitCodeForStatus(302), 6);
  });
});

describe('describeFailure', () => {
  test('a connect error names the address and the system reason', () => {
    const msg = describeFailure(new ConnectError('unix:/run/php.sock', Object.assign(new Error('x'), { code: 'EACCES' })));
    assert.equal(msg, 'cannot connect to unix:/run/php.sock: EACCES (permission denied on the socket)');
  });

  test('a close before any answer hints at listen.allowed_clients', () => {
    assert.match(describeFailure(new UpstreamClosedError(true)), /listen\.allowed_clients/);
    assert.doesNotMatch(describeFailure(new UpstreamClosedError(false)), /allowed_clients/);
  });
});
