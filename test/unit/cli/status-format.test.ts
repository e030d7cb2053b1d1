/**
 * Status page rendering from a captured php-fpm 8.2 `?json&full` document: the query words,
 * the aligned summary, the per-process table, width fitting, --watch rates and the
 * formatters, and the failure on a body that is not php-fpm's JSON.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CliError } from '../../../src/cli/exit-codes.js';
import {
  computeRates,
  formatBytes,
  formatDuration,
  formatMicros,
  formatUnixTime,
  parseStatusJson,
  renderProcessTable,
  renderStatusText,
  sampleStatus,
  statusNumber,
  statusQuery,
} from '../../../src/cli/status-format.js';

/** php-fpm 8.2 `/status?json&full` (captured; two workers edited to vary the values; slashes escaped as php-fpm does). */
const FULL_JSON =
  '{"pool":"www","process manager":"dynamic","start time":1795323579,"start since":93784,"accepted conn":4,' +
  '"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":0,"active processes":3,' +
  '"total processes":3,"max active processes":3,"max children reached":0,"slow requests":0, "processes":[' +
  '{"pid":11423,"state":"Running","start time":1795323579,"start since":75,"requests":3,"request duration":459,' +
  '"request method":"GET","request uri":"\\/status?full&json","content length":0,"user":"-","script":"-",' +
  '"last request cpu":0.00,"last request memory":0},' +
  '{"pid":11422,"state":"Idle","start time":1795323579,"start since":3723,"requests":120,"request duration":1523000,' +
  '"request method":"POST","request uri":"\\/index.php?page=2","content length":5120,"user":"bob",' +
  '"script":"\\/var\\/www\\/index.php","last request cpu":12.5,"last request memory":2097152}]}';

const SUMMARY = [
  'pool:                 www',
  'process manager:      dynamic',
  'start time:           2026-11-22T04:59:39Z',
  'start since:          1d 2h 3m',
  'accepted conn:        4',
  'listen queue:         0',
  'max listen queue:     0',
  'listen queue len:     0',
  'idle processes:       0',
  'active processes:     3',
  'total processes:      3',
  'max active processes: 3',
  'max children reached: 0',
  'slow requests:        0',
];

const TABLE = [
  '  PID  STATE    START SINCE  REQUESTS  REQ DURATION  METHOD  URI                CONTENT LEN  USER  SCRIPT              LAST CPU  LAST MEM',
  '11422  Idle        1h 2m 3s       120         1.52s  POST    /index.php?page=2         5120  bob   /var/www/index.php    12.50%      2.0M',
  '11423  Running       1m 15s         3         459µs  GET     /status?full&json            0  -     -                      0.00%        0B',
];

describe('statusQuery', () => {
  test('text and json ask for json; openmetrics for openmetrics; --full appends full', () => {
    assert.equal(statusQuery('text', false), 'json');
    assert.equal(statusQuery('json', false), 'json');
    assert.equal(statusQuery('text', true), 'json&full');
    assert.equal(statusQuery('openmetrics', false), 'openmetrics');
    assert.equal(statusQuery('openmetrics', true), 'openmetrics&full');
  });
});

describe('parseStatusJson', () => {
  test('keeps summary fields in php-fpm order and parses every worker', () => {
    const s = parseStatusJson(FULL_JSON);
    assert.deepEqual(s.fields.map(([k]) => k), SUMMARY.map((l) => l.slice(0, l.indexOf(':'))));
    assert.equal(statusNumber(s, 'accepted conn'), 4);
    assert.equal(s.processes?.length, 2);
    const idle = s.processes?.find((p) => p.pid === 11422);
    assert.deepEqual(idle, {
      pid: 11422,
      state: 'Idle',
      startTime: 1795323579,
      startSince: 3723,
      requests: 120,
      requestDuration: 1523000,
      requestMethod: 'POST',
      requestUri: '/index.php?page=2',
      contentLength: 5120,
      user: 'bob',
      script: '/var/www/index.php',
      lastRequestCpu: 12.5,
      lastRequestMemory: 2097152,
    });
  });

  test('without full there is no process list', () => {
    const s = parseStatusJson('{"pool":"www","accepted conn":7}');
    assert.equal(s.processes, null);
    assert.equal(statusNumber(s, 'accepted conn'), 7);
    assert.equal(statusNumber(s, 'pool'), null);
  });

  test('a body that is not a JSON object is an unexpected answer (exit 6)', () => {
    for (const body of ['File not found.\n', '[1,2]', 'null', '{"pool":"x","processes":{}}']) {
      assert.throws(
        () => parseStatusJson(body),
        (err: unknown) => err instanceof CliError && err.exitCode === 6 && /status page/.test(err.message),
        body,
      );
    }
  });
});

