// The public API is a deliberate list (src/index.ts): adding or removing an export is a choice
// made here too, never an accident of `export *`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as api from '../../src/index.js';

const EXPECTED = [
  'AbortedError',
  'AddressError',
  'BodySourceError',
  'BodyTimeoutError',
  'BodyTooLargeError',
  'CgiHeadInvalidError',
  'CgiHeadParser',
  'CgiHeadTooLargeError',
  'CgiRedirectLoopError',
  'ClientSendTimeoutError',
  'ConfigError',
  'ConnectError',
  'ConnectTimeoutError',
  'ConnectionPool',
  'ERRORS',
  'FCGI_HEADER_LEN',
  'Flags',
  'GatewayError',
  'HandlerError',
  'MAX_RECORD_CONTENT',
  'POOL_DEFAULTS',
  'ParamsTooLargeError',
  'PoolClosedError',
  'PoolQueueFullError',
  'PoolQueueTimeoutError',
  'ProtocolError',
  'ProtocolStatus',
  'ProxyError',
  'ProxyTimeoutError',
  'ReadTimeoutError',
  'RecordDecoder',
  'RecordType',
  'ResponseSpillError',
  'Role',
  'SendfileOutsideError',
  'UpstreamClosedError',
  'UpstreamGroup',
  'UpstreamRejectedError',
  'UpstreamShortBodyError',
  'UpstreamUnavailableError',
  'VERSION',
  'WriteTimeoutError',
  'buildCgiParams',
  'collectHeaders',
  'connectSocket',
  'createFastCgiHandler',
  'createGatewayHandler',
  'decodePairs',
  'encodeAbortRequest',
  'encodeBeginRequest',
  'encodeGetValues',
  'encodePairs',
  'encodeParamsStream',
  'encodeRecord',
  'encodeStreamChunk',
  'encodeStreamEnd',
  'envOverrides',
  'formatIssue',
  'isLocalAddress',
  'loadConfigFile',
  'normalizePath',
  'parseAddress',
  'parseCgiHead',
  'parseDuration',
  'parseEndRequest',
  'parseRequestTarget',
  'parseSize',
  'queryValues',
  'resolveConfig',
  'resolvePoolOptions',
  'setOverride',
  'splitScriptPath',
  'startConfiguredServer',
  'startGatewayServer',
  'statusFor',
];

test('src/index.ts exports exactly the public API', () => {
  assert.deepEqual(Object.keys(api).sort(), EXPECTED);
});

test('internals stay inside', () => {
  for (const name of ['writeHeader', 'writeLength', 'measureParams', 'lengthSize', 'frameStreamChunk', 'ERROR_STATUS', 'describeSystemError']) {
    assert.equal(name in api, false, name);
  }
});
