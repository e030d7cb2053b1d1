/**
 * Constants against FastCGI 1.0 §8 (and §3.3 / §4.1 / §5). The numbers are written out here
 * from the spec, not imported, so a typo in src/protocol/constants.ts cannot hide.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FCGI_HEADER_LEN,
  FCGI_MAX_CONTENT_LEN,
  FCGI_MAXTYPE,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  Flags,
  MAX_RECORD_CONTENT,
  ProtocolStatus,
  RECORD_TYPE_NAMES,
  RecordType,
  Role,
  ValueName,
} from '../../../src/protocol/constants.js';

test('header length, version and null request id match §8', () => {
  assert.equal(FCGI_HEADER_LEN, 8);
  assert.equal(FCGI_VERSION_1, 1);
  assert.equal(FCGI_NULL_REQUEST_ID, 0);
});

test('record types are numbered 1..11 as in §8 and FCGI_MAXTYPE is UNKNOWN_TYPE', () => {
  assert.deepEqual(
    { ...RecordType },
    {
      BeginRequest: 1,
      AbortRequest: 2,
      EndRequest: 3,
      Params: 4,
      Stdin: 5,
      Stdout: 6,
      Stderr: 7,
      Data: 8,
      GetValues: 9,
      GetValuesResult: 10,
      UnknownType: 11,
    },
  );
  assert.equal(FCGI_MAXTYPE, 11);
});

test('every record type has its spec name for diagnostics', () => {
  assert.deepEqual(
    { ...RECORD_TYPE_NAMES },
    {
      1: 'BEGIN_REQUEST',
      2: 'ABORT_REQUEST',
      3: 'END_REQUEST',
      4: 'PARAMS',
      5: 'STDIN',
      6: 'STDOUT',
      7: 'STDERR',
      8: 'DATA',
      9: 'GET_VALUES',
      10: 'GET_VALUES_RESULT',
      11: 'UNKNOWN_TYPE',
    },
  );
});

test('roles, KEEP_CONN flag and protocol statuses match §8', () => {
  assert.deepEqual({ ...Role }, { Responder: 1, Authorizer: 2, Filter: 3 });
  assert.deepEqual({ ...Flags }, { KeepConn: 1 });
  assert.deepEqual({ ...ProtocolStatus }, { RequestComplete: 0, CantMpxConn: 1, Overloaded: 2, UnknownRole: 3 });
});

test('GET_VALUES variable names are spelled as in §4.1', () => {
  assert.deepEqual({ ...ValueName }, { MaxConns: 'FCGI_MAX_CONNS', MaxReqs: 'FCGI_MAX_REQS', MpxsConns: 'FCGI_MPXS_CONNS' });
});

test('record content limits: 16-bit field, and the largest multiple of 8 below it', () => {
  assert.equal(FCGI_MAX_CONTENT_LEN, 65535);
  assert.equal(MAX_RECORD_CONTENT, 65528);
  assert.equal(MAX_RECORD_CONTENT % 8, 0);
  assert.ok(MAX_RECORD_CONTENT + 8 > FCGI_MAX_CONTENT_LEN, 'no larger multiple of 8 fits 16 bits');
});

test('constant tables are frozen', () => {
  assert.ok(Object.isFrozen(RECORD_TYPE_NAMES), 'RECORD_TYPE_NAMES is frozen');
});