describe('renderStatusText', () => {
  test('summary only: aligned key: value lines with times and durations formatted', () => {
    assert.equal(renderStatusText(parseStatusJson(FULL_JSON)), SUMMARY.join('\n') + '\n');
  });

  test('full: the summary, then the worker table sorted by pid', () => {
    const text = renderStatusText(parseStatusJson(FULL_JSON), { full: true });
    assert.equal(text, [...SUMMARY, '', 'processes (2):', ...TABLE].join('\n') + '\n');
  });

  test('with rates: an accepted conn/s line follows accepted conn', () => {
    const s = parseStatusJson(FULL_JSON);
    const lines = (r: Parameters<typeof renderStatusText>[1]): string[] => renderStatusText(s, r).split('\n');
    const at = (ls: string[]): string => ls[ls.findIndex((l) => l.startsWith('accepted conn:')) + 1] ?? '';
    assert.equal(at(lines({ rates: null })), 'accepted conn/s:      n/a (first snapshot)');
    assert.equal(at(lines({ rates: { acceptedPerSec: 12.345, intervalSec: 2, restarted: false } })), 'accepted conn/s:      12.3');
    assert.equal(at(lines({ rates: { acceptedPerSec: null, intervalSec: 2, restarted: true } })), 'accepted conn/s:      n/a (php-fpm restarted)');
    assert.equal(lines({}).some((l) => l.startsWith('accepted conn/s')), false);
  });

  test('control characters from the page never reach the terminal', () => {
    const s = parseStatusJson('{"pool":"a\\u001b[2Jb","processes":[{"pid":1,"request uri":"\\/x\\u001b]0;t\\u0007"}]}');
    const text = renderStatusText(s, { full: true });
    assert.equal(/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text), false);
    assert.match(text, /a\?\[2Jb/);
  });
});

describe('renderProcessTable width', () => {
  test('URI and script columns shrink with an ellipsis; other columns keep their width', () => {
    const procs = parseStatusJson(FULL_JSON).processes ?? [];
    const wide = renderProcessTable(procs).split('\n')[0] ?? '';
    // Two characters to give: one from SCRIPT (18 wide, the widest), then one from URI (17).
    const narrow = renderProcessTable(procs, wide.length - 2).split('\n');
    assert.equal(narrow[0]?.length, wide.length - 2);
    assert.match(narrow[1] ?? '', / \/index\.php\?page… /);
    assert.match(narrow[1] ?? '', / \/var\/www\/index\.p… /);
    assert.match(narrow[1] ?? '', /^11422 {2}Idle {8}1h 2m 3s {7}120 {9}1\.52s {2}POST {4}/);
  });

  test('shrinking stops at 12 characters per column even when the line stays too wide', () => {
    const procs = parseStatusJson(FULL_JSON).processes ?? [];
    const lines = renderProcessTable(procs, 20).split('\n');
    assert.match(lines[1] ?? '', / \/index\.php\?… /);
    assert.match(lines[1] ?? '', / \/var\/www\/in… /);
  });
});

describe('computeRates', () => {
  const sample = (accepted: number, start: number, atMs: number) =>
    sampleStatus(parseStatusJson(JSON.stringify({ 'start time': start, 'accepted conn': accepted })), atMs);

  test('first snapshot has no rate', () => {
    assert.equal(computeRates(null, sample(10, 1, 0)), null);
  });

  test('per second between snapshots, not counting the tool’s own request', () => {
    assert.deepEqual(computeRates(sample(10, 1, 1000), sample(31, 1, 3000)), { acceptedPerSec: 10, intervalSec: 2, restarted: false });
    assert.deepEqual(computeRates(sample(10, 1, 1000), sample(11, 1, 2000)), { acceptedPerSec: 0, intervalSec: 1, restarted: false });
  });

  test('a changed start time or a counter going back means a restart: no rate', () => {
    assert.deepEqual(computeRates(sample(10, 1, 0), sample(50, 2, 1000)), { acceptedPerSec: null, intervalSec: 1, restarted: true });
    assert.deepEqual(computeRates(sample(10, 1, 0), sample(3, 1, 1000)), { acceptedPerSec: null, intervalSec: 1, restarted: true });
  });
});

describe('formatters', () => {
  test('formatDuration', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(59), '59s');
    assert.equal(formatDuration(125), '2m 5s');
    assert.equal(formatDuration(3 * 3600 + 125), '3h 2m 5s');
    assert.equal(formatDuration(4 * 86400 + 3 * 3600 + 125), '4d 3h 2m');
  });

  test('formatMicros', () => {
    assert.equal(formatMicros(850), '850µs');
    assert.equal(formatMicros(12_345), '12.3ms');
    assert.equal(formatMicros(4_560_000), '4.56s');
  });

  test('formatBytes', () => {
    assert.equal(formatBytes(512), '512B');
    assert.equal(formatBytes(12 * 1024), '12.0K');
    assert.equal(formatBytes(2.5 * 1024 * 1024), '2.5M');
    assert.equal(formatBytes(1024 ** 3), '1.0G');
  });

  test('formatUnixTime is UTC ISO-8601 without milliseconds', () => {
    assert.equal(formatUnixTime(0), '1970-01-01T00:00:00Z');
    assert.equal(formatUnixTime(1795323579), '2026-11-22T04:59:39Z');
  });
});
